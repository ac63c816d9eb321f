"""Re-read a finding's value from where it was found, never from the inventory (which has none).

The finding's own rule runs again over the live location (a Lambda function's environment
variable, the file, the ``.env`` entry, the process environment), through the same engine
the scan used, and the keyed fingerprint of what it finds must be the finding's. A key pair's
other half (``companion_fingerprint``) is looked for the same way: in the function's other
variables, or paired in the file as the scan paired it. Anything else is
:class:`LocationChanged` (exit 3): one sentence, nothing written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keyward.core.errors import BackendError
from keyward.core.redaction import Fingerprinter
from keyward.inventory.adoption import AdoptableFinding
from keyward.scan.engine import Engine
from keyward.scan.model import Chunk, Finding, Location, SourceKind
from keyward.scan.rules import RuleSet


class LocationChanged(BackendError):
    """The finding's location no longer holds its value (changed, removed, deleted): exit 3,
    nothing adopted."""


@dataclass(frozen=True, slots=True)
class Reread:
    """The value found again (in memory only), and where."""

    secret: str = field(repr=False)
    companion: str | None = field(repr=False)
    context: str = field(repr=False)  # the value's line (connection URLs are parsed from it)
    where: str  # path:line, ARN $VAR
    line: int = 0
    variable: str | None = None  # the variable holding it, when it is a variable's value
    # the variables next to it (raw values: memory only), e.g. DB_USER beside DB_PASSWORD
    siblings: Mapping[str, str] = field(default_factory=dict, repr=False)


def engine_for(rules: RuleSet, rule_id: str, fingerprinter: Fingerprinter) -> Engine:
    """An engine running only ``rule_id`` and its pair partner (pure Python: no cache)."""
    by_id = rules.by_id()
    rule = by_id.get(rule_id)
    if rule is None:
        raise LocationChanged(
            f"The rule {rule_id} of the finding is not loaded, so its value cannot be read again",
            hint="Load the rule file the scan used (--rules or rule_files in the config)",
        )
    wanted = {rule_id}
    if rule.pair is not None:
        wanted.add(rule.pair.rule)
    wanted.update(r.id for r in rules.rules if r.pair is not None and r.pair.rule == rule_id)
    chosen = RuleSet(tuple(r for r in rules.rules if r.id in wanted))
    return Engine(chosen, fingerprinter, backend="re")


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _changed(f: AdoptableFinding, what: str) -> LocationChanged:
    return LocationChanged(
        f"The value of finding {f.id} ({f.preview}) is no longer at {f.where()}: {what}",
        hint="Nothing was adopted; scan again (--record) and adopt the new finding",
    )


def _same_fp(fp: Fingerprinter, value: str | None, expected: str | None) -> bool:
    return value is not None and expected is not None and fp.fingerprint(value) == expected


def from_environment(
    f: AdoptableFinding,
    env: Mapping[str, str],
    engine: Engine,
    fp: Fingerprinter,
    *,
    kind: SourceKind = SourceKind.LAMBDA,
) -> Reread:
    """The finding's value in ``env`` (a function's variables, or a process environment):
    in the variable the scan found it in, its pair's other half in any variable."""
    var = f.variable or ""
    if var not in env:
        raise _changed(f, f"the variable {var} is gone")
    loc = Location(kind=kind, resource=f.resource, region=f.region, account=f.account)
    found: dict[str, list[Finding]] = {}
    for name, value in sorted(env.items()):
        if isinstance(value, str) and value:
            found[name] = engine.scan(Chunk(f"{name}={value}", loc))
    mine = [x for x in found.get(var, []) if x.rule_id == f.rule_id]
    hit = next((x for x in mine if x.fingerprint == f.fingerprint), None)
    if hit is None:
        raise _changed(f, f"{var} holds another value now")
    companion: str | None = None
    if f.companion_fingerprint:
        for name, findings in found.items():
            for x in findings:
                if _same_fp(fp, x.secret, f.companion_fingerprint):
                    companion = x.secret
                    break
            if companion is None and _same_fp(fp, env.get(name), f.companion_fingerprint):
                companion = env[name]
            if companion is not None:
                break
        if companion is None:
            raise _changed(f, "the other half of its key pair is no longer in any variable")
    return Reread(
        hit.secret,
        companion,
        f"{var}={env[var]}",
        f.where(),
        variable=var,
        siblings={k: v for k, v in env.items() if isinstance(v, str)},
    )


