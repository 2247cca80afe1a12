"""Logging set-up for the headless daemon: one line per event on stderr, as text or as JSON lines.

Whatever the configured level, libraries that see request headers, URLs or bodies never log below WARNING:
at DEBUG, ``hpack`` logs every decoded HTTP/2 header (``authorization: Bearer <token>`` included), ``h2`` and
``httpcore`` log frames and response headers, ``httpx`` and ``hypercorn.access`` log request lines whose query
strings carry signatures and wallet addresses. Their loggers are set to WARNING, and the handler drops their
records below WARNING even if something later turns one of them (or a child) up. As a last line, a bearer token
that still reaches a message is masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Loggers (and their children) that can see headers, URLs or bodies.
QUIET_LOGGERS = (
    "hpack",
    "h2",
    "hyperframe",
    "httpcore",
    "httpx",
    "hypercorn.access",
    "trio-websocket",
    "wsproto",
    "urllib3",
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;)\]}]+")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message, exception) for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def is_quiet(name: str) -> bool:
    """Whether ``name`` is one of ``QUIET_LOGGERS`` or a child of one (``hpack.hpack``, ``hpack.table``, ...)."""
    return any(name == q or name.startswith(q + ".") for q in QUIET_LOGGERS)


class QuietThirdParty(logging.Filter):
    """On the handler: drops quiet loggers' records below WARNING, and masks any ``Bearer <token>`` left."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and is_quiet(record.name):
            return False
        message = record.getMessage()
        if _BEARER.search(message):
            record.msg, record.args = _BEARER.sub(r"\1***", message), None
        return True


def configure(level: str, *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(QuietThirdParty())
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    quiet_third_party()


def quiet_third_party() -> None:
    """Set every quiet logger, and each child already created, to WARNING (children may carry their own level)."""
    for name in list(logging.root.manager.loggerDict):
        if is_quiet(name) and name not in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
