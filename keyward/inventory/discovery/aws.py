"""Discover AWS Secrets Manager secrets, SSM Parameter Store ``SecureString`` parameters and
IAM users' access keys (read-only calls).

Clients come from :mod:`keyward.providers` (the CLI builds them, for one account: keyward's own
or one reached by assuming its role), and every call goes through its error boundary. Denied
calls become warnings; no credentials, an endpoint that cannot be reached and throttling past
retries raise, as everywhere (exit 3).

Each function reads one account. ``account`` is its id when the caller knows it (else it is
taken from the first ARN listed); every item carries it, and only that account's secrets can
be marked missing. ``account_name`` (an account reached by a role) goes into the names of new
secrets (``aws-sm/prod/eu-west-1/app/db``), so one name in two accounts is two secrets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from keyward.core.errors import Failure, KeywardError
from keyward.inventory.discovery import (
    DEFAULT_TAG_KEYS,
    Discovered,
    DiscoveredVersion,
    Scan,
    TagKeys,
    value_fingerprints,
)
from keyward.inventory.models import SecretStatus
from keyward.providers.settings import account_in_arn

log = logging.getLogger(__name__)

SM_STORE = "aws-secretsmanager"
SSM_STORE = "aws-ssm"
SSM_STAGING_PREFIX = "/keyward-staging"  # keyward.rotation.stores.aws_ssm's default
IAM_STORE = "aws-iam"
IAM_KIND = "aws-iam-access-key"
_RATE = re.compile(r"^rate\((\d+)\s+(hours?|days?)\)$")

Fingerprint = Callable[[str], str]


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _call(scan: Scan, what: str, fn: Callable[[], Any], service: str, client: Any) -> Any:
    """Run one API call through the provider boundary. A denial, or a failure of this one
    call, becomes a warning (returns None); a missing resource returns None; no credentials,
    unreachable and throttled raise (exit 3, one sentence naming the endpoint)."""
    from keyward.providers.aws import aws_errors
    from keyward.providers.errors import STORE_ERRORS

    operation, _, target = what.partition(" on ")
    model = getattr(getattr(client, "meta", None), "service_model", None)
    api = getattr(model, "endpoint_prefix", None)
    action = f"{api}:{operation}" if isinstance(api, str) else operation
    resource = f"{target} in {service}" if target else service
    try:
        with aws_errors(action, resource, STORE_ERRORS):
            return fn()
    except KeywardError as err:
        fault = err.fault
        if fault is None:
            raise
        if fault.failure in (Failure.REJECTED, Failure.DENIED):
            scan.warn(f"{service} denied {what} ({fault.code})")
        elif fault.failure in (Failure.CONFLICT, Failure.FAILED):
            scan.warn(f"{service} failed {what} ({fault.code})")
        elif fault.failure is not Failure.NOT_FOUND:
            raise
        return None


def _named(kind: str, account_name: str | None, region: str | None, rest: str) -> str:
    parts = [kind, account_name, region, rest]
    return "/".join(p for p in parts if p)


def _tags(tag_list: Sequence[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t.get("Key")): str(t.get("Value", "")) for t in tag_list or [] if t.get("Key")}


def _max_age(rules: dict[str, Any] | None) -> int | None:
    if not rules:
        return None
    days = rules.get("AutomaticallyAfterDays")
    if days:
        return int(days) * 86400
    m = _RATE.match(str(rules.get("ScheduleExpression", "")).strip())
    if m:
        n = int(m.group(1))
        return n * (3600 if m.group(2).startswith("hour") else 86400)
    return None


def discover_secretsmanager(
    client: Any,
    region: str,
    *,
    tag_keys: TagKeys = DEFAULT_TAG_KEYS,
    fingerprint: Fingerprint | None = None,
    account: str | None = None,
    account_name: str | None = None,
) -> Scan:
    """Every secret in one region: tags, dates, rotation settings, version ids and stages."""
    scan = Scan(SM_STORE, scope=f"arn:aws:secretsmanager:{region}:", account=account)
    service = f"Secrets Manager ({region})"
    entries: list[dict[str, Any]] = []

    def list_all() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in client.get_paginator("list_secrets").paginate():
            out.extend(page.get("SecretList", []))
        return out

    listed = _call(scan, "ListSecrets", list_all, service, client)
    if listed is None:
        return scan
    entries = listed
    for e in entries:
        arn, name = str(e["ARN"]), str(e["Name"])
        scan.account = scan.account or account_in_arn(arn)
        if e.get("DeletedDate"):
            continue
        tags = _tags(e.get("Tags"))
        versions = _sm_versions(scan, client, arn, name, service, fingerprint)
        rules = e.get("RotationRules") or {}
        attributes = {
            "region": region,
            "rotation_enabled": bool(e.get("RotationEnabled")),
            "rotation_lambda": e.get("RotationLambdaARN"),
            "rotation_rules": {k: v for k, v in rules.items() if isinstance(v, (str, int))},
            "last_changed": _iso(e.get("LastChangedDate")),
            "kms_key": e.get("KmsKeyId"),
        }
        scan.items.append(
            Discovered(
                store=SM_STORE,
                reference=arn,
                name=_named("aws-sm", account_name, region, name),
                account=account_in_arn(arn) or scan.account,
                kind=tag_keys.kind_of(tags) or "generic",
                owner=tag_keys.owner_of(tags),
                team=tag_keys.team_of(tags),
                contact=tag_keys.contact_of(tags),
                tags=tags,
                attributes={k: v for k, v in attributes.items() if v not in (None, {}, "")},
                created_at=_utc(e.get("CreatedDate")),
                # the age of a secret counts from its last rotation, else its last change
                last_rotated_at=_utc(e.get("LastRotatedDate")) or _utc(e.get("LastChangedDate")),
                last_used_at=_utc(e.get("LastAccessedDate")),
                max_age_seconds=_max_age(rules) if e.get("RotationEnabled") else None,
                versions=versions,
            )
        )
    return scan


def _iso(value: Any) -> str | None:
    when = _utc(value)
    return when.isoformat() if when else None


def _sm_versions(
    scan: Scan,
    client: Any,
    arn: str,
    name: str,
    service: str,
    fingerprint: Fingerprint | None,
) -> tuple[DiscoveredVersion, ...]:
    def list_versions() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"SecretId": arn, "MaxResults": 100}
        while True:  # botocore has no paginator for this operation
            page = client.list_secret_version_ids(**kwargs)
            out.extend(page.get("Versions", []))
            if not page.get("NextToken"):
                return out
            kwargs["NextToken"] = page["NextToken"]

    listed = _call(scan, f"ListSecretVersionIds on {name}", list_versions, service, client)
    versions: list[DiscoveredVersion] = []
    current_id: str | None = None
    for v in listed or []:
        stages = [str(s) for s in v.get("VersionStages", [])]
        vid = str(v["VersionId"])
        if "AWSCURRENT" in stages:
            current_id = vid
        versions.append(
            DiscoveredVersion(
                identifier=vid,
                stage=",".join(sorted(stages)) or None,
                created_at=_utc(v.get("CreatedDate")),
            )
        )
    if fingerprint is not None and current_id is not None:
        got = _call(
            scan,
            f"GetSecretValue on {name}",
            lambda: client.get_secret_value(SecretId=arn, VersionId=current_id),
            service,
            client,
        )
        value = (got or {}).get("SecretString")
        if isinstance(value, str):
            whole, fields = value_fingerprints(value, fingerprint)
            versions = [
                replace(v, fingerprint=whole, fields=fields) if v.identifier == current_id else v
                for v in versions
            ]
        del value
    return tuple(versions)


def discover_iam(
    client: Any,
    *,
    tag_keys: TagKeys = DEFAULT_TAG_KEYS,
    fingerprint: Fingerprint | None = None,
    account: str | None = None,
    account_name: str | None = None,
) -> Scan:
    """Every IAM user's access keys: key id, created, last used, status; owner from user tags."""
    scan = Scan(IAM_STORE, account=account)
    service = "IAM"

    def list_users() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in client.get_paginator("list_users").paginate():
            out.extend(page.get("Users", []))
        return out

    users = _call(scan, "ListUsers", list_users, service, client)
    if users is None:
        return scan
    for user in users:
        uname = str(user["UserName"])
        scan.account = scan.account or account_in_arn(user.get("Arn"))
        tags_resp = _call(
            scan,
            f"ListUserTags on {uname}",
            partial(client.list_user_tags, UserName=uname),
            service,
            client,
        )
        tags = _tags((tags_resp or {}).get("Tags"))
        keys_resp = _call(
            scan,
            f"ListAccessKeys on {uname}",
            partial(client.list_access_keys, UserName=uname),
            service,
            client,
        )
        if keys_resp is None:
            continue
        for meta in keys_resp.get("AccessKeyMetadata", []):
            key_id = str(meta["AccessKeyId"])
            used = _call(
                scan,
                f"GetAccessKeyLastUsed on {uname}",
                partial(client.get_access_key_last_used, AccessKeyId=key_id),
                service,
                client,
            )
            last = (used or {}).get("AccessKeyLastUsed", {})
            status = str(meta.get("Status", "Active"))
            created = _utc(meta.get("CreateDate"))
            scan.items.append(
                Discovered(
                    store=IAM_STORE,
                    reference=key_id,
                    name=_named("aws-iam", account_name, None, f"{uname}/{key_id}"),
                    account=account_in_arn(user.get("Arn")) or scan.account,
                    kind=IAM_KIND,
                    owner=tag_keys.owner_of(tags),
                    team=tag_keys.team_of(tags),
                    contact=tag_keys.contact_of(tags),
                    tags=tags,
                    attributes={
                        k: v
                        for k, v in {
                            "user": uname,
                            "user_arn": user.get("Arn"),
                            "key_status": status,
                            "last_used_service": last.get("ServiceName"),
                            "last_used_region": last.get("Region"),
                        }.items()
                        if v and v != "N/A"
                    },
                    created_at=created,
                    last_rotated_at=created,  # an access key is never changed, only replaced
                    last_used_at=_utc(last.get("LastUsedDate")),
                    status=SecretStatus.ACTIVE if status == "Active" else SecretStatus.INACTIVE,
                    versions=(
                        DiscoveredVersion(
                            identifier=key_id,
                            stage="current",
                            created_at=created,
                            identifier_fingerprint=fingerprint(key_id) if fingerprint else None,
                            # the key id is the access_key_id field of the key pair's value
                            fields={"access_key_id": fingerprint(key_id)} if fingerprint else {},
                        ),
                    ),
                )
            )
    return scan


