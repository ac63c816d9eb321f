"""Logging setup (used only by the CLI and the daemon) with a redacting filter.

The filter is a second line of defence: code never logs raw values, but anything that looks
like a credential and slips into a log record is replaced by its redacted preview.
"""

from __future__ import annotations

import logging
import sys

from keyward.core.lazyre import lazy
from keyward.core.redaction import redact

# Token shapes that must never reach a log line even by mistake.
_SECRETISH = lazy(
    r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|github_pat_[A-Za-z0-9_]{60,}"
    r"|glpat-[A-Za-z0-9_\-.]{20,}"
    r"|xox[baprse]-[A-Za-z0-9-]{10,}"
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|sk-[A-Za-z0-9_\-]{20,}"
    r"|hv[sbr]\.[A-Za-z0-9_\-]{20,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
    r"|(?i:(?<=password=)|(?<=secret=)|(?<=token=))[^\s&\"']{6,}"
)


def scrub(text: str) -> str:
    return _SECRETISH.sub(lambda m: redact(m.group(0)), text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def configure(level: int = logging.WARNING, *, json_logs: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("keyward: %(levelname)s: %(message)s"))
    root = logging.getLogger("keyward")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Third-party clients log request bodies (which carry secret values) at DEBUG: never
    # let them below WARNING, even with --debug.
    for noisy in ("botocore", "boto3", "urllib3", "hvac", "s3transfer", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
