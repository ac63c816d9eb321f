"""Environment variables: the process environment, and key/value files in scanned trees.

* ``keyward scan --env``: one chunk per variable of the current process, ``NAME=value``, with a
  location that names the variable (never the value; findings show a redacted preview).
* In trees: ``.env`` files, docker-compose ``environment:`` blocks and Kubernetes ``env:``
  lists are read as key/value pairs, so an unquoted ``API_TOKEN=...`` is understood as the
  value of ``API_TOKEN`` (see :mod:`keyward.scan.variables`, which calls these parsers for
  every file chunk the runner matches).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from keyward.core.lazyre import lazy
from keyward.scan.model import Chunk, Location, SourceKind
from keyward.scan.postpass import KeepAll
from keyward.scan.sources.base import ChunkWork, PoolPolicy, Skipped

if TYPE_CHECKING:
    from keyward.scan.rules import Rule

_NAME = lazy(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_DOTENV_LINE = lazy(
    r"^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)[ \t]*(?:=|:[ \t])[ \t]*"
)
MAX_VALUE = 64 * 1024


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One variable found in a file: its name, literal value and where the value starts.

    ``value`` is the raw value (kept in memory only, never shown). ``reference`` marks values
    that point elsewhere (``${ssm:...}``, ``!Ref``, ``var.x``...), which are never findings.
    """

    name: str
    value: str = field(repr=False)
    line: int  # 1-based line of the value's first character
    column: int  # 1-based column of the value's first character
    resource: str | None = None
    reference: bool = False
    lines: tuple[int, ...] | None = None  # line of each line of a multi-line value
    # the value was decoded (a Kubernetes Secret's base64 ``data:``): findings in it are
    # placed at the encoded value, since offsets in the decoded text are not in the file
    decoded: bool = False


def variable_chunk(kv: KeyValue, base: Location) -> Chunk:
    """``NAME=value`` as a chunk whose lines map to the value's lines in the file."""
    text = f"{kv.name}={kv.value}"
    n = text.count("\n") + 1
    if kv.decoded:
        line_map: tuple[int, ...] = (kv.line,) * n
    elif kv.lines is not None and len(kv.lines) == n:
        line_map = kv.lines
    else:
        line_map = tuple(kv.line + i for i in range(n))
    loc = replace(base, variable=kv.name, resource=kv.resource or base.resource)
    return Chunk(text, loc, line_map=line_map)


# ------------------------------------------------------------------ process environment
@dataclass(slots=True)
class ProcessEnvSource:
    """One chunk per variable of ``environ`` (default: this process's environment)."""

    environ: Mapping[str, str] | None = None
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def pool(self) -> PoolPolicy | None:
        return None

    def work(self) -> Iterator[ChunkWork]:
        for chunk in self.chunks():
            yield ChunkWork(chunk)

    def post_pass(self, rules: Sequence[Rule]) -> KeepAll:
        return KeepAll()

    def chunks(self) -> Iterator[Chunk]:
        env = os.environ if self.environ is None else self.environ
        for name in sorted(env):
            value = env[name]
            if not value:
                continue
            if len(value) > MAX_VALUE:
                self.skipped.append(Skipped(f"${name}", f"value longer than {MAX_VALUE} bytes"))
                continue
            text = f"{name}={value}"
            n = text.count("\n") + 1
            yield Chunk(
                text,
                Location(kind=SourceKind.ENV, variable=name),
                line_map=(0,) * n,
            )


# ------------------------------------------------------------------ .env files
def is_dotenv(name: str) -> bool:
    """``.env``, ``.env.production``, ``prod.env`` (a file name, not a path)."""
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def _strip_comment(rest: str) -> str:
    """``rest`` up to a ``#`` that follows a space or tab (a comment), in one pass: the regex
    ``[ \t]+#`` took quadratic time on a long run of spaces with no ``#`` after them."""
    hash_at = rest.find("#")
    while hash_at > 0:
        if rest[hash_at - 1] in " \t":
            return rest[:hash_at]
        hash_at = rest.find("#", hash_at + 1)
    return rest


