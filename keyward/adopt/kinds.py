"""Which kind of secret a finding is, and the fields it is stored with.

The kind of an adopted secret names its rotator (``keyward.rotators``), as for every secret in
the inventory, or ``generic`` when keyward has no rotator for it (it is kept in the store and
rotated at its provider). Inferred from the finding's rule:

* ``aws-access-key-id`` paired with its secret key -> ``aws-iam-access-key``:
  ``access_key_id``, ``secret_access_key``;
* ``postgres-connection-url``, ``mysql-connection-url``, ``redis-connection-url`` ->
  ``postgres-password``, ``mysql-password``, ``redis-acl``: ``username`` (Redis: ``default``
  when the URL has none), ``password``, ``host``, ``port``, ``dbname`` read from the URL;
* a password held whole in a password-named variable (``DB_PASSWORD``, ``PGPASSWORD``) with
  its user and host next to it (``DB_USER``, ``DB_HOST``; ``DB_PORT``, ``DB_NAME`` too) -> the
  rotator its prefix names (``PG*``/``POSTGRES*``, ``MYSQL*``/``MARIADB*``, ``REDIS*``), else
  the one ``--kind`` names;
* anything else -> ``generic``: ``value``.

``--kind`` overrides it when the value fits that kind (``random`` for an application secret
keyward may replace with a random value; ``generic`` to keep any value without a rotator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from keyward.core.errors import ConfigError
from keyward.rotation.protocols import SecretValue

GENERIC = "generic"
AWS_KEY_ID_RULE = "aws-access-key-id"
AWS_SECRET_KEY_RULE = "aws-secret-access-key"
IAM_KIND = "aws-iam-access-key"
# database URL rules -> (rotator, default user when the URL names none)
URL_KINDS: dict[str, tuple[str, str | None]] = {
    "postgres-connection-url": ("postgres-password", None),
    "mysql-connection-url": ("mysql-password", None),
    "redis-connection-url": ("redis-acl", "default"),
}
_URL_END = " \t\r\n'\"`<>()[]{},;\\"
DB_KINDS = frozenset(kind for kind, _user in URL_KINDS.values())
_PASSWORD_SUFFIXES = ("PASSWORD", "PASSWD", "PASS", "PWD")
_PREFIX_KINDS = (
    (("PG", "POSTGRES"), "postgres-password"),
    (("MYSQL", "MARIADB"), "mysql-password"),
    (("REDIS",), "redis-acl"),
)
_SIBLINGS = {
    "username": ("USER", "USERNAME"),
    "host": ("HOST", "HOSTNAME"),
    "port": ("PORT",),
    "dbname": ("DATABASE", "DBNAME", "NAME", "DB"),
}


class AdoptRefused(ConfigError):
    """What was asked cannot be adopted as asked (exit 2): nothing was written."""


@dataclass(frozen=True, slots=True)
class Placement:
    """An adopted secret's kind and value (fields). ``identifier`` is a public identifier of
    the value (the access key id), when it has one."""

    kind: str
    value: SecretValue = field(repr=False)
    identifier: str | None = field(default=None, repr=False)

    @property
    def rotatable(self) -> bool:
        return self.kind != GENERIC


def url_at(text: str, secret: str) -> str | None:
    """The URL in ``text`` whose password is ``secret`` (``scheme://user:secret@host...``)."""
    start = 0
    while True:
        at = text.find(f":{secret}@", start)
        if at < 0:
            return None
        scheme = text.rfind("://", 0, at)
        if scheme >= 0:
            begin = scheme
            while begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] in "+.-"):
                begin -= 1
            end = at + len(secret) + 2
            while end < len(text) and text[end] not in _URL_END:
                end += 1
            return text[begin:end]
        start = at + 1


