"""Keeping secrets (the bot token in Telegram's URL path, webhook URLs and headers) out of every log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import parse_qsl, quote, unquote, urlsplit

MASK = "***"
SNIPPET_CHARS = 120  # of a receiver's answer in a log line: enough to tell a 404 page from a JSON error
MIN_SEGMENT = 6  # path segments and query values this long are masked on their own (a receiver may echo one)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every occurrence of every secret replaced by ``***`` (longest first, so none half-survives)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def snippet(text: str, secrets: Sequence[str], limit: int = SNIPPET_CHARS) -> str:
    """A short, one-line, redacted excerpt of what a receiver said (redacted before it is cut, never after)."""
    text = redact(text[:4096], secrets)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def url_secrets(url: str) -> tuple[str, ...]:
    """Everything of a URL beyond ``scheme://host:port`` that a receiver might echo: the whole URL, its path and
    query, each long path segment and query value, credentials, each as written, decoded and encoded."""
    if not url:
        return ()
    parts = urlsplit(url)
    if parts.path in ("", "/") and not parts.query and not parts.fragment and not parts.username:
        return ()  # nothing beyond the origin: nothing secret
    found = [
        url,
        url.split("://", 1)[-1],
        parts.path,
        parts.query,
        parts.fragment,
        f"{parts.path}?{parts.query}" if parts.query else "",
        parts.netloc.rpartition("@")[0],
        parts.password if parts.password and len(parts.password) >= 4 else "",
    ]
    found += [seg for seg in parts.path.split("/") if len(seg) >= MIN_SEGMENT]
    found += [v for pair in parse_qsl(parts.query, keep_blank_values=True) for v in pair if len(v) >= MIN_SEGMENT]
    return _variants([f for f in found if f not in ("", "/")])


def header_secrets(values: Sequence[str]) -> tuple[str, ...]:
    """Header values (``Bearer abc...``) whole and their credential alone (a receiver may echo either)."""
    return _variants(
        [
            part
            for v in values
            if v
            for part in (v, v.split()[-1] if v.split() else "")
            if len(part) >= MIN_SEGMENT or part == v
        ]
    )


def token_secrets(token: str) -> tuple[str, ...]:
    """A bot token (``123456:ABC-DEF``) as written, percent-encoded, and its secret part after the colon."""
    return _variants([token, token.partition(":")[2]]) if token else ()


def _variants(values: Sequence[str]) -> tuple[str, ...]:
    out = {v for v in values if v}
    out |= {unquote(v) for v in out} | {quote(v, safe="") for v in out} | {quote(v) for v in out}
    return tuple(sorted((v for v in out if v), key=len, reverse=True))


def origin(url: str) -> str:
    """``scheme://host[:port]`` only: the path and query of a webhook URL often carry its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message contains a secret (e.g. httpx's ``HTTP Request: POST .../bot<token>/...``)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = redact(message, self.secrets), None
        return True


@contextmanager
def redacting(secrets: Sequence[str], loggers: Sequence[str] = ("httpx", "httpcore")) -> Iterator[None]:
    """While the block runs, records logged to ``loggers`` have the secrets masked (filters do not inherit)."""
    targets = [logging.getLogger(name) for name in loggers]
    filt = RedactingFilter(secrets)
    for logger in targets:
        logger.addFilter(filt)
    try:
        yield
    finally:
        for logger in targets:
            logger.removeFilter(filt)
