"""A notification channel's log lines never carry its URL's secret (issue 11.6).

Chat webhooks (Slack, Discord, many proxies) put their secret in the URL's path or query, and a receiver that
fails often echoes the path (or the whole URL) in its error page. A channel's log lines show only
``scheme://host:port``, and of a receiver's answer only a short, one-line snippet in which every part of the
URL, the webhook headers and the Telegram bot token are masked, as written, percent-encoded or decoded.
"""

from __future__ import annotations

import logging
from functools import partial
from urllib.parse import quote

import httpx
import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from posmon.metrics import Metrics
from posmon.notify import NotifySettings
from posmon.notify.channel import retry_after_of
from posmon.notify.redact import SNIPPET_CHARS, snippet, url_secrets
from posmon.notify.senders import TelegramSender, WebhookSender
from tests.notify.test_notify_http import exit_notice, running, wait_for

PATH_SECRET = "B0456XYZsecretPathPart"
QUERY_SECRET = "qu3rySecretValue77"
HOOK_PATH = f"/services/T0123/{PATH_SECRET}"
TOKEN = "123456789:AAE-secret-bot-token_xyz"


def echo_app(hits: list[str]) -> Starlette:
    """Answers every POST 500 with a long error page that echoes the path, the query and the decoded URL."""

    async def handle(request: Request) -> PlainTextResponse:
        hits.append(request.url.path)
        page = (
            f"no route {quote(request.url.path, safe='')}\n<h1>500</h1>\n{request.url.path}?{request.url.query}\n"
            f"raw: {request.scope['raw_path']!r} url={request.url}\n" + "x" * 3000 + f"\n{request.url.path}"
        )
        return PlainTextResponse(page, status_code=500)

    return Starlette(routes=[Route("/{path:path}", handle, methods=["POST"])])


async def serve_echo(hits: list[str], task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, echo_app(hits), config, mode="asgi"))
        task_status.started(binds[0])


def channel_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("posmon.notify")]


async def test_a_webhook_receiver_echoing_its_secret_path_in_a_500_leaks_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    hits: list[str] = []
    metrics = Metrics(strict=True)
    caplog.set_level(logging.INFO, logger="posmon")
    async with trio.open_nursery() as nursery:
        base = await nursery.start(serve_echo, hits)
        url = f"{base}{HOOK_PATH}?sig={QUERY_SECRET}&v=1"
        settings = NotifySettings.from_config({"webhook_url": url, "max_retries": 1}, {})
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice())
            await wait_for(lambda: metrics.get("notify_dropped", reason="failed") == 1)
        nursery.cancel_scope.cancel()
    assert hits == [HOOK_PATH, HOOK_PATH]  # the receiver saw (and echoed) the secret path twice
    lines = channel_lines(caplog)
    failures = [line for line in lines if "HTTP 500" in line]
    assert len(failures) == 2  # the retry and the give-up say what happened...
    assert all(base in line for line in lines if "retry" in line)  # ...and where: scheme://host:port
    text = "\n".join(lines) + caplog.text
    for secret in (PATH_SECRET, QUERY_SECRET, HOOK_PATH, quote(HOOK_PATH, safe=""), "T0123/"):
        assert secret not in text
    assert all(len(line) < 400 and "\n" not in line for line in lines)  # a snippet, not the page


async def test_a_telegram_receiver_echoing_the_token_encoded_leaks_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    hits: list[str] = []
    metrics = Metrics(strict=True)
    caplog.set_level(logging.INFO, logger="posmon")
    async with trio.open_nursery() as nursery:
        base = await nursery.start(serve_echo, hits)
        settings = NotifySettings.from_config(
            {"telegram_bot_token": TOKEN, "telegram_chat_id": "-100", "telegram_api_url": base, "max_retries": 0}, {}
        )
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice())
            await wait_for(lambda: metrics.get("notify_dropped", reason="failed") == 1)
        nursery.cancel_scope.cancel()
    assert hits == [f"/bot{TOKEN}/sendMessage"]
    text = "\n".join(channel_lines(caplog))
    assert "HTTP 500" in text
    for secret in (TOKEN, quote(TOKEN, safe=""), TOKEN.split(":")[1]):
        assert secret not in text


def test_senders_show_only_the_origin_of_a_configured_url() -> None:
    hook = WebhookSender(
        f"https://hooks.example:8443{HOOK_PATH}?sig={QUERY_SECRET}", {"Authorization": "Bearer abcdef99"}
    )
    assert hook.shown_url == "https://hooks.example:8443"
    tg = TelegramSender(f"https://proxy.example/{PATH_SECRET}", TOKEN, "-100")
    assert tg.shown_url == "https://proxy.example/bot***/sendMessage"
    assert PATH_SECRET in tg.secrets and "abcdef99" in hook.secrets and QUERY_SECRET in hook.secrets


def test_a_snippet_is_redacted_before_it_is_cut_and_stays_on_one_line() -> None:
    secrets = url_secrets(f"http://h{HOOK_PATH}")
    body = "e" * (SNIPPET_CHARS - 10) + HOOK_PATH + "\n\r\x1b[31mmore"
    shown = snippet(body, secrets)
    assert len(shown) <= SNIPPET_CHARS and "\n" not in shown and "\x1b" not in shown
    assert HOOK_PATH[:8] not in shown  # not even the part of the secret that would fit before the cut
    assert snippet(f"no route for {quote(HOOK_PATH, safe='')}", secrets) == "no route for ***"
    assert snippet(f"segment {PATH_SECRET} only", secrets) == "segment *** only"


@pytest.mark.parametrize("url", ["https://hooks.example", "https://hooks.example/", "http://127.0.0.1:9000"])
def test_an_url_without_path_or_query_has_nothing_to_mask(url: str) -> None:
    assert url_secrets(url) == ()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"parameters": {"retry_after": 1' + b"0" * 400 + b"}}",
        b'{"parameters": {"retry_after": [1]}}',
        b'{"parameters": 5}',
        b"\xff\xfe",
    ],
)
def test_a_hostile_error_body_gives_no_retry_hint_and_no_crash(body: bytes) -> None:
    assert retry_after_of(httpx.Response(429, content=body)) == 0.0


def test_telegrams_retry_hint_is_still_read() -> None:
    assert retry_after_of(httpx.Response(429, json={"ok": False, "parameters": {"retry_after": 7}})) == 7.0