def parse_dotenv(text: str) -> list[KeyValue]:
    """Variables of a dotenv file: ``[export] NAME=value``, quoted or not, ``#`` comments.

    Double-quoted values may span lines (as docker and python-dotenv allow, for PEM keys).
    """
    out: list[KeyValue] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        m = _DOTENV_LINE.match(line)
        if m is None or line.lstrip().startswith("#"):
            i += 1
            continue
        name = m.group("name")
        start = m.end()
        rest = line[start:]
        first_line = i + 1
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            end = body.find(quote)
            if end >= 0 or quote == "'":
                value = body[:end] if end >= 0 else body
                out.append(KeyValue(name, value, first_line, start + 2))
                i += 1
                continue
            # a double-quoted value that continues on the next lines
            parts = [body]
            numbers = [first_line]
            j = i + 1
            while j < len(lines) and j - i < 400:
                nxt = lines[j].rstrip("\r")
                k = nxt.find(quote)
                parts.append(nxt if k < 0 else nxt[:k])
                numbers.append(j + 1)
                if k >= 0:
                    break
                j += 1
            value = "\n".join(parts)
            out.append(KeyValue(name, value, first_line, start + 2, lines=tuple(numbers)))
            i = j + 1
            continue
        value = _strip_comment(rest).strip()
        if value:
            out.append(KeyValue(name, value, first_line, start + 1))
        i += 1
    return out


# ------------------------------------------------------------------ compose / Kubernetes
def yaml_env_variables(docs: list[object]) -> tuple[list[KeyValue], set[int]]:
    """Variables of docker-compose ``environment:`` and Kubernetes ``env:`` blocks.

    ``docs`` are PyYAML nodes (from ``yaml.compose_all``). Returns the literal variables and
    the lines of values that are references (``valueFrom``, ``${VAR}``), so other findings on
    those lines can be dropped.
    """
    from keyward.scan.sources.yamlnodes import (
        MappingNode,
        Node,
        ScalarNode,
        SequenceNode,
        is_reference_text,
        literal_scalar,
        mapping_get,
        walk_mappings,
    )

    out: list[KeyValue] = []
    refs: set[int] = set()

    def add(name: str, node: Node, resource: str | None) -> None:
        lit = literal_scalar(node)
        if lit is None:
            refs.add(node.start_mark.line + 1)
            return
        value, line, col, lines = lit
        if not value:
            return
        if is_reference_text(value):
            refs.add(line)
            return
        out.append(KeyValue(name, value, line, col, resource, lines=lines))

    for doc in docs:
        if not isinstance(doc, MappingNode):
            continue
        kind = mapping_get(doc, "kind")
        meta = mapping_get(doc, "metadata")
        k8s_name = None
        if isinstance(kind, ScalarNode) and isinstance(meta, MappingNode):
            name_node = mapping_get(meta, "name")
            if isinstance(name_node, ScalarNode):
                k8s_name = f"{kind.value}/{name_node.value}"
        services = mapping_get(doc, "services")
        if isinstance(services, MappingNode):  # docker-compose
            for key, svc in services.value:
                if not isinstance(svc, MappingNode):
                    continue
                env = mapping_get(svc, "environment")
                resource = f"service {key.value}"
                if isinstance(env, MappingNode):
                    for k, v in env.value:
                        if isinstance(k, ScalarNode):
                            add(str(k.value), v, resource)
                elif isinstance(env, SequenceNode):
                    for item in env.value:
                        if isinstance(item, ScalarNode) and "=" in item.value:
                            name, _, value = item.value.partition("=")
                            lit = literal_scalar(item)
                            if lit is None:
                                continue
                            _, line, col, _ = lit
                            if value and not is_reference_text(value):
                                out.append(
                                    KeyValue(name, value, line, col + len(name) + 1, resource)
                                )
                            elif value:
                                refs.add(line)
        for mapping, container in walk_mappings(doc):
            env = mapping_get(mapping, "env")
            if not isinstance(env, SequenceNode):
                continue
            k8s_resource = k8s_name
            if container:
                k8s_resource = f"{k8s_name or 'manifest'} container {container}"
            for item in env.value:
                if not isinstance(item, MappingNode):
                    continue
                name_node = mapping_get(item, "name")
                if not isinstance(name_node, ScalarNode):
                    continue
                value_node = mapping_get(item, "value")
                if value_node is None:
                    ref = mapping_get(item, "valueFrom")
                    if ref is not None:
                        refs.add(ref.start_mark.line + 1)
                    continue
                add(str(name_node.value), value_node, k8s_resource)
    return out, refs


