"""``posmon verify`` and ``posmon protect`` against the Aster-protocol simulator over loopback HTTP.

Each test lets the daemon protect an account (or not), stops it, seeds one kind of gap on the exchange or
in the store the way it happens in life, then runs the commands as the CLI does and checks what an operator
sees: the exit code, the report, the orders on the exchange and the rows in the store.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from posmon.cli.exit_codes import ExitCode
from posmon.config import ConfigError, Settings
from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Side
from posmon.domain.protection import LocalState, OrderRecord
from posmon.ops.command import protect_command, verify_command
from posmon.ops.lock import hold_store_lock
from posmon.sim.exchange import SimExchange
from posmon.store.store import Changes, Store
from tests.harness import make_settings, new_exchange, running_aster, trio_clock
from tests.scenario import assert_protected_and_no_orphans


def _aster_table(rest_url: str, ws_url: str) -> dict[str, Any]:
    from posmon.sim.aster import credentials as cred

    # HMAC keys: v3 nonces come from the clock, which the mock clock holds still across the commands' sessions.
    return {
        "rest_url": rest_url,
        "ws_url": ws_url,
        "auth": "v1",
        "api_key": cred.DEFAULT_API_KEY,
        "api_secret": cred.DEFAULT_API_SECRET,
    }


def _opener(table: dict[str, Any]):
    """What ``open_venue`` does for a configured Aster account, pointed at the test's simulator."""
    from posmon.exchange.aster.settings import AsterSettings
    from posmon.exchange.aster.venue import AsterVenue

    @asynccontextmanager
    async def opener(settings: Settings, nursery: trio.Nursery) -> AsyncIterator[Any]:
        async with AsterVenue.open(
            AsterSettings.from_config(table, {}), clock=trio_clock, sign_in_thread=False
        ) as venue:
            yield venue

    return opener


@asynccontextmanager
async def aster_sim(exchange: SimExchange) -> AsyncIterator[Any]:
    """The simulator serving ``exchange`` on loopback; yields a venue opener for the commands."""
    from posmon.sim.aster import serve_aster_sim
    from posmon.sim.aster.sim import AsterSim

    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_aster_sim, AsterSim(exchange, clock=trio_clock))
        yield _opener(_aster_table(rest_url, ws_url))
        nursery.cancel_scope.cancel()


class Ops:
    """The two commands as the CLI runs them, with their output captured."""

    def __init__(self, settings: Settings, exchange: SimExchange, opener: Any) -> None:
        self.settings, self.exchange, self.opener = settings, exchange, opener
        self.out = ""

    async def verify(self, *, as_json: bool = False) -> int:
        out = io.StringIO()
        code = await verify_command(self.settings, as_json=as_json, out=out, err=io.StringIO(), opener=self.opener)
        self.out = out.getvalue()
        return code

    async def protect(self, *, dry_run: bool = False, as_json: bool = False) -> int:
        out, err = io.StringIO(), io.StringIO()
        code = await protect_command(
            self.settings, dry_run=dry_run, as_json=as_json, out=out, err=err, opener=self.opener, clock=trio_clock
        )
        self.out = out.getvalue() + err.getvalue()
        return code

    async def gaps(self) -> list[dict[str, Any]]:
        await self.verify(as_json=True)
        return json.loads(self.out)["gaps"]

    def store(self) -> Store:
        return Store.open(self.settings.daemon.store, clock=trio_clock)

    def assert_clean(self) -> None:
        store = self.store()
        try:
            assert_protected_and_no_orphans(SimpleNamespace(store=store, exchange=self.exchange))
        finally:
            store.close()


@asynccontextmanager
async def ops(settings: Settings, exchange: SimExchange) -> AsyncIterator[Ops]:
    async with aster_sim(exchange) as opener:
        yield Ops(settings, exchange, opener)


async def protected_account(settings: Settings, *entries: tuple[str, Side, str, str]) -> SimExchange:
    """An account the daemon has protected, then stopped (its state left in the store)."""
    exchange = new_exchange(settings)
    async with running_aster(settings, exchange) as h:
        for symbol, side, qty, price in entries:
            await h.entry(symbol, side, qty, price)
        assert_protected_and_no_orphans(h)
    return exchange


def resting(exchange: SimExchange, symbol: str = "BTCUSDT") -> set[tuple[str, str, str, str]]:
    return {
        (
            o.type.value,
            o.side.value,
            format((o.qty - o.filled_qty).normalize(), "f"),
            format((o.price if o.price is not None else o.stop_price).normalize(), "f"),
        )
        for o in exchange.engine.open_orders(symbol)
    }


