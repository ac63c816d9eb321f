"""Lambda environment variables declared in infrastructure-as-code.

* serverless.yml: ``provider.environment`` and ``functions.<name>.environment``;
* AWS SAM and CloudFormation templates, YAML (with ``!Ref``, ``!Sub``, ``!GetAtt``...) and JSON:
  ``AWS::Lambda::Function`` and ``AWS::Serverless::Function`` ``Environment.Variables``, and
  SAM ``Globals.Function.Environment.Variables``;
* Terraform: ``resource "aws_lambda_function" "x" { environment { variables = { ... } } }``.

Each literal variable becomes a :class:`KeyValue` naming its function / resource; references
(``${ssm:...}``, ``${env:...}``, ``!Ref``, ``{{resolve:secretsmanager:...}}``, ``var.x``,
``data.aws_secretsmanager_secret_version...``) are never findings.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from keyward.core.lazyre import lazy
from keyward.scan.sources.env import KeyValue

LAMBDA_TYPES = frozenset({"AWS::Lambda::Function", "AWS::Serverless::Function"})
_CFN_MARKERS = ("AWS::Lambda::Function", "AWS::Serverless::Function", "AWS::Serverless-2016")
_CFN_TYPE = lazy(
    r"""["']?(?:Type|Transform)["']?[ \t]*:[ \t]*["']?AWS::(?:Lambda::Function|Serverless)\b"""
)


@dataclass(slots=True)
class Extracted:
    """What a template declares: literal variables and the lines holding references."""

    variables: list[KeyValue]
    reference_lines: set[int]


def iac_kind(name: str, text: str) -> str | None:
    """``serverless``, ``cloudformation`` or ``terraform`` for a file name and its text."""
    lower = name.lower()
    if lower in ("serverless.yml", "serverless.yaml"):
        return "serverless"
    if lower.endswith(".tf"):
        return "terraform" if "aws_lambda_function" in text else None
    if (
        lower.endswith((".yml", ".yaml", ".json", ".template", ".cfn"))
        and any(m in text for m in _CFN_MARKERS)  # cheap first look
        and _CFN_TYPE.search(text)  # a resource of that type, not a mention in prose
    ):
        return "cloudformation"
    return None


def extract(kind: str, text: str) -> Extracted | None:
    """Variables of a template of ``kind``; None when it cannot be parsed."""
    if kind == "terraform":
        return extract_terraform(text)
    from keyward.scan.sources.yamlnodes import compose_documents

    docs = compose_documents(text)
    if docs is None:
        return None
    out = Extracted([], set())
    for doc in docs:
        if kind == "serverless":
            _serverless(doc, out)
        else:
            _cloudformation(doc, out)
    return out


def _variables(mapping: object, resource: str, out: Extracted) -> None:
    from keyward.scan.sources.yamlnodes import (
        MappingNode,
        ScalarNode,
        is_reference_text,
        literal_scalar,
    )

    if not isinstance(mapping, MappingNode):
        return
    for key, node in mapping.value:
        if not isinstance(key, ScalarNode):
            continue
        lit = literal_scalar(node)
        if lit is None:
            out.reference_lines.add(node.start_mark.line + 1)
            continue
        value, line, col, lines = lit
        if not value.strip():
            continue
        if is_reference_text(value):
            out.reference_lines.add(line)
            continue
        out.variables.append(KeyValue(str(key.value), value, line, col, resource, lines=lines))


def _serverless(doc: object, out: Extracted) -> None:
    from keyward.scan.sources.yamlnodes import MappingNode, ScalarNode, mapping_get

    _variables(mapping_get(mapping_get(doc, "provider"), "environment"), "provider", out)
    functions = mapping_get(doc, "functions")
    if isinstance(functions, MappingNode):
        for key, fn in functions.value:
            if isinstance(key, ScalarNode):
                _variables(mapping_get(fn, "environment"), str(key.value), out)
    # CloudFormation resources may be embedded under `resources:`
    resources = mapping_get(doc, "resources")
    if resources is not None:
        _cloudformation(resources, out)


def _cloudformation(doc: object, out: Extracted) -> None:
    from keyward.scan.sources.yamlnodes import MappingNode, ScalarNode, mapping_get

    glob = mapping_get(mapping_get(doc, "Globals"), "Function")
    _variables(mapping_get(mapping_get(glob, "Environment"), "Variables"), "Globals.Function", out)
    resources = mapping_get(doc, "Resources")
    if not isinstance(resources, MappingNode):
        return
    for key, res in resources.value:
        kind = mapping_get(res, "Type")
        if not isinstance(key, ScalarNode) or not isinstance(kind, ScalarNode):
            continue
        if kind.value not in LAMBDA_TYPES:
            continue
        env = mapping_get(mapping_get(res, "Properties"), "Environment")
        _variables(mapping_get(env, "Variables"), str(key.value), out)


# ------------------------------------------------------------------------ Terraform
_TF_LAMBDA = lazy(r'resource\s+"aws_lambda_function"\s+"([^"]+)"\s*\{')
_TF_ENV = lazy(r"\benvironment\s*\{")
_TF_VARS = lazy(r"\bvariables\s*=\s*")
# a quoted key never spans lines (an unclosed quote must not make each line rescan the rest)
_TF_KEY = lazy(r'\s*(?:"((?:[^"\\\n]|\\.)*)"|([A-Za-z_][A-Za-z0-9_\-]*))\s*[=:]\s*')


class _Text:
    """Offsets to (line, column) in one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        pos = text.find("\n")
        while pos >= 0:
            self.starts.append(pos + 1)
            pos = text.find("\n", pos + 1)

    def position(self, offset: int) -> tuple[int, int]:
        idx = bisect_right(self.starts, offset) - 1
        return idx + 1, offset - self.starts[idx] + 1


