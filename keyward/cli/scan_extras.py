"""``keyward scan`` options for live Lambda configs, verification and detect-secrets plugins.

Kept apart from :mod:`keyward.cli.scan` so that command stays small: this module adds the
options and the glue; boto3, detect_secrets and the verifiers are imported only when the
matching option is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from keyward.core.config import Config
from keyward.core.errors import ConfigError

if TYPE_CHECKING:
    from keyward.scan.engine import Engine
    from keyward.scan.service import ScanResult

F = TypeVar("F", bound=Callable[..., Any])

EXAMPLES = """\
  keyward scan --aws-lambda --region us-east-1 --region eu-west-1
  keyward scan --aws-lambda --all-regions --profile audit --include-code
  keyward scan --aws-lambda --region eu-west-1 --all-versions   (published versions too)
  keyward scan . --verify                      (checks found credentials with their provider)
  keyward scan . --detect-secrets-plugins --baseline .secrets.baseline
"""

_OPTIONS: tuple[Callable[[F], F], ...] = (
    click.option(
        "--aws-lambda",
        is_flag=True,
        help="Scan live AWS Lambda functions' environment variables (boto3 credential chain, "
        "AWS_ENDPOINT_URL honoured). PATHS are scanned too only when given.",
    ),
    click.option(
        "--region",
        "regions",
        multiple=True,
        metavar="R",
        help="Lambda: region to scan (repeatable; default: the configured region).",
    ),
    click.option("--all-regions", is_flag=True, help="Lambda: scan every enabled region."),
    click.option("--profile", metavar="P", help="Lambda: AWS profile to use."),
    click.option(
        "--include-code",
        is_flag=True,
        help="Lambda: also download each deployment package (size-capped) and scan its files.",
    ),
    click.option(
        "--all-versions",
        is_flag=True,
        help="Lambda: also scan published versions (they keep the environment they were "
        "published with).",
    ),
    click.option(
        "--verify",
        is_flag=True,
        help="Check with each provider whether found credentials are live (sends them to the "
        "provider; off by default).",
    ),
    click.option(
        "--detect-secrets-plugins/--no-detect-secrets-plugins",
        "detect_secrets_plugins",
        default=None,
        help="Also run detect-secrets plugins (those in the baseline's plugins_used, custom "
        "plugin files included). Config: [scan] detect_secrets_plugins.",
    ),
)

EXTRA_PARAMS = (
    "aws_lambda", "regions", "all_regions", "profile", "include_code", "all_versions", "verify",
    "detect_secrets_plugins",
)  # fmt: skip


def extra_scan_options(f: F) -> F:
    """Decorate the scan command with this module's options."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError(f"{name} must be true or false")


class ExtraScan:
    """The parsed extra options and what they do to a scan."""

    def __init__(self, params: Mapping[str, Any], config: Config) -> None:
        self.config = config
        self.aws_lambda = bool(params.get("aws_lambda"))
        self.regions: tuple[str, ...] = tuple(params.get("regions") or ())
        self.all_regions = bool(params.get("all_regions"))
        self.profile: str | None = params.get("profile")
        self.include_code = bool(params.get("include_code"))
        self.all_versions = bool(params.get("all_versions"))
        self.verify = bool(params.get("verify"))
        ds = params.get("detect_secrets_plugins")
        if ds is None:
            ds = _flag(
                config.get("scan", "detect_secrets_plugins", False),
                "[scan] detect_secrets_plugins",
            )
        self.detect_secrets = bool(ds)
        lambda_only = (
            self.regions, self.all_regions, self.profile, self.include_code, self.all_versions,
        )  # fmt: skip
        if not self.aws_lambda and any(lambda_only):
            raise ConfigError(
                "--region, --all-regions, --profile, --include-code and --all-versions apply "
                "to --aws-lambda",
                hint="Add --aws-lambda",
            )
        if self.regions and self.all_regions:
            raise ConfigError("Give either --region or --all-regions, not both")

    def engine(self, engine: Engine, fingerprint_key: bytes, baseline: Path | None) -> Engine:
        """The engine to scan with: detect-secrets plugins added when enabled."""
        if not self.detect_secrets:
            return engine
        from keyward.core.redaction import Fingerprinter
        from keyward.scan.plugins_ds import with_detect_secrets

        return with_detect_secrets(engine, Fingerprinter(fingerprint_key), baseline=baseline)

    def jobs(self, jobs: int | None) -> int | None:
        """Worker processes: plugins reach workers only through fork, so elsewhere run one."""
        import sys

        if self.detect_secrets and sys.platform != "linux":
            return 1
        return jobs

    def scan_lambda(self, engine: Engine) -> ScanResult:
        from keyward.core.config import parse_size
        from keyward.scan.sources.aws_lambda import (
            DEFAULT_MAX_CODE_SIZE,
            LambdaOptions,
            scan_lambda,
        )

        section = self.config.section("aws_lambda")
        cap = section.get("max_code_size", DEFAULT_MAX_CODE_SIZE)
        options = LambdaOptions(
            regions=self.regions,
            all_regions=self.all_regions,
            profile=self.profile,
            include_code=self.include_code,
            all_versions=self.all_versions,
            max_code_size=parse_size(cap),
            check_kms=_flag(section.get("check_kms", True), "[aws_lambda] check_kms"),
        )
        return scan_lambda(engine, options)

    def apply_verification(self, result: ScanResult) -> None:
        """With --verify: set live / revoked / unknown on each reported finding, in place."""
        if not self.verify:
            return
        from keyward.verify.registry import load_verifiers
        from keyward.verify.service import VerifySettings, verify_findings

        settings = VerifySettings.from_table(self.config.section("verify"))
        verifiers = load_verifiers(settings.context(), names=settings.names)
        reported = [i for i, f in enumerate(result.findings) if f.suppressed_by is None]
        checked = verify_findings(
            [result.findings[i] for i in reported], verifiers, workers=settings.workers
        )
        for i, f in zip(reported, checked, strict=True):
            result.findings[i] = f
