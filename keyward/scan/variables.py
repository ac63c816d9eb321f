"""Variables that files declare: .env, compose, Kubernetes (``env:`` lists and ``kind: Secret``
manifests, whose base64 ``data:`` is decoded) and IaC templates.

Part of matching, not a source: the runner calls :func:`match_with_variables` for every chunk
of a file (a file on disk, a file's added lines in a commit or in the index). For most files
that is just ``engine.scan(chunk)``; for files recognised by name (and a cheap look at the
text) the declared variables are also matched one by one as ``NAME=value`` chunks, so

* an unquoted ``API_TOKEN=...`` in a ``.env`` file is understood as the value of API_TOKEN;
* a literal under a secret-like name (``DB_PASSWORD: "hunter2-Prod-88"``) is caught by the
  ``secret-named-variable`` rule even when it has no known provider format;
* a finding names the variable and, for IaC and manifests, the function / resource;
* values that are references (``${ssm:...}``, ``!Ref``, ``var.x``...) are never findings, also
  not from generic rules on the same line.

Findings on the same line and value from both passes are reported once. A file that does not
parse is matched as plain text only (never lost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from keyward.core.lazylog import logger
from keyward.scan.engine import Engine, line_allows
from keyward.scan.model import Chunk, Finding, SourceKind

if TYPE_CHECKING:  # the readers are imported for the files that declare variables
    from keyward.scan.sources.env import KeyValue

log = logger(__name__)

_STRUCTURED_EXT = frozenset({".yml", ".yaml", ".json", ".tf", ".template", ".cfn"})


def _name_and_ext(path: str) -> tuple[str, str]:
    name = path[path.rfind("/") + 1 :]
    dot = name.rfind(".")
    return name, name[dot:].lower() if dot >= 0 else ""


def _dotenv(path: str) -> bool:
    """Whether the file is a ``.env`` file (by its name)."""
    name, ext = _name_and_ext(path)
    if ext == ".env" or name.startswith(".env"):
        from keyward.scan.sources.env import is_dotenv

        return is_dotenv(name)
    return False


def classify(path: str, text: str) -> str | None:
    """Which structured reader applies to a file (None for most files, in a few string ops)."""
    name, ext = _name_and_ext(path)
    if _dotenv(path):
        return "dotenv"
    if ext not in _STRUCTURED_EXT:
        return None
    from keyward.scan.sources.env import looks_like_compose, looks_like_kubernetes
    from keyward.scan.sources.iac import iac_kind

    kind = iac_kind(name, text)
    if kind is not None:
        return kind
    if ext in (".yml", ".yaml"):
        if looks_like_compose(name, text):
            return "compose"
        if looks_like_kubernetes(text):
            return "kubernetes"
    return None


def extract(kind: str, text: str) -> tuple[list[KeyValue], set[int]] | None:
    """The variables a structured file declares, and the lines of reference values."""
    if kind == "dotenv":
        from keyward.scan.sources.env import parse_dotenv

        return parse_dotenv(text), set()
    if kind in ("compose", "kubernetes"):
        from keyward.scan.sources.env import kubernetes_secret_variables, yaml_env_variables
        from keyward.scan.sources.yamlnodes import compose_documents

        docs = compose_documents(text)
        if docs is None:
            return None
        variables, refs = yaml_env_variables(list(docs))
        if kind == "kubernetes":
            secrets, encoded_lines = kubernetes_secret_variables(list(docs))
            variables.extend(secrets)
            refs |= encoded_lines
        return variables, refs
    from keyward.scan.sources.iac import extract as extract_iac

    got = extract_iac(kind, text)
    if got is None:
        return None
    return got.variables, got.reference_lines


def match_with_variables(engine: Engine, chunk: Chunk) -> list[Finding]:
    """Match a file's chunk, plus its declared variables when the file declares any.

    Chunks of selected lines (git history, staged changes: ``line_map`` set) get the
    line-based ``.env`` reading only; templates need the whole file to be understood.
    """
    found = engine.scan(chunk)
    path = chunk.location.path
    if not path:
        return found
    partial = chunk.line_map is not None
    if partial and not _dotenv(path):  # selected lines: only .env files are read line by line
        return found
    kind = classify(path, chunk.text)
    if kind is None:
        return found
    try:
        got = extract(kind, chunk.text)
    except Exception as exc:  # a reader bug must never lose the plain-text findings
        log.debug("cannot read %s as %s: %s", path, kind, type(exc).__name__)
        return found
    if got is None:
        log.debug("%s does not parse as %s; scanned as text only", path, kind)
        return found
    variables, reference_lines = got
    if partial:
        variables = [_remap(kv, chunk) for kv in variables]
    kind_of = None if partial or kind in ("dotenv", "compose", "kubernetes") else SourceKind.IAC
    return merge_variable_findings(engine, chunk, found, variables, reference_lines, kind_of)


def _remap(kv: KeyValue, chunk: Chunk) -> KeyValue:
    """Line numbers within a partial chunk -> the file's line numbers."""
    lines = kv.lines or (kv.line,)
    real = tuple(chunk.source_line(n - 1) for n in lines)
    return replace(kv, line=real[0], lines=real if kv.lines else None)