def _skip_string(text: str, i: int) -> int:
    """Index just after the HCL string starting at ``text[i] == '"'`` (nested ``${}`` and
    strings inside them too, kept on a stack: no recursion however deep the nesting)."""
    n = len(text)
    i += 1
    # one entry per open string: how many ${ } are open inside it
    stack = [0]
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        depth = stack[-1]
        if c == '"':
            if depth == 0:
                stack.pop()
                if not stack:
                    return i + 1
            else:
                stack.append(0)  # a string inside an interpolation
            i += 1
            continue
        if c in "$%" and text.startswith("{", i + 1):
            stack[-1] += 1
            i += 2
            continue
        if depth and c == "}":
            stack[-1] -= 1
        elif c == "\n" and depth == 0 and len(stack) == 1:
            return i
        i += 1
    return n


def _block_end(text: str, i: int) -> int:
    """Index just after the ``}`` matching the ``{`` at ``text[i]`` (strings, comments,
    heredocs aware)."""
    n = len(text)
    depth = 0
    while i < n:
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c == "#" or text.startswith("//", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if text.startswith("<<", i):
            m = re.match(r"<<-?\s*([A-Za-z_][A-Za-z0-9_]*)\n", text[i : i + 80])
            if m:
                close = re.compile(rf"^\s*{m.group(1)}\s*$", re.M).search(text, i + m.end())
                i = n if close is None else close.end()
                continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _tf_unescape(body: str) -> str:
    return body.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")


def extract_terraform(text: str) -> Extracted:
    """Literal ``environment { variables = { ... } }`` entries of ``aws_lambda_function``s."""
    out = Extracted([], set())
    pos = _Text(text)
    # Each search starts after the previous block: blocks do not nest, and an unclosed one
    # (which runs to the end of the file) must not make every later match rescan the rest.
    m = _TF_LAMBDA.search(text)
    while m is not None:
        name = f"aws_lambda_function.{m.group(1)}"
        block_start = m.end() - 1
        block_end = _block_end(text, block_start)
        env = _TF_ENV.search(text, block_start + 1, block_end)
        while env is not None:
            env_end = _block_end(text, env.end() - 1)
            var = _TF_VARS.search(text, env.end(), env_end)
            env = _TF_ENV.search(text, max(env_end, env.end()), block_end)
            if var is None:
                continue
            start = var.end()
            if text.startswith("{", start):
                _tf_map(text, start, _block_end(text, start), name, pos, out)
            else:  # merge({...}, var.extra), a local, a variable: look at literal maps inside
                expr_end = _expression_end(text, start, env_end)
                brace = text.find("{", start, expr_end)
                if brace < 0:
                    out.reference_lines.add(pos.position(start)[0])
                while brace >= 0:
                    end = _block_end(text, brace)
                    _tf_map(text, brace, end, name, pos, out)
                    brace = text.find("{", end, expr_end)
        m = _TF_LAMBDA.search(text, max(block_end, m.end()))
    return out


def _expression_end(text: str, i: int, limit: int) -> int:
    """End of an HCL expression starting at ``i`` (end of line outside brackets)."""
    depth = 0
    while i < limit:
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            if depth == 0:
                return i
            depth -= 1
        elif c in "\n," and depth == 0:
            return i
        i += 1
    return limit


def _tf_map(text: str, start: int, end: int, resource: str, pos: _Text, out: Extracted) -> None:
    """Entries of the map literal ``text[start:end]`` (``{ KEY = value, ... }``)."""
    from keyward.scan.sources.yamlnodes import is_reference_text

    i = start + 1
    limit = end - 1
    while i < limit:
        c = text[i]
        if c in " \t\r\n,":
            i += 1
            continue
        if c == "#" or text.startswith("//", i):
            nl = text.find("\n", i)
            i = limit if nl < 0 else nl
            continue
        if text.startswith("/*", i):
            e = text.find("*/", i + 2)
            i = limit if e < 0 else e + 2
            continue
        m = _TF_KEY.match(text, i, limit)
        if m is None:  # not an entry: skip to the end of the line
            i = _expression_end(text, i, limit) + 1
            continue
        key = m.group(1) if m.group(1) is not None else m.group(2)
        v = m.end()
        if text.startswith('"', v):
            v_end = _skip_string(text, v)
            body = (
                text[v + 1 : v_end - 1] if text[v_end - 1 : v_end] == '"' else text[v + 1 : v_end]
            )
            value = _tf_unescape(body)
            line, col = pos.position(v + 1)
            if is_reference_text(value):
                out.reference_lines.add(line)
            elif value.strip():
                out.variables.append(KeyValue(key, value, line, col, resource))
            i = v_end
            continue
        heredoc = re.match(r"<<-?\s*([A-Za-z_][A-Za-z0-9_]*)\n", text[v : v + 80])
        if heredoc:
            body_start = v + heredoc.end()
            close = re.compile(rf"^\s*{heredoc.group(1)}\s*$", re.M).search(text, body_start)
            body_end = close.start() if close else limit
            value = text[body_start:body_end].rstrip("\n")
            line, _ = pos.position(body_start)
            if value.strip() and not is_reference_text(value):
                n = value.count("\n") + 1
                lines = tuple(line + k for k in range(n))
                out.variables.append(KeyValue(key, value, line, 1, resource, lines=lines))
            i = close.end() if close else limit
            continue
        # an expression: var.x, local.x, data.aws_secretsmanager_secret_version.x.secret_string
        out.reference_lines.add(pos.position(v)[0])
        i = _expression_end(text, v, limit) + 1