def external_close(exchange: SimExchange, symbol: str, side: Side, qty: str) -> None:
    """Someone closes (part of) the position by hand while the daemon is stopped."""
    exchange.engine.place(
        OrderRequest(
            client_id=f"ext-close-{qty}",
            symbol=symbol,
            side=side.closing_order_side,
            position_side=side.value,
            type=OrderType.MARKET,
            qty=D(qty),
        ),
        trio.current_time(),
    )


def kinds(gaps: list[dict[str, Any]]) -> list[str]:
    return [g["kind"] for g in gaps]


# --- a protected account is clean ------------------------------------------------------------------------------


async def test_verify_reports_clean_on_an_account_the_daemon_protected(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = await protected_account(
        settings,
        ("BTCUSDT", Side.LONG, "0.1", "45000"),
        ("BTCUSDT", Side.LONG, "0.08", "42300"),
        ("ETHUSDT", Side.SHORT, "1", "3000"),
    )
    sent = exchange.orders_sent
    async with ops(settings, exchange) as o:
        assert await o.verify() == ExitCode.OK
        assert "clean" in o.out and "3 open tranches" in o.out
        assert await o.protect() == ExitCode.OK
        assert "nothing to do" in o.out
    assert exchange.orders_sent == sent and exchange.calls["cancel_orders"] == 0


# --- each gap is detected and repaired ---------------------------------------------------------------------------


async def test_unprotected_position_is_adopted_and_protected(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    exchange.set_mark("BTCUSDT", D("45000"))
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.1"))
    async with ops(settings, exchange) as o:
        assert await o.verify() == ExitCode.FAILED
        assert "[unknown_position] BTCUSDT LONG: 0.1 held @ 45000" in o.out
        gaps = await o.gaps()
        assert kinds(gaps) == ["unknown_position"] and gaps[0]["qty"] == "0.1"

        assert await o.protect() == ExitCode.OK, o.out
        assert resting(exchange) == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        store = o.store()
        try:
            (t,) = store.open_tranches()
            assert (t.entry, t.qty, t.tp, t.sl) == (D("45000"), D("0.1"), D("45450"), D("22500"))
            assert {r.state for r in store.active_orders([t.id])} == {LocalState.LIVE}
            assert [e["kind"] for e in store.events()][:1] == ["protect_adopt"]
        finally:
            store.close()
        assert await o.verify() == ExitCode.OK
        o.assert_clean()

    # The daemon takes the adopted tranche over as its own: nothing to redo, still clean.
    async with running_aster(settings, exchange) as h:
        assert resting(exchange) == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        assert_protected_and_no_orphans(h)


async def test_position_grown_while_the_daemon_was_down_is_adopted_by_the_daemons_rules(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = await protected_account(settings, ("BTCUSDT", Side.LONG, "0.1", "45000"))
    exchange.set_mark("BTCUSDT", D("42300"))
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.08"))  # -6 %: a new tranche, as in the worked example
    async with ops(settings, exchange) as o:
        gaps = await o.gaps()
        assert kinds(gaps) == ["under_covered"] and gaps[0]["qty"] == "0.08"
        assert await o.protect() == ExitCode.OK, o.out
        assert resting(exchange) == {
            ("LIMIT", "SELL", "0.1", "45450"),
            ("STOP_MARKET", "SELL", "0.1", "22500"),
            ("LIMIT", "SELL", "0.08", "42723"),
            ("STOP_MARKET", "SELL", "0.08", "21150"),
        }
        o.assert_clean()


def _seed_wrong_size_stop(settings: Settings, exchange: SimExchange) -> str:
    """The current stop of tranche 1 covers half the tranche (a resize decided on a stale quantity)."""
    store = Store.open(settings.daemon.store, clock=trio_clock)
    try:
        (t,) = store.open_tranches(symbol="BTCUSDT")
        old = next(r for r in store.active_orders([t.id]) if r.purpose.name == "SL")
        exchange.engine.cancel("BTCUSDT", old.client_id, trio.current_time())
        half = dataclasses.replace(old.request, client_id=f"pm-{t.id}-S{t.seq + 1}", qty=t.qty / 2)
        state = exchange.engine.place(half, trio.current_time())
        store.apply(
            Changes(
                tranches=[dataclasses.replace(t, seq=t.seq + 1)],
                orders=[
                    dataclasses.replace(old, state=LocalState.DONE),
                    OrderRecord(half, t.id, old.purpose, LocalState.LIVE, exchange_id=state.order_id),
                ],
            )
        )
        return half.client_id
    finally:
        store.close()


async def test_wrong_size_stop_is_replaced_new_one_first(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = await protected_account(settings, ("BTCUSDT", Side.LONG, "0.1", "45000"))
    wrong = _seed_wrong_size_stop(settings, exchange)
    async with ops(settings, exchange) as o:
        assert await o.verify() == ExitCode.FAILED
        gaps = await o.gaps()
        assert kinds(gaps) == ["wrong_size"]
        assert (gaps[0]["client_id"], gaps[0]["expected"], gaps[0]["actual"]) == (wrong, "0.1", "0.05")

        assert await o.protect() == ExitCode.OK, o.out
        plan = o.out[o.out.index("plan") :]
        assert plan.index("place") < plan.index(f"cancel        BTCUSDT LONG: {wrong} once its replacement is live")
        assert resting(exchange) == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        assert wrong not in {x.client_id for x in exchange.engine.open_orders()}
        o.assert_clean()
        assert await o.verify() == ExitCode.OK


async def test_orphan_orders_are_cancelled(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = await protected_account(settings, ("BTCUSDT", Side.LONG, "0.1", "45000"))
    # A leftover of a tranche the store no longer has, and a stray stop of an open tranche the store never decided.
    for cid, typ, price in (("pm-99-T3", OrderType.LIMIT, "46000"), ("pm-1-S9", OrderType.STOP_MARKET, "30000")):
        exchange.engine.place(
            OrderRequest(
                client_id=cid,
                symbol="BTCUSDT",
                side=OrderSide.SELL,
                position_side="LONG",
                type=typ,
                qty=D("0.1"),
                price=D(price) if typ is OrderType.LIMIT else None,
                stop_price=None if typ is OrderType.LIMIT else D(price),
            ),
            trio.current_time(),
        )
    async with ops(settings, exchange) as o:
        gaps = await o.gaps()
        assert kinds(gaps) == ["orphan_order", "orphan_order"]
        assert {g["client_id"] for g in gaps} == {"pm-99-T3", "pm-1-S9"}
        assert await o.protect() == ExitCode.OK, o.out
        assert {x.client_id for x in exchange.engine.open_orders()} == {"pm-1-T1", "pm-1-S1"}
        o.assert_clean()


async def test_tranche_with_no_position_is_closed_and_its_legs_cancelled(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = await protected_account(
        settings, ("BTCUSDT", Side.LONG, "0.1", "45000"), ("ETHUSDT", Side.SHORT, "1", "3000")
    )
    external_close(exchange, "ETHUSDT", Side.SHORT, "1")
    async with ops(settings, exchange) as o:
        gaps = await o.gaps()
        assert kinds(gaps) == ["no_position"] and gaps[0]["symbol"] == "ETHUSDT"
        assert await o.protect() == ExitCode.OK, o.out
        assert exchange.engine.open_orders("ETHUSDT") == []
        store = o.store()
        try:
            assert [(t.symbol, t.side) for t in store.open_tranches()] == [("BTCUSDT", Side.LONG)]
            assert [(r["symbol"], r["close_reason"]) for r in store.closed_tranches()] == [("ETHUSDT", "EXTERNAL")]
        finally:
            store.close()
        o.assert_clean()


async def test_position_shrunk_outside_posmon_resizes_tranche_and_legs(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = await protected_account(settings, ("BTCUSDT", Side.LONG, "0.1", "45000"))
    external_close(exchange, "BTCUSDT", Side.LONG, "0.04")
    async with ops(settings, exchange) as o:
        assert kinds(await o.gaps()) == ["over_covered"]
        assert await o.protect() == ExitCode.OK, o.out
        assert resting(exchange) == {("LIMIT", "SELL", "0.06", "45450"), ("STOP_MARKET", "SELL", "0.06", "22500")}
        o.assert_clean()


async def test_one_way_mode_unprotected_short_is_adopted(tmp_path, autojump_clock):
    base = make_settings(tmp_path)
    settings = dataclasses.replace(base, daemon=dataclasses.replace(base.daemon, hedge_mode=False))
    exchange = new_exchange(settings)
    exchange.set_mark("BTCUSDT", D("45000"))
    exchange.external_entry("BTCUSDT", Side.SHORT, D("0.1"))
    async with ops(settings, exchange) as o:
        assert kinds(await o.gaps()) == ["unknown_position"]
        assert await o.protect() == ExitCode.OK, o.out
        assert {(x.position_side, x.reduce_only) for x in exchange.engine.open_orders()} == {("BOTH", True)}
        assert resting(exchange) == {("LIMIT", "BUY", "0.1", "44550"), ("STOP_MARKET", "BUY", "0.1", "67500")}
        o.assert_clean()


# --- dry run, outcome unknown, exit codes -----------------------------------------------------------------------


def _dump(path: Path) -> list[str]:
    store = Store.open(path)
    try:
        return list(store.db.conn.iterdump())
    finally:
        store.close()


async def test_dry_run_changes_neither_store_nor_exchange(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, symbols=("BTCUSDT", "ETHUSDT", "XRPUSDT"))
    exchange = await protected_account(
        settings, ("BTCUSDT", Side.LONG, "0.1", "45000"), ("ETHUSDT", Side.SHORT, "1", "3000")
    )
    _seed_wrong_size_stop(settings, exchange)
    external_close(exchange, "ETHUSDT", Side.SHORT, "1")
    exchange.set_mark("XRPUSDT", D("1"))
    exchange.external_entry("XRPUSDT", Side.LONG, D("100"))
    before_store = _dump(Path(settings.daemon.store))
    before_orders = exchange.engine.open_orders()
    before_positions = exchange.engine.positions()
    sent = exchange.orders_sent
    async with ops(settings, exchange) as o:
        assert await o.protect(dry_run=True) == ExitCode.FAILED
        assert "dry run: nothing is changed" in o.out
        for action in ("adopt", "place", "cancel", "close_tranche"):
            assert f". {action}" in o.out, o.out
        assert await o.protect(dry_run=True, as_json=True) == ExitCode.FAILED
        doc = json.loads(o.out[o.out.index("{") :])
        assert doc["dry_run"] and not doc["clean"] and {s["action"] for s in doc["plan"]} >= {"adopt", "place"}
    assert _dump(Path(settings.daemon.store)) == before_store
    assert exchange.engine.open_orders() == before_orders
    assert exchange.engine.positions() == before_positions
    assert exchange.orders_sent == sent and exchange.calls["cancel_orders"] == 0


async def test_dry_run_and_verify_do_not_create_a_missing_store(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with ops(settings, exchange) as o:
        assert await o.verify() == ExitCode.OK
        assert await o.protect(dry_run=True) == ExitCode.OK
    assert not await trio.Path(settings.daemon.store).exists()


async def test_placement_with_unknown_outcome_is_looked_up_not_resent(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    exchange.set_mark("BTCUSDT", D("45000"))
    exchange.external_entry("BTCUSDT", Side.LONG, D("0.1"))
    async with aster_sim_with(exchange) as (opener, sim):
        o = Ops(settings, exchange, opener)
        sim.fail_next("/fapi/v1/batchOrders", after_execute=True)  # executed, answered 503
        assert await o.protect() == ExitCode.OK, o.out
        assert sim.counters.requests["POST /fapi/v1/batchOrders"] == 1  # looked up by client id, not resent
        o.assert_clean()


@asynccontextmanager
async def aster_sim_with(exchange: SimExchange) -> AsyncIterator[tuple[Any, Any]]:
    from posmon.sim.aster import serve_aster_sim
    from posmon.sim.aster.sim import AsterSim

    sim = AsterSim(exchange, clock=trio_clock)
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_aster_sim, sim)
        yield _opener(_aster_table(rest_url, ws_url)), sim
        nursery.cancel_scope.cancel()


async def test_protect_refuses_while_another_process_holds_the_store(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    exchange = new_exchange(settings)
    async with ops(settings, exchange) as o:
        with hold_store_lock(settings.daemon.store):  # what a running daemon holds
            assert await o.protect() == ExitCode.STORE
            assert "stop the daemon" in o.out
            assert await o.verify() == ExitCode.OK
            assert "a daemon holds this store" in o.out


async def test_unreachable_exchange_exits_3(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    with trio.socket.socket() as s:  # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    o = Ops(
        settings, new_exchange(settings), _opener(_aster_table(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"))
    )
    assert await o.verify() == ExitCode.UNREACHABLE
    assert await o.protect() == ExitCode.UNREACHABLE
    assert "exchange unreachable" in o.out


@pytest.mark.parametrize("command", ["verify", "protect"])
async def test_configuration_error_exits_2(tmp_path, autojump_clock, command):
    settings = make_settings(tmp_path)

    @asynccontextmanager
    async def bad(settings: Settings, nursery: trio.Nursery) -> AsyncIterator[Any]:
        raise ConfigError("aster.auth: invalid value 'v9'")
        yield

    o = Ops(settings, new_exchange(settings), bad)
    assert await getattr(o, command)() == ExitCode.CONFIG
