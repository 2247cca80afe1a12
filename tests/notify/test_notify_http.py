"""Notifications over real loopback HTTP: a fake Telegram Bot API and a fake JSON webhook (hypercorn + starlette
on trio), a receiver that fails before it succeeds, one that never answers and one that refuses connections.
Time is trio's MockClock, so backoff and rate limits are asserted exactly and nothing really sleeps.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from posmon.actors.messages import Notice
from posmon.actors.notifier import Notifier
from posmon.actors.supervisor import RestartBudgetExhausted, RestartPolicy, supervise
from posmon.metrics import Metrics
from posmon.notify import NotifyService, NotifySettings

TOKEN = "123456789:AAE-secret-bot-token_xyz"
CHAT = "-1001234567"


@dataclass
class Hit:
    at: float
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then 200) and records what it got and when."""

    script: list[int] = field(default_factory=list)
    retry_after: str | None = None
    echo_path: bool = False  # put the request path (with the bot token) in error bodies, as some proxies do
    hits: list[Hit] = field(default_factory=list)

    def app(self) -> Starlette:
        async def handle(request: Request) -> JSONResponse:
            self.hits.append(Hit(trio.current_time(), request.url.path, await request.json(), dict(request.headers)))
            status = self.script.pop(0) if self.script else 200
            headers = {"Retry-After": self.retry_after} if status == 429 and self.retry_after else {}
            body: dict[str, Any] = {"ok": status == 200, "result": {"message_id": len(self.hits)}}
            if status != 200:
                body = {
                    "ok": False,
                    "error_code": status,
                    "description": f"failed at {request.url.path}" if self.echo_path else "failed",
                }
            return JSONResponse(body, status_code=status, headers=headers)

        return Starlette(routes=[Route("/{path:path}", handle, methods=["POST"])])


async def serve_receiver(rx: Receiver, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, rx.app(), config, mode="asgi"))
        task_status.started(binds[0])


async def serve_silence(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Accepts connections and never answers."""

    async def hold(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, hold, listeners)
        task_status.started(f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}")


def refused_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def exit_notice(i: int = 1, pnl: str = "12.34") -> Notice:
    return Notice(
        "exit",
        "aster",
        "BTCUSDT",
        "LONG",
        f"tranche {i} closed by TP, realized PnL {pnl}",
        False,
        {"tranche_id": f"t{i}", "reason": "TP", "pnl": pnl},
    )


@asynccontextmanager
async def running(
    settings: NotifySettings, metrics: Metrics, **notifier: Any
) -> AsyncIterator[tuple[NotifyService, trio.MemorySendChannel[Notice]]]:
    """The notify service and a Notifier feeding it, as the daemon runs them."""
    service = NotifyService(settings, metrics)
    inbox_send, inbox_recv = trio.open_memory_channel[Notice](10_000)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await nursery.start(Notifier(inbox_recv, sinks=[service], metrics=metrics, **notifier).run)
        yield service, inbox_send
        nursery.cancel_scope.cancel()


def settings_for(**values: Any) -> NotifySettings:
    return NotifySettings.from_config(values, {})


async def wait_for(cond: Callable[[], bool], limit: float = 600.0) -> None:
    """Polls a receiver's state in mock time (nothing really sleeps)."""
    with trio.fail_after(limit):
        while not cond():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_exit_notice_with_pnl_reaches_telegram_and_the_webhook(autojump_clock: trio.testing.MockClock) -> None:
    tg, hook = Receiver(), Receiver()
    metrics = Metrics(strict=True)
    async with trio.open_nursery() as nursery:
        tg_url = await nursery.start(serve_receiver, tg)
        hook_url = await nursery.start(serve_receiver, hook)
        settings = settings_for(
            telegram_bot_token=TOKEN,
            telegram_chat_id=CHAT,
            telegram_api_url=tg_url,
            webhook_url=hook_url + "/hooks/posmon",
            webhook_headers={"Authorization": "Bearer h"},
        )
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice(pnl="12.34"))
            await wait_for(lambda: len(tg.hits) == 1 and len(hook.hits) == 1)
        nursery.cancel_scope.cancel()
    assert tg.hits[0].path == f"/bot{TOKEN}/sendMessage"
    assert tg.hits[0].body["chat_id"] == CHAT
    assert "realized PnL 12.34" in tg.hits[0].body["text"] and "BTCUSDT" in tg.hits[0].body["text"]
    assert hook.hits[0].path == "/hooks/posmon"
    assert hook.hits[0].headers["authorization"] == "Bearer h"
    [sent] = hook.hits[0].body["notices"]
    assert sent["kind"] == "exit" and sent["data"]["pnl"] == "12.34" and sent["symbol"] == "BTCUSDT"
    assert metrics.get("notify_sent", channel="telegram") == 1 and metrics.get("notify_sent", channel="webhook") == 1
    assert metrics.get("notices", kind="exit") == 1


