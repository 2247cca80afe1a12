"""Two venue accounts in one daemon: Aster's and Lighter's protocol simulators side by side.

Each account protects its positions by its own venue's exit style (TP/SL resting on Aster, held by posmon on
Lighter); the operator addresses one by its venue; one venue down at start-up never holds the other's exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import trio

from posmon.config import Settings, load_settings
from posmon.control import ControlError, OpenRequest
from posmon.daemon import Daemon, Unaddressed, run_daemon
from posmon.domain.orders import Side
from posmon.metrics import Metrics
from posmon.sim.exchange import SimExchange
from posmon.store.store import Store
from tests.harness import new_exchange, settle, trio_clock


def two_venue_settings(tmp_path: Path, **risk: Any) -> Settings:
    risk_lines = "\n".join(f"{k} = {v}" for k, v in {"tp_pct": 1.0, "sl_pct": 5.0, **risk}.items())
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[daemon]
venues = ["aster", "lighter"]
store = "{tmp_path / "posmon.sqlite"}"
restart_backoff_seconds = 0.5
stale_stream_seconds = 600.0

[risk]
{risk_lines}

[sim]
symbols = ["BTCUSDT", "ETHUSDT"]
trader_enabled = false
"""
    )
    return load_settings(path, env={})


class Unreachable:
    """A venue whose server does not answer while ``down`` (its rules cannot be read): a venue that is out at
    start-up. Everything else is the real adapter's."""

    def __init__(self, venue: Any) -> None:
        self._venue = venue
        self.down = True
        self.tries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    @property
    def rules(self) -> Any:
        return {} if self.down else self._venue.rules

    async def load_rules(self) -> Any:
        self.tries += 1
        if self.down:
            raise OSError("connection refused")
        return await self._venue.load_rules()


@dataclass
class Both:
    settings: Settings
    store: Store
    metrics: Metrics
    daemon: Daemon
    aster_exchange: SimExchange
    lighter_exchange: SimExchange
    lighter: Any  # the LighterSim
    lighter_venue: Any

    def aster_resting(self, symbol: str = "BTCUSDT") -> set[tuple[str, str, str]]:
        return {
            (o.type.value, o.side.value, format((o.price or o.stop_price).normalize(), "f"))
            for o in self.aster_exchange.engine.open_orders(symbol)
        }

    def closed(self, venue: str) -> list[tuple[str, str]]:
        return [(r["symbol"], r["close_reason"]) for r in self.store.closed_tranches(venue)]

    async def aster_entry(self, symbol: str, side: Side, qty: str, price: str) -> None:
        self.aster_exchange.set_mark(symbol, D(price))
        self.aster_exchange.external_entry(symbol, side, D(qty))
        await settle()

    async def lighter_entry(self, symbol: str, side: Side, qty: str, price: str) -> None:
        self.lighter_exchange.set_mark(symbol, D(price))
        self.lighter.external_entry(symbol, side, D(qty))
        await settle()

    async def aster_mark(self, symbol: str, price: str) -> None:
        self.aster_exchange.set_mark(symbol, D(price))
        await settle()

    async def lighter_mark(self, symbol: str, price: str) -> None:
        self.lighter_exchange.set_mark(symbol, D(price))
        await settle()


