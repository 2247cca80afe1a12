"""While a restart is still reconciling, the operator API already answers: /health says "starting", /ready and
commands that need the actors answer 503 with Retry-After, and the log shows the progress every second."""

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from posmon.api.settings import ApiSettings
from posmon.daemon import run_daemon
from posmon.domain.orders import Side
from posmon.exchange.errors import OutcomeUnknown
from posmon.metrics import Metrics
from posmon.sim.exchange import SimExchange
from posmon.sim.venue import SimVenue
from posmon.store.store import Store
from tests.harness import make_settings, running, settle, trio_clock


class HeldVenue(SimVenue):
    """The simulated venue whose whole-account order read waits until the test lets it go."""

    def __init__(self, exchange: SimExchange) -> None:
        super().__init__(exchange)
        self.reading = trio.Event()  # the start-up's account read has been asked for
        self.release = trio.Event()

    async def open_orders(self, symbol=None):
        if symbol is None:
            self.reading.set()
            await self.release.wait()
        return await super().open_orders(symbol)


async def _positions(settings) -> SimExchange:
    """A store and exchange holding two protected positions (BTC long, ETH short), daemon stopped."""
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "1", "45000")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")
        assert len(h.store.open_tranches("sim")) == 2
        return h.exchange


@asynccontextmanager
async def _restarting(settings, venue, api: ApiSettings | None = None) -> AsyncIterator[None]:
    store = Store.open(settings.daemon.store, clock=trio_clock)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: run_daemon(settings, venue, store, metrics=Metrics(), api=api, freeze_heap=False)
            )
            yield
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_health_answers_starting_while_the_restart_reconciles_then_ready(tmp_path):
    settings = make_settings(tmp_path)
    venue = HeldVenue(await _positions(settings))
    port = _free_port()
    async with (
        _restarting(settings, venue, ApiSettings(port=port)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
    ):
        with trio.fail_after(10):
            await venue.reading.wait()
        health = await api.get("/health")
        assert (health.status_code, health.json()["state"]) == (200, "starting")
        assert (await api.get("/ready")).status_code == 503
        close = await api.post("/api/positions/BTCUSDT/close", json={})
        assert close.status_code == 503, close.text
        assert close.headers["Retry-After"] == "5"
        assert "starting" in close.json()["error"]

        venue.release.set()
        with trio.fail_after(10):  # a real server: wait on the condition, bounded
            while (await api.get("/ready")).status_code != 200:  # noqa: ASYNC110 (the server is the condition)
                await trio.sleep(0.01)
        health = await api.get("/health")
        assert (health.status_code, health.json()["state"]) == (200, "ready")


async def test_start_up_logs_its_progress_each_second(tmp_path, autojump_clock, caplog):
    settings = make_settings(tmp_path)
    venue = HeldVenue(await _positions(settings))
    caplog.set_level(logging.INFO, logger="posmon.daemon")
    async with _restarting(settings, venue):
        await venue.reading.wait()
        caplog.clear()
        await trio.sleep(2.5)
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("starting: ")]
        assert (
            lines
            == [
                "starting: connecting the user stream and reconciling the account; "
                "2 of 2 actors loaded, 0 of 2 reconciled"
            ]
            * 2
        )
        venue.release.set()
        await settle()
        await trio.sleep(1.5)
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("posmon ready: watching sim") for m in messages), messages
        assert not [m for m in messages[len(lines) :] if m.startswith("starting: ")]


class SweepFailsVenue(SimVenue):
    """Whole-account order reads fail (the venue answers 5xx to them); per-symbol reads work."""

    async def open_orders(self, symbol=None):
        if symbol is None:
            raise OutcomeUnknown("503 on the whole-account read", request="open orders")
        return await super().open_orders(symbol)


async def test_restored_actors_read_their_own_account_when_the_start_up_sweep_fails(tmp_path, autojump_clock, caplog):
    settings = make_settings(tmp_path)
    exchange = await _positions(settings)
    before = {o.client_id for s in ("BTCUSDT", "ETHUSDT") for o in exchange.engine.open_orders(s)}
    caplog.set_level(logging.WARNING)
    async with running(settings, exchange, venue=SweepFailsVenue(exchange)) as h:
        actors = h.daemon.directory.actors()
        assert len(actors) == 2 and not any(a.ready.is_set() for a in actors)  # waiting for the sweep's read
        await trio.sleep(settings.daemon.request_timeout_seconds * 6 + 1)
        await settle()
        assert all(a.ready.is_set() for a in actors)
        assert h.daemon.readiness.state == "ready"
        after = {o.client_id for s in ("BTCUSDT", "ETHUSDT") for o in h.orders(s)}
        assert after == before  # reconciled from their own reads: nothing re-placed, nothing lost
    assert sum("no account sweep came since start-up" in r.getMessage() for r in caplog.records) == 2