def discover_ssm(
    client: Any,
    region: str,
    *,
    path: str = "/",
    tag_keys: TagKeys = DEFAULT_TAG_KEYS,
    fingerprint: Fingerprint | None = None,
    staging_prefix: str = SSM_STAGING_PREFIX,
    account: str | None = None,
    account_name: str | None = None,
) -> Scan:
    """``SecureString`` parameters under ``path`` in one region: tags -> owner/team, last
    modified -> last rotation, versions and labels. Plain ``String`` parameters hold no
    secrets and are skipped, and so is keyward's staging area (``staging_prefix``)."""
    path = "/" + path.strip("/")
    service = f"SSM Parameter Store ({region})"
    scan = Scan(SSM_STORE, account=account)
    filters: list[dict[str, Any]] = [{"Key": "Type", "Values": ["SecureString"]}]
    if path != "/":
        filters.append({"Key": "Path", "Option": "Recursive", "Values": [path]})

    def list_all() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in client.get_paginator("describe_parameters").paginate(ParameterFilters=filters):
            out.extend(page.get("Parameters", []))
        return out

    listed = _call(scan, "DescribeParameters", list_all, service, client)
    if listed is None:
        return scan
    staging = "/" + staging_prefix.strip("/")
    for e in sorted(listed, key=lambda x: str(x["Name"])):
        name = str(e["Name"])
        if name == staging or name.startswith(staging + "/"):
            continue
        arn = e.get("ARN")
        if not arn:  # older API responses: GetParameter names it (without decrypting)
            got = _call(
                scan,
                f"GetParameter on {name}",
                partial(client.get_parameter, Name=name, WithDecryption=False),
                service,
                client,
            )
            arn = ((got or {}).get("Parameter") or {}).get("ARN")
        if not arn:
            continue
        scan.account = scan.account or account_in_arn(str(arn))
        tags_resp = _call(
            scan,
            f"ListTagsForResource on {name}",
            partial(client.list_tags_for_resource, ResourceType="Parameter", ResourceId=name),
            service,
            client,
        )
        tags = _tags((tags_resp or {}).get("TagList"))
        versions, created = _ssm_versions(scan, client, name, service, fingerprint)
        modified = _utc(e.get("LastModifiedDate"))
        attributes = {
            "region": region,
            "parameter": name,
            "kms_key": e.get("KeyId"),
            "tier": e.get("Tier"),
            "version": e.get("Version"),
            "last_modified_user": e.get("LastModifiedUser"),
        }
        scan.items.append(
            Discovered(
                store=SSM_STORE,
                reference=str(arn),
                name=_named("aws-ssm", account_name, region, name.lstrip("/")),
                account=account_in_arn(str(arn)) or scan.account,
                kind=tag_keys.kind_of(tags) or "generic",
                owner=tag_keys.owner_of(tags),
                team=tag_keys.team_of(tags),
                contact=tag_keys.contact_of(tags),
                tags=tags,
                attributes={k: v for k, v in attributes.items() if v not in (None, "", "N/A")},
                created_at=created or modified,
                # a parameter's age counts from when its latest version was written
                last_rotated_at=modified,
                versions=versions,
            )
        )
    # only what this listing covered may go missing (another path or region is left alone)
    if scan.account is not None:
        scan.scope = f"arn:aws:ssm:{region}:{scan.account}:parameter" + (
            "/" if path == "/" else f"{path}/"
        )
    elif path != "/":
        scan.complete = False  # nothing listed: the account (and so the scope) is unknown
    else:
        scan.scope = f"arn:aws:ssm:{region}:"
    return scan