def candidate_paths(f: AdoptableFinding, cwd: Path | None = None) -> list[Path]:
    """Where the finding's file may be: under each root its scan target names
    (``files:/abs,/abs2``), the root itself when a single file was scanned, else the path as
    recorded (absolute, or relative to the current directory)."""
    path = f.path or ""
    out: list[Path] = []
    if f.target.startswith("files:"):
        for root in f.target[len("files:") :].split(","):
            r = Path(root)
            out.append(r / path)
            if r.name == path:
                out.append(r)
    p = Path(path)
    out.append(p if p.is_absolute() else (cwd or Path.cwd()) / p)
    return list(dict.fromkeys(out))


def from_file(
    f: AdoptableFinding,
    engine: Engine,
    fp: Fingerprinter,
    *,
    paths: Sequence[Path] | None = None,
) -> Reread:
    """The finding's value in its file now (the whole file scanned, as the scan did, so a
    value that moved to another line is still found; that line is reported)."""
    from keyward.scan.sources.files import decode

    for path in paths if paths is not None else candidate_paths(f):
        if path.is_file():
            break
    else:
        raise _changed(f, "the file is gone (run keyward adopt from the directory scanned)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _changed(f, f"the file cannot be read ({exc.strerror})") from None
    decoded = decode(data)
    if decoded is None:
        raise _changed(f, "the file is binary now")
    return from_text(f, decoded[0], engine, fp, str(path))


def from_commit(f: AdoptableFinding, repo: Path, engine: Engine, fp: Fingerprinter) -> Reread:
    """A git finding: the file as the commit that introduced it has it (``git show``)."""
    import subprocess

    from keyward.scan.sources.files import decode

    if not f.commit or not f.path:
        raise _changed(f, "the finding names no commit")
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "show", f"{f.commit}:{f.path}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _changed(f, f"git cannot read the repository ({type(exc).__name__})") from None
    if proc.returncode != 0:
        raise _changed(f, f"the repository {repo} no longer has commit {f.commit[:12]}")
    decoded = decode(proc.stdout)
    if decoded is None:
        raise _changed(f, "the file is binary")
    return from_text(f, decoded[0], engine, fp, f"{f.path}:{f.line} @{f.commit[:12]}")


def from_text(
    f: AdoptableFinding, text: str, engine: Engine, fp: Fingerprinter, shown: str
) -> Reread:
    """The finding's value in ``text``, a whole file (named ``shown`` in messages)."""
    from keyward.scan.runner import match_chunk

    chunk = Chunk(text, Location(kind=SourceKind.FILE, path=f.path))
    found = match_chunk(engine, chunk)
    mine = [x for x in found if x.rule_id == f.rule_id and x.fingerprint == f.fingerprint]
    if not mine:
        raise _changed(f, "the file no longer holds it")
    hit = min(mine, key=lambda x: abs(x.location.line - f.line))
    companion = hit.companion
    if f.companion_fingerprint and not _same_fp(fp, companion, f.companion_fingerprint):
        other = next(
            (x.secret for x in found if _same_fp(fp, x.secret, f.companion_fingerprint)), None
        )
        if other is None:
            raise _changed(f, "the other half of its key pair is no longer in the file")
        companion = other
    where = shown if "@" in shown else f"{shown}:{hit.location.line}"
    variable, siblings = _declared(f.path or "", text, hit)
    return Reread(
        hit.secret,
        companion if f.companion_fingerprint else None,
        _line(text, hit.location.line),
        where,
        line=hit.location.line,
        variable=variable or hit.location.variable,
        siblings=siblings,
    )


def _declared(path: str, text: str, hit: Finding) -> tuple[str | None, dict[str, str]]:
    """The variables a ``.env``, compose or Kubernetes file declares, and which of them holds
    the value found (none when the file declares no variables)."""
    from keyward.scan.variables import classify, extract

    kind = classify(path, text)
    if kind not in ("dotenv", "compose", "kubernetes"):
        return None, {}
    try:
        got = extract(kind, text)
    except Exception:  # a reader's bug must not stop an adoption that needs no siblings
        return None, {}
    if got is None:
        return None, {}
    variables = got[0]
    holder = next(
        (kv.name for kv in variables if kv.value == hit.secret and kv.line == hit.location.line),
        None,
    ) or next((kv.name for kv in variables if kv.value == hit.secret), None)
    return holder, {kv.name: kv.value for kv in variables}


def from_process(f: AdoptableFinding, engine: Engine, fp: Fingerprinter) -> Reread:
    """A ``scan --env`` finding: the variable in this process's environment."""
    return from_environment(f, dict(os.environ), engine, fp, kind=SourceKind.ENV)
