"""The options of ``keyward scan`` that choose sources other than files, and their examples.

Only declarations: :mod:`keyward.cli.scan` turns every option into one
:class:`~keyward.scan.request.ScanRequest`, which checks how they combine.
"""

from __future__ import annotations

import click

from keyward.cli.common import add_options

SOURCE_EXAMPLES = """\
  keyward scan --git                               (every commit reachable from HEAD)
  keyward scan --git ../other-repo --all-branches
  keyward scan --git --since v1.4.0                (commits after v1.4.0)
  keyward scan --git --range main..feature
  keyward scan --staged                            (only lines added in the index)
  keyward scan --env                               (this process's environment variables)
"""

LAMBDA_EXAMPLES = """\
  keyward scan --aws-lambda --region us-east-1 --region eu-west-1
  keyward scan --aws-lambda --all-regions --profile audit --include-code
  keyward scan --aws-lambda --region eu-west-1 --all-versions   (published versions too)
  keyward scan --aws-lambda --all-accounts     (every account in [aws.accounts], by role)
  keyward scan --aws-lambda --account prod --account 222222222222
  keyward scan . --verify                      (checks found credentials with their provider)
  keyward scan . --detect-secrets-plugins --baseline .secrets.baseline
"""

# --git, --all-branches, --since, --range, --staged, --env
history_staged_env_options = add_options(
    click.option(
        "--git",
        "git_history",
        is_flag=True,
        help="Scan git history (every commit reachable from HEAD); PATH is the repository "
        "(default: .). One finding per secret, naming the commit that introduced it.",
    ),
    click.option(
        "--all-branches", is_flag=True, help="Git: every branch, tag and remote ref, not just HEAD."
    ),
    click.option("--since", metavar="REV", help="Git: only commits after REV (REV..HEAD)."),
    click.option("--range", "commit_range", metavar="A..B", help="Git: only the commits in A..B."),
    click.option(
        "--staged",
        is_flag=True,
        help="Scan only the lines added in the git index (what the next commit adds).",
    ),
    click.option(
        "--env",
        "environment",
        is_flag=True,
        help="Scan this process's environment variables (one finding per variable; values are "
        "never printed). PATHS are scanned too only when given.",
    ),
)

# --aws-lambda and what applies to it, --verify, --detect-secrets-plugins
lambda_and_check_options = add_options(
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
        "--account",
        "account_names",
        multiple=True,
        metavar="NAME|ID",
        help="Lambda: scan this account of [aws.accounts] (its role is assumed; repeatable; "
        "default: keyward's own account).",
    ),
    click.option(
        "--all-accounts",
        is_flag=True,
        help="Lambda: scan every account of [aws.accounts]; one that cannot be reached is a "
        "warning.",
    ),
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
