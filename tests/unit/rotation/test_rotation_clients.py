"""Client settings from config and environment; provider errors become keyward errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from keyward.core.config import Config
from keyward.core.errors import (
    ConfigError,
    ExitCode,
    StoreAuthError,
    StoreConflict,
    StoreNotFound,
    StoreUnavailable,
)
from keyward.rotation.clients import (
    Category,
    Clients,
    ErrorFamily,
    VaultSettings,
    aws_category,
    aws_settings,
    translate_aws_error,
    translate_vault_error,
    vault_settings,
)
from keyward.rotation.errors import ProviderDenied, ProviderUnavailable, RotatorConflict


def client_error(code: str, message: str = "msg", status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Op",
    )


def test_vault_settings_come_from_the_environment() -> None:
    env = {
        "VAULT_ADDR": "http://vault:8200",
        "VAULT_TOKEN": "hvs.0123456789abcdefghijkl",
        "VAULT_NAMESPACE": "team-a",
    }
    s = vault_settings(Config(), env)
    assert (s.addr, s.token, s.namespace) == ("http://vault:8200", env["VAULT_TOKEN"], "team-a")
    assert env["VAULT_TOKEN"] not in repr(s)
    assert env["VAULT_TOKEN"] not in repr(Clients(vault=s))


def test_the_config_file_wins_over_vault_environment_for_address_and_namespace() -> None:
    cfg = Config({"rotation": {"vault": {"addr": "http://file:8200", "namespace": "ns"}}})
    s = vault_settings(cfg, {"VAULT_ADDR": "http://env:8200", "VAULT_NAMESPACE": "other"})
    assert (s.addr, s.namespace) == ("http://file:8200", "ns")


def test_a_vault_token_written_in_the_config_file_is_refused() -> None:
    cfg = Config({"rotation": {"vault": {"token": "hvs.x"}}}, Path("keyward.toml"))
    with pytest.raises(ConfigError, match=r"must not be written in keyward\.toml"):
        vault_settings(cfg, {})


def test_vault_without_an_address_or_credentials_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="No Vault address"):
        Clients(vault=VaultSettings()).vault()
    with pytest.raises(StoreAuthError, match="No Vault credentials"):
        Clients(vault=VaultSettings(addr="http://127.0.0.1:1")).vault()


def test_aws_settings_read_the_rotation_table_and_region_variables() -> None:
    cfg = Config({"rotation": {"aws": {"endpoint_url": "http://x", "max_attempts": 5}}})
    s = aws_settings(cfg, {"AWS_DEFAULT_REGION": "eu-west-1"})
    assert (s.region, s.endpoint_url, s.max_attempts) == ("eu-west-1", "http://x", 5)


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (client_error("AccessDeniedException", status=400), Category.AUTH),
        (client_error("InvalidClientTokenId", status=403), Category.AUTH),
        (client_error("ResourceNotFoundException"), Category.NOT_FOUND),
        (client_error("NoSuchEntity", status=404), Category.NOT_FOUND),
        (client_error("LimitExceeded", status=409), Category.CONFLICT),
        (client_error("ThrottlingException"), Category.UNAVAILABLE),
        (client_error("Whatever", status=503), Category.UNAVAILABLE),
        (client_error("ValidationException"), Category.OTHER),
        (EndpointConnectionError(endpoint_url="http://x"), Category.UNAVAILABLE),
        (NoCredentialsError(), Category.AUTH),
    ],
)
def test_aws_errors_are_classified_like_http_statuses(exc: Exception, category: Category) -> None:
    assert aws_category(exc)[0] is category


def test_an_xml_error_body_in_a_json_api_is_parsed() -> None:
    body = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error>"
    exc = client_error("403", body, 403)
    err = translate_aws_error(exc, "secretsmanager:GetSecretValue", "secret 'a'", ErrorFamily.STORE)
    assert isinstance(err, StoreAuthError)
    assert str(err) == "AWS denied secretsmanager:GetSecretValue on secret 'a' (AccessDenied: no)"


def test_store_and_provider_families_map_to_their_error_classes() -> None:
    denied = client_error("AccessDenied", status=403)
    assert isinstance(translate_aws_error(denied, "a", "r", ErrorFamily.STORE), StoreAuthError)
    assert isinstance(translate_aws_error(denied, "a", "r", ErrorFamily.PROVIDER), ProviderDenied)
    down = EndpointConnectionError(endpoint_url="http://x")
    assert isinstance(translate_aws_error(down, "a", "r", ErrorFamily.STORE), StoreUnavailable)
    err = translate_aws_error(down, "a", "r", ErrorFamily.PROVIDER)
    assert isinstance(err, ProviderUnavailable) and err.exit_code is ExitCode.BACKEND
    gone = client_error("ResourceNotFoundException")
    assert isinstance(translate_aws_error(gone, "a", "r", ErrorFamily.STORE), StoreNotFound)
    limit = client_error("LimitExceeded")
    assert isinstance(translate_aws_error(limit, "a", "r", ErrorFamily.PROVIDER), RotatorConflict)


def test_vault_errors_are_mapped_like_hvac_maps_statuses() -> None:
    import hvac.exceptions as hx
    import requests

    path = "secret/data/app"
    assert isinstance(
        translate_vault_error(hx.Forbidden("permission denied"), "read", path), StoreAuthError
    )
    assert isinstance(translate_vault_error(hx.InvalidPath(), "read", path), StoreNotFound)
    cas = hx.InvalidRequest("check-and-set parameter did not match the current version")
    assert isinstance(translate_vault_error(cas, "write", path), StoreConflict)
    down = requests.exceptions.ConnectionError("refused")
    assert isinstance(translate_vault_error(down, "read", path), StoreUnavailable)
    expired = translate_vault_error(hx.Forbidden(), "write", path, token_valid=False)
    assert "expired or been revoked" in str(expired)
    denied = translate_vault_error(hx.Forbidden(), "write", path, token_valid=True)
    assert "Grant the create/update capability on secret/data/app" in denied.diagnostics()
