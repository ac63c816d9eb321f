"""Context rules: a provider's keyword in a key, assigned a value of a declared shape.

Thousands of small APIs issue keys with no prefix of their own: 32 hex digits, 40
alphanumerics, a UUID. Such a key is recognisable only by where it stands
(``ABUSEIPDB_API_KEY=<80 hex>``), so a *context rule* names the provider's keywords and the
value's **shape**, and this module supplies the grammar that joins them, shared by every
member of the family::

    [[rules]]
    id = "ipstack-access-key"
    description = "ipstack API access key (in context)"
    severity = "medium"
    keywords = ["ipstack"]
    shape = "hex32"
    tags = ["ipstack", "geolocation"]
    examples.positive = ['IPSTACK_ACCESS_KEY=3f9a...']
    examples.negative = ['IPSTACK_ACCESS_KEY=3f9a...0']       # 33 hex: too long

How a member matches, at each place one of its keywords occurs (ASCII-caseless):

1. **The keyword starts a word**: the character before it is not a letter or digit, or a
   camel-case boundary comes before it (``myOktaToken``); ``rookTable`` does not fire an
   ``okta`` rule.
2. **The keyword ends a word**, or the key goes on with a credential word (``OKTATOKEN``,
   ``oktaApiKey``, ``OPENWEATHERMAP_API_KEY``): a keyword that is only the start of a longer
   word (``checkouts``, ``striped``) needs the key to name a credential.
3. **The rest of the key**, up to 40 identifier characters (``_API_KEY``, ``.api.key``,
   ``-token``, `` API key`` in prose), then an assignment of the shared grammar:
   ``key = v``, ``key: v``, ``key := v``, ``key => v``, ``key ||= v``, ``"key": "v"``,
   ``ENV['KEY'] = 'v'``, ``("KEY", "v")``, ``<key>v</key>``, ``<add key="K" value="v"/>``,
   ``Client("v")``, ``Client(api_key="v")``, ``key = {token: "v"}``, ``--key v`` (a blank
   only after a command-line flag), and one level of YAML/TOML/INI nesting
   (``okta:`` / ``[okta]`` then, within four lines, ``api_token: v``, where the nested key
   must name a credential). ``Bearer``/``Token`` before the value is skipped.
4. **The key names the secret**, not something about it: a key ending in ``id``, ``url``,
   ``host``, ``user``, ``name``, ``region``... or naming a hash (``sha``, ``checksum``) or a
   public value (``public``, ``publishable``) does not fire, unless the member asks for that
   word in ``key_words``. With ``key_words``, the key must contain one of them (``secret`` for
   the half of a pair that is secret); such a member is more specific and wins overlaps.
5. **The value has exactly the shape**: its alphabet and length, and it ends there (a quoted
   value at its closing quote; an unquoted one where the alphabet and ``-+/=`` end), so a
   too-long value is not reported by its first characters. It must also look random for its
   alphabet (entropy, no ``abcdef``/``123456`` runs, not a word), and not be a placeholder.

Shapes (``shape = "..."`` or a list of them): ``hexN`` (``0-9a-f``), ``HEXN`` (``0-9A-F``),
``alnumN``, ``lowerN`` (``a-z0-9``), ``upperN`` (``A-Z0-9``), ``digitsN``, ``base64_N``
(``A-Za-z0-9+/``, optional ``=`` padding), ``base64urlN`` (``A-Za-z0-9_-``), where ``N`` is a
length or a range ``N-M`` (an ``_`` may separate name and length); ``uuid`` (lower- or
upper-case, not mixed); or an explicit alphabet and length, ``"[a-z0-9_-]{40}"`` or
``{ alphabet = "a-z0-9_-", length = [30, 40] }``.
``prefix = "key-"`` is a literal the value starts with (part of the secret).

The grammar runs only in Python, anchored at keyword positions (as generic rules are): the
engine never hands context rules to hyperscan's provider union, so adding members costs one
literal each in the keyword database and nothing at start-up beyond parsing the TOML; the
grammar is compiled once per distinct shape and prefix, when a member first fires.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from keyward.core.lazyre import lazy
from keyward.scan.entropy import shannon

_NAMED = lazy(r"^(hex|HEX|alnum|lower|upper|digits|base64url|base64)_?(\d{1,3})(?:-(\d{1,3}))?$")
_CLASS = lazy(
    r"^\[((?:[A-Za-z0-9]-[A-Za-z0-9]|[A-Za-z0-9_\-+/=.~])+)\]\{(\d{1,3})(?:,(\d{1,3}))?\}$"
)
_ALPHABETS = {
    "hex": "0-9a-f",
    "HEX": "0-9A-F",
    "alnum": "A-Za-z0-9",
    "lower": "a-z0-9",
    "upper": "A-Z0-9",
    "digits": "0-9",
    "base64": "A-Za-z0-9+/",
    "base64url": "A-Za-z0-9_-",
}
_UUID = (
    "(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    "|[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12})"
)
_PRINTABLE = string.ascii_letters + string.digits + "_-+/=.~"
_MAX_LENGTH = 512


class ShapeError(ValueError):
    """A shape that this module cannot read (the loader turns it into a RuleError)."""


@dataclass(frozen=True, slots=True)
class Shape:
    """One value shape: its canonical spelling, its regex and what random values of it are."""

    spec: str
    body: str
    alphabet: frozenset[str]
    min_len: int
    max_len: int
    padded: bool = False  # base64: optional `=` padding after the body

    @property
    def is_uuid(self) -> bool:
        return self.spec == "uuid"


@dataclass(frozen=True, slots=True)
class Context:
    """What a context rule adds to a Rule: its shapes, prefix and required key words."""

    shapes: tuple[str, ...]
    prefix: str = ""
    key_words: tuple[str, ...] = ()


def parse_shape(spec: object) -> str:
    """The canonical spelling of a shape given as a string or an ``{alphabet, length}`` table.

    Raises :class:`ShapeError` with a sentence naming what is wrong.
    """
    if isinstance(spec, dict):
        alphabet, length = spec.get("alphabet"), spec.get("length")
        if set(spec) - {"alphabet", "length"} or not isinstance(alphabet, str):
            raise ShapeError("a shape table has an alphabet (e.g. 'a-z0-9') and a length")
        if isinstance(length, int) and not isinstance(length, bool):
            text = f"[{alphabet}]{{{length}}}"
        elif (
            isinstance(length, list)
            and len(length) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in length)
        ):
            text = f"[{alphabet}]{{{length[0]},{length[1]}}}"
        else:
            raise ShapeError("a shape's length is a number or [min, max]")
        spec = text
    if not isinstance(spec, str):
        raise ShapeError("shape must be a string such as 'hex32' or a list of them")
    shape_of(spec)  # validates
    return spec


@lru_cache(maxsize=512)
def shape_of(spec: str) -> Shape:
    """The :class:`Shape` a canonical spelling stands for (cached: specs repeat)."""
    if spec == "uuid":
        return Shape(spec, _UUID, frozenset("0123456789abcdefABCDEF-"), 36, 36)
    m = _NAMED.match(spec)
    if m:
        name, lo_s, hi_s = m.groups()
        cls = _ALPHABETS[name]
        padded = name == "base64"
    else:
        m = _CLASS.match(spec)
        if not m:
            raise ShapeError(
                f"unknown shape {spec!r} (write e.g. 'hex32', 'alnum20-24', 'uuid' or "
                "'[a-z0-9_-]{40}')"
            )
        cls, lo_s, hi_s = m.groups()
        padded = False
    lo = int(lo_s)
    hi = int(hi_s) if hi_s else lo
    if not 4 <= lo <= hi <= _MAX_LENGTH:
        raise ShapeError(f"shape {spec!r}: lengths must be from 4 to {_MAX_LENGTH}, min <= max")
    try:
        klass = re.compile(f"[{cls}]")
    except re.error as exc:
        raise ShapeError(f"shape {spec!r}: invalid alphabet ({exc})") from None
    alphabet = frozenset(c for c in _PRINTABLE if klass.fullmatch(c))
    if len(alphabet) < 2:
        raise ShapeError(f"shape {spec!r}: the alphabet needs at least two characters")
    count = f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"
    body = f"[{cls}]{count}" + ("={0,2}" if padded else "")
    return Shape(spec, body, alphabet, lo, hi, padded)


# --- the grammar shared by every member --------------------------------------------------------

# Everything after the keyword up to the value. Named groups: `rest` (the key after the
# keyword), `close` (a quote closing the key), `op`, `sub`/`nsub` (a named argument or object
# key, a nested YAML/TOML key), `q` (the value's opening quote).
_KEY = r"""(?P<rest>[\w.\-]{0,40}(?:[ \t]{1,2}[\w.\-]{1,30}){0,3})(?P<close>\\?["'`])?\]?"""


def _open(group: str) -> str:
    """``(``, ``{``, ``[`` (one or two), then optionally a named argument or object key."""
    return (
        r"""(?:[(\[{][ \t]{0,4}){1,2}"""
        rf"""(?:\\?["'`]?(?P<{group}>[\w.\-]{{1,40}})\\?["'`]?"""
        r"""[ \t]{0,4}(?:=>|=|:)[ \t]{0,4})?"""
    )


_NESTED = (
    r"""(?:[ \t]{0,4}:|\])[ \t]{0,4}(?:[#;][^\r\n]{0,120})?\r?\n"""  # `okta:` / `[okta]`
    r"""(?:[ \t]*(?:[\w.\-"']{1,60}[ \t]*[:=][^\r\n]{0,200})?\r?\n){0,4}"""  # siblings, blanks
    r"""[ \t]*["']?(?P<nsub>[\w.\-]{1,40})["']?[ \t]{0,4}[:=][ \t]{0,4}"""
)
_ASSIGN = (
    r"""(?:(?P<op>[ \t]{0,4}(?:=>|:{1,3}=|\|\|=|\?\?=|[?+.]=|=|:|,|>)[ \t]{0,8})(?:"""
    + _open("sub")
    + r""")?"""
    r"""|[ \t]{1,4}value[ \t]{0,2}=[ \t]{0,2}"""  # XML <add key="K" value="V"/>
    r"""|[ \t]{1,4}(?:string|\[\]byte)[ \t]{1,4}=[ \t]{0,8}"""  # Go `var okta string = "V"`
    r"""|[ \t]{0,4}(?::[ \t]{0,4}[|>][+-]?|>)[ \t]{0,4}\r?\n[ \t]{0,40}"""  # `: |`, `<k>`, newline
    r"""|[ \t]{0,4}""" + _open("call") + r"""|""" + _NESTED + r"""|(?P<blank>[ \t]{1,4}))"""
)
_VALUE_OPEN = r"""(?:(?:[rbufRBUF@]{1,2})?\\?(?P<q>["'`]))?(?:(?i:bearer|token)[ \t]{1,2})?"""
_VALUE_END = r"""(?(q)\\?(?P=q)|(?![\w\-+/=~]|[.:]\w))"""


@lru_cache(maxsize=256)
def tail_source(shapes: tuple[str, ...], prefix: str) -> str:
    """The grammar after a keyword for one combination of shapes and prefix, as a regex."""
    bodies = "|".join(shape_of(s).body for s in shapes)
    value = re.escape(prefix) + (f"(?:{bodies})" if len(shapes) > 1 else bodies)
    return _KEY + _ASSIGN + _VALUE_OPEN + f"(?P<secret>{value})" + _VALUE_END


@lru_cache(maxsize=256)
def tail_pattern(shapes: tuple[str, ...], prefix: str) -> re.Pattern[str]:
    """:func:`tail_source` compiled, once per combination, when a member first needs it."""
    return re.compile(tail_source(shapes, prefix), re.ASCII)


def display_regex(keywords: Sequence[str], ctx: Context) -> str:
    """A Python regex equivalent to the grammar without its word checks (for listings)."""
    kw = "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True))
    return f"(?i:{kw})" + tail_source(ctx.shapes, ctx.prefix)


# --- words of the key ---------------------------------------------------------------------------

_WORD_SPLIT = lazy(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Words a key goes on with straight after a provider keyword (`OKTATOKEN`, `mailgunapikey`).
CREDENTIAL_WORDS = (
    "key", "token", "secret", "api", "auth", "pass", "pwd", "access", "client", "app",
    "private", "priv", "account", "acct", "license", "master", "admin", "bearer", "cred",
    "oauth", "session", "sign", "webhook", "hook", "service", "server", "integration",
    "write", "read", "ingest", "live", "prod", "sandbox", "dev", "user", "consumer",
)  # fmt: skip
# A key whose last word is one of these names something about the secret, not the secret.
META_WORDS = frozenset(
    {
        "id", "ids", "uid", "guid", "url", "uri", "urls", "endpoint", "host", "hostname",
        "domain", "name", "username", "user", "login", "email", "mail", "region", "zone",
        "location", "path", "dir", "file", "filename", "version", "ver", "type", "mode", "port",
        "tenant", "site", "env", "count", "limit", "timeout", "header", "prefix", "len",
        "length", "size", "format", "pattern", "regex", "enabled", "enable", "label", "field",
        "org", "organization", "project", "workspace", "team", "channel", "number", "phone",
        "date", "time", "expiry", "expires", "ttl", "scope", "scopes", "level", "status",
    }
)  # fmt: skip
# Words anywhere in the key that make the value something other than a secret.
NOT_SECRET_WORDS = frozenset(
    {"hash", "hashed", "sha", "sha1", "sha256", "md5", "checksum", "digest", "etag", "commit",
     "revision", "public", "publishable", "pub", "example", "sample", "placeholder"}
)  # fmt: skip


def key_words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def _names_credential(words: Sequence[str]) -> bool:
    return any(w.startswith(CREDENTIAL_WORDS) or w.endswith(("key", "token", "secret"))
               for w in words)  # fmt: skip


_IDENTIFIER_TAIL = lazy(r"[\w.\-]{1,40}(?:[ \t]{1,2}[\w.\-]{1,30}){0,3}", re.ASCII)


def _starts_word(text: str, p: int) -> bool:
    if p == 0:
        return True
    before = text[p - 1]
    if not before.isalnum():
        return True
    return (before.islower() or before.isdigit()) and text[p].isupper()


def _identifier_start(text: str, p: int) -> int:
    lo = max(0, p - 60)
    i = p
    while i > lo and (text[i - 1].isalnum() or text[i - 1] in "_.-"):
        i -= 1
    return i


def finditer(
    keywords: Sequence[str],
    ctx: Context,
    text: str,
    lowered: str,
    starts: dict[int, int] | None = None,
) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of a context rule in ``text``, in order; the ``secret`` group
    spans the value. ``starts`` maps each keyword start to the longest keyword there, when the
    caller knows them (hyperscan finds them in one pass); otherwise they are found in
    ``lowered``, the ASCII-lowered text (same offsets)."""
    if starts is None:
        starts = {}
        for k in keywords:
            i = lowered.find(k)
            while i >= 0:
                if len(k) > starts.get(i, 0):
                    starts[i] = len(k)
                i = lowered.find(k, i + 1)
    if not starts:
        return
    pattern = tail_pattern(ctx.shapes, ctx.prefix)
    required = ctx.key_words
    end = 0
    for p in sorted(starts):
        if p < end or not _starts_word(text, p):
            continue
        n = starts[p]
        after = text[p + n : p + n + 1]
        if after.isalnum() and not after.isdigit():
            camel = text[p + n - 1].islower() and after.isupper()
            if not camel:
                tail = _IDENTIFIER_TAIL.match(text, p + n)
                if not _names_credential(key_words(tail[0] if tail else "")):
                    continue  # the keyword only starts a longer word (SQLAlchemy, limited)
        m = pattern.match(text, p + n)
        if m is None:
            continue
        rest = m["rest"]
        words = key_words(rest)
        subs = [s for s in (m["sub"], m["call"], m["nsub"]) if s]
        for s in subs:
            words.extend(key_words(s))
        if m["nsub"] and not _names_credential(key_words(m["nsub"])):
            continue  # a nested key must name a credential itself
        if m["blank"] is not None and not text[_identifier_start(text, p) : p].startswith("-"):
            continue  # a blank separates a value only after a --flag
        if required and not any(r in w for w in words for r in required):
            continue
        last = words[-1] if words else ""
        if last in META_WORDS and last not in required:
            continue
        if not NOT_SECRET_WORDS.isdisjoint(words) and NOT_SECRET_WORDS.isdisjoint(required):
            continue
        yield m
        end = m.end()


# --- the value looks random for its shape -------------------------------------------------------

_RUNS = tuple(
    seq[i : i + 6]
    for seq in ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for i in range(len(seq) - 5)
)
_VOWELS = frozenset("aeiouAEIOU")


def plausible(value: str, ctx: Context) -> bool:
    """Whether ``value`` (prefix included) looks like a random key of one of the shapes."""
    body = value[len(ctx.prefix) :]
    shape = next((shape_of(s) for s in ctx.shapes if _fits(shape_of(s), body)), None)
    if shape is None:
        return False
    core = body.replace("-", "") if shape.is_uuid else body.rstrip("=") if shape.padded else body
    if any(r in core for r in _RUNS):
        return False  # abcdef..., 123456...: an alphabet written out, not a key
    n = len(core)
    alphabet = shape.alphabet
    has_digits = not alphabet.isdisjoint(string.digits)
    has_letters = not alphabet.isdisjoint(string.ascii_letters)
    digits_only = not has_letters
    ratio = 0.6 if digits_only else 0.75
    size = 16 if shape.is_uuid else len(alphabet)
    if shannon(core) < ratio * math.log2(max(2, min(size, n // 2))):
        return False
    if has_digits and has_letters and n >= 12:
        n_digits = sum(c.isdigit() for c in core)
        if n_digits == n:
            return False  # a number
        if n_digits == 0 and alphabet <= frozenset("0123456789abcdefABCDEF-"):
            return False  # hex with no digit at all: a word such as `deadbeefcafe`
        if n_digits <= n // 24 and _wordy(core):
            return False  # a word or an identifier, not random text
    return True


_LOWER_RUNS = lazy(r"[a-z]+")


def _wordy(value: str) -> bool:
    """Words joined up (``AbstractFactoryBean``, ``configurationmanager``): many vowels, and
    long lower-case runs unless the value has one case only."""
    letters = [c for c in value if c.isalpha()]
    if not letters or sum(c in _VOWELS for c in letters) < 0.3 * len(letters):
        return False
    if value.islower() or value.isupper():
        return True
    runs = _LOWER_RUNS.findall(value)
    return bool(runs) and sum(map(len, runs)) / len(runs) >= 3.0


def _fits(shape: Shape, body: str) -> bool:
    return re.fullmatch(shape.body, body) is not None
