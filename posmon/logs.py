"""Logging set-up for the headless daemon: one line per event on stderr, as text or as JSON lines.

Every line carries its time in ISO-8601 UTC with a ``Z`` (``2026-12-06T19:40:40.123Z``): a log read beside
an exchange's UTC timestamps, or on a host in another time zone, needs no guessing. JSON lines carry ``ts``,
``level``, ``logger``, ``message`` and, where known, ``venue``, ``symbol``, ``side`` and ``tranche``: each
position actor binds its (venue, symbol, side) with ``bind`` (a context variable, which trio copies into every
task the actor spawns) and a line about one tranche passes ``extra={"tranche": id}``; ``ContextFields`` puts
them on the record.

Whatever the configured level, libraries that see request headers, URLs or bodies never log below WARNING:
at DEBUG, ``hpack`` logs every decoded HTTP/2 header (``authorization: Bearer <token>`` included), ``h2`` and
``httpcore`` log frames and response headers, ``httpx`` and ``hypercorn.access`` log request lines whose query
strings carry signatures and wallet addresses. Their loggers are set to WARNING, and the handler drops their
records below WARNING even if something later turns one of them (or a child) up. As a last line, a bearer token
that still reaches a message is masked.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
FIELDS = ("venue", "symbol", "side", "tranche")  # what a JSON line names when the code logging it knows it
# The (venue, symbol, side) of the position actor whose task is logging; empty outside one.
_BOUND: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "posmon_log_fields", default=MappingProxyType({})
)

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


def bind(**fields: str) -> None:
    """Name the position this task (and every task it spawns from now on) logs about, e.g. ``venue="aster"``."""
    _BOUND.set(MappingProxyType({**_BOUND.get(), **fields}))


def utc_iso(created: float) -> str:
    """``2026-12-06T19:40:40.123Z``: a record's time, ISO-8601 in UTC."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ContextFields(logging.Filter):
    """On the handler: copies the bound venue/symbol/side onto each record (an ``extra`` given by the caller wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _BOUND.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_iso(record.created)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line for log shippers: ts, level, logger, message, the known ``FIELDS``, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


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
    handler.setFormatter(JsonLinesFormatter() if json_lines else TextFormatter())
    handler.addFilter(QuietThirdParty())
    handler.addFilter(ContextFields())
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    quiet_third_party()


def quiet_third_party() -> None:
    """Set every quiet logger, and each child already created, to WARNING (children may carry their own level)."""
    for name in list(logging.root.manager.loggerDict):
        if is_quiet(name) and name not in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