@asynccontextmanager
async def simulators(settings: Settings) -> AsyncIterator[tuple[Any, Any, SimExchange, SimExchange, Any, Any]]:
    """Both protocol simulators on loopback and a venue adapter open on each: (aster venue, lighter venue,
    Aster's exchange, Lighter's exchange, the LighterSim, the AsterSim)."""
    from posmon.exchange.aster.settings import AsterSettings
    from posmon.exchange.aster.venue import AsterVenue
    from posmon.exchange.lighter.settings import LighterSettings
    from posmon.exchange.lighter.signer import LighterSigner
    from posmon.exchange.lighter.venue import LighterVenue
    from posmon.sim.aster import credentials as aster_cred
    from posmon.sim.aster import serve_aster_sim
    from posmon.sim.aster.sim import AsterSim
    from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
    from posmon.sim.lighter import credentials as cred

    aster_exchange = new_exchange(settings)
    lighter_exchange = build_exchange(clock=trio_clock)
    lighter_sim = LighterSim(lighter_exchange, clock=trio_clock, tx_clock=trio_clock)
    async with trio.open_nursery() as nursery:
        aster_sim = AsterSim(aster_exchange, clock=trio_clock)
        a_rest, a_ws = await nursery.start(serve_aster_sim, aster_sim)
        l_rest, l_ws = await nursery.start(serve_lighter_sim, lighter_sim)
        aster = AsterSettings.from_config(
            {
                "rest_url": a_rest,
                "ws_url": a_ws,
                "auth": "v3",
                "signer_private_key": aster_cred.DEFAULT_SIGNER_PRIVATE_KEY,
                "user": aster_cred.DEFAULT_USER_ADDRESS,
            },
            {},
        )
        lighter = LighterSettings.from_config(
            {
                "rest_url": l_rest,
                "ws_url": l_ws,
                "account_index": cred.DEFAULT_ACCOUNT_INDEX,
                "api_key_index": cred.DEFAULT_API_KEY_INDEX,
                "chain_id": cred.DEFAULT_CHAIN_ID,
                "api_private_key": cred.DEFAULT_API_PRIVATE_KEY,
            },
            {},
        )
        signer = LighterSigner(
            url=l_rest,
            private_key=lighter.api_private_key,
            chain_id=lighter.chain_id,
            api_key_index=lighter.api_key_index,
            account_index=cred.DEFAULT_ACCOUNT_INDEX,
        )
        async with (
            AsterVenue.open(aster, clock=trio_clock, sign_in_thread=False) as aster_venue,
            LighterVenue.open(
                lighter,
                signer=signer,
                client_id_prefix=settings.daemon.client_id_prefix,
                clock=trio_clock,
                sign_in_thread=False,
            ) as lighter_venue,
        ):
            yield aster_venue, lighter_venue, aster_exchange, lighter_exchange, lighter_sim, aster_sim
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def daemon_on(settings: Settings, venues: list[Any]) -> AsyncIterator[tuple[Daemon, Store, Metrics]]:
    """One daemon running an account on each of ``venues`` (one store, one metrics registry)."""
    store = Store.open(settings.daemon.store, clock=trio_clock)
    metrics = Metrics(strict=True)
    try:
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(
                lambda task_status: run_daemon(
                    settings,
                    venues,
                    store,
                    metrics=metrics,
                    clock=trio_clock,
                    freeze_heap=False,
                    task_status=task_status,
                )
            )
            await settle()
            yield daemon, store, metrics
            nursery.cancel_scope.cancel()
    finally:
        store.close()


@asynccontextmanager
async def running_both(settings: Settings, *, lighter_wrapper: Any = None) -> AsyncIterator[Both]:
    async with AsyncExitStack() as stack:
        aster_venue, lighter_venue, aster_x, lighter_x, lighter_sim, _ = await stack.enter_async_context(
            simulators(settings)
        )
        if lighter_wrapper is not None:
            lighter_venue = lighter_wrapper(lighter_venue)
        daemon, store, metrics = await stack.enter_async_context(daemon_on(settings, [aster_venue, lighter_venue]))
        yield Both(settings, store, metrics, daemon, aster_x, lighter_x, lighter_sim, lighter_venue)


def order_posts(aster_sim: Any) -> int:
    """Orders (single or batched) the Aster simulator was sent, whichever API version."""
    return sum(n for k, n in aster_sim.counters.requests.items() if k.startswith("POST") and "rder" in k)


def request(symbol: str, side: Side, venue: str | None) -> OpenRequest:
    return OpenRequest(symbol, side, D(5000), 5, D(2), (D(1), D(2)), venue=venue)