def _ssm_versions(
    scan: Scan, client: Any, name: str, service: str, fingerprint: Fingerprint | None
) -> tuple[tuple[DiscoveredVersion, ...], datetime | None]:
    def history() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        paginator = client.get_paginator("get_parameter_history")
        for page in paginator.paginate(Name=name, WithDecryption=False):
            out.extend(page.get("Parameters", []))
        return out

    entries = sorted(
        _call(scan, f"GetParameterHistory on {name}", history, service, client) or [],
        key=lambda v: int(v["Version"]),
    )
    versions: list[DiscoveredVersion] = []
    for i, v in enumerate(entries):
        labels = sorted(str(x) for x in v.get("Labels") or [])
        stage = "current" if i == len(entries) - 1 else "previous"
        # the id the aws-ssm store uses: the label of a version keyward wrote, else its number
        own = next((x for x in labels if x.startswith("keyward-")), None)
        versions.append(
            DiscoveredVersion(
                identifier=own or str(v["Version"]),
                stage=",".join([stage, *labels]),
                created_at=_utc(v.get("LastModifiedDate")),
            )
        )
    if fingerprint is not None and entries:
        latest = int(entries[-1]["Version"])
        got = _call(
            scan,
            f"GetParameter on {name}",
            partial(client.get_parameter, Name=f"{name}:{latest}", WithDecryption=True),
            service,
            client,
        )
        value = ((got or {}).get("Parameter") or {}).get("Value")
        if isinstance(value, str):
            whole, fields = value_fingerprints(value, fingerprint)
            versions[-1] = replace(versions[-1], fingerprint=whole, fields=fields)
        del value, got
    created = _utc(entries[0].get("LastModifiedDate")) if entries else None
    return tuple(versions), created
