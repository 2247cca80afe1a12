"""Keeping secrets (the bot token in Telegram's URL path, webhook URLs and headers) out of every log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

MASK = "***"


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every occurrence of every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


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
