"""False-positive filters applied after a rule matched.

``is_placeholder`` applies to every rule: documentation keys and obvious dummies are never
findings. ``generic_reject`` applies only to generic (keyword/entropy) rules and carries the
heuristics that keep them quiet on ordinary code: it looks at the key the value is assigned
to, how it is assigned (quoted literal or not, which operator), what the value looks like
(a reference to code or configuration, a template, a path, a hash, a word) and how strong it
is, and returns the reason it is *not* a secret, or ``None`` to keep the finding.

Every regex here runs on one value or on a bounded window of one line, with bounded
quantifiers, so a pathological line cannot make them backtrack for long.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Iterator, Sequence

from keyward.core.lazyre import lazy
from keyward.scan.entropy import shannon as _entropy

# Substrings that mark a documentation value or a dummy (checked on the lower-cased value).
_PLACEHOLDER_WORDS = (
    "example", "placeholder", "changeme", "change_me", "replaceme", "replace_me", "replace-me",
    "your", "dummy", "sample", "redacted", "fake", "xxxx", "***", "...", "…",
)  # fmt: skip
_PLACEHOLDER_EXACT = frozenset(
    {"test", "password", "secret", "token", "none", "nil", "null", "undefined", "true", "false",
     "todo", "tbd", "fixme", "na", "n/a"}
)  # fmt: skip
# Template syntax of many languages; only tried when the value has one of these characters.
_TEMPLATE_CHARS = frozenset("<${%#@")
_PLACEHOLDER_TEMPLATE = lazy(
    r"<[^>]{0,80}>|\$\{[^}]{0,80}\}|\{\{[^}]{0,80}\}\}|%\([^)]{0,40}\)[sdr]|#\{[^}]{0,80}\}|<%|"
    r"@@\w{1,40}@@|^\$[A-Za-z_][A-Za-z0-9_]*$"
)
_SEQUENCE = lazy(r"(?:0123456789|abcdefgh|12345678|abcdef)+\w{0,8}")


def _runs(alphabet: str, n: int = 8) -> list[str]:
    return [alphabet[i : i + n] for i in range(len(alphabet) - n + 1)]


# Eight or more consecutive characters of the alphabet or the digits, ascending or descending
# (`abcdefgh`, `KLMNOPQR`, `98765432`): the body of a documentation token behind a real prefix
# (`da2-abcdefghijklmnopqrstuvwxyz`, `mlsn.0123456789abcdef...`). A random 40-character token
# holds such a run with a probability below 10^-11.
_ALPHABET_RUN = lazy(
    "|".join(
        run
        for alphabet in ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        for run in _runs(alphabet) + _runs(alphabet[::-1])
    )
)


def is_placeholder(secret: str) -> bool:
    """True for values that are clearly not real credentials."""
    if not secret:
        return True
    low = secret.lower()
    if low in _PLACEHOLDER_EXACT or any(w in low for w in _PLACEHOLDER_WORDS):
        return True
    if not _TEMPLATE_CHARS.isdisjoint(secret) and _PLACEHOLDER_TEMPLATE.search(secret):
        return True
    # one repeated character or a run such as 0000000000 / aaaaaaaaaa
    if len(set(secret)) <= 2 and len(secret) >= 4:
        return True
    if _SEQUENCE.fullmatch(low):
        return True
    return _ALPHABET_RUN.search(secret) is not None


def generic_matches(
    pattern: re.Pattern[str],
    keywords: Sequence[str],
    text: str,
    lowered: str,
    starts: Iterable[int] | None = None,
) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of a generic rule, tried only where one of its keywords starts.

    Generic keywords (``pass``, ``token``, ``key``) occur everywhere, and running a
    case-insensitive regex over a whole file costs far more than finding a few literals:
    a generic rule's regex must therefore begin with one of its (lower-case) keywords. When
    lower-casing changed the text's length (rare Unicode), the keywords are found with a
    case-insensitive regex instead. ``starts``, when the caller already knows where the
    keywords start (hyperscan finds them in one pass), replaces that search.
    """
    if not keywords:
        yield from pattern.finditer(text)
        return
    if starts is not None:
        yield from _matches_at(pattern, text, starts)
        return
    positions: set[int] = set()
    if len(lowered) == len(text):
        find = lowered.find
        for k in keywords:
            i = find(k)
            while i >= 0:
                positions.add(i)
                i = find(k, i + 1)
    else:
        alternation = "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True))
        positions.update(m.start() for m in re.finditer(alternation, text, re.IGNORECASE))
    yield from _matches_at(pattern, text, positions)