async def test_each_venue_protects_its_position_by_its_own_exit_style(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        assert h.daemon.readiness.is_ready
        assert [a.state for a in h.daemon.accounts.values()] == ["ready", "ready"]
        await h.aster_entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.lighter_entry("BTC", Side.LONG, "0.1", "45000")

        # Aster: TP and SL rest on the venue; Lighter: nothing rests, posmon holds both.
        assert h.aster_resting() == {("LIMIT", "SELL", "45450"), ("STOP_MARKET", "SELL", "42750")}
        assert h.lighter.account.open_orders() == []
        [a] = h.store.open_tranches("aster")
        [lt] = h.store.open_tranches("lighter")
        assert (a.symbol, a.tp, a.sl) == ("BTCUSDT", D("45450"), D("42750"))
        assert (lt.symbol, lt.tp, lt.sl) == ("BTC", D("45450"), D("42750"))

        await h.lighter_mark("BTC", "42700")  # through Lighter's SL: posmon closes it itself
        assert h.closed("lighter") == [("BTC", "SL")] and h.store.open_tranches("aster") == [a]
        await h.aster_mark("BTCUSDT", "45500")  # Aster's resting TP fills on the venue
        assert h.closed("aster") == [("BTCUSDT", "TP")]
        assert h.aster_resting() == set() and h.lighter.account.signed_position("BTC") == 0
        # Each venue's gauges are its own: two accounts never overwrite each other's.
        assert h.metrics.get("position_actors", venue="aster") == 1
        assert h.metrics.get("position_actors", venue="lighter") == 1


async def test_the_operator_opens_on_each_venue_by_name_and_status_shows_both(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path, sl_pct=50.0)) as h:
        control = h.daemon.control
        assert control is not None
        h.aster_exchange.set_mark("BTCUSDT", D(45000))
        h.lighter_exchange.set_mark("BTC", D(45000))
        await settle()
        with pytest.raises(ControlError) as unnamed:
            await control.open_position(request("BTCUSDT", Side.LONG, None))
        assert (unnamed.value.field, unnamed.value.status) == ("venue", 422)
        with pytest.raises(ControlError) as unknown:
            await control.open_position(request("BTCUSDT", Side.LONG, "binance"))
        assert unknown.value.field == "venue"

        on_aster = await control.open_position(request("BTCUSDT", Side.LONG, "aster"))
        # The unified name resolves on the venue named: Lighter's BTC market.
        on_lighter = await control.open_position(request("BTC/USDC:USDC", Side.SHORT, "lighter"))
        assert (on_aster.status, on_aster.venue, on_aster.symbol) == ("FILLED", "aster", "BTCUSDT")
        assert (on_lighter.status, on_lighter.venue, on_lighter.symbol) == ("FILLED", "lighter", "BTC")
        assert {o.type.value for o in h.aster_exchange.engine.open_orders("BTCUSDT")} == {"LIMIT", "STOP_MARKET"}
        assert h.lighter.account.open_orders() == []
        await settle()  # the venue's confirmations of the TP and SL

        report = await control.status()
        assert report.venue == "aster,lighter"
        assert {(t.venue, t.symbol, t.side, t.exits) for t in report.tranches} == {
            ("aster", "BTCUSDT", Side.LONG, "exchange"),
            ("lighter", "BTC", Side.SHORT, "emulated"),
        }
        assert all(t.exits_live for t in report.tranches)
        assert [(a.venue, a.state, a.exits, a.positions) for a in report.accounts] == [
            ("aster", "ready", "exchange", 1),
            ("lighter", "ready", "emulated", 1),
        ]
        assert [s.name for s in report.streams] == ["aster price", "aster user", "lighter price", "lighter user"]

        [closing] = await control.close("BTC", venue="lighter")
        await settle()
        assert closing.tranche_ids == [on_lighter.tranche_id] and h.closed("lighter") == [("BTC", "MANUAL")]
        assert h.closed("aster") == []
        with pytest.raises(ControlError) as unaddressed_close:
            await control.close("BTCUSDT")
        assert unaddressed_close.value.field == "venue"
        table = h.daemon.instrument_table()  # across venues: one base, each venue's own symbol
        assert (table.symbol("aster", "BTC/USDT:USDT"), table.symbol("lighter", "BTC/USDC:USDC")) == ("BTCUSDT", "BTC")
        with pytest.raises(Unaddressed):
            _ = h.daemon.directory  # "the" account's parts are the single-venue daemon's only


