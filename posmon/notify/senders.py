"""What one HTTP request of each kind of channel looks like: Telegram's Bot API and a generic JSON webhook.

A sender only builds requests; the channel owns queueing, rate limiting, retries and timeouts, so both kinds
behave the same way under failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from posmon.actors.messages import Notice
from posmon.notify.format import batch_text, webhook_body
from posmon.notify.redact import header_secrets, origin, token_secrets, url_secrets


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    json: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class Sender(Protocol):
    name: str  # the channel's label in metrics and logs
    shown_url: str  # where it posts, safe to log: scheme://host:port, never a configured path or query
    secrets: tuple[str, ...]  # what of its URL must never reach a log line (the channel masks them)

    def request(self, batch: Sequence[Notice]) -> Request: ...


class TelegramSender:
    """``POST {api}/bot{token}/sendMessage`` with the chat id and the batch as plain text (no markup to escape)."""

    name = "telegram"

    def __init__(self, api_url: str, token: str, chat_id: str) -> None:
        self._url = f"{api_url}/bot{token}/sendMessage"
        self._chat_id = chat_id
        self.shown_url = f"{origin(api_url)}/bot***/sendMessage"  # a proxy's base path may carry a secret too
        self.secrets = token_secrets(token) + url_secrets(api_url)

    def request(self, batch: Sequence[Notice]) -> Request:
        return Request(
            self._url, {"chat_id": self._chat_id, "text": batch_text(batch), "disable_web_page_preview": True}
        )


class WebhookSender:
    """``POST {url}`` with ``{"text": ..., "notices": [notice, ...]}`` and the configured headers."""

    name = "webhook"

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self._url = url
        self._headers = dict(headers)
        self.shown_url = origin(url)
        self.secrets = url_secrets(url) + header_secrets(list(self._headers.values()))

    def request(self, batch: Sequence[Notice]) -> Request:
        return Request(self._url, webhook_body(batch), self._headers)