def _matches_at(
    pattern: re.Pattern[str], text: str, starts: Iterable[int]
) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of ``pattern`` anchored at the given offsets, in order."""
    end = 0
    match = pattern.match
    for p in sorted(starts):
        if p < end:
            continue
        m = match(text, p)
        if m is not None and m.end() > p:
            yield m
            end = m.end()


# --- the assignment the value belongs to -----------------------------------------------------

# How much of the line before the value is examined (keys and operators are short).
_WINDOW = 160

# The assignment before the value, matched on the *reversed* text before it (so the match is
# anchored where the value starts and costs only the length of the assignment). Forwards it
# reads: [sigil]key[quote][]] operator [string prefix][quote][auth scheme].
_CONTEXT_REVERSED = lazy(
    r"""(?P<scheme>[ \t]{1,2}(?:reraeb|cisab|nekot|tob))?(?P<vq>["'`]\\?)?(?P<pre>[rbuf@]{0,2})"""
    r"""(?P<op>[ \t]{0,8}=[ \t]{1,4}[\w.\[\]|, ]{0,40}[a-z_][ \t]{0,4}:[ \t]{0,4}"""  # `: T =`
    r"""|[ \t]{0,8}=[ \t]{1,4}(?:gnirts|etyb\]\[)[ \t]{1,4}"""  # Go `name string =`
    r"""|[ \t]{0,40}\n\r?[ \t]{0,4}(?:[+-]?[|>][ \t]{0,4}:|>)[ \t]{0,4}"""  # `: |`, `<k>`, newline
    r"""|[ \t]{0,2}=[ \t]{0,2}eulav[ \t]{1,4}["']"""  # XML `key="K" value="`
    r"""|[ \t]{0,2}=[ \t]{0,2}(?:tluafed|kcabllaf)[ \t]{0,4},"""  # `"KEY", default=`
    r"""|[ \t]{0,8}(?:>=|=:{1,3}|=\|\||=\?\?|=[?+.]|=|:|>|,)[ \t]{0,8}"""
    r"""|[ \t]{1,4}|)"""
    r"""\]?(?P<kq>["'`]\\?)?(?P<key>[\w.-]{0,80}[a-z_])(?P<sigil>[$@:]{0,2})""",
    re.IGNORECASE | re.ASCII,
)
# mysql-style -p'secret' (the only assignment without a key word)
_SHORT_FLAG = lazy(r"""[ \t]-p["']$""")

_WORD_SPLIT = lazy(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

# Words of a key that make it secret-like (matched as substrings of each word of the key).
_PASSWORD_WORDS = ("password", "passwd", "passphrase", "pwd", "passwort", "pword")
_SECRET_WORDS = ("secret", "token", "credential", "apikey", "privatekey")
_WORD_TAILS = frozenset({"", "s", "key", "keys", "value", "val", "str", "string", "data", "id"})
_AUTH_WORDS = frozenset(
    {"auth", "oauth", "authtoken", "authkey", "authorization", "basicauth", "httpauth", "xauth"}
)
_KEY_PREFIXES = frozenset(
    {
        "api", "private", "signing", "sign", "encryption", "encrypt", "master", "access",
        "hmac", "shared", "client", "consumer", "app", "secret", "license", "webhook", "jwt",
        "auth", "session", "service", "account", "storage", "x",
    }
)  # fmt: skip
# A key whose last word is one of these names something *about* a secret, not the secret.
_META_SUFFIXES = frozenset(
    {
        "name", "names", "type", "types", "kind", "url", "uri", "urls", "endpoint", "path",
        "paths", "file", "filename", "files", "dir", "directory", "field", "fields", "len",
        "length", "size", "count", "max", "min", "prefix", "suffix", "header", "env", "var",
        "variable", "label", "format", "fmt", "pattern", "regex", "re", "rx", "expiry",
        "expires", "expiration", "expire", "ttl", "timeout", "lifetime", "age", "version",
        "method", "methods", "mode", "policy", "hint", "help", "placeholder", "message", "msg",
        "error", "errors", "class", "cls", "style", "description", "desc", "text", "title",
        "column", "col", "param", "parameter", "params", "arg", "args", "option", "options",
        "opt", "opts", "flag", "setting", "settings", "attr", "attribute", "property", "prop",
        "provider", "service", "manager", "backend", "handler", "factory", "validator",
        "validation", "required", "enabled", "enable", "disabled", "changed", "strength",
        "complexity", "rules", "hash", "hashed", "hasher", "digest", "sha", "md5", "checksum",
        "template", "schema", "selector", "input", "widget", "button", "link", "dialog", "form",
        "view", "page", "route", "action", "event", "callback", "func", "function", "fn",
        "mixin", "test", "tests", "exception", "exc", "spec", "index", "idx", "position", "pos",
        "start", "end", "offset", "number", "num", "bytes", "bits", "encoding", "charset",
        "alg", "algorithm", "algorithms", "scheme", "scope", "scopes", "audience", "issuer",
        "location", "source", "target", "host", "hostname", "port", "user", "username", "login",
        "email", "region", "stage", "status", "state", "result", "output", "color", "icon",
        "image", "width", "height", "id", "ids", "store", "storage", "cache", "loader", "reader",
        "writer", "parser", "generator", "helper", "utils", "util", "module", "mod", "lib",
        "plugin", "plugins", "dialect", "reset", "confirm", "confirmation", "rotation",
        "command", "cmd", "prompt", "request", "response", "server", "client", "str", "string",
        "list", "dict", "map", "set", "tuple", "obj", "object", "stored", "lookup", "mapping",
        "keyname", "tag", "tags", "table", "category", "group", "role", "roles", "owner",
        "entropy", "counter", "mechanism", "mechanisms", "ref", "reference",
    }
)  # fmt: skip
# A key whose first word is one of these is a predicate, a function or a count.
_META_PREFIXES = frozenset(
    {
        "is", "has", "have", "use", "uses", "show", "hide", "validate", "check", "get", "set",
        "no", "with", "without", "require", "requires", "enable", "disable", "allow", "num",
        "max", "min", "len", "count", "n", "should", "can", "must", "needs", "need", "do",
        "reset", "forgot", "change", "update", "create", "new", "old", "verify",
        "make", "gen", "generate", "parse", "read", "load", "save", "write", "fetch", "find",
        "test", "mock", "fake", "dummy", "example", "sample", "invalid", "wrong",
        "bad", "empty", "missing", "expected", "unused", "valid", "encode", "decode", "hash",
        "print", "format", "to", "from", "on", "handle", "render",
    }
)  # fmt: skip

_TEST_WORDS = frozenset(
    {"test", "tests", "testing", "mock", "mocked", "fake", "dummy", "example", "sample", "demo"}
)
# Words that make a key with a secret word something else: pagination and request tokens,
# timestamps and counters about a secret.
_NOT_SECRET_WORDS = frozenset(
    {"next", "continuation", "page", "pagination", "paging", "marker", "cursor", "sync",
     "idempotency", "request", "resume", "cancellation", "last", "used", "created", "updated",
     "changed", "date", "time", "timestamp", "at", "lexer", "tokenize", "csrf", "xsrf", "nonce",
     # a cache key is a lookup key (usually a hash), not the secret it finds
     "cache", "cached",
     # public by design: publishable / public keys and tokens, DNS and site verification
     # tokens (published in TXT records), Rails' per-form authenticity_token (CSRF)
     "public", "publishable", "verification", "authenticity"}
)  # fmt: skip
_LOCKFILES = frozenset(
    {
        "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "pipfile.lock",
        "cargo.lock", "go.sum", "composer.lock", "gemfile.lock", "npm-shrinkwrap.json",
        "bun.lockb", "packages.lock.json", "pdm.lock", "uv.lock", "flake.lock", "mix.lock",
        "podfile.lock", "pubspec.lock", "gradle.lockfile", "conda-lock.yml",
    }
)  # fmt: skip
# Extensions where an unquoted value is code (a variable or an expression), not a literal.
_CODE_EXT = frozenset(
    {
        "py", "pyi", "pyx", "js", "jsx", "mjs", "cjs", "ts", "tsx", "mts", "cts", "go", "java",
        "kt", "kts", "scala", "groovy", "rb", "php", "cs", "c", "h", "cc", "cpp", "cxx", "hpp",
        "hh", "rs", "swift", "m", "mm", "dart", "lua", "pl", "pm", "r", "jl", "ex", "exs",
        "erl", "clj", "fs", "vb", "vue", "svelte", "j2", "jinja", "jinja2", "ps1", "psm1",
    }
)  # fmt: skip

_HASH_WORDS = lazy(
    r"hash|checksum|sha\d{0,3}|digest|integrity|md5|etag|commit|revision|\brev\b|blake|crc"
)
_HASH_PREFIX = lazy(r"(?:sha|md5|blake2?[bs]?)[-_]?(?:1|224|256|384|512)?[:=-]")
_UUID = lazy(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Consecutive groups of a UUID (8-4-4-4-12): a UUID cut short, e.g. ``a06b-c462cffae87a``.
_UUID_PART = lazy(
    r"(?i)(?:[0-9a-f]{8}-)?(?:[0-9a-f]{4}-){1,3}[0-9a-f]{12}|[0-9a-f]{8}(?:-[0-9a-f]{4}){1,3}"
)
# A value that names a secret instead of holding one: a header or field name
# (``X-Amz-Security-Token``), a credential scope (``myaccesskey/20180523/...``).
_NAMES_SECRET = lazy(r"token|credential|access_?key|api_?key|secret_?key|auth_?key")
_HEX = lazy(r"[0-9a-fA-F]+")
_NUMBER = lazy(r"[-+]?(?:0x[0-9a-fA-F]+|\d[\d_]*(?:\.\d+)?(?:e[-+]?\d+)?)[a-zA-Z]{0,3}")
_VERSION_OR_DATE = lazy(
    r"v?\d{1,4}(?:[.:/-]\d{1,4}){1,5}[-+.\w]{0,20}"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
)
# References to configuration or code instead of a literal (checked on the lower-cased value).
_CODE_REFS = (
    "os.environ", "getenv", "process.env", "env[", "env.", "environment.", "config.get",
    "settings.", "self.", "this.", "props.", "request.", "args.", "options.", "params.",
    "secrets.", "vars.", "$env:", "$(", "context.",
)  # fmt: skip
_CODE_CHARS = frozenset("()[]{}")
_IDENT_PATH = lazy(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)+")
_MEMBER = lazy(r"[A-Za-z_$][\w$]{0,40}\.[A-Za-z_$][\w$]{2,}")
_IDENTIFIER = lazy(r"[A-Za-z_$][\w$]*")
_SNAKE_WORDS = lazy(r"[A-Za-z]+(?:[_.:-][A-Za-z]+)+[_-]?\d{0,2}")
_CAMEL_WORDS = lazy(r"[A-Za-z][a-z]+(?:[A-Z][a-z]+)+\d{0,2}|[a-z]+\d{0,2}|[A-Z][a-z]+\d{0,2}")
_TEMPLATE = lazy(
    r"""\$[A-Za-z_{(]|\{\{|\{%|\{[\w.]{0,40}\}|(?:^|[^\w%])%[sdr](?:$|[^\w%])|%\(|#\{|<%|@@\w{1,40}@@|^%\w+%$"""
)
_REGEX_CHARS = frozenset("\\[(*+")
_REGEX_LIKE = lazy(r"""\\[dwsbDWSB]|\[\^?[^\]]{1,30}\]|\(\?|\.\*|\.\+|[+*]\$""")
_PATH_START = lazy(r"(?:/|\./|\.\./|~/|[A-Za-z]:[\\/]|\\\\)[\w.-]")
_PATH_SEGMENTS = lazy(r"[\w.-]{1,100}(?:/[\w.@-]{1,100}){1,30}/?")
_FILE_EXT = lazy(
    r"(?i)\.(?:json|ya?ml|txt|pem|key|crt|cer|p12|pfx|jks|keystore|py|js|ts|html?|xml|ini|cfg"
    r"|conf|toml|env|sh|log|csv|db|sqlite|png|jpe?g|gif|svg|md|rst"
    # web assets, whose build names carry a content hash (main.3f2a9c8e1b4d7f60.css)
    r"|css|scss|mjs|cjs|map|woff2?|ttf|otf|eot|ico|webp|avif|wasm|gz|br)$"
)
_URL = lazy(r"(?i)^[a-z][a-z0-9+.-]{1,20}://")
_CAMEL_SEGMENT = lazy(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SEPARATORS = lazy(r"[_.:/-]")
# Words of test fixtures and documentation values (on the lower-cased value); the short ones
# only at the start of a word, so random text rarely contains one by chance.
_FAKE_WORDS = lazy(
    r"test|fake|dummy|mock|sample|example|secret|passw|changeme|letmein|hunter2|qwerty|admin|"
    r"demo|invalid|wrong|bogus|notreal|not[_-]?a[_-]?real|placeholder|lorem|ipsum|s3cr3t|"
    r"p[a@4][s5$]{2}w[o0]rd|abc123|123456|asdf|secure|supersecret|topsecret|"
    r"(?<![a-z])(?:foo|bar|baz|qux|quux|xyz|xxx|zzz|my[_-]?(?:key|token|pass))"
)
# Provider names that begin with a predicate word: NEW_RELIC_API_KEY names New Relic's key,
# not a new one.
_NAMES_NOT_VERBS = frozenset({("new", "relic"), ("get", "response")})
_BOOL_WORDS = frozenset(
    {"true", "false", "yes", "no", "on", "off", "none", "null", "nil", "undefined", "required",
     "optional", "string", "str", "bytes", "int", "bool", "hidden", "secret", "password",
     "sensitive", "masked", "redacted", "disabled", "enabled", "empty", "unset", "unknown"}
)  # fmt: skip


def generic_reject(
    secret: str, line: str, path: str | None, column: int | None = None
) -> str | None:
    """Reason why a generic finding is not a secret, or None to keep it.

    ``line`` is the line the value is on (or a window of it around the value), ``column`` the
    value's offset in ``line`` (found by searching when not given) and ``path`` the file's
    path (lockfiles and file types change what a value means).
    """
    if column is None or line[column : column + len(secret)] != secret:
        column = max(line.find(secret), 0)
    before = line[max(0, column - _WINDOW) : column]
    after = line[column + len(secret) : column + len(secret) + 8]
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower() if path else ""
    if name in _LOCKFILES or name.endswith(".lock"):
        return "lockfile"
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    if before.endswith(("-p'", '-p"')) and _SHORT_FLAG.search(before[-4:]):
        if after[:1] != before[-1]:
            return "prose"
        if is_placeholder(secret):
            return "placeholder"
        return _value_reject(secret, "p", line, False) or _password_strength(secret)
    ctx = _CONTEXT_REVERSED.match(before[::-1])
    if ctx is None or not ctx["key"]:
        return "no-assignment"
    key = ctx["key"][::-1]
    op = ctx["op"].strip()[::-1]
    vq = (ctx["vq"] or "")[::-1]
    words = _key_words(key)
    kind = _key_kind(words)
    if kind is None:
        return "key-not-secret"
    if words[-1] in _META_SUFFIXES and not _is_key_word(words[-1], words):
        return "key-names-metadata"
    if any(w.rstrip("0123456789") in _TEST_WORDS for w in words):
        return "test-fixture"
    if not _NOT_SECRET_WORDS.isdisjoint(words):
        return "key-not-secret"  # NextContinuationToken, ClientRequestToken, LastUsed
    key_at = len(before) - ctx.end("sigil")  # where [sigil]key starts in `before`
    lead = before[key_at - 1] if key_at > 0 else ""
    if ":" in ctx["sigil"] and lead.isalnum():
        return "key-is-namespaced"  # AWS::IAM::AccessKey, urn:ietf:params:oauth:..
    if words[0] in _META_PREFIXES and len(words) > 1 and tuple(words[:2]) not in _NAMES_NOT_VERBS:
        return "key-is-predicate"
    if is_placeholder(secret):
        return "placeholder"
    # how the value is assigned
    quote = vq[-1:] if vq else ""
    if quote:
        if after[:1] != quote and not (after[:2] == "\\" + quote):
            return "prose"  # the literal goes on past the value: spaces, or a concatenation
    if "\n" in ctx["op"]:  # the value alone on the line after `<key>` or `key: |`
        if (op == ">" and lead != "<") or line[column + len(secret) :].strip():
            return "prose"
    elif op == ">" and (lead != "<" or not after.startswith("</")):
        return "comparison"
    if op.startswith(","):  # ("password", "...") or ("PASSWORD", default="...")
        # ("password", "value") pairs: both quoted, and the value not just another name
        kq = (ctx["kq"] or "")[::-1]
        symbol = ctx["sigil"] == ":"  # Ruby: set :password, "..."
        if not (quote and (symbol or (kq and lead == kq[-1:]))):
            return "not-a-pair"
        if _IDENTIFIER.fullmatch(secret) and (
            not _looks_random(secret) or not any(c.isdigit() for c in secret)
        ):
            return "identifier"  # lists of names: "viGpibPassControl", "viGpibSendIFC"
    netrc = name in (".netrc", "_netrc")  # machine h login u password p
    if not op and not netrc and not (quote and (lead == "-" or key == "PASSWORD" or ext == "sql")):
        return "prose"  # blank-separated only for --flag "...", SQL's PASSWORD '...'
    unquoted = not quote
    if unquoted:
        # PGPASSWORD=... psql, --password=... more arguments
        command_line = (op == "=" and key.isupper()) or lead == "-" or netrc
        if not command_line and _is_prose_after(
            line[column + len(secret) : column + len(secret) + 40]
        ):
            return "prose"
        if ext in _CODE_EXT:
            if _IDENTIFIER.fullmatch(secret) and not _looks_random(secret):
                return "code-reference"
            if _IDENT_PATH.fullmatch(secret) and _plain_path(secret):
                return "code-reference"  # ObjSense::kMinimize, self.config.value
            if "=" in secret.rstrip("=") or ("." in secret and _MEMBER.search(secret)):
                return "code-reference"
    if (ctx["scheme"] or "").lower().endswith("cisab"):  # reversed "basic"
        return _basic_auth_reject(secret)
    reason = _value_reject(secret, key, line, unquoted)
    if reason is not None:
        return reason
    if kind == "password":
        return _password_strength(secret)
    return _token_strength(secret)


def _basic_auth_reject(secret: str) -> str | None:
    """``Basic base64(user:password)``: judge the password inside."""
    try:
        decoded = base64.b64decode(secret, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "not-basic-auth"
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return "not-basic-auth"
    if is_placeholder(password) or _FAKE_WORDS.search(password.lower()):
        return "fake-value"
    return _password_strength(password)


def _key_words(key: str) -> list[str]:
    words = [w.lower() for w in _WORD_SPLIT.split(key) if w]
    return words or [key.lower()]


def _is_key_word(word: str, words: list[str]) -> bool:
    """The word itself carries the secret meaning (``..._secret``, ``..._token``, ``..._key``)."""
    if word == "key":
        return len(words) > 1 and words[-2] in _KEY_PREFIXES
    return _contains(word, _PASSWORD_WORDS + _SECRET_WORDS) or word in _AUTH_WORDS


def _contains(word: str, secret_words: tuple[str, ...]) -> bool:
    """``word`` ends with a secret word (``dbpassword``, ``clientsecrets``, ``tokenvalue``), not
    merely starts with one (``secretsmanager``, ``passwordless``, ``tokenizer``)."""
    for s in secret_words:
        i = word.find(s)
        if i >= 0 and word[i + len(s) :] in _WORD_TAILS:
            return True
    return False


def _key_kind(words: list[str]) -> str | None:
    """``password`` or ``token`` when the key names a secret, else None."""
    kind: str | None = None
    for i, w in enumerate(words):
        if _contains(w, _PASSWORD_WORDS) or w in {"pass", "pw"}:
            return "password"
        if _contains(w, _SECRET_WORDS):
            kind = "token"
        elif w in _AUTH_WORDS or w == "creds":
            kind = "token"
        elif w in {"key", "keys"} and i > 0 and words[i - 1] in _KEY_PREFIXES:
            kind = "token"
        elif w.endswith("key") and w[:-3] in _KEY_PREFIXES:
            kind = "token"
    return kind


def _is_prose_after(rest: str) -> bool:
    """An unquoted value followed by more words on the line is a sentence, not a value."""
    stripped = rest.lstrip(" \t")
    if not stripped or len(stripped) == len(rest):
        return False
    return stripped[0].isalpha()


def _value_reject(secret: str, key: str, line: str, unquoted: bool) -> str | None:
    low = secret.lower()
    if low in _BOOL_WORDS:
        return "keyword-value"
    norm = re.sub(r"[^a-z0-9]", "", low)
    key_norm = re.sub(r"[^a-z0-9]", "", key.lower())
    if norm == key_norm or (len(norm) >= 4 and norm in key_norm):
        return "value-is-key-name"
    if not _TEMPLATE_CHARS.isdisjoint(secret) and _TEMPLATE.search(secret):
        return "template"
    if secret.startswith("__") and secret.endswith("__"):  # __SECRET__ (replaced at build)
        return "template"
    if _URL.match(secret):
        return "url"  # URLs with credentials have their own rules
    if (
        any(r in low for r in _CODE_REFS)
        or not _CODE_CHARS.isdisjoint(secret)
        or (_IDENT_PATH.fullmatch(secret) and not _looks_random(secret))
    ):
        return "code-reference"
    if not _REGEX_CHARS.isdisjoint(secret) and _REGEX_LIKE.search(secret):
        return "regex"
    if (
        (secret[0] in "/.~\\" or secret[1:2] == ":") and _PATH_START.match(secret)
    ) or _FILE_EXT.search(secret[-11:]):
        return "path"
    if _PATH_SEGMENTS.fullmatch(secret) and (
        not _looks_random(secret)
        or (
            secret.count("/") >= 2
            and not any(len(p) > 4 and _looks_random(p) for p in secret.split("/"))
        )
    ):
        return "path"  # a/b/c of words and numbers (base64 has long random runs between /)
    if _UUID.fullmatch(secret) or _UUID_PART.fullmatch(secret):
        return "uuid"
    if _NAMES_SECRET.search(low):
        return "value-names-a-secret"
    if _NUMBER.fullmatch(secret) or _VERSION_OR_DATE.fullmatch(secret):
        return "number"
    if "@" in secret and re.fullmatch(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+", secret):
        return "email"
    if _HASH_PREFIX.search(low):
        return "hash"
    if len(secret) in (32, 40, 56, 64, 96, 128) and _HEX.fullmatch(secret):
        if _HASH_WORDS.search(key.lower()) or _HASH_WORDS.search(line.lower()):
            return "hash"
    if "integrity" in line.lower():
        return "hash"
    if _FAKE_WORDS.search(low):
        return "fake-value"
    if _SNAKE_WORDS.fullmatch(secret) or _CAMEL_WORDS.fullmatch(secret) or _is_wordy(secret):
        return "identifier"
    if _IDENTIFIER.fullmatch(secret) and _mean_word_length(secret) >= 3.5:
        if _vowel_ratio(secret) >= 0.25:
            return "identifier"  # injectNpm2FaToken: long words with vowels; random text is not
    return None


def _is_wordy(value: str) -> bool:
    """Words and numbers joined by separators: ``0002_alter_permission_name_max_length``."""
    parts = _SEPARATORS.split(value)
    if len(parts) < 3:
        return False
    return all(
        p.isdigit() or (p.isalpha() and (p.islower() or p.isupper() or p[1:].islower()))
        for p in parts
        if p
    )


def _mean_word_length(value: str) -> float:
    words = [w for w in _CAMEL_SEGMENT.findall(value) if w.isalpha()]
    return sum(map(len, words)) / len(words) if words else 0.0


def _vowel_ratio(value: str) -> float:
    letters = [c for c in value.lower() if c.isalpha()]
    return sum(c in "aeiouy" for c in letters) / len(letters) if letters else 0.0


def _classes(value: str) -> int:
    lower = upper = digit = other = 0
    for c in value:
        if c.islower():
            lower = 1
        elif c.isupper():
            upper = 1
        elif c.isdigit():
            digit = 1
        else:
            other = 1
    return lower + upper + digit + other


def _switch_ratio(value: str) -> float:
    """How often adjacent characters change class (lower, upper, digit, other).

    Random tokens switch often (about 0.6 for base62, 0.47 for hex); identifiers and words
    rarely (once per word).
    """
    if len(value) < 2:
        return 0.0

    def cls(c: str) -> int:
        return 0 if c.islower() else 1 if c.isupper() else 2 if c.isdigit() else 3

    prev = cls(value[0])
    switches = 0
    for c in value[1:]:
        k = cls(c)
        if k != prev:
            switches += 1
        prev = k
    return switches / (len(value) - 1)


_PATH_PARTS = lazy(r"\.|::|->")


def _plain_path(value: str) -> bool:
    """A member or namespace path whose every part is a plain identifier (``Enum::kValue``):
    judged part by part, as the separators alone make the whole look random."""
    return not any(_looks_random(part) for part in _PATH_PARTS.split(value))


def _looks_random(value: str) -> bool:
    return _switch_ratio(value) >= 0.3 and _entropy(value) >= 3.0


def _password_strength(secret: str) -> str | None:
    """Passwords: at least 8 characters and not a word, a run or a simple pattern."""
    n = len(secret)
    if n < 8:
        return "too-short"
    classes = _classes(secret)
    entropy = _entropy(secret)
    if classes >= 3 and entropy >= 2.5:
        return None
    if classes == 2 and entropy >= 2.8 and _switch_ratio(secret) >= 0.25:
        return None
    if n >= 16 and entropy >= 3.8:
        return None
    return "weak-value"


def _token_strength(secret: str) -> str | None:
    """API keys and tokens: at least 16 characters of random-looking text."""
    n = len(secret)
    if n < 16:
        return "too-short"
    entropy = _entropy(secret)
    hex_only = _HEX.fullmatch(secret) is not None
    if entropy < (3.0 if hex_only else min(3.5, math.log2(n) - 0.8)):
        return "low-entropy"
    if n < 20 and hex_only:
        return "short-hex"  # 64-bit ids and hashes, far more often than keys
    has_digit = any(c.isdigit() for c in secret)
    has_alpha = any(c.isalpha() for c in secret)
    if not has_alpha:
        return "number"
    if not has_digit and not (entropy >= 4.0 and _switch_ratio(secret) >= 0.3):
        return "word-like"
    if _switch_ratio(secret) < 0.2:
        return "word-like"
    return None
