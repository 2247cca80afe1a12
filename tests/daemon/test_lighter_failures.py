"""Failures over the Lighter protocol: a thin book under the close, a nonce refused mid-burst, a burst of exits
under the Standard tier's 60 requests a minute."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

import trio

from posmon.actors.messages import Notice
from posmon.control import OpenRequest
from posmon.domain.orders import Side
from tests.daemon.test_lighter_end_to_end import TX_CREATE_ORDER, TxLog, cid_of, closed, external, position
from tests.harness import drain, make_settings, running_lighter, settle

LADDER = {"close_slippage_pct": 0.5, "close_slippage_step_pct": 0.5, "close_slippage_max_pct": 1.5}


def close_bounds(h) -> list[D]:
    return [D(e["data"]["worst_price"]) for e in h.store.events("close_sent")]


async def test_close_that_cannot_fill_within_the_bound_is_retried_wider_until_it_fills(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0)
    async with running_lighter(settings, lighter_options=LADDER) as h:
        log = TxLog(h.lighter)
        await external(h, "BTC", Side.LONG, "0.1", "45000")
        h.lighter.set_liquidity("BTC", "0.8")  # a thin book: market sells fill 0.8 % under the mark
        await h.mark("BTC", "42000")  # through the stop at 42750

        # 0.5 % through the mark is cancelled by Lighter (too much slippage); 1.0 % fills, at 0.8 % under.
        assert close_bounds(h) == [D("41790"), D("41580")]
        assert [(cid_of(tx), tx["Price"]) for tx in log.orders()] == [("pm-1-C1", 417900), ("pm-1-C2", 415800)]
        assert closed(h) == {0: ("SL", (D("41664") - D("45000")) * D("0.1"))}
        assert position(h, "BTC") == 0
        statuses = sorted(o.status for o in h.lighter.account.inactive_orders(1) if o.reduce_only)
        assert statuses == ["canceled-too-much-slippage", "filled"]


async def test_close_beyond_the_slippage_cap_alerts_a_human_and_is_retried_at_the_cap(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0)
    send, notices = trio.open_memory_channel[Notice](100)
    async with running_lighter(settings, lighter_options=LADDER, notices=send) as h:
        log = TxLog(h.lighter)
        await external(h, "BTC", Side.LONG, "0.1", "45000")
        h.lighter.set_liquidity("BTC", "4")  # nothing fills within the 1.5 % cap
        await h.mark("BTC", "42000")

        assert close_bounds(h) == [D("41790"), D("41580"), D("41370")]  # widened up to the cap, never beyond
        assert position(h, "BTC") == D("0.1")
        [t] = h.store.open_tranches("lighter")  # still held and still being closed: not forgotten
        assert t.closing == "SL"
        assert [n.kind for n in drain(notices) if n.needs_human] == ["close_failed"]
        assert all(tx["ReduceOnly"] == 1 and tx["Price"] >= 413700 for tx in log.orders())  # never unbounded

        # It keeps trying at the cap, never wider; once the book recovers the next attempt closes it.
        await trio.sleep(30)
        await settle()
        assert len(close_bounds(h)) > 3 and set(close_bounds(h)[3:]) == {D("41370")}
        assert position(h, "BTC") == D("0.1") and h.store.open_tranches("lighter")[0].closing == "SL"
        h.lighter.set_liquidity("BTC", "0.1")
        await trio.sleep(10)
        await settle()
        assert min(close_bounds(h)) == D("41370")
        assert closed(h)[0][0] == "SL"
        assert position(h, "BTC") == 0


async def test_nonce_refused_in_the_middle_of_a_burst_loses_and_doubles_no_order(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=0.5, sl_pct=20.0)
    async with running_lighter(settings) as h, trio.open_nursery() as nursery:
        await external(h, "BTC", Side.LONG, "0.1", "45000")
        await external(h, "ETH", Side.SHORT, "1", "3000")
        await external(h, "DOGE", Side.LONG, "1000", "0.2")
        log = TxLog(h.lighter, fail_nonce_at=(1,))  # the second transaction call is refused with 21104
        # The first send stays in flight for a second while the rest of the burst queues behind it.
        h.lighter.delay_next("/api/v1/sendTx", 1.0, n=3)
        h.lighter.delay_next("/api/v1/sendTxBatch", 1.0)
        h.lighter.delay_next("/api/v1/nextNonce", 0.5)  # the re-fetch after the refusal answers late

        await h.mark("BTC", "45300")  # BTC's TP (45225)
        opened = []

        async def operator_entry(symbol: str) -> None:
            opened.append(
                await h.daemon.control.open_position(
                    OpenRequest(
                        symbol=symbol, side=Side.LONG, size_usd=D(25), leverage=5, sl_pct=D(10), rr_ratio=(D(1), D(5))
                    )
                )
            )

        nursery.start_soon(operator_entry, "BTC")
        await settle()
        await h.mark("ETH", "2980")  # ETH's TP (2985)
        nursery.start_soon(operator_entry, "DOGE")
        await settle()
        await h.mark("DOGE", "0.2015")  # DOGE's TP (0.201)
        await trio.sleep(30)
        await settle()

        # Only the refused call fails: the late re-fetch does not hand out a nonce already in flight again.
        assert [c.code for c in log.calls].count(21104) == 1
        assert log.calls[1].code == 21104
        sent = Counter(cid_of(tx) for c in log.calls for tx in c.txs if tx["tx_type"] == TX_CREATE_ORDER)
        accepted = Counter(cid_of(tx) for tx in log.orders())
        assert set(accepted.values()) == {1}  # every order accepted exactly once
        assert set(sent) == set(accepted)  # and none lost
        nonces = [tx["Nonce"] for tx in log.accepted]
        assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))
        # Three closes (one per tranche, each once) and two operator entries.
        assert sorted(c.split("-")[2] for c in accepted) == ["C1", "C1", "C1", "E1", "E1"]
        assert {r["symbol"]: r["close_reason"] for r in h.store.closed_tranches("lighter")} == {
            "BTC": "TP",
            "ETH": "TP",
            "DOGE": "TP",
        }
        assert sorted(o.symbol for o in opened) == ["BTC", "DOGE"]
        assert all(o.status == "FILLED" for o in opened)
        # The account holds exactly what posmon tracks: the two operator entries.
        tracked = {t.symbol: t.qty for t in h.store.open_tranches("lighter")}
        assert tracked == {o.symbol: o.qty for o in opened}
        assert {s: position(h, s) for s in ("BTC", "ETH", "DOGE")} == {
            "BTC": tracked["BTC"],
            "ETH": 0,
            "DOGE": tracked["DOGE"],
        }
        assert h.lighter.account.open_orders() == []


# 50 tranches on the simulator's three markets, each entered 0.6 % further from the first (a new tranche each
# time: tranche_pnl_increment_pct 0.5), all through their stops (20 % away) after one price frame.
BURST = {
    "BTC": (Side.LONG, "45000", "0.01", 17, "32000"),
    "ETH": (Side.SHORT, "3000", "0.1", 17, "4000"),
    "DOGE": (Side.LONG, "0.2", "100", 16, "0.14"),
}


async def test_fifty_exits_under_standard_limits_go_in_one_batch_deepest_through_its_stop_first(
    tmp_path, autojump_clock
):
    from posmon.sim.lighter import STANDARD

    settings = make_settings(
        tmp_path, tp_pct=1.0, sl_pct=20.0, tranche_pnl_increment_pct=0.5, max_tranches_per_symbol_side=20
    )
    async with running_lighter(settings, sim_options={"tier": STANDARD}, lighter_options={"tier": "standard"}) as h:
        for symbol, (side, first, qty, n, _) in BURST.items():
            tick = h.venue.rules[symbol].tick_size
            for k in range(n):
                price = (D(first) * (1 - side.sign * D("0.006") * k)).quantize(tick)
                await external(h, symbol, side, qty, str(price))
        tranches = {t.id: t for t in h.store.open_tranches("lighter")}
        assert len(tranches) == 50
        assert h.lighter.account.open_orders() == []
        log = TxLog(h.lighter)
        requests_before = sum(h.lighter.counters.requests.values())

        start = trio.current_time()
        h.exchange.set_marks({s: D(crash) for s, (*_, crash) in BURST.items()})
        await trio.sleep(120)
        await settle()

        assert h.store.open_tranches("lighter") == []
        assert {s: position(h, s) for s in BURST} == {"BTC": 0, "ETH": 0, "DOGE": 0}
        closed_at = [r["closed_at"] for r in h.store.closed_tranches("lighter")]
        took = max(closed_at) - start
        sends = [c for c in log.calls if c.code == 200]
        batches = [c for c in sends if c.batch]
        # All 50 closes in one sendTxBatch (one of the 60 requests a minute), none refused, none doubled.
        assert [len(c.txs) for c in log.calls] == [50] and batches == sends
        assert h.lighter.counters.requests["POST /api/v1/sendTxBatch"] == 1
        assert h.lighter.counters.requests["POST /api/v1/sendTx"] == 0
        assert h.lighter.counters.http_429 == 0
        assert Counter(cid_of(tx) for tx in log.orders()) == Counter(f"pm-{tid}-C1" for tid in tranches)
        # The tranche furthest through its stop (relative to its entry) is first in the batch.
        marks = {s: D(crash) for s, (*_, crash) in BURST.items()}

        def depth(tid: int) -> D:
            t = tranches[tid]
            return t.side.sign * (t.sl - marks[t.symbol]) / t.entry

        order = [int(cid_of(tx).split("-")[1]) for tx in batches[0].txs]
        assert order == sorted(tranches, key=depth, reverse=True)
        assert took < 2.0, took  # one request, Standard's 300 ms taker delay, the account stream's confirmation
        print(
            f"\n50 closes under Standard: {took:.3f}s on the mock clock, {len(batches)} sendTxBatch of "
            f"{len(batches[0].txs)} txs, {sum(h.lighter.counters.requests.values()) - requests_before} requests"
        )
