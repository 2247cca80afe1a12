"""The specification's scenarios over the Lighter protocol.

The daemon trades the Lighter-protocol simulator over loopback HTTP and websockets, every transaction signed
by lighter-sdk's Go signer. Exits are posmon's own (no TP/SL order ever rests on Lighter): a triggered exit is a
reduce-only MARKET order whose price is its worst acceptable price, ``close_slippage_pct`` through the mark.
Positions are opened from outside the daemon (the simulator's external entry, seen on the account stream) or
through the operator interface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import trio

from posmon.control import OpenRequest, Sizing
from posmon.domain.orders import Side
from posmon.exchange.lighter.client_ids import ClientIds
from posmon.sim.lighter.errors import LighterError
from tests.harness import make_settings, running_lighter, settle

TX_CREATE_ORDER = 14
TX_UPDATE_LEVERAGE = 20
MARKET_ID = {"ETH": 0, "BTC": 1, "DOGE": 3}


@dataclass
class Submitted:
    """One sendTx / sendTxBatch as the simulator received it: the decoded tx_infos and its answer code."""

    batch: bool
    txs: list[dict[str, Any]]
    code: int


class TxLog:
    """Every transaction call reaching the simulator, in arrival order (wraps ``LighterSim.submit``).

    ``fail_nonce_at``: call numbers (0-based) that the simulator answers 21104 (invalid nonce) whatever their
    nonce, as when another sender used the key in between.
    """

    def __init__(self, sim: Any, *, fail_nonce_at: tuple[int, ...] = ()) -> None:
        self.calls: list[Submitted] = []
        submit = sim.submit

        def recording(raw: Any, *, batch: bool) -> dict[str, Any]:
            infos = []
            for tx_type, info in raw:
                tx = json.loads(info)
                tx["tx_type"] = tx_type
                infos.append(tx)
            if len(self.calls) in fail_nonce_at:
                sim.force_nonce_error(1)
            try:
                answer = submit(raw, batch=batch)
            except LighterError as exc:
                self.calls.append(Submitted(batch, infos, exc.code))
                raise
            self.calls.append(Submitted(batch, infos, 200))
            return answer

        sim.submit = recording

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [tx for c in self.calls if c.code == 200 for tx in c.txs]

    def orders(self) -> list[dict[str, Any]]:
        return [tx for tx in self.accepted if tx["tx_type"] == TX_CREATE_ORDER]


def cid_of(tx: dict[str, Any], prefix: str = "pm") -> str:
    return ClientIds(prefix).client_id(tx["ClientOrderIndex"])


def closed(h, symbol: str = "BTC") -> dict[int, tuple[str, D]]:
    return {
        r["idx"]: (r["close_reason"], D(r["realized_pnl"]))
        for r in h.store.closed_tranches("lighter")
        if r["symbol"] == symbol
    }


def position(h, symbol: str) -> D:
    """The signed position the simulated Lighter account holds (LONG +, SHORT -)."""
    return h.lighter.account.signed_position(symbol)


async def external(h, symbol: str, side: Side, qty: str, price: str) -> None:
    """Another program on the account opens/extends a position at ``price`` (the mark moved there first)."""
    h.exchange.set_mark(symbol, D(price))
    h.lighter.external_entry(symbol, side, D(qty))
    await settle()


def assert_nothing_rests_on_lighter(h) -> None:
    assert h.lighter.account.open_orders() == []


async def test_external_long_is_protected_by_posmon_and_its_take_profit_closes_it(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0)) as h:
        log = TxLog(h.lighter)
        await external(h, "BTC", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches("lighter")
        assert (t.symbol, t.side, t.qty, t.entry, t.tp, t.sl) == (
            "BTC",
            Side.LONG,
            D("0.1"),
            D("45000"),
            D("45450"),
            D("42750"),
        )
        assert log.calls == [] and h.lighter.counters.requests["POST /api/v1/sendTx"] == 0  # no TP/SL orders
        assert_nothing_rests_on_lighter(h)

        await h.mark("BTC", "45449.9")
        assert closed(h) == {} and position(h, "BTC") == D("0.1")
        await h.mark("BTC", "45460")

        assert closed(h) == {0: ("TP", D("46"))}
        assert position(h, "BTC") == 0 and h.store.open_tranches("lighter") == []
        [close] = log.orders()
        assert cid_of(close) == f"pm-{t.id}-C1"
        assert (
            close["MarketIndex"],
            close["IsAsk"],
            close["ReduceOnly"],
            close["Type"],
            close["TimeInForce"],
            close["BaseAmount"],
            close["Price"],
        ) == (1, 1, 1, 1, 0, 10000, 450054)  # 45005.4: 1 % under
        assert_nothing_rests_on_lighter(h)


async def test_external_short_is_closed_at_its_stop_loss_with_a_bounded_buy(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0)) as h:
        log = TxLog(h.lighter)
        await external(h, "ETH", Side.SHORT, "1", "3000")
        [t] = h.store.open_tranches("lighter")
        assert (t.side, t.tp, t.sl) == (Side.SHORT, D("2970"), D("3150"))
        assert_nothing_rests_on_lighter(h)

        await h.mark("ETH", "3149.99")
        assert closed(h, "ETH") == {}
        await h.mark("ETH", "3160")

        assert closed(h, "ETH") == {0: ("SL", D("-160"))}
        assert position(h, "ETH") == 0
        [close] = log.orders()
        assert (close["MarketIndex"], close["IsAsk"], close["ReduceOnly"], close["BaseAmount"], close["Price"]) == (
            0,
            0,
            1,
            10000,
            319160,
        )  # a BUY may pay at most 1 % above the mark: 3191.60


async def test_tranche_past_max_hold_seconds_is_closed_at_its_deadline(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0, max_hold_seconds=60)) as h:
        await external(h, "BTC", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches("lighter")
        assert t.deadline == t.opened_at + 60
        await trio.sleep(59)
        await settle()
        assert closed(h) == {} and position(h, "BTC") == D("0.1")
        await trio.sleep(2)
        await settle()

        assert closed(h) == {0: ("TIMEOUT", D(0))}
        assert position(h, "BTC") == 0


async def test_three_markets_are_monitored_and_closed_independently(tmp_path, autojump_clock):
    settings = make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0, max_hold_seconds=3600)
    async with running_lighter(settings) as h:
        await external(h, "BTC", Side.LONG, "0.1", "45000")  # TP 45450
        await external(h, "ETH", Side.SHORT, "1", "3000")  # SL 3150
        await external(h, "DOGE", Side.LONG, "1000", "0.2")  # TP 0.202, SL 0.19, held at most an hour
        held = {t.symbol: t.side for t in h.store.open_tranches("lighter")}
        assert held == {"BTC": Side.LONG, "ETH": Side.SHORT, "DOGE": Side.LONG}
        assert_nothing_rests_on_lighter(h)

        await h.mark("BTC", "45500")
        assert {r["symbol"]: r["close_reason"] for r in h.store.closed_tranches("lighter")} == {"BTC": "TP"}
        assert (position(h, "BTC"), position(h, "ETH"), position(h, "DOGE")) == (0, -1, 1000)

        await h.mark("ETH", "3200")
        await h.mark("DOGE", "0.2015")  # under its TP: stays
        assert {r["symbol"]: r["close_reason"] for r in h.store.closed_tranches("lighter")} == {
            "BTC": "TP",
            "ETH": "SL",
        }
        assert (position(h, "ETH"), position(h, "DOGE")) == (0, 1000)

        await trio.sleep(3601)
        await settle()
        assert {r["symbol"]: r["close_reason"] for r in h.store.closed_tranches("lighter")} == {
            "BTC": "TP",
            "ETH": "SL",
            "DOGE": "TIMEOUT",
        }
        assert closed(h, "DOGE") == {0: ("TIMEOUT", D("1.5"))}  # (0.2015 - 0.2) x 1000
        assert position(h, "DOGE") == 0 and h.store.open_tranches("lighter") == []
        assert_nothing_rests_on_lighter(h)


async def test_external_fill_growing_a_position_extends_its_tranche(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, tp_pct=1.0, sl_pct=5.0)) as h:
        await external(h, "BTC", Side.LONG, "0.1", "45000")
        await external(h, "BTC", Side.LONG, "0.05", "44550")  # within the tranche increment: same tranche
        [t] = h.store.open_tranches("lighter")
        assert (t.qty, t.entry, t.tp) == (D("0.15"), D("44850"), D("45298.5"))
        assert_nothing_rests_on_lighter(h)
        await h.mark("BTC", "45300")
        assert closed(h) == {0: ("TP", D("67.5"))}  # (45300 - 44850) x 0.15
        assert position(h, "BTC") == 0


async def test_operator_entry_and_close_are_signed_transactions_with_the_intended_effect(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path, tp_pct=1.0, sl_pct=50.0)) as h:
        log = TxLog(h.lighter)
        result = await h.daemon.control.open_position(
            OpenRequest(symbol="DOGE", side=Side.LONG, size_usd=D(25), leverage=5, sl_pct=D(3), rr_ratio=(D(1), D(2)))
        )
        await settle()

        # $25 notional of DOGE at 0.2: 125 DOGE ($5 margin at 5x), SL 3 % and TP 6 % from the fill.
        assert (result.status, result.qty, result.entry_price) == ("FILLED", D(125), D("0.2"))
        assert (result.sl, result.tp) == (D("0.194"), D("0.212"))
        assert result.sizing == Sizing(D(25), 5, D(5), D("0.750"))  # 125 x (0.2 - 0.194) at risk
        # The leverage went first, as its own signed transaction: initial margin fraction 10,000 / 5, cross.
        leverage, entry = log.accepted[:2]
        assert (leverage["tx_type"], leverage["MarketIndex"]) == (TX_UPDATE_LEVERAGE, 3)
        assert (leverage["InitialMarginFraction"], leverage["MarginMode"]) == (2000, 0)
        assert leverage["Nonce"] + 1 == entry["Nonce"]
        assert h.lighter.imf[3] == 2000 and h.exchange.engine.leverage("DOGE") == 5
        assert [e[0] for e in h.exchange.engine.history][-2:] == ["leverage", "order"]
        assert log.orders() == [entry]
        assert entry["Sig"] and isinstance(entry["Sig"], str)  # signed by the SDK's Go signer
        assert (entry["AccountIndex"], entry["ApiKeyIndex"]) == (
            h.venue.settings.account_index,
            h.venue.settings.api_key_index,
        )
        assert cid_of(entry) == result.client_id
        assert (
            entry["MarketIndex"],
            entry["IsAsk"],
            entry["ReduceOnly"],
            entry["Type"],
            entry["TimeInForce"],
            entry["BaseAmount"],
            entry["Price"],
        ) == (3, 0, 0, 1, 0, 125, 202000)  # worst price 0.202
        assert position(h, "DOGE") == D(125)
        [t] = h.store.open_tranches("lighter")
        assert (t.id, t.qty, t.entry, t.sl, t.tp) == (result.tranche_id, D(125), D("0.2"), D("0.194"), D("0.212"))
        assert_nothing_rests_on_lighter(h)

        await h.daemon.control.close("DOGE")
        await settle()
        assert closed(h, "DOGE") == {0: ("MANUAL", D(0))}
        assert position(h, "DOGE") == 0
        _, close = log.orders()
        assert cid_of(close) == f"pm-{t.id}-C1"
        assert (close["IsAsk"], close["ReduceOnly"], close["BaseAmount"], close["Price"]) == (1, 1, 125, 198000)
        assert close["Nonce"] == entry["Nonce"] + 1  # nonces counted locally, in order
        assert [c.code for c in log.calls] == [200, 200, 200]
        assert h.lighter.counters.requests["GET /api/v1/nextNonce"] == 1  # fetched once, at start


async def test_operator_entry_reaches_its_stop_and_posmon_closes_it(tmp_path, autojump_clock):
    async with running_lighter(make_settings(tmp_path)) as h:
        result = await h.daemon.control.open_position(
            OpenRequest(symbol="DOGE", side=Side.LONG, size_usd=D(25), leverage=5, sl_pct=D(3), rr_ratio=(D(1), D(2)))
        )
        await settle()
        await h.mark("DOGE", "0.1941")
        assert h.store.closed_tranches("lighter") == [] and position(h, "DOGE") == result.qty
        await h.mark("DOGE", "0.1939")
        assert closed(h, "DOGE") == {0: ("SL", (D("0.1939") - D("0.2")) * 125)}
        assert position(h, "DOGE") == 0