async def test_a_venue_down_at_start_up_never_holds_the_other_venues_exits(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path), lighter_wrapper=Unreachable) as h:
        lighter = h.daemon.account("lighter")
        assert h.daemon.account("aster").state == "ready"
        assert lighter.state == "unreachable" and not h.daemon.readiness.is_ready
        assert "lighter" in h.daemon.readiness.detail

        await h.aster_entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.aster_mark("BTCUSDT", "42700")  # Aster's SL fills while Lighter is still out
        assert h.closed("aster") == [("BTCUSDT", "SL")]
        control = h.daemon.control
        assert control is not None
        report = await control.status()
        assert [(a.venue, a.state) for a in report.accounts] == [("aster", "ready"), ("lighter", "unreachable")]
        with pytest.raises(ControlError) as not_yet:
            await control.close("BTC", venue="lighter")
        assert not_yet.value.status == 503 and "lighter" in str(not_yet.value)  # retry later; the other works

        tries = h.lighter_venue.tries
        await trio.sleep(60)  # still out: it keeps trying, with backoff (no give-up, no exit)
        assert h.lighter_venue.tries > tries and lighter.state == "unreachable"
        h.lighter_venue.down = False
        await trio.sleep(16)  # the longest backoff
        await settle()
        assert lighter.state == "ready" and h.daemon.readiness.is_ready
        await h.lighter_entry("BTC", Side.LONG, "0.1", "45000")
        await h.lighter_mark("BTC", "45500")
        assert h.closed("lighter") == [("BTC", "TP")]


async def test_restart_with_positions_on_both_venues_keeps_the_tranches_and_sends_nothing(tmp_path, autojump_clock):
    settings = two_venue_settings(tmp_path)
    async with AsyncExitStack() as stack:
        aster_venue, lighter_venue, aster_x, lighter_x, lighter_sim, aster_sim = await stack.enter_async_context(
            simulators(settings)
        )
        async with daemon_on(settings, [aster_venue, lighter_venue]) as (_daemon, store, _metrics):
            aster_x.set_mark("BTCUSDT", D(45000))
            aster_x.external_entry("BTCUSDT", Side.LONG, D("0.1"))
            lighter_x.set_mark("ETH", D(3000))
            lighter_sim.external_entry("ETH", Side.SHORT, D("1"))
            await settle()
            before = {v: store.open_tranches(v) for v in ("aster", "lighter")}
            orders_before = sorted(o.client_id for o in aster_x.engine.open_orders("BTCUSDT"))
        assert [len(t) for t in before.values()] == [1, 1]
        placed = order_posts(aster_sim)
        assert placed >= 1  # the TP and SL went out
        txs = lighter_sim.counters.requests["POST /api/v1/sendTx"]

        async with daemon_on(settings, [aster_venue, lighter_venue]) as (daemon, store, _metrics):
            assert daemon.readiness.is_ready
            assert {v: store.open_tranches(v) for v in ("aster", "lighter")} == before
            assert sorted(o.client_id for o in aster_x.engine.open_orders("BTCUSDT")) == orders_before
            assert lighter_sim.counters.requests["POST /api/v1/sendTx"] == txs
            assert order_posts(aster_sim) == placed
            assert [a.state for a in daemon.accounts.values()] == ["ready", "ready"]


async def test_one_venues_streams_dropping_never_stops_the_other_venues_exits(tmp_path, autojump_clock):
    async with running_both(two_venue_settings(tmp_path)) as h:
        await h.aster_entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.lighter_entry("BTC", Side.LONG, "0.1", "45000")
        opened = h.lighter.counters.ws_opened
        assert h.lighter.drop_websockets() >= 1  # Lighter's price and account streams go down
        await h.aster_mark("BTCUSDT", "42700")  # meanwhile Aster's SL fills on the venue
        assert h.closed("aster") == [("BTCUSDT", "SL")] and h.closed("lighter") == []

        await trio.sleep(5)  # Lighter's streams reconnect on their own, and its exits work again
        await settle()
        assert h.lighter.counters.ws_opened > opened
        await h.lighter_mark("BTC", "45500")
        assert h.closed("lighter") == [("BTC", "TP")]
