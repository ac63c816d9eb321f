"""Core pieces: sizes, config lookups with their precedence, redaction, error sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyward.core.config import Config, load_config, parse_size
from keyward.core.errors import ConfigError, KeywardError
from keyward.core.redaction import MIN_KEY_BYTES, Fingerprinter, load_key, redact


@pytest.mark.parametrize(
    ("text", "size"),
    [("10M", 10 * 1024**2), ("512k", 512 * 1024), ("1GiB", 1024**3), ("1.5m", 1572864),
     ("4096", 4096), ("10 MB", 10 * 1024**2), (77, 77)],
)  # fmt: skip
def test_parse_size_accepts_units(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "-5", "0", "10X", 0, -1, "infM", 1.5])
def test_parse_size_rejects_nonsense(text: str | int) -> None:
    with pytest.raises(ConfigError, match="is not a size"):
        parse_size(text)


def test_keyward_toml_beats_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.keyward.scan]\nexclude = ["a"]\n')
    assert load_config(cwd=tmp_path).excludes() == ["a"]
    (tmp_path / "keyward.toml").write_text('[scan]\nexclude = ["b"]\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.path == tmp_path / "keyward.toml" and cfg.excludes() == ["b"]


def test_environment_beats_the_file_for_scalars_and_adds_to_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyward.toml"
    path.write_text(
        '[scan]\nexclude = ["x/"]\nmax_file_size = "1M"\nbaseline = "b.json"\nrules = ["r.toml"]\n'
    )
    cfg = load_config(path)
    assert cfg.max_file_size() == 1024**2
    assert cfg.path_setting("scan", "baseline") == tmp_path / "b.json"
    assert cfg.rule_files() == [tmp_path / "r.toml"]
    monkeypatch.setenv("KEYWARD_MAX_FILE_SIZE", "2M")
    monkeypatch.setenv("KEYWARD_BASELINE", "other.json")
    monkeypatch.setenv("KEYWARD_EXCLUDE", "y/, *.min.js")
    monkeypatch.setenv("KEYWARD_RULES", "/a.toml:/b.toml")
    assert cfg.max_file_size() == 2 * 1024**2
    assert cfg.path_setting("scan", "baseline") == Path("other.json")
    assert cfg.excludes() == ["x/", "y/", "*.min.js"]
    assert cfg.rule_files() == [tmp_path / "r.toml", Path("/a.toml"), Path("/b.toml")]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[scan]\nexclude = [1, 2]\n", "scan.exclude in .* must be a list of strings"),
        ("[scan]\nmax_file_size = true\n", "scan.max_file_size in .* must be a size"),
        ("scan = 3\n", r"\[scan\] in .* must be a table"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "keyward.toml"
    path.write_text(toml)
    cfg = load_config(path)
    with pytest.raises(ConfigError, match=message):
        cfg.excludes()
        cfg.max_file_size()


def test_a_missing_config_file_named_explicitly_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    assert load_config(cwd=tmp_path) == Config()


def test_redact_shows_provider_prefix_and_tail_only() -> None:
    token = "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"
    assert redact(token) == "ghp_…m1IL"
    assert redact("hunter2") == "…"
    assert redact("abcdefghij") == "a…j"
    assert "Ky9Pf34q" not in redact(token)


def test_fingerprints_are_keyed_and_the_key_is_never_shown() -> None:
    a, b = Fingerprinter(b"k" * 32), Fingerprinter(b"j" * 32)
    assert a.fingerprint("s3cret-value") != b.fingerprint("s3cret-value")
    assert a.fingerprint("s3cret-value") == a.fingerprint("s3cret-value")
    assert "kkkk" not in repr(a)


def test_error_diagnostics_are_one_sentence_with_the_hint() -> None:
    err = KeywardError("The path x does not exist", hint="Check the path")
    assert err.diagnostics() == "The path x does not exist. Check the path."


def test_a_bad_size_names_the_setting_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyward.core.config import load_config
    from keyward.core.errors import ConfigError

    (tmp_path / "keyward.toml").write_text('[scan]\nmax_file_size = "abc"\n')
    monkeypatch.delenv("KEYWARD_MAX_FILE_SIZE", raising=False)
    with pytest.raises(ConfigError) as err:
        load_config(cwd=tmp_path).max_file_size()
    assert "scan.max_file_size" in err.value.diagnostics()
    monkeypatch.setenv("KEYWARD_MAX_FILE_SIZE", "lots")
    with pytest.raises(ConfigError) as err:
        load_config(cwd=tmp_path).max_file_size()
    assert err.value.diagnostics().startswith("KEYWARD_MAX_FILE_SIZE: 'lots' is not a size")


@pytest.mark.parametrize(
    ("content", "named", "suggested"),
    [
        ('[scan]\nexlcude = ["x"]\n', "exlcude", "exclude"),
        ('[scna]\nexclude = ["x"]\n', "[scna]", "[scan]"),
        ('[rotation.vault]\nadress = "http://v"\n', "adress", "addr"),
        ('[inventory.discovery]\nowner_tag = ["o"]\n', "owner_tag", "owner_tags"),
    ],
    ids=["key", "table", "nested-key", "deeper-key"],
)
def test_a_misspelt_setting_is_an_error_naming_it_and_the_nearest_one(
    tmp_path: Path, content: str, named: str, suggested: str
) -> None:
    path = tmp_path / "keyward.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = err.value.diagnostics()
    assert named in text and f"did you mean {suggested}" in text and str(path) in text


def test_settings_of_plugins_and_named_tables_are_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "keyward.toml"
    path.write_text(
        '[rotation.stores.vault-kv]\nanything = 1\n[rotation.secrets."prod/db".rotator]\nx = 2\n'
        '[aws.accounts.prod]\nrole_arn = "arn:aws:iam::111111111111:role/k"\n'
        '[verify]\ngithub_url = "https://ghe/api/v3"\nacme_url = "https://acme"\ntimeout = 3\n'
    )
    assert load_config(path).section("verify")["acme_url"] == "https://acme"


def test_a_misspelt_setting_in_pyproject_names_the_tool_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.keyward.scan]\nbaselin = "b"\n')
    with pytest.raises(ConfigError) as err:
        load_config(cwd=tmp_path)
    assert "[tool.keyward.scan]" in err.value.diagnostics()


def test_config_option_naming_a_pyproject_reads_its_tool_keyward_table(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n[tool.keyward.scan]\nexclude = ["a/"]\n')
    assert load_config(path).excludes() == ["a/"]


def test_a_key_file_is_created_private_read_back_and_refused_when_too_short(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "fingerprint.key"
    key = load_key(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_key(path) == key  # the same key on the next run
    short = tmp_path / "short.key"
    short.write_text("ab" * (MIN_KEY_BYTES - 1) + "\n")
    with pytest.raises(ConfigError, match="too short") as caught:
        load_key(short)
    assert "ab" * 4 not in caught.value.diagnostics()  # the key is never shown