async def test_only_the_configured_kinds_are_sent(autojump_clock: trio.testing.MockClock) -> None:
    hook = Receiver()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, hook)
        async with running(settings_for(webhook_url=url), Metrics(strict=True)) as (_, notices):
            notices.send_nowait(Notice("tranche_opened", "aster", "BTCUSDT", "LONG", "tranche 1 opened"))
            notices.send_nowait(Notice("protection_failed", "aster", "BTCUSDT", "LONG", "SL rejected", True))
            await wait_for(lambda: len(hook.hits) == 1)
            await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert [n["kind"] for h in hook.hits for n in h.body["notices"]] == ["protection_failed"]
    assert hook.hits[0].body["notices"][0]["needs_human"] is True


async def test_a_receiver_that_fails_twice_gets_the_notice_after_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hook = Receiver(script=[503, 500])
    metrics = Metrics(strict=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, hook)
        settings = settings_for(webhook_url=url, retry_backoff_seconds=2, min_interval_seconds=0)
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice(pnl="-3.5"))
            await wait_for(lambda: len(hook.hits) == 3)
        nursery.cancel_scope.cancel()
    gaps = [round(b.at - a.at, 3) for a, b in zip(hook.hits, hook.hits[1:], strict=False)]
    assert gaps == [2.0, 4.0]  # exponential backoff: 2 s, then 4 s
    assert all(h.body == hook.hits[0].body for h in hook.hits)
    assert hook.hits[-1].body["notices"][0]["data"]["pnl"] == "-3.5"
    assert metrics.get("notify_retries", channel="webhook") == 2
    assert metrics.get("notify_sent", channel="webhook") == 1
    assert metrics.get("notify_dropped") == 0


async def test_too_many_requests_waits_as_long_as_retry_after_says(autojump_clock: trio.testing.MockClock) -> None:
    tg = Receiver(script=[429], retry_after="17")
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, tg)
        settings = settings_for(telegram_bot_token=TOKEN, telegram_chat_id=CHAT, telegram_api_url=url)
        async with running(settings, Metrics(strict=True)) as (_, notices):
            notices.send_nowait(exit_notice())
            await wait_for(lambda: len(tg.hits) == 2)
        nursery.cancel_scope.cancel()
    assert tg.hits[1].at - tg.hits[0].at == pytest.approx(17.0)


async def test_a_permanent_refusal_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    tg = Receiver(script=[401])
    metrics = Metrics(strict=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, tg)
        settings = settings_for(telegram_bot_token=TOKEN, telegram_chat_id=CHAT, telegram_api_url=url)
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice())
            await wait_for(lambda: metrics.get("notify_dropped", channel="telegram", reason="failed") == 1)
            await trio.sleep(120)
        nursery.cancel_scope.cancel()
    assert len(tg.hits) == 1 and metrics.get("notify_retries") == 0


async def test_gives_up_after_max_retries_and_goes_on_with_the_next_notice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hook = Receiver(script=[500, 500, 500])
    metrics = Metrics(strict=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, hook)
        settings = settings_for(webhook_url=url, max_retries=2, min_interval_seconds=0)
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice(1))
            await wait_for(lambda: metrics.get("notify_dropped", channel="webhook", reason="failed") == 1)
            notices.send_nowait(exit_notice(2))
            await wait_for(lambda: metrics.get("notify_sent", channel="webhook") == 1)
        nursery.cancel_scope.cancel()
    assert len(hook.hits) == 4
    assert hook.hits[-1].body["notices"][0]["data"]["tranche_id"] == "t2"


