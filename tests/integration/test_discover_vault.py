"""`keyward discover vault` against an OpenBao dev server (KV v2), on both databases."""

from __future__ import annotations

import uuid
from typing import Any

import hvac
import pytest
from _inventory_db import *  # noqa: F403
from _inventory_db import Cli
from conftest import Bao, enable_kv2, free_port

from keyward.inventory.discovery.vault import parse_time

pytestmark = pytest.mark.integration


@pytest.fixture
def bao(openbao: Bao, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("VAULT_ADDR", openbao.addr)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    for var in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    return hvac.Client(url=openbao.addr, token=openbao.token)


@pytest.fixture
def prefix() -> str:
    """Each test writes under its own path: the dev server lives for the whole session."""
    return f"t{uuid.uuid4().hex[:10]}"


def _put(client: Any, path: str, data: dict[str, str], owner: str | None = None) -> None:
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path=path, secret=data, mount_point="secret")
    if owner:
        kv.update_metadata(
            path=path, mount_point="secret", custom_metadata={"owner": owner, "team": "core"}
        )


def test_kv_metadata_is_imported_idempotently(bao: Any, cli: Cli, prefix: str) -> None:
    _put(bao, f"{prefix}/apps/api", {"token": "v1"}, owner="alice")
    _put(bao, f"{prefix}/apps/api", {"token": "v2"})
    _put(bao, f"{prefix}/db", {"password": "x"})

    first = cli.json("discover", "vault", "--path", prefix)
    assert (first["added"], first["warnings"]) == (2, [])
    name = f"vault/secret/{prefix}/apps/api"
    shown = cli.json("inventory", "show", name)
    s = shown["secret"]
    assert (s["store"], s["reference"]) == ("vault-kv", f"secret/{prefix}/apps/api")
    assert (s["owner"], s["team"]) == ("alice", "core")
    assert s["attributes"]["current_version"] == 2
    assert [(v["identifier"], v["stage"]) for v in shown["versions"]] == [
        ("1", "previous"),
        ("2", "current"),
    ]
    assert s["last_rotated_at"] >= s["created_at"]

    again = cli.json("discover", "vault", "--path", prefix)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 2)

    bao.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{prefix}/db", mount_point="secret")
    third = cli.json("discover", "vault", "--path", prefix)
    assert third["missing"] == 1


def test_approle_with_a_narrow_policy_gives_partial_results(
    bao: Any, cli: Cli, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(bao, f"{prefix}/open/a", {"k": "v"}, owner="alice")
    _put(bao, f"{prefix}/closed/b", {"k": "v"})
    if "approle/" not in bao.sys.list_auth_methods()["data"]:
        bao.sys.enable_auth_method("approle")
    policy = f"""
    path "secret/metadata/{prefix}" {{ capabilities = ["list"] }}
    path "secret/metadata/{prefix}/" {{ capabilities = ["list"] }}
    path "secret/metadata/{prefix}/open/*" {{ capabilities = ["list", "read"] }}
    path "secret/metadata/{prefix}/open" {{ capabilities = ["list"] }}
    """
    bao.sys.create_or_update_policy(name=prefix, policy=policy)
    bao.auth.approle.create_or_update_approle(role_name=prefix, token_policies=[prefix])
    role_id = bao.auth.approle.read_role_id(role_name=prefix)["data"]["role_id"]
    secret_id = bao.auth.approle.generate_secret_id(role_name=prefix)["data"]["secret_id"]
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)

    rc, _, err = cli("discover", "vault", "--path", prefix, "--format", "json")
    assert rc == 0, err
    assert "warning: Vault denied" in err and "closed" in err
    names = [s["name"] for s in cli.json("inventory", "list")]
    assert names == [f"vault/secret/{prefix}/open/a"]

    monkeypatch.setenv("VAULT_SECRET_ID", "not-the-secret-id")
    rc, _, err = cli("discover", "vault", "--path", prefix)
    assert rc == 3 and "refused the AppRole login" in err and "not-the-secret-id" not in err


def test_fingerprinted_values_link_leaks_to_the_vault_secret(
    bao: Any, cli: Cli, prefix: str, git_repo: Any
) -> None:
    token = "vault-held-" + uuid.uuid4().hex
    _put(bao, f"{prefix}/svc", {"password": token, "user": "svc"}, owner="alice")
    cli.json("discover", "vault", "--path", prefix, "--fingerprint-values")
    (git_repo / "settings.py").write_text(f'password = "{token}"\n')
    rc, _, err = cli("scan", str(git_repo), "--engine", "re", "--record", "--exit-zero")
    assert rc == 0, err
    findings = cli.json("findings", "list")
    assert findings, "the generic password rule should find the planted value"
    assert {f["secret"] for f in findings} == {f"vault/secret/{prefix}/svc"}
    assert {f["owner"] for f in findings} == {"alice"}


