"""Configuration: CLI flag > ``KEYWARD_*`` environment variable > config file > defaults.

The config file is ``keyward.toml`` (top-level keys) or ``[tool.keyward]`` in ``pyproject.toml``,
looked up in the current directory unless ``--config`` names one. Each subsystem reads its own
table (``[scan]``, ``[inventory]``, ``[rotation]``, ``[daemon]``); nothing here is global state:
a :class:`Config` is built once by the CLI and passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyward.core.errors import ConfigError

ENV_PREFIX = "KEYWARD_"
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024


def data_dir() -> Path:
    """Per-user data directory (database, fingerprint key)."""
    env = os.environ.get("KEYWARD_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("keyward", appauthor=False))


def cache_dir() -> Path:
    env = os.environ.get("KEYWARD_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("keyward", appauthor=False))


def parse_size(text: str | int) -> int:
    """Parse ``10M``, ``512k``, ``1GiB`` or a plain byte count."""
    if isinstance(text, int):
        if text <= 0:
            raise ConfigError(f"{text} is not a size", hint="Use a positive byte count")
        return text
    if not isinstance(text, str):  # e.g. a float or a table in the config file
        raise ConfigError(f"{text!r} is not a size", hint="Use a byte count or e.g. 10M")
    s = text.strip().lower().removesuffix("b").removesuffix("i")
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    try:
        if s and s[-1] in units:
            size = int(float(s[:-1]) * units[s[-1]])
        else:
            size = int(s)
    except (ValueError, OverflowError):  # OverflowError: "infM"
        size = -1
    if size <= 0:
        raise ConfigError(
            f"{text!r} is not a size", hint="Use a byte count or a suffix such as 512k, 10M, 1G"
        )
    return size


@dataclass(frozen=True, slots=True)
class Config:
    """The merged configuration file tables, plus where they came from."""

    table: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.table.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}] in {self.path} must be a table")
        return value

    def get(self, section: str, key: str, default: Any = None) -> Any:
        """Look a key up: environment ``KEYWARD_<KEY>`` first, then the file, then default."""
        env = os.environ.get(f"{ENV_PREFIX}{key.upper()}")
        if env is not None:
            return env
        return self.section(section).get(key, default)

    def file_value(self, section: str, key: str) -> Any:
        """A key from the config file alone (no environment)."""
        return self.section(section).get(key)

    def _where(self, section: str, key: str) -> str:
        return f"{section}.{key} in {self.path}" if self.path else f"{section}.{key}"

    def strings(self, section: str, key: str) -> list[str]:
        """A list of strings from the config file (a single string counts as a list of one)."""
        value = self.file_value(section, key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._where(section, key)} must be a list of strings")
        return list(value)

    def path_setting(self, section: str, key: str) -> Path | None:
        """A path: ``KEYWARD_<KEY>`` (relative to the working directory), else the file's
        value (relative to the config file's directory)."""
        env = os.environ.get(f"{ENV_PREFIX}{key.upper()}")
        if env:
            return Path(env)
        value = self.file_value(section, key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self._where(section, key)} must be a path")
        if "\0" in value:
            raise ConfigError(f"{self._where(section, key)} contains a NUL byte ({value!r})")
        return self.base_dir / value

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def rule_files(self) -> list[Path]:
        """Extra rule files: the config file's ``scan.rules``, then ``KEYWARD_RULES``
        (separated by ``os.pathsep``); later files override rules of the same id."""
        named = self.strings("scan", "rules")
        for f in named:
            if "\0" in f:
                raise ConfigError(f"{self._where('scan', 'rules')} has a NUL byte in {f!r}")
        files = [self.base_dir / f for f in named]
        env = os.environ.get(f"{ENV_PREFIX}RULES")
        if env:
            files.extend(Path(f) for f in env.split(os.pathsep) if f)
        return files

    def excludes(self) -> list[str]:
        """Exclude globs: the config file's ``scan.exclude`` plus ``KEYWARD_EXCLUDE``
        (comma-separated); the command line adds its own."""
        globs = self.strings("scan", "exclude")
        env = os.environ.get(f"{ENV_PREFIX}EXCLUDE")
        if env:
            globs.extend(g.strip() for g in env.split(",") if g.strip())
        return globs

    def max_file_size(self) -> int | None:
        value = self.get("scan", "max_file_size")
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(f"{self._where('scan', 'max_file_size')} must be a size like 10M")
        try:
            return parse_size(value)
        except ConfigError as exc:
            env = f"{ENV_PREFIX}MAX_FILE_SIZE"
            where = env if os.environ.get(env) is not None else self._where("scan", "max_file_size")
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None

    def number(
        self,
        section: str,
        key: str,
        default: float,
        *,
        minimum: float,
        maximum: float | None = None,
        whole: bool = False,
    ) -> float:
        """A number from the config file (``[section] key``), checked against its range: a
        word, a table or an out-of-range value is a ConfigError naming the key."""
        value = self.file_value(section, key)
        if value is None:
            return default
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        ok = (
            number is not None
            and number == number  # not NaN
            and number >= minimum
            and (maximum is None or number <= maximum)
            and (not whole or number.is_integer())
        )
        if not ok:
            kind = "a whole number" if whole else "a number"
            bounds = (
                f"from {minimum:g} to {maximum:g}"
                if maximum is not None
                else f"of at least {minimum:g}"
            )
            raise ConfigError(
                f"{self._where(section, key)} must be {kind} {bounds} (got {value!r})"
            )
        assert number is not None
        return number

    @property
    def database_url(self) -> str | None:
        url = self.get("inventory", "database_url")
        return str(url) if url else None

    def fingerprint_key_file(self) -> Path:
        value = self.get("core", "fingerprint_key_file")
        return Path(value) if value else data_dir() / "fingerprint.key"


# Every table and key keyward reads from the config file, so a misspelt one is an error naming
# it (with the nearest known name) instead of a setting silently ignored. ``True``: a value;
# a dict: a table of these; ``None``: a table of plugin or per-name settings, not checked below.
# A new setting is added here along with the code that reads it.
Schema = Mapping[str, "Schema | bool | None"]
_AWS = {
    "region": True, "endpoint_url": True, "profile": True, "connect_timeout": True,
    "read_timeout": True, "max_attempts": True, "retry_mode": True,
}  # fmt: skip
_VAULT = {
    "addr": True, "namespace": True, "role_id": True, "approle_mount": True, "timeout": True,
    "verify": True,
    "token": True, "secret_id": True,  # refused with their own message: secrets belong in env
}  # fmt: skip
SETTINGS: Schema = {
    "core": {"fingerprint_key_file": True},
    "scan": {
        "exclude": True, "rules": True, "baseline": True, "max_file_size": True,
        "min_confidence": True, "detect_secrets_plugins": True,
    },
    "aws_lambda": {"max_code_size": True, "check_kms": True},
    # verifiers (third parties' too) read their own keys: <provider>_url, aws_region, ...
    "verify": None,
    "inventory": {
        "database_url": True, "schema": True, "unused_days": True,
        "discovery": {"owner_tags": True, "team_tags": True, "contact_tags": True},
    },
    "daemon": {
        "interval": True, "host": True, "port": True, "batch": True, "workers": True,
        "posture_interval": True,
    },
    "rotation": {
        "grace_period": True, "deactivate_after": True, "lease_ttl": True,
        "kept_in_use_retry": True, "retry_backoff": True, "webhook_url": True,
        "webhook_timeout": True, "on_leak": True,
        "aws": _AWS, "vault": _VAULT,
        "stores": None, "rotators": None, "dependents": None, "secrets": None,
    },
    "aws": {"accounts": None},
}  # fmt: skip


def check_settings(
    table: Mapping[str, Any], path: Path | None, schema: Schema = SETTINGS, prefix: str = ""
) -> None:
    """Raise a ConfigError for the first table or key of ``table`` that ``schema`` does not
    know (``prefix``: where ``table`` sits, e.g. ``tool.keyward.``)."""
    import difflib

    for key, value in table.items():
        if key not in schema:
            nearest = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            is_table = isinstance(value, Mapping)
            here = prefix.rstrip(".")
            if is_table:
                what = f"Unknown table [{prefix}{key}]"
                guess = f" (did you mean [{prefix}{nearest[0]}]?)" if nearest else ""
            else:
                what = f"Unknown setting {key} in [{here}]" if here else f"Unknown setting {key}"
                guess = f" (did you mean {nearest[0]}?)" if nearest else ""
            raise ConfigError(
                f"{what} in {path or 'the config file'}{guess}",
                hint="Correct or remove it; the documentation lists every setting",
            )
        sub = schema[key]
        if isinstance(sub, Mapping) and isinstance(value, Mapping):
            check_settings(value, path, sub, f"{prefix}{key}.")


def load_config(explicit: Path | None = None, cwd: Path | None = None) -> Config:
    """Load ``--config FILE``, else ``keyward.toml`` or ``pyproject.toml`` [tool.keyward]."""
    env_path = os.environ.get("KEYWARD_CONFIG")
    if explicit is None and env_path:
        explicit = Path(env_path)
    if explicit is not None:
        table = _read_toml(explicit)
        if explicit.name == "pyproject.toml":  # --config pyproject.toml: its [tool.keyward]
            tool = table.get("tool", {})
            table = tool.get("keyward", {}) if isinstance(tool, dict) else {}
            if not isinstance(table, dict):
                raise ConfigError(f"[tool.keyward] in {explicit} must be a table")
            check_settings(table, explicit, prefix="tool.keyward.")
            return Config(table, explicit)
        check_settings(table, explicit)
        return Config(table, explicit)
    here = cwd or Path.cwd()
    candidate = here / "keyward.toml"
    if candidate.is_file():
        table = _read_toml(candidate)
        check_settings(table, candidate)
        return Config(table, candidate)
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():
        doc = _read_toml(pyproject)
        tool = doc.get("tool", {}).get("keyward")
        if isinstance(tool, dict):
            check_settings(tool, pyproject, prefix="tool.keyward.")
            return Config(tool, pyproject)
    return Config()


def _read_toml(path: Path) -> dict[str, Any]:
    from keyward.core.userfiles import CONFIG_LIMIT, read_user_text

    text = read_user_text(
        path,
        "config file",
        limit=CONFIG_LIMIT,
        error=ConfigError,
        missing_hint="Check the path given to --config",
    )
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The config file {path} is not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(
            f"The config file {path} is nested too deeply to be a keyward config"
        ) from None