async def test_rate_limit_merges_the_excess_into_the_next_message(autojump_clock: trio.testing.MockClock) -> None:
    tg = Receiver()
    metrics = Metrics(strict=True)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, tg)
        settings = settings_for(
            telegram_bot_token=TOKEN, telegram_chat_id=CHAT, telegram_api_url=url, min_interval_seconds=10
        )
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice(1))
            await wait_for(lambda: len(tg.hits) == 1)
            for i in range(2, 6):
                notices.send_nowait(exit_notice(i))
            await wait_for(lambda: len(tg.hits) == 2)
            await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert len(tg.hits) == 2
    assert tg.hits[1].at - tg.hits[0].at == pytest.approx(10.0, abs=0.01)
    assert [f"tranche {i} closed" in tg.hits[1].body["text"] for i in range(2, 6)] == [True] * 4
    assert metrics.get("notify_merged", channel="telegram") == 3
    assert metrics.get("notify_sent", channel="telegram") == 2


async def test_a_dead_receiver_slows_neither_the_notifier_nor_the_actors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics(strict=True)
    seen_send, seen_recv = trio.open_memory_channel[Notice](10_000)
    async with trio.open_nursery() as nursery:
        silent_url = await nursery.start(serve_silence)
        settings = settings_for(
            webhook_url=silent_url,
            telegram_bot_token=TOKEN,
            telegram_chat_id=CHAT,
            telegram_api_url=refused_url(),
            queue_size=5,
            timeout_seconds=30,
        )
        async with running(settings, metrics, listeners=[seen_send]) as (_, notices):
            await trio.sleep(1)
            sent_at = trio.current_time()
            for i in range(200):
                notices.send_nowait(exit_notice(i))  # what a position actor does: it never waits
            with trio.fail_after(0.001):  # mock time: the notifier handles all 200 without a pause
                for _ in range(200):
                    await seen_recv.receive()
            assert trio.current_time() == sent_at
            for channel in ("webhook", "telegram"):
                assert metrics.get("notify_dropped", channel=channel, reason="queue_full") >= 190
                assert metrics.get("notify_queue_depth", channel=channel) <= 5
            await trio.sleep(300)  # the receivers stay dead; the notifier still takes notices at once
            notices.send_nowait(exit_notice(999))
            with trio.fail_after(0.001):
                assert (await seen_recv.receive()).data["tranche_id"] == "t999"
        nursery.cancel_scope.cancel()
    assert metrics.get("notify_sent") == 0
    assert metrics.get("notify_retries", channel="telegram") >= 1
    assert metrics.get("notify_retries", channel="webhook") >= 1


async def test_the_bot_token_never_appears_in_logs(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    tg = Receiver(script=[500, 404], echo_path=True)
    metrics = Metrics(strict=True)
    caplog.set_level(logging.DEBUG)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, tg)
        for level in ("httpx", "httpcore"):
            logging.getLogger(level).setLevel(logging.DEBUG)
        settings = settings_for(
            telegram_bot_token=TOKEN,
            telegram_chat_id=CHAT,
            telegram_api_url=url,
            webhook_url=refused_url() + f"/hook/{TOKEN}",
            max_retries=1,
        )
        async with running(settings, metrics) as (_, notices):
            notices.send_nowait(exit_notice())
            await wait_for(lambda: metrics.get("notify_dropped", reason="failed") == 2)
        nursery.cancel_scope.cancel()
    assert len(tg.hits) == 2
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "sendMessage" in logged and "HTTP 404" in logged  # the failures were logged...
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged  # ...without the token


async def test_restart_budget_exhausted_is_delivered_before_the_daemon_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hook = Receiver(script=[502])
    metrics = Metrics(strict=True)

    async def crashing(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        raise RuntimeError("boom")

    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_receiver, hook)
        service = NotifyService(settings_for(webhook_url=url, min_interval_seconds=0), metrics)
        policy = RestartPolicy(budget=2, window=60, backoff=0.1, on_exhausted=service.restart_budget_exhausted)
        with pytest.raises(BaseExceptionGroup) as stopped:
            async with trio.open_nursery() as daemon:  # the daemon's nursery: stops when the budget runs out
                await daemon.start(service.run)
                await daemon.start(supervise, "position:BTCUSDT:LONG", lambda: crashing, policy, metrics)
        assert stopped.value.subgroup(RestartBudgetExhausted) is not None
        nursery.cancel_scope.cancel()
    assert len(hook.hits) == 2  # a 502, then the retry got through, all before the daemon's nursery closed
    [notice] = hook.hits[-1].body["notices"]
    assert notice["kind"] == "restart_budget_exhausted" and notice["needs_human"] is True
    assert "position:BTCUSDT:LONG" in notice["text"] and "boom" in notice["text"]