def looks_like_kubernetes(text: str) -> bool:
    """A Kubernetes manifest with ``env:`` lists or a ``kind: Secret`` (cheap text checks)."""
    if "apiVersion" not in text or _K8S_API.search(text) is None:
        return False
    return "env:" in text or _K8S_SECRET.search(text) is not None


_K8S_SECRET = lazy(r"(?m)^[ \t-]*kind:[ \t]*[\"']?Secret[\"']?[ \t]*(?:#.*)?$")
MAX_DECODED = 64 * 1024


def kubernetes_secret_variables(docs: list[object]) -> tuple[list[KeyValue], set[int]]:
    """The entries of Kubernetes ``kind: Secret`` documents as variables.

    ``data:`` values are base64 (as the API server stores them): each is decoded and its text
    becomes the variable's value, placed at the manifest line of its key; a value that does not
    decode to UTF-8 text is left to the plain-text scan. ``stringData:`` values are taken as
    they are, at their own position. Returns the variables and the lines of decoded ``data:``
    values (generic matches on their base64 text are dropped: the decoded value is judged).
    """
    import base64
    import binascii

    from keyward.scan.sources.yamlnodes import MappingNode, ScalarNode, literal_scalar, mapping_get

    out: list[KeyValue] = []
    encoded_lines: set[int] = set()
    for doc in docs:
        kind = mapping_get(doc, "kind")
        if not isinstance(kind, ScalarNode) or kind.value != "Secret":
            continue
        meta = mapping_get(doc, "metadata")
        name = mapping_get(meta, "name") if isinstance(meta, MappingNode) else None
        resource = f"Secret/{name.value}" if isinstance(name, ScalarNode) else "Secret"
        for section, encoded in (("data", True), ("stringData", False)):
            table = mapping_get(doc, section)
            if not isinstance(table, MappingNode):
                continue
            for key, node in table.value:
                lit = literal_scalar(node)
                if not isinstance(key, ScalarNode) or lit is None or not lit[0]:
                    continue
                value, line, col, lines = lit
                if not encoded:
                    out.append(KeyValue(str(key.value), value, line, col, resource, lines=lines))
                    continue
                compact = "".join(value.split())
                if len(compact) > MAX_DECODED * 4 // 3 + 4:
                    continue
                try:
                    text = base64.b64decode(compact, validate=True).decode("utf-8")
                except (binascii.Error, ValueError):  # not base64, or not text
                    continue
                if not text.strip():
                    continue
                key_line = key.start_mark.line + 1
                encoded_lines.update(lines or (line,))
                out.append(
                    KeyValue(
                        str(key.value),
                        text,
                        key_line,
                        col,
                        resource,
                        lines=lines or (line,),  # where the encoded value is
                        decoded=True,
                    )
                )
    return out, encoded_lines


_TOP_SERVICES = lazy(r"(?m)^services:[ \t]*(?:#.*)?$")
_K8S_API = lazy(r"(?m)^[ \t-]*apiVersion:[ \t]*\S")


def looks_like_compose(name: str, text: str) -> bool:
    lower = name.lower()
    if lower.startswith(("docker-compose", "compose")) and lower.endswith((".yml", ".yaml")):
        return True
    return "environment:" in text and _TOP_SERVICES.search(text) is not None


def is_env_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))