def test_unreachable_vault_and_missing_credentials(
    bao: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{port}")
    rc, _, err = cli("discover", "vault")
    assert rc == 3 and f"Cannot reach Vault at http://127.0.0.1:{port}" in err
    monkeypatch.delenv("VAULT_TOKEN")
    rc, _, err = cli("discover", "vault")
    # exit 3 like missing AWS credentials and like rotation's Vault path (issue 8 §1; was 2)
    assert rc == 3 and "No Vault credentials" in err


def test_vault_times_with_nanoseconds_parse_as_utc() -> None:
    when = parse_time("2024-05-01T10:20:30.123456789Z")
    assert when is not None and when.isoformat() == "2024-05-01T10:20:30.123456+00:00"
    assert parse_time("0001-01-01T00:00:00Z") is None


def test_a_secret_discovered_under_another_mount_is_rotated_under_that_mount(
    bao: Any, cli: Cli, db_url: str, prefix: str, openbao: Bao
) -> None:
    from keyward.core.config import Config
    from keyward.core.redaction import Fingerprinter
    from keyward.inventory.db import open_database
    from keyward.inventory.rotations import RotationRepository
    from keyward.providers import Providers, VaultSettings
    from keyward.rotation.registry import PluginContext
    from keyward.rotation.wiring import Wiring

    mount = f"kv{prefix}"
    enable_kv2(bao, mount)
    bao.secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/db", secret={"password": "x" * 20}, mount_point=mount
    )
    assert cli.json("discover", "vault", "--mount", mount, "--path", prefix)["added"] == 1
    repo = RotationRepository(open_database(url=db_url), actor="t")
    secret = repo.rotatable(f"vault/{mount}/{prefix}/db")
    repo.db.close()
    clients = Providers(vault=VaultSettings(addr=openbao.addr, token=openbao.token))
    wiring = Wiring(Config({}), PluginContext(clients, Fingerprinter(b"k" * 32)))
    kind, name, store = wiring.store_for(secret)
    assert (kind, name) == ("vault-kv", f"{prefix}/db")
    assert store.describe(name).exists  # the discovered mount, not the default "secret"


def test_keywards_staging_area_is_not_discovered_as_secrets(
    bao: Any, openbao: Bao, prefix: str
) -> None:
    from keyward.inventory.discovery.vault import discover_vault
    from keyward.providers import VaultClients, VaultSettings
    from keyward.rotation.protocols import SecretValue, new_token
    from keyward.rotation.stores.vault_kv import VaultKVStore

    _put(bao, f"{prefix}/db", {"password": "x-old-value"})
    VaultKVStore(bao).put_pending(f"{prefix}/db", SecretValue({"password": "y"}), new_token())
    caller = VaultClients(VaultSettings(addr=openbao.addr, token=openbao.token)).caller()
    scan = discover_vault(caller)  # the whole mount, staging folder included
    refs = [d.reference for d in scan.items]
    assert f"secret/{prefix}/db" in refs
    assert not [r for r in refs if r.startswith("secret/keyward-staging/")]


def test_a_missing_namespace_or_mount_is_an_error_and_marks_nothing_missing(
    bao: Any, cli: Cli, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(bao, f"{prefix}/db", {"password": "x"})
    assert cli.json("discover", "vault", "--path", prefix)["added"] == 1
    name = f"vault/secret/{prefix}/db"

    monkeypatch.setenv("VAULT_NAMESPACE", "nope")
    rc, out, err = cli("discover", "vault", "--path", prefix)
    assert rc == 2, err
    assert "namespace" in err and "nope" in err and err.count("\n") == 1, err
    assert "missing" not in out
    monkeypatch.delenv("VAULT_NAMESPACE")

    rc, _, err = cli("discover", "vault", "--mount", "typo")
    assert rc == 2, err
    assert "typo" in err and "mount" in err and err.count("\n") == 1, err

    assert cli.json("inventory", "show", name)["secret"]["status"] != "missing"


def test_approle_not_enabled_at_its_mount_names_the_mount(
    bao: Any, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    config = tmp_path / "keyward.toml"
    config.write_text('[rotation.vault]\napprole_mount = "nowhere"\n')
    monkeypatch.setenv("VAULT_ROLE_ID", "role")
    monkeypatch.setenv("VAULT_SECRET_ID", "secret-id")
    rc, _, err = cli("--config", str(config), "discover", "vault")
    assert rc == 2, err
    assert "auth/nowhere" in err and "AppRole" in err and err.count("\n") == 1, err
    assert "approle_mount" in err  # what to do: enable it there, or say where it is
    assert "internal error" not in err and "secret-id" not in err