def merge_variable_findings(
    engine: Engine,
    chunk: Chunk,
    found: list[Finding],
    variables: Sequence[KeyValue],
    reference_lines: set[int],
    kind: SourceKind | None = None,
) -> list[Finding]:
    """The chunk's findings plus per-variable findings, one per (line, value).

    ``kind`` replaces the location kind of variable findings (IaC); None keeps the chunk's
    (file, git, staged), so commits and authors stay on the findings.
    """
    from keyward.scan.sources.env import variable_chunk

    base = chunk.location
    text_of: dict[int, str] | None = None  # the file's lines, split only for a finding
    extra: list[Finding] = []
    decoded_lines: set[int] = set()  # encoded values whose decoded text gave a finding
    for kv in variables:
        vloc = replace(base, kind=kind or base.kind, resource=kv.resource or base.resource)
        decoded = engine.scan(variable_chunk(kv, vloc))
        if kv.decoded and decoded:
            decoded_lines.update(kv.lines or (kv.line,))
        for f in decoded:
            loc = f.location
            column = loc.column
            if kv.decoded:
                column = kv.column  # the encoded value's start (decoded offsets are not here)
            elif loc.line == kv.line:
                column = kv.column + (loc.column - (len(kv.name) + 2))
            f = f.with_(location=loc.at(loc.line, max(column, 1), loc.end_line))
            if f.suppressed_by is None:
                text_of = _line_texts(chunk) if text_of is None else text_of
                if _allowed(text_of, loc.line):
                    f = f.with_(suppressed_by="inline")
            extra.append(f)
    by_key: dict[tuple[int, str], int] = {}
    out: list[Finding] = []
    for f in found:
        if f.location.line in reference_lines and f.rule_id in engine.generic_ids:
            continue  # a generic match on a reference value (`password: !Ref DbPassword`)
        if f.location.line in decoded_lines:
            continue  # the encoded form of a value reported decoded (a Secret's data:)
        by_key.setdefault((f.location.line, f.fingerprint), len(out))
        out.append(f)
    for e in extra:
        i = by_key.get((e.location.line, e.fingerprint))
        if i is None:
            by_key[(e.location.line, e.fingerprint)] = len(out)
            out.append(e)
            continue
        loc = out[i].location
        named = replace(
            loc,
            kind=kind or loc.kind,
            variable=e.location.variable,
            resource=e.location.resource,
        )
        out[i] = out[i].with_(location=named)
    return out


def _line_texts(chunk: Chunk) -> dict[int, str]:
    """The chunk's lines by their line number in the file."""
    return {chunk.source_line(i): t for i, t in enumerate(chunk.text.split("\n"))}


def _allowed(text_of: dict[int, str], line: int) -> bool:
    """Inline allow comments of the file apply to its variables' findings too."""
    text = text_of.get(line)
    return text is not None and line_allows(text, text_of.get(line - 1))
