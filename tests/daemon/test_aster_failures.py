"""Failures over the Aster protocol: auth refusals, unknown outcomes, a paced burst, dropped streams."""

from decimal import Decimal as D

import trio

from posmon.domain.orders import OrderRequest, OrderSide, OrderType, Side
from posmon.exchange.aster.settings import AsterSettings
from posmon.exchange.aster.signing import Eip712Signer
from posmon.exchange.aster.venue import AsterVenue
from posmon.exchange.errors import AuthRejected, NonceExpired
from posmon.sim.aster import credentials as cred
from posmon.sim.aster import serve_aster_sim
from posmon.sim.aster.limits import RateLimitConfig
from posmon.sim.aster.sim import AsterSim
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from tests.harness import make_settings, running_aster, settle, trio_clock
from tests.scenario import assert_protected_and_no_orphans

TP = OrderRequest("pm-1-T1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.LIMIT, D("0.01"), price=D("46000"))


async def serve(nursery) -> tuple[AsterSim, str, str]:
    exchange = SimExchange(rules_for(["BTCUSDT"]), clock=trio_clock)
    exchange.set_mark("BTCUSDT", D("45000"))
    sim = AsterSim(exchange, clock=trio_clock)
    rest, ws = await nursery.start(serve_aster_sim, sim)
    return sim, rest, ws


async def placing(venue: AsterVenue, order: OrderRequest):
    """The one order's outcome: its state or its refusal (raised for the call or returned in its place)."""
    try:
        [result] = await venue.place_orders([order])
    except Exception as exc:
        return exc
    return result


def settings_for(rest: str, ws: str, **table) -> AsterSettings:
    return AsterSettings.from_config({"rest_url": rest, "ws_url": ws, **table}, {})


async def test_bad_signature_is_refused_with_its_code_and_not_retried(nursery, autojump_clock):
    sim, rest, ws = await serve(nursery)
    bad = settings_for(rest, ws, auth="v1", api_key=cred.DEFAULT_API_KEY, api_secret="not-the-secret")
    async with AsterVenue.open(bad, clock=trio_clock, sign_in_thread=False) as venue:
        error = await placing(venue, TP)
    assert isinstance(error, AuthRejected) and error.code == -1022 and "order" in error.request
    assert sim.counters.requests["POST /fapi/v1/order"] == 1  # refused once, never resent


async def test_stale_timestamp_is_refused_then_the_clock_is_resynced_once(nursery, autojump_clock):
    sim, rest, ws = await serve(nursery)
    lag = [0.0]
    ok = settings_for(rest, ws, auth="v1", api_key=cred.DEFAULT_API_KEY, api_secret=cred.DEFAULT_API_SECRET)
    async with AsterVenue.open(ok, clock=lambda: trio_clock() - lag[0], sign_in_thread=False) as venue:
        lag[0] = 30.0  # our clock falls 30 s behind after the offset was measured: outside recvWindow
        [state] = await venue.place_orders([TP])
    assert state.client_id == "pm-1-T1"
    assert sim.counters.requests["POST /fapi/v1/order"] == 2  # -1021, re-sync, one retry
    assert sim.counters.requests["GET /fapi/v1/time"] == 2  # at open and after the -1021


async def test_reused_nonce_is_refused_and_surfaces_after_one_fresh_try(nursery, autojump_clock, monkeypatch):
    sim, rest, ws = await serve(nursery)
    v3 = settings_for(
        rest, ws, auth="v3", signer_private_key=cred.DEFAULT_SIGNER_PRIVATE_KEY, user=cred.DEFAULT_USER_ADDRESS
    )
    async with AsterVenue.open(v3, clock=trio_clock, sign_in_thread=False) as venue:
        monkeypatch.setattr(Eip712Signer, "next_nonce", lambda self: 1_000_000 * int(trio_clock()))
        await venue.place_orders([TP])
        error = await placing(
            venue,
            OrderRequest(
                "pm-1-S1", "BTCUSDT", OrderSide.SELL, "LONG", OrderType.STOP_MARKET, D("0.01"), stop_price=D("40000")
            ),
        )
    assert isinstance(error, NonceExpired) and error.code == -4225
    assert sim.counters.requests["POST /fapi/v3/order"] == 3  # the first, then the reused nonce twice


async def test_expired_nonce_is_refused_with_its_code_and_not_retried_blindly(nursery, autojump_clock):
    exchange = SimExchange(rules_for(["BTCUSDT"]), clock=trio_clock)
    exchange.set_mark("BTCUSDT", D("45000"))
    ahead = [0.0]
    sim = AsterSim(exchange, clock=lambda: trio_clock() + ahead[0])
    rest, ws = await nursery.start(serve_aster_sim, sim)
    v3 = settings_for(
        rest, ws, auth="v3", signer_private_key=cred.DEFAULT_SIGNER_PRIVATE_KEY, user=cred.DEFAULT_USER_ADDRESS
    )
    async with AsterVenue.open(v3, clock=trio_clock, sign_in_thread=False) as venue:
        ahead[0] = 120.0  # the venue's clock runs two minutes ahead of the offset we measured
        error = await placing(venue, TP)
        assert isinstance(error, NonceExpired) and error.code == -4225
        assert sim.counters.requests["POST /fapi/v3/order"] == 2  # one fresh nonce, then it surfaces
        await venue.sync_time()  # what the gateway does next
        state = await placing(venue, TP)
    assert state.client_id == "pm-1-T1"


async def test_503_after_execution_placing_tp_and_sl_leaves_exactly_one_of_each(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path)) as h:
        h.aster.fail_next("/fapi/v3/batchOrders", after_execute=True)
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await trio.sleep(5)
        await settle()
        assert h.resting() == {("LIMIT", "SELL", "0.1", "45450"), ("STOP_MARKET", "SELL", "0.1", "22500")}
        assert h.aster.counters.http_503 == 1
        assert h.aster.counters.requests["POST /fapi/v3/batchOrders"] == 1  # looked up, not resent
        assert_protected_and_no_orphans(h)


