"""Client settings from config and environment; provider errors become keyward errors.

(Was tests/unit/rotation/test_rotation_clients.py: the same cases against keyward.providers.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from keyward.core.config import Config
from keyward.core.errors import (
    ConfigError,
    ExitCode,
    Failure,
    ProviderNotFound,
    StoreAuthError,
    StoreConflict,
    StoreError,
    StoreNotFound,
    StoreUnavailable,
)
from keyward.providers import (
    HOME,
    PROVIDER_ERRORS,
    ROTATE,
    SCAN,
    STORE_ERRORS,
    VERIFY,
    AwsClients,
    AwsSettings,
    Providers,
    VaultSettings,
    aws_settings,
    vault_settings,
)
from keyward.providers.aws import aws_fault, translate_aws_error
from keyward.providers.settings import aws_accounts, choose_accounts
from keyward.providers.vault import translate_vault_error
from keyward.rotation.errors import (
    ROTATOR_ERRORS,
    ProviderDenied,
    ProviderUnavailable,
    RotatorConflict,
)


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
    assert env["VAULT_TOKEN"] not in repr(Providers(vault=s))


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
        Providers(vault=VaultSettings()).vault.client()
    with pytest.raises(StoreAuthError, match="No Vault credentials") as err:
        Providers(vault=VaultSettings(addr="http://127.0.0.1:1")).vault.client()
    # the same exit code as missing AWS credentials (issue 8: both paths agree)
    assert err.value.exit_code is ExitCode.BACKEND
    assert err.value.fault is not None and err.value.fault.failure is Failure.NO_CREDENTIALS


def test_aws_settings_read_the_rotation_table_and_region_variables() -> None:
    cfg = Config({"rotation": {"aws": {"endpoint_url": "http://x", "max_attempts": 5}}})
    s = aws_settings(cfg, {"AWS_DEFAULT_REGION": "eu-west-1"})
    assert (s.region, s.endpoint_url, s.max_attempts) == ("eu-west-1", "http://x", 5)


@pytest.mark.parametrize(
    "table",
    [{"read_timeout": 0}, {"connect_timeout": "soon"}, {"max_attempts": -1},
     {"retry_mode": "eager"}],
)  # fmt: skip
def test_invalid_aws_overrides_are_config_errors(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"\[rotation\.aws\]"):
        aws_settings(Config({"rotation": {"aws": table}}), {})


def test_each_preset_builds_its_own_timeouts_and_retries() -> None:
    def retries(clients: AwsClients) -> tuple[float, float, dict[str, object]]:
        cfg = clients.botocore_config()
        return cfg.connect_timeout, cfg.read_timeout, cfg.retries

    assert retries(AwsClients(preset=ROTATE)) == (5, 30, {"mode": "standard", "max_attempts": 3})
    assert retries(AwsClients(preset=SCAN)) == (10, 60, {"mode": "adaptive"})
    assert retries(AwsClients(preset=VERIFY)) == (10, 10, {"mode": "standard", "max_attempts": 2})
    tuned = AwsSettings(read_timeout=90, max_attempts=0, retry_mode="adaptive")
    assert retries(AwsClients(tuned, ROTATE)) == (5, 90, {"mode": "adaptive", "max_attempts": 0})
    assert AwsClients(preset=SCAN).botocore_config().user_agent_extra == "keyward"


ROLE = "arn:aws:iam::111111111111:role/keyward"


def test_accounts_are_read_with_the_role_account_as_id_and_home_listed_once() -> None:
    cfg = Config(
        {
            "aws": {
                "accounts": {
                    "main": {"id": "123456789012", "regions": ["eu-west-1"]},
                    "prod": {"role_arn": ROLE, "external_id": "ext-1", "regions": "us-east-1"},
                    "222222222222": {"role_arn": "arn:aws:iam::222222222222:role/x/keyward"},
                }
            }
        }
    )
    main, prod, bare = aws_accounts(cfg)
    assert (main.id, main.role_arn, main.regions) == ("123456789012", None, ("eu-west-1",))
    assert (prod.id, prod.external_id, prod.regions) == ("111111111111", "ext-1", ("us-east-1",))
    assert (bare.name, bare.id, bare.label) == ("222222222222", "222222222222", "222222222222")
    assert prod.label == "prod (111111111111)" and "ext-1" not in repr(prod)
    accounts = aws_accounts(cfg)
    assert choose_accounts(accounts) == (main,)  # keyward's own, with its regions
    assert choose_accounts(accounts, ["prod", "222222222222", "prod"]) == (prod, bare)
    assert choose_accounts(accounts, every=True) == accounts
    assert choose_accounts((), ["home"]) == (HOME,)


@pytest.mark.parametrize(
    ("accounts", "message"),
    [
        ({"a": {"role_arn": "arn:aws:iam::1111:role/k"}}, "role_arn in [aws.accounts.a] is not"),
        ({"a": {"role_arn": ROLE, "id": "222222222222"}}, "says id 222222222222 but its role_arn"),
        ({"a": {"id": 111111111111}}, "must be a 12-digit AWS account id in quotes"),
        ({"a": {"role_arn": ROLE, "region": "x"}}, "unknown setting 'region'"),
        ({"a": {"id": "111111111111", "external_id": "abc"}}, "needs a role_arn"),
        ({"a": {"role_arn": ROLE, "regions": [1]}}, "must be a list of region names"),
        ({"a": {"role_arn": ROLE, "session_name": "a b"}}, "session_name in [aws.accounts.a]"),
        ({"a": {"role_arn": ROLE}, "b": {"role_arn": ROLE}}, "are the same account"),
        ({"a": {}, "b": {}}, "both have no role_arn"),
        ({"a": "arn"}, "[aws.accounts.a] must be a table"),
    ],
)
def test_a_mistake_in_an_account_is_one_sentence_naming_its_table(
    accounts: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        aws_accounts(Config({"aws": {"accounts": accounts}}))
    assert message in info.value.diagnostics()
    assert info.value.exit_code is ExitCode.USAGE


def test_choosing_an_unknown_account_names_the_configured_ones() -> None:
    accounts = aws_accounts(Config({"aws": {"accounts": {"prod": {"role_arn": ROLE}}}}))
    with pytest.raises(ConfigError) as info:
        choose_accounts(accounts, ["dev"])
    assert "No AWS account 'dev' in [aws.accounts] (configured: prod)" in str(info.value)
    with pytest.raises(ConfigError, match="needs the accounts listed in the config file"):
        choose_accounts((), every=True)
    with pytest.raises(ConfigError, match="either --account or --all-accounts"):
        choose_accounts(accounts, ["prod"], every=True)


@pytest.mark.parametrize(
    ("exc", "family_class"),
    [
        (client_error("AccessDeniedException", status=400), ProviderDenied),
        (client_error("InvalidClientTokenId", status=403), ProviderDenied),
        (client_error("ResourceNotFoundException"), ProviderNotFound),
        (client_error("NoSuchEntity", status=404), ProviderNotFound),
        (client_error("LimitExceeded", status=409), RotatorConflict),
        (client_error("ThrottlingException"), ProviderUnavailable),
        (client_error("Whatever", status=503), ProviderUnavailable),
        (client_error("ValidationException"), None),  # "other": a plain BackendError
        (EndpointConnectionError(endpoint_url="http://x"), ProviderUnavailable),
        (NoCredentialsError(), ProviderDenied),
    ],
)
def test_aws_errors_are_classified_like_http_statuses(
    exc: Exception, family_class: type[Exception] | None
) -> None:
    err = translate_aws_error(exc, "a", "r", ROTATOR_ERRORS)
    assert err is not None
    if family_class is None:
        assert type(err).__name__ == "BackendError"
    else:
        assert isinstance(err, family_class)


def test_an_xml_error_body_in_a_json_api_is_parsed() -> None:
    body = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error>"
    exc = client_error("403", body, 403)
    err = translate_aws_error(exc, "secretsmanager:GetSecretValue", "secret 'a'", STORE_ERRORS)
    assert isinstance(err, StoreAuthError)
    assert str(err) == "AWS denied secretsmanager:GetSecretValue on secret 'a' (AccessDenied: no)"


def test_store_and_provider_families_map_to_their_error_classes() -> None:
    denied = client_error("AccessDenied", status=403)
    assert isinstance(translate_aws_error(denied, "a", "r", STORE_ERRORS), StoreAuthError)
    assert isinstance(translate_aws_error(denied, "a", "r", PROVIDER_ERRORS), ProviderDenied)
    down = EndpointConnectionError(endpoint_url="http://x")
    assert isinstance(translate_aws_error(down, "a", "r", STORE_ERRORS), StoreUnavailable)
    err = translate_aws_error(down, "a", "r", PROVIDER_ERRORS)
    assert isinstance(err, ProviderUnavailable) and err.exit_code is ExitCode.BACKEND
    gone = client_error("ResourceNotFoundException")
    assert isinstance(translate_aws_error(gone, "a", "r", STORE_ERRORS), StoreNotFound)
    limit = client_error("LimitExceeded")
    assert isinstance(translate_aws_error(limit, "a", "r", ROTATOR_ERRORS), RotatorConflict)
    # a store's denial and unavailability are also the shared provider classes
    assert isinstance(translate_aws_error(denied, "a", "r", STORE_ERRORS), ProviderDenied)
    assert isinstance(translate_aws_error(down, "a", "r", STORE_ERRORS), ProviderUnavailable)


def test_a_non_provider_exception_is_not_translated() -> None:
    assert aws_fault(ValueError("x"), "a", "r") is None
    assert translate_vault_error(KeyError("x"), "read", "p") is None


def test_an_endpoint_shown_in_a_message_loses_user_info_and_query() -> None:
    down = EndpointConnectionError(endpoint_url="https://user:pw@sts.example/?X-Amz-Signature=s")
    fault = aws_fault(down, "sts:GetCallerIdentity", "r")
    assert fault is not None and fault.endpoint == "https://sts.example/"
    assert "pw" not in fault.message and "X-Amz" not in fault.message


def test_an_endpoint_shown_in_a_message_loses_the_request_path() -> None:
    from botocore.exceptions import ConnectionClosedError

    url = "http://127.0.0.1:4566/2015-03-31/functions/orders-api?Qualifier=live"
    fault = aws_fault(ConnectionClosedError(endpoint_url=url), "lambda:GetFunction", "r")
    assert fault is not None and fault.endpoint == "http://127.0.0.1:4566/"
    assert fault.message.startswith("Cannot reach AWS at http://127.0.0.1:4566/ for ")
    assert "2015-03-31" not in fault.message


def test_a_parameter_error_quoting_a_value_is_reported_without_it() -> None:
    from botocore.exceptions import ParamValidationError

    exc = ParamValidationError(report="Invalid type for parameter SecretString, value: s3cr3t-v")
    err = translate_aws_error(exc, "secretsmanager:PutSecretValue", "secret 'a'", STORE_ERRORS)
    assert err is not None and "s3cr3t-v" not in err.diagnostics()
    assert str(err) == "secretsmanager:PutSecretValue on secret 'a' failed (ParamValidationError)"


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
    assert denied is not None
    assert "Grant the create/update capability on secret/data/app" in denied.diagnostics()
    throttled = translate_vault_error(hx.RateLimitExceeded(), "read", path)
    assert isinstance(throttled, StoreUnavailable) and "throttling" in str(throttled)
    other = translate_vault_error(hx.UnsupportedOperation("nope"), "read", path)
    assert type(other) is StoreError


@pytest.mark.parametrize(
    ("settings", "env", "named"),
    [
        (AwsSettings(region="not a region"), {}, "'not a region'"),
        (AwsSettings(region="us-east-1", endpoint_url="notaurl"), {}, "'notaurl'"),
        (AwsSettings(region="us-east-1"), {"AWS_ENDPOINT_URL": "notaurl"}, "AWS_ENDPOINT_URL"),
    ],
    ids=["region", "endpoint-setting", "endpoint-env"],
)
def test_a_malformed_region_or_endpoint_is_a_config_error_naming_it(
    settings: AwsSettings, env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clients = AwsClients(settings, SCAN)
    with pytest.raises(ConfigError) as err:
        clients.client("lambda")
    assert named in err.value.diagnostics() and err.value.exit_code == ExitCode.USAGE
