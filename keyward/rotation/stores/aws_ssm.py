"""AWS Systems Manager Parameter Store ``SecureString`` parameters as a
:class:`~keyward.rotation.protocols.SecretStore`.

Readers call ``GetParameter(name)`` (``${ssm:/path}`` in serverless.yml, the Lambda
Parameters and Secrets extension, SDKs) and get the **latest** version, so the rule of the
Vault store applies: **the parameter only ever gains a version when that version is current.**

* put pending: the value is written to a keyward-owned **staging parameter**,
  ``<staging_prefix><name>`` (default ``/keyward-staging/app/db`` for ``/app/db``), a
  ``SecureString`` under the same KMS key, created with ``Overwrite=False``. Its description
  records the intent in the same call that stores the value (``{"keyward": "pending",
  "token": T, "base": B}``, ``B`` being the parameter's latest version then), so a staged
  value never exists without its token.
* promote: ``PutParameter(name, Overwrite=True)`` writes the staged value as the new latest
  version ``W``; ``LabelParameterVersion`` puts the rotation's label ``keyward-<token>`` and
  ``current`` on ``W`` and ``previous`` on ``B``; older ``keyward-*`` labels are removed (the
  oldest of the 100 versions SSM keeps must carry no label, or writes are refused); then the
  staging parameter is deleted.
* discard: delete the staging parameter; the parameter itself is untouched.

**Version ids.** A version keyward wrote is named by its label, ``keyward-<token>``: the id is
known when the value is staged and stays valid after promote, and ``name:keyward-<token>`` is
an SSM selector a reference-mode function can read (``GetParameter``). Other versions are
named by number. ``describe().current`` is the latest version, ``previous`` the one before it.

**Crash recovery.** SSM has no check-and-set, so a promote write is recognised by value: a
version after ``B`` holding the staged value (compared in constant time) is ours, whether or
not it was labelled yet; a retried promote labels it instead of writing again. A version after
``B`` with another value was written by someone else during the rotation: promote refuses
(``StoreConflict``), the rotation rolls back, and that version stays as it is.

Values are encoded as for Secrets Manager: a JSON object maps to its fields (other fields keep
their JSON type), any other string is the single field ``value``.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from keyward.core.errors import ConfigError, StoreConflict, StoreError, StoreNotFound
from keyward.providers.aws import AwsService, aws_errors
from keyward.providers.errors import STORE_ERRORS
from keyward.rotation.protocols import SecretDescription, SecretValue, VersionedSecret
from keyward.rotation.stores.aws_secretsmanager import decode, encode

if TYPE_CHECKING:
    from keyward.rotation.registry import PluginContext

log = logging.getLogger(__name__)

R = TypeVar("R")

LABEL_PREFIX = "keyward-"
DEFAULT_STAGING_PREFIX = "/keyward-staging"
SECURE = "SecureString"


def version_label(token: str) -> str:
    """The label (and version id) of the version a rotation with ``token`` writes."""
    return f"{LABEL_PREFIX}{token}"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def split_arn(ref: str) -> tuple[str | None, str]:
    """``arn:aws:ssm:REGION:ACCOUNT:parameter/app/db`` -> ``("REGION", "/app/db")``; a plain
    name -> ``(None, name)``. A one-level ARN (``parameter/db``) names ``db``; a one-level
    hierarchical name (``/db``) has the same ARN, so name it by its name."""
    if not ref.startswith("arn:"):
        return None, ref
    parts = ref.split(":", 5)
    if len(parts) != 6 or parts[2] != "ssm" or not parts[5].startswith("parameter/"):
        raise ConfigError(
            f"{ref!r} is not an SSM parameter ARN",
            hint="Use arn:aws:ssm:REGION:ACCOUNT:parameter/NAME or the parameter's name",
        )
    path = parts[5][len("parameter") :]
    return parts[3] or None, path if path.count("/") > 1 else path.lstrip("/")


@dataclass(frozen=True, slots=True)
class _Version:
    number: int
    labels: tuple[str, ...]
    key_id: str | None
    tier: str | None
    type: str

    @property
    def id(self) -> str:
        """Its keyward label if keyward wrote it, else its number."""
        for label in self.labels:
            if label.startswith(LABEL_PREFIX):
                return label
        return str(self.number)


@dataclass(frozen=True, slots=True)
class _History:
    versions: tuple[_Version, ...] = ()

    @property
    def exists(self) -> bool:
        return bool(self.versions)

    @property
    def latest(self) -> _Version:
        return self.versions[-1]

    def labelled(self, label: str) -> _Version | None:
        return next((v for v in self.versions if label in v.labels), None)


@dataclass(frozen=True, slots=True)
class _Staged:
    """The staging parameter's intent (from its description)."""

    token: str | None = None
    base: int = 0
    exists: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ParameterStore:
    """``SecureString`` parameters in one or more regions, addressed by name or ARN."""

    kind = "aws-ssm"

    def __init__(
        self,
        client_for: Callable[[str | None], Any],
        *,
        region: str | None = None,
        kms_key_id: str | None = None,
        staging_prefix: str = DEFAULT_STAGING_PREFIX,
        current_label: str = "current",
        previous_label: str = "previous",
    ) -> None:
        self._client_for = client_for
        self.region = region
        self.kms_key_id = kms_key_id or None
        self.staging_prefix = "/" + staging_prefix.strip("/")
        if self.staging_prefix == "/":
            raise ConfigError(
                "staging_prefix of the aws-ssm store must not be empty",
                hint='Use a path that readers do not read, such as "/keyward-staging"',
            )
        for label in (current_label, previous_label):
            if label.startswith(LABEL_PREFIX) or label[:3].lower() in ("aws", "ssm"):
                raise ConfigError(
                    f"The aws-ssm label {label!r} is reserved",
                    hint="Labels must not start with keyward-, aws or ssm",
                )
        self.current_label = current_label
        self.previous_label = previous_label

    @classmethod
    def from_config(cls, context: PluginContext, options: Mapping[str, Any]) -> ParameterStore:
        aws = context.clients.aws
        region = options.get("region")
        return cls(
            lambda r: aws.client(AwsService.SSM, r or region),
            region=str(region) if region else None,
            kms_key_id=str(options["kms_key_id"]) if options.get("kms_key_id") else None,
            staging_prefix=str(options.get("staging_prefix", DEFAULT_STAGING_PREFIX)),
            current_label=str(options.get("current_label", "current")),
            previous_label=str(options.get("previous_label", "previous")),
        )

    def __repr__(self) -> str:
        return f"ParameterStore(region={self.region!r}, staging_prefix={self.staging_prefix!r})"

    # ------------------------------------------------------------------ calls
    def _where(self, ref: str) -> tuple[Any, str]:
        region, name = split_arn(ref)
        return self._client_for(region or self.region), name

    def staging_name(self, name: str) -> str:
        return f"{self.staging_prefix}/{name.lstrip('/')}"

    def is_staging(self, name: str) -> bool:
        return name == self.staging_prefix or name.startswith(self.staging_prefix + "/")

    def _call(self, action: str, name: str, fn: Callable[..., R], **kwargs: Any) -> R:
        with aws_errors(f"ssm:{action}", f"parameter {name!r}", STORE_ERRORS):
            return fn(**kwargs)

    def _history(self, client: Any, name: str, *, decrypt: bool = False) -> list[dict[str, Any]]:
        def pages() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            paginator = client.get_paginator("get_parameter_history")
            for page in paginator.paginate(Name=name, WithDecryption=decrypt):
                out.extend(page.get("Parameters", []))
            return out

        try:
            entries = self._call("GetParameterHistory", name, pages)
        except StoreNotFound:
            return []
        return sorted(entries, key=lambda e: int(e["Version"]))

    def _versions(self, client: Any, name: str) -> _History:
        return _History(
            tuple(
                _Version(
                    number=int(e["Version"]),
                    labels=tuple(str(x) for x in e.get("Labels") or ()),
                    key_id=e.get("KeyId"),
                    tier=e.get("Tier"),
                    type=str(e.get("Type", SECURE)),
                )
                for e in self._history(client, name)
            )
        )

    def _staged(self, client: Any, name: str) -> _Staged:
        entries = self._history(client, self.staging_name(name))
        if not entries:
            return _Staged()
        try:
            doc = json.loads(str(entries[-1].get("Description") or "{}"))
        except ValueError:
            doc = {}
        if not isinstance(doc, dict) or doc.get("keyward") != "pending":
            return _Staged(exists=True)
        return _Staged(
            token=str(doc.get("token") or "") or None,
            base=int(doc.get("base") or 0),
            exists=True,
            extra=doc,
        )

    def _get(self, client: Any, selector: str, shown: str) -> tuple[str, int]:
        resp = self._call(
            "GetParameter", shown, client.get_parameter, Name=selector, WithDecryption=True
        )
        param = resp["Parameter"]
        return str(param["Value"]), int(param["Version"])

    def _staged_value(self, client: Any, name: str) -> str:
        return self._get(client, self.staging_name(name), self.staging_name(name))[0]

    def _ours_after(self, client: Any, name: str, base: int, staged: str) -> int | None:
        """The version after ``base`` holding the staged value (the promote write), if any."""
        for entry in self._history(client, name, decrypt=True):
            if int(entry["Version"]) > base and _same(str(entry.get("Value", "")), staged):
                return int(entry["Version"])
        return None

    def _label(self, client: Any, name: str, version: int, labels: Sequence[str]) -> None:
        resp = self._call(
            "LabelParameterVersion",
            name,
            client.label_parameter_version,
            Name=name,
            ParameterVersion=version,
            Labels=list(labels),
        )
        invalid = resp.get("InvalidLabels") or []
        if invalid:
            raise StoreError(
                f"SSM refused the labels {', '.join(map(str, invalid))} on version {version} of "
                f"parameter {name!r}",
                hint="A version holds at most 10 labels; remove some, then resume",
            )

    def _delete_staging(self, client: Any, name: str) -> None:
        staging = self.staging_name(name)
        try:
            self._call("DeleteParameter", staging, client.delete_parameter, Name=staging)
        except StoreNotFound:
            pass  # already gone (a retry)

    def _check_secure(self, name: str, hist: _History) -> None:
        if hist.latest.type != SECURE:
            raise StoreError(
                f"Parameter {name!r} is a {hist.latest.type} parameter; keyward keeps secrets "
                "only in SecureString parameters",
                hint="Convert it to SecureString (put-parameter --type SecureString "
                "--overwrite), then rotate",
            )

    def _finish(self, client: Any, name: str, version: int, token: str, base: int) -> None:
        """Labels on the promoted version (and previous), stale keyward labels off, staging
        parameter gone. Each call is idempotent."""
        hist = self._versions(client, name)
        own = version_label(token)
        mine = next((v for v in hist.versions if v.number == version), None)
        if mine is None:
            raise StoreNotFound(f"Parameter {name!r} has no version {version}")
        if own not in mine.labels or self.current_label not in mine.labels:
            self._label(client, name, version, [own, self.current_label])
        prior = next((v for v in hist.versions if v.number == base), None)
        if prior is not None and self.previous_label not in prior.labels:
            self._label(client, name, base, [self.previous_label])
        for v in hist.versions:
            stale = [x for x in v.labels if x.startswith(LABEL_PREFIX) and x != own]
            if stale and v.number < base:
                self._call(
                    "UnlabelParameterVersion",
                    name,
                    client.unlabel_parameter_version,
                    Name=name,
                    ParameterVersion=v.number,
                    Labels=stale,
                )
        self._delete_staging(client, name)

    # --------------------------------------------------------------- protocol
    def plan(self, name: str) -> tuple[str, ...]:
        _, pname = split_arn(name)
        staging = self.staging_name(pname)
        return (
            f"ssm:PutParameter {staging} (SecureString, the pending value and the rotation's "
            f"token; {pname} is not written until finish)",
            f"ssm:PutParameter {pname} --overwrite (at finish: the value becomes current)",
            f"ssm:LabelParameterVersion {pname}: keyward-<token> and {self.current_label} on "
            f"the new version, {self.previous_label} on the old one",
            f"ssm:DeleteParameter {staging}",
        )

    def describe(self, name: str) -> SecretDescription:
        client, pname = self._where(name)
        hist = self._versions(client, pname)
        if not hist.exists:
            return SecretDescription(name=name, exists=False)
        current = hist.latest.id
        previous = hist.versions[-2].id if len(hist.versions) > 1 else None
        st = self._staged(client, pname)
        pending: str | None = None
        token = st.token
        if token is not None:
            label = version_label(token)
            promoted = hist.labelled(label) is not None
            if not promoted and hist.latest.number > st.base:
                written = self._ours_after(
                    client, pname, st.base, self._staged_value(client, pname)
                )
                if written is not None:  # promote wrote it; labelling it was interrupted
                    promoted = True
                    if written == hist.latest.number:
                        current = label
            if promoted:
                token = None
            else:
                pending = label
        return SecretDescription(
            name=name,
            exists=True,
            ref=name,
            current=current,
            previous=previous,
            pending=pending,
            pending_token=token,
        )

    def read_current(self, name: str) -> VersionedSecret:
        client, pname = self._where(name)
        hist = self._versions(client, pname)
        if not hist.exists:
            raise StoreNotFound(f"Parameter {pname!r} does not exist")
        latest = hist.latest
        raw, _ = self._get(client, f"{pname}:{latest.number}", pname)
        return VersionedSecret(name, latest.id, decode(raw)[0])

    def read_version(self, name: str, version: str) -> VersionedSecret:
        client, pname = self._where(name)
        if version.startswith(LABEL_PREFIX):
            try:
                raw, _ = self._get(client, f"{pname}:{version}", pname)
                return VersionedSecret(name, version, decode(raw)[0])
            except StoreNotFound:
                st = self._staged(client, pname)  # not promoted yet: the staged value
                if st.token is None or version_label(st.token) != version:
                    raise StoreNotFound(
                        f"Parameter {pname!r} has no version {version}",
                        hint="The pending version was discarded; roll the rotation back",
                    ) from None
                return VersionedSecret(name, version, decode(self._staged_value(client, pname))[0])
        if not version.isdigit():
            raise StoreNotFound(f"{version!r} is not a version of parameter {pname!r}")
        raw, _ = self._get(client, f"{pname}:{version}", pname)
        return VersionedSecret(name, version, decode(raw)[0])

    def _key(self, hist: _History) -> dict[str, str]:
        key = self.kms_key_id or hist.latest.key_id
        out = {"KeyId": key} if key else {}
        if hist.latest.tier:
            out["Tier"] = hist.latest.tier
        return out

    def put_pending(self, name: str, value: SecretValue, token: str) -> str:
        client, pname = self._where(name)
        hist = self._versions(client, pname)
        if not hist.exists:
            raise StoreNotFound(f"Parameter {pname!r} does not exist")
        self._check_secure(pname, hist)
        label = version_label(token)
        st = self._staged(client, pname)
        if st.exists and st.token != token:
            other = st.token
            written: int | None = None
            if other is not None:
                ours = hist.labelled(version_label(other))
                written = ours.number if ours else None
                if written is None and hist.latest.number > st.base:
                    staged = self._staged_value(client, pname)
                    written = self._ours_after(client, pname, st.base, staged)
            if other is not None and written is None:
                raise StoreConflict(
                    f"Parameter {pname!r} already has a pending version from another rotation",
                    hint="Finish or roll back that rotation first (keyward rotations list)",
                )
            if other is not None and written is not None:
                self._finish(client, pname, written, other, st.base)  # an interrupted promote
            else:
                self._delete_staging(client, pname)  # not keyward's intent: nothing to keep
            hist = self._versions(client, pname)
            st = _Staged()
        if st.token == token:  # a retry: the staged value is there with our token
            if not decode(self._staged_value(client, pname))[0].same_as(value):
                raise StoreConflict(
                    f"Parameter {pname!r} already has a pending value for this rotation's "
                    "token with a different value",
                    hint="Resume the rotation from its pending version, or roll it back",
                )
            return label
        current_raw, _ = self._get(client, f"{pname}:{hist.latest.number}", pname)
        doc = decode(current_raw)[1]
        intent = json.dumps({"keyward": "pending", "token": token, "base": hist.latest.number})
        staging = self.staging_name(pname)
        self._call(
            "PutParameter",
            staging,
            client.put_parameter,
            Name=staging,
            Value=encode(value, doc, doc is None),
            Type=SECURE,
            Description=intent,
            Overwrite=False,
            **self._key(hist),
        )
        del current_raw
        log.info("parameter %s: pending value staged as %s", pname, label)
        return label

    def promote(self, name: str, version: str) -> None:
        client, pname = self._where(name)
        hist = self._versions(client, pname)
        done = hist.labelled(version)
        st = self._staged(client, pname)
        if done is not None:  # already written and labelled
            if st.token is not None and version_label(st.token) == version:
                self._finish(client, pname, done.number, st.token, st.base)
            return
        if st.token is None or version_label(st.token) != version:
            raise StoreNotFound(
                f"Parameter {pname!r} has no pending version {version} to promote",
                hint="The pending version was discarded; roll the rotation back",
            )
        staged = self._staged_value(client, pname)
        if hist.latest.number > st.base:
            written = self._ours_after(client, pname, st.base, staged)
            if written is None:
                raise StoreConflict(
                    f"Parameter {pname!r} was written outside keyward during the rotation "
                    f"(version {hist.latest.number} is not the value keyward tested)",
                    hint="Check which version is in use, then roll the rotation back",
                )
        else:
            resp = self._call(
                "PutParameter",
                pname,
                client.put_parameter,
                Name=pname,
                Value=staged,
                Type=SECURE,
                Overwrite=True,
                **self._key(hist),
            )
            written = int(resp["Version"])
        del staged
        self._finish(client, pname, written, st.token, st.base)
        log.info("parameter %s: version %s (%s) is current", pname, written, version)

    def discard_pending(self, name: str, token: str) -> None:
        client, pname = self._where(name)
        label = version_label(token)
        hist = self._versions(client, pname)
        already = StoreConflict(
            f"The version for this rotation of parameter {pname!r} is already current and "
            "cannot be discarded",
            hint="The rotation finished; rotate again instead of rolling back",
        )
        if hist.labelled(label) is not None:
            raise already
        st = self._staged(client, pname)
        if st.token != token:
            return  # nothing of this rotation is staged (never written, or discarded)
        if hist.exists and hist.latest.number > st.base:
            if self._ours_after(client, pname, st.base, self._staged_value(client, pname)):
                raise already
        self._delete_staging(client, pname)
        log.info("parameter %s: pending value discarded (the parameter was not written)", pname)

    def list_secrets(self, prefix: str = "") -> Iterator[str]:
        client = self._client_for(self.region)
        filters: list[dict[str, Any]] = [{"Key": "Type", "Values": [SECURE]}]
        if prefix:
            filters.append({"Key": "Name", "Option": "BeginsWith", "Values": [prefix]})

        def pages() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for page in client.get_paginator("describe_parameters").paginate(
                ParameterFilters=filters
            ):
                out.extend(page.get("Parameters", []))
            return out

        for entry in self._call("DescribeParameters", prefix or "/", pages):
            pname = str(entry["Name"])
            if not self.is_staging(pname):
                yield pname