async def test_dropped_user_stream_and_expired_listen_key_reconnect_and_reconcile(tmp_path, autojump_clock):
    async with running_aster(make_settings(tmp_path, instant_tp_enabled=False)) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        await h.entry("ETHUSDT", Side.SHORT, "1", "3000")

        h.aster.expire_listen_key()
        h.exchange.set_marks({"BTCUSDT": D("45460")})  # BTC's TP trades while posmon is disconnected
        await trio.sleep(5)
        await settle()
        assert {r["symbol"]: r["close_reason"] for r in h.store.closed_tranches()} == {"BTCUSDT": "TP"}
        assert_protected_and_no_orphans(h)

        h.aster.drop_websockets()
        h.exchange.set_marks({"ETHUSDT": D("2969")})  # ETH's TP (2970) trades during the drop
        await trio.sleep(5)
        await settle()
        assert {r["symbol"] for r in h.store.closed_tranches()} == {"BTCUSDT", "ETHUSDT"}
        assert h.metrics.get("user_stream_reconnects", venue="aster") >= 2
        assert h.exchange.engine.open_orders() == []
        assert_protected_and_no_orphans(h)


async def test_burst_of_fills_is_paced_under_the_published_limits_oldest_first(tmp_path, autojump_clock):
    symbols = tuple(f"S{i:03d}USDT" for i in range(200))
    settings = make_settings(tmp_path, symbols=symbols, tp_pct=50.0, sl_pct=50.0)
    limits = RateLimitConfig(weight_per_minute=600, orders_per_minute=300)
    async with running_aster(settings, sim_options={"limits": limits}) as h:
        for s in symbols:
            h.exchange.set_mark(s, D("100"))
        for n in range(1000):
            h.exchange.external_entry(symbols[n % 200], Side.LONG if n % 400 < 200 else Side.SHORT, D("0.1"))
            await trio.sleep(0.001)
        await trio.sleep(3600)
        await settle()

        c = h.aster.counters
        assert c.rate_limited == 0 and c.banned == 0
        assert c.peak_weight <= limits.weight_per_minute and c.peak_orders <= limits.orders_per_minute
        assert len(h.store.open_tranches()) == 400
        assert_protected_and_no_orphans(h)
        # Oldest exposure first: each tranche's first TP reached the exchange in the order of its first fill.
        opened = {e["tranche_id"]: int(e["data"]["source"].split("-")[1]) for e in h.store.events("tranche_opened")}
        first_tp = {}
        for tid in opened:
            t = next(t for t in h.store.open_tranches() if t.id == tid)
            first_tp[tid] = int(h.exchange.engine.query(t.symbol, f"pm-{tid}-T1").order_id)
        by_fill = [first_tp[tid] for tid, _ in sorted(opened.items(), key=lambda kv: kv[1])]
        assert by_fill == sorted(by_fill)
