"""detect-secrets plugins as an extra detector set (``--detect-secrets-plugins``).

Teams migrating from detect-secrets keep their detectors, custom ones included: the plugins
named in a baseline's ``plugins_used`` (``{"name": "MyDetector", "path": "file://..."}`` for a
custom plugin file) run over the same chunks as keyward's rules. Without a baseline, every
built-in detect-secrets plugin runs with its defaults.

Their findings carry the plugin's secret type as a stable kebab-case rule id,
``detect-secrets-<type>`` (``"Secret Keyword"`` -> ``detect-secrets-secret-keyword``), and
flow through the same inline allows, baselines and reports. A secret keyward's own rules
already found in the same chunk is not reported twice.

detect_secrets is imported only when this runs (it costs ~110 ms and is off by default). Its
global settings singleton is never configured here: plugins are built directly from their
classes, and the heuristic filters are called directly, so no detect-secrets verification
(network) runs either.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyward.core.errors import ConfigError
from keyward.core.redaction import Fingerprinter, redact
from keyward.scan.engine import Engine, line_allows
from keyward.scan.model import Chunk, Finding, Severity

log = logging.getLogger(__name__)

RULE_PREFIX = "detect-secrets-"
SEVERITY = Severity.MEDIUM

# detect-secrets' default heuristic filters that need no configuration.
_FILTERS = (
    "is_sequential_string",
    "is_potential_uuid",
    "is_likely_id_string",
    "is_templated_secret",
    "is_prefixed_with_dollar_sign",
    "is_indirect_reference",
    "is_lock_file",
    "is_not_alphanumeric_string",
    "is_swagger_file",
)


def rule_id_for(secret_type: str) -> str:
    """``"AWS Access Key"`` -> ``detect-secrets-aws-access-key`` (stable, kebab-case)."""
    slug = re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")
    return RULE_PREFIX + (slug or "secret")


def plugins_used_from_baseline(path: Path) -> list[dict[str, Any]]:
    """The ``plugins_used`` list of a detect-secrets baseline file."""
    from keyward.core.userfiles import BASELINE_LIMIT, read_user_text

    text = read_user_text(path, "baseline", limit=BASELINE_LIMIT, error=ConfigError)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ConfigError(f"Cannot read plugins from the baseline {path} ({reason})") from None
    plugins = doc.get("plugins_used") if isinstance(doc, dict) else None
    if plugins is None:
        return []
    if not isinstance(plugins, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in plugins
    ):
        raise ConfigError(
            f"plugins_used in {path} is malformed",
            hint='Each entry needs a "name" (and "path": "file://..." for custom plugins)',
        )
    return plugins


@dataclass(frozen=True, slots=True)
class _Plugin:
    name: str
    secret_type: str
    rule_id: str
    instance: Any


class DetectSecretsBridge:
    """Runs detect-secrets plugins over a chunk and returns keyward findings."""

    def __init__(
        self,
        fingerprinter: Fingerprinter,
        plugins_used: Sequence[Mapping[str, Any]] | None = None,
        *,
        base_dir: Path | None = None,
    ) -> None:
        self._fp = fingerprinter
        self.plugins = _build_plugins(plugins_used, base_dir or Path.cwd())
        self._filters = _load_filters()

    @property
    def rule_ids(self) -> list[str]:
        return sorted({p.rule_id for p in self.plugins})

    def scan(self, chunk: Chunk) -> list[Finding]:
        from detect_secrets.util.code_snippet import get_code_snippet

        text = chunk.text
        if not text:
            return []
        filename = chunk.location.path or chunk.location.variable or "chunk"
        lines = text.splitlines()
        out: list[Finding] = []
        for idx, raw_line in enumerate(lines):
            line = raw_line.rstrip()
            if not line or self._filtered(line=line, filename=filename):
                continue
            context = get_code_snippet(lines=lines, line_number=idx + 1)
            for plugin in self.plugins:
                try:
                    found = _analyze(plugin.instance, filename, line, idx + 1, context)
                except Exception as exc:  # a plugin's bug ends neither the scan nor leaks
                    log.warning("detect-secrets plugin %s failed: %s", plugin.name, type(exc))
                    continue
                for secret in found or ():
                    value = secret.secret_value
                    if not value or self._filtered(
                        secret=value,
                        line=line,
                        filename=filename,
                        plugin=plugin.instance,
                        context=context,
                    ):
                        continue
                    out.append(self._finding(chunk, plugin, value, idx, line, lines))
        return out

    def _filtered(self, **kwargs: Any) -> bool:
        for required, params, fn in self._filters:
            if not required <= kwargs.keys():
                continue
            try:
                if fn(**{k: kwargs[k] for k in params if k in kwargs}):
                    return True
            except TypeError:
                continue
        return False

    def _finding(
        self, chunk: Chunk, plugin: _Plugin, value: str, idx: int, line: str, lines: list[str]
    ) -> Finding:
        col = line.find(value)
        line_no = chunk.source_line(idx)
        allowed = line_allows(line, lines[idx - 1] if idx > 0 else None)
        return Finding(
            rule_id=plugin.rule_id,
            severity=SEVERITY,
            location=chunk.location.at(line_no, col + 1 if col >= 0 else 0),
            preview=redact(value),
            fingerprint=self._fp.fingerprint(value),
            description=f"{plugin.secret_type} (detect-secrets {plugin.name})",
            secret=value,
            suppressed_by="inline" if allowed else None,
        )


def _build_plugins(
    plugins_used: Sequence[Mapping[str, Any]] | None, base_dir: Path
) -> list[_Plugin]:
    import detect_secrets.plugins
    from detect_secrets.core.plugins.util import _is_valid_plugin, get_plugins_from_file
    from detect_secrets.util.importlib import import_types_from_package

    builtin: dict[str, Any] = {
        cls.__name__: cls
        for cls in import_types_from_package(
            detect_secrets.plugins, filter=lambda x: not _is_valid_plugin(x)
        )
    }
    if plugins_used is None:
        plugins_used = [{"name": name} for name in sorted(builtin)]
    out: list[_Plugin] = []
    for entry in plugins_used:
        config = dict(entry)
        name = str(config.pop("name"))
        path = config.pop("path", None)
        classes: dict[str, Any] = dict(builtin)
        if path is not None:
            file = _plugin_file(str(path), base_dir)
            try:
                loaded: list[Any] = list(get_plugins_from_file(str(file)))
                classes = {c.__name__: c for c in loaded}
            except Exception as exc:
                raise ConfigError(
                    f"Cannot load the detect-secrets plugin file {file}: {type(exc).__name__}",
                    hint="Fix the file or the path in the baseline's plugins_used",
                ) from None
        cls = classes.get(name)
        if cls is None:
            raise ConfigError(
                f"No detect-secrets plugin named {name}"
                + (f" in {path}" if path else " in detect-secrets 1.5"),
                hint="Check the baseline's plugins_used",
            )
        try:
            instance = cls(**config)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"The detect-secrets plugin {name} rejected its options ({exc})",
                hint="Check its entry in the baseline's plugins_used",
            ) from None
        secret_type = str(cls.secret_type)
        out.append(_Plugin(name, secret_type, rule_id_for(secret_type), instance))
    return out


def _plugin_file(path: str, base_dir: Path) -> Path:
    if not path.startswith("file://"):
        raise ConfigError(
            f"Unsupported detect-secrets plugin path {path!r}",
            hint="Only file:// paths are supported, as in detect-secrets",
        )
    raw = Path(path[len("file://") :])
    for candidate in (raw, base_dir / raw):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"The detect-secrets plugin file {raw} does not exist",
        hint="Paths are tried as given, then relative to the baseline's directory",
    )


_Filter = tuple[frozenset[str], tuple[str, ...], Callable[..., Any]]


def _load_filters() -> list[_Filter]:
    """(required arguments, all arguments, function) for each heuristic filter."""
    import inspect

    from detect_secrets.filters import heuristic

    out: list[_Filter] = []
    for name in _FILTERS:
        fn = getattr(heuristic, name, None)
        if fn is None:
            continue
        sig = inspect.signature(fn).parameters
        params = tuple(sig)
        required = frozenset(p for p, v in sig.items() if v.default is inspect.Parameter.empty)
        out.append((required, params, fn))
    return out


def _analyze(plugin: Any, filename: str, line: str, line_number: int, context: Any) -> Any:
    """``analyze_line`` with the arguments detect-secrets passes (older custom plugins may
    not take ``context``)."""
    try:
        return plugin.analyze_line(
            filename=filename, line=line, line_number=line_number, context=context
        )
    except TypeError:
        return plugin.analyze_line(filename=filename, line=line, line_number=line_number)


class PluginEngine(Engine):
    """An :class:`Engine` that also runs a detect-secrets bridge over every chunk.

    It shares the wrapped engine's compiled state (no recompilation); with a fork-based
    process pool the workers inherit it.
    """

    def __init__(self, base: Engine, bridge: DetectSecretsBridge) -> None:
        self.__dict__.update(base.__dict__)
        self.bridge = bridge

    def scan(self, chunk: Chunk) -> list[Finding]:
        """Keyward's findings plus the plugins'. The same value found by both is reported
        once: under keyward's rule, unless that rule is a generic one (then the plugin's more
        specific type wins)."""
        own = super().scan(chunk)
        extra = self.bridge.scan(chunk)
        if not extra:
            return own
        for f in extra:
            same = [
                i
                for i, o in enumerate(own)
                if f.secret in (o.secret, o.companion)
                or (o.secret and o.secret in f.secret)
                or (o.secret and f.secret in o.secret)
            ]
            if not same:
                own.append(f)
            elif all(own[i].rule_id in self.generic_ids for i in same):
                own = [o for i, o in enumerate(own) if i not in same]
                own.append(f)
        return own


def with_detect_secrets(
    engine: Engine,
    fingerprinter: Fingerprinter,
    *,
    baseline: Path | None = None,
) -> PluginEngine:
    """Wrap ``engine`` so detect-secrets plugins (from ``baseline``'s plugins_used) run too."""
    try:
        import detect_secrets  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--detect-secrets-plugins needs detect-secrets, which is not installed",
            hint="Install it with 'pip install \"keyward[detect-secrets]\"' "
            "(or 'pip install detect-secrets')",
        ) from None
    plugins_used = plugins_used_from_baseline(baseline) if baseline is not None else None
    if plugins_used == []:
        plugins_used = None
    base_dir = baseline.parent if baseline is not None else Path.cwd()
    bridge = DetectSecretsBridge(fingerprinter, plugins_used, base_dir=base_dir)
    return PluginEngine(engine, bridge)
