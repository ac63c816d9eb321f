"""Reading YAML (and JSON) as PyYAML nodes: values with their line numbers and tags.

Composing (not constructing) keeps every scalar's position and tag, and needs no constructor
for CloudFormation's short-form intrinsics: ``!Ref X`` is simply a scalar tagged ``!Ref``.
So one loader understands serverless.yml, SAM / CloudFormation YAML and JSON, docker-compose
files and Kubernetes manifests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MappingNode",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "compose_documents",
    "is_reference_text",
    "literal_scalar",
    "mapping_get",
    "walk_mappings",
]

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Short-form intrinsic functions whose value is never a literal.
REFERENCE_TAGS = frozenset(
    {"!Ref", "!GetAtt", "!ImportValue", "!FindInMap", "!GetAZs", "!Select", "!Split",
     "!Cidr", "!If", "!Condition", "!Transform", "!Base64", "!ToJsonString", "!Length",
     "!And", "!Or", "!Not", "!Equals"}
)  # fmt: skip
_REFERENCE_KEYS = frozenset(
    {"Ref", "Fn::GetAtt", "Fn::ImportValue", "Fn::FindInMap", "Fn::GetAZs", "Fn::Select",
     "Fn::Split", "Fn::Cidr", "Fn::If", "Fn::Base64", "Fn::Transform", "Fn::ToJsonString",
     "Fn::Length", "Condition"}
)  # fmt: skip
_INTERPOLATION = re.compile(r"\$\{[^${}]*\}|\{\{[^{}]*\}\}|#\{[^{}]*\}")
_REFERENCE_PREFIX = re.compile(
    r"(?i)\A(?:arn:aws[\w-]*:(?:secretsmanager|ssm|kms):|\{\{resolve:|resolve:)"
)
_PLAIN_TAGS = frozenset(
    {"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
     "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp",
     "tag:yaml.org,2002:binary", "!"}
)  # fmt: skip


def compose_documents(text: str) -> list[Node] | None:
    """Every document of a YAML (or JSON) text as nodes; None when it does not parse."""
    try:
        return [d for d in yaml.compose_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError:
        return None
    except (ValueError, RecursionError):  # pragma: no cover - pathological input
        return None


def mapping_get(node: object, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v  # type: ignore[no-any-return]
    return None


def walk_mappings(root: Node) -> Iterator[tuple[MappingNode, str | None]]:
    """Every mapping in the tree, with its ``name`` when it looks like a container spec."""
    stack: list[Node] = [root]
    seen = 0
    while stack and seen < 200_000:
        node = stack.pop()
        seen += 1
        if isinstance(node, MappingNode):
            name = None
            if mapping_get(node, "image") is not None:
                n = mapping_get(node, "name")
                name = n.value if isinstance(n, ScalarNode) else None
            yield node, name
            stack.extend(v for _, v in reversed(node.value))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))


def is_reference_text(value: str) -> bool:
    """True when a value only points elsewhere: ``${ssm:/x}``, ``{{resolve:...}}``, an ARN
    of a secret, ``${env:X}``, ``${self:custom.x}``... (nested interpolations included)."""
    v = value.strip()
    if not v:
        return True
    if _REFERENCE_PREFIX.match(v):
        return True
    if "${" not in v and "{{" not in v and "#{" not in v:
        return False
    for _ in range(8):  # innermost first: ${ssm:/app/${sls:stage}/key}
        stripped = _INTERPOLATION.sub("", v)
        if stripped == v:
            break
        v = stripped
    return not v.strip(" \t\n/:-_.,'\"")


def _position(node: ScalarNode) -> tuple[int, int, tuple[int, ...] | None]:
    mark = node.start_mark
    line = mark.line + 1
    col = mark.column + 1
    style = node.style
    if style in ('"', "'"):
        return line, col + 1, None
    if style in ("|", ">"):
        n = node.value.count("\n") + 1
        first = line + 1
        lines = tuple(first + i for i in range(n)) if style == "|" else (first,) * n
        return first, 1, lines
    return line, col, None


def literal_scalar(node: object) -> tuple[str, int, int, tuple[int, ...] | None] | None:
    """A literal value (value, line, column, per-line numbers) or None for a reference.

    Untagged scalars are literals; ``!Sub`` templates and ``!Join`` lists are literal text
    with their references replaced by ``${...}`` (so :func:`is_reference_text` can tell);
    ``!Ref``, ``!GetAtt`` and the other intrinsics are references. JSON's long forms
    (``{"Ref": ...}``, ``{"Fn::Sub": ...}``, ``{"Fn::Join": ...}``) are understood too.
    """
    if isinstance(node, ScalarNode):
        tag = node.tag or ""
        if tag in REFERENCE_TAGS:
            return None
        if tag in _PLAIN_TAGS or tag == "!Sub" or not tag.startswith("!"):
            line, col, lines = _position(node)
            return str(node.value), line, col, lines
        return None
    if isinstance(node, SequenceNode):
        if node.tag == "!Sub" and node.value:
            return literal_scalar(node.value[0])
        if node.tag == "!Join":
            return _join(node)
        return None
    if isinstance(node, MappingNode) and len(node.value) == 1:
        key, val = node.value[0]
        k = key.value if isinstance(key, ScalarNode) else None
        if k in _REFERENCE_KEYS:
            return None
        if k == "Fn::Sub":
            if isinstance(val, SequenceNode) and val.value:
                return literal_scalar(val.value[0])
            return literal_scalar(val)
        if k == "Fn::Join" and isinstance(val, SequenceNode):
            return _join(val)
    return None


def _join(node: SequenceNode) -> tuple[str, int, int, tuple[int, ...] | None] | None:
    """``!Join [delim, [parts...]]`` as text; non-literal parts become ``${ref}``."""
    if len(node.value) != 2 or not isinstance(node.value[1], SequenceNode):
        return None
    delim_node, parts = node.value
    delim = delim_node.value if isinstance(delim_node, ScalarNode) else ""
    texts: list[str] = []
    first: tuple[int, int] | None = None
    for part in parts.value:
        lit = literal_scalar(part)
        if lit is None:
            texts.append("${ref}")
            continue
        texts.append(lit[0])
        if first is None:
            first = (lit[1], lit[2])
    if first is None:
        return None
    return str(delim).join(texts), first[0], first[1], None