def _url_fields(url: str, default_user: str | None, with_db: bool) -> dict[str, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    user = unquote(parts.username or "") or default_user
    if not user or parts.password is None or not parts.hostname:
        return None
    out = {"username": user, "password": unquote(parts.password), "host": parts.hostname}
    if port is not None:
        out["port"] = str(port)
    db = parts.path.lstrip("/")
    if with_db and db:
        out["dbname"] = unquote(db.split("/")[0])
    return out


def infer(
    rule_id: str,
    secret: str,
    companion: str | None,
    context: str | None,
    *,
    kind: str | None = None,
    known_kinds: frozenset[str] = frozenset(),
    variable: str | None = None,
    siblings: Mapping[str, str] | None = None,
) -> Placement:
    """The placement of a value found by ``rule_id`` (``companion``: its paired value;
    ``context``: the line it was found on, for connection URLs; ``variable``: the variable
    holding it, ``siblings`` the variables next to it, for a database password). ``kind`` is
    ``--kind``; ``known_kinds`` the rotators installed. Raises :class:`AdoptRefused` when the
    value does not fit the kind asked for."""
    if kind is not None and kind != GENERIC and kind not in known_kinds:
        raise AdoptRefused(
            f"There is no rotator named {kind!r}",
            hint=f"Use one of {', '.join(sorted(known_kinds | {GENERIC}))}",
        )
    if rule_id == AWS_KEY_ID_RULE and companion:
        pair = SecretValue({"access_key_id": secret, "secret_access_key": companion})
        if kind in (None, IAM_KIND):
            return Placement(IAM_KIND, pair, identifier=secret)
        if kind == GENERIC:
            return Placement(GENERIC, pair, identifier=secret)
        raise AdoptRefused(
            f"An AWS access key pair cannot be adopted as {kind}",
            hint=f"Use --kind {IAM_KIND} (the default) or --kind {GENERIC}",
        )
    if kind == IAM_KIND:
        what = (
            "an AWS secret access key found without its access key id"
            if rule_id == AWS_SECRET_KEY_RULE
            else "an AWS access key id found without its secret access key"
            if rule_id == AWS_KEY_ID_RULE
            else f"a {rule_id} value"
        )
        raise AdoptRefused(
            f"The finding is {what}, not an AWS key pair, so it cannot be adopted as {IAM_KIND}",
            hint="Scan the place that holds both halves, or adopt it as --kind generic",
        )
    url = URL_KINDS.get(rule_id)
    if url is not None and kind in (None, url[0]):
        found = url_at(context or "", secret)
        fields = _url_fields(found, url[1], url[0] != "redis-acl") if found else None
        if fields is not None:
            return Placement(url[0], SecretValue(fields))
        if kind is not None:
            raise AdoptRefused(
                f"The connection URL of the finding cannot be read as user, password and host, "
                f"so it cannot be adopted as {kind}",
                hint="Adopt it as --kind generic",
            )
    db = _password_fields(secret, variable, siblings or {})
    if db is not None and (kind in DB_KINDS or (kind is None and db[0] is not None)):
        target = kind or db[0]
        assert target is not None
        fields = dict(db[1])
        if target == "redis-acl":
            fields.setdefault("username", "default")
            fields.pop("dbname", None)
        if "username" in fields and "host" in fields:
            return Placement(target, SecretValue(fields))
        if kind is not None:
            raise AdoptRefused(
                f"A {kind} secret needs the user and the host, and {variable} has no "
                f"{db[2]}USER and {db[2]}HOST next to it",
                hint="Adopt it as --kind generic",
            )
    if kind is not None and kind not in (GENERIC, "random"):
        raise AdoptRefused(
            f"A {rule_id} value has no fields a {kind} secret needs",
            hint="Adopt it as --kind generic (kept, rotated at its provider) or --kind random "
            "(an application secret keyward may replace with a random value)",
        )
    if rule_id == AWS_KEY_ID_RULE and kind is None:
        raise AdoptRefused(
            "The finding is an AWS access key id found without its secret access key, so "
            "keyward cannot store the key pair",
            hint="Scan the place that holds both (keyward scan --aws-lambda --record), or "
            "adopt the key id alone with --kind generic",
        )
    return Placement(kind or GENERIC, SecretValue.single(secret))


def _password_fields(
    secret: str, variable: str | None, siblings: Mapping[str, str]
) -> tuple[str | None, dict[str, str], str] | None:
    """A password held whole in a password-named variable: (the rotator its prefix names,
    the fields the variables next to it give, the prefix)."""
    if not variable or siblings.get(variable) != secret:
        return None
    upper = variable.upper()
    suffix = next((x for x in _PASSWORD_SUFFIXES if upper.endswith(x)), None)
    if suffix is None:
        return None
    prefix = variable[: len(variable) - len(suffix)]
    by_name = {k.upper(): v for k, v in siblings.items() if v}
    fields = {"password": secret}
    for name, suffixes in _SIBLINGS.items():
        for tail in suffixes:
            value = by_name.get((prefix + tail).upper())
            if value:
                fields[name] = value
                break
    bare = prefix.upper().strip("_")
    guess = next(
        (k for starts, k in _PREFIX_KINDS if any(bare.startswith(x) for x in starts)), None
    )
    return guess, fields, prefix


def no_rotator(rule_id: str) -> AdoptRefused:
    """``--rotate`` asked for a value keyward has no rotator for."""
    return AdoptRefused(
        f"keyward has no rotator for a {rule_id} value, so --rotate has no safe place to go",
        hint="Adopt it without --rotate and revoke it at its provider, or pass --kind random "
        "if it is an application secret keyward may replace with a random value",
    )
