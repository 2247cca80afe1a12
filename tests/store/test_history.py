"""The store's history: closed tranches keep exit price, quantity, reason, PnL and fees; filters; the v3 upgrade."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D

import orjson
import pytest
from sqlite_utils import Database

from posmon.domain.orders import Side
from posmon.store.history import parse_limit, parse_since
from posmon.store.schema import MIGRATIONS, SCHEMA_VERSION
from posmon.store.store import Store
from tests.store.history_fixtures import T0, write_history


@pytest.fixture
def store(location):
    s = Store.open(location)
    write_history(s)
    yield s
    s.close()


def test_a_closed_tranche_keeps_exit_price_quantity_reason_pnl_fees_and_hold(store):
    (t,) = [t for t in store.history().tranches if t.id == 2]
    assert (t.symbol, t.side, t.exit_reason) == ("BTCUSDT", Side.SHORT, "SL")
    assert (t.entry, t.exit_price, t.qty) == (D("45000"), D("45900"), D("0.1"))
    assert (t.realized_pnl, t.fees, t.net_pnl) == (D("-90.0"), D("1.9"), D("-91.9"))
    assert (t.opened_at, t.closed_at, t.hold_seconds) == (T0 + 100, T0 + 1300, 1200.0)


def test_history_is_sorted_by_closing_time_and_totals_what_it_lists(store):
    h = store.history()
    assert [t.id for t in h.tranches] == [1, 2, 3, 4]
    assert h.realized_pnl == D("45.0") - D("90.0") + D("30") - D("10")
    assert h.fees == D("6.1")
    assert h.net_pnl == h.realized_pnl - D("6.1")


def test_filters_since_symbol_and_limit_keeps_the_most_recent(store):
    assert [t.id for t in store.history(since=T0 + 1300).tranches] == [2, 3, 4]  # at or after
    assert [t.id for t in store.history(symbol="ETHUSDT").tranches] == [3, 4]
    assert [t.id for t in store.history(limit=2).tranches] == [3, 4]
    assert [t.id for t in store.history(symbol="BTCUSDT", limit=1).tranches] == [2]
    assert store.history(since=T0 + 10_000).tranches == []
    assert store.history(venue="aster").tranches == []


def test_open_tranches_are_not_history(store, tmp_path):
    from posmon.domain.tranche import Tranche
    from posmon.store.store import Changes

    t = Tranche(5, "sim", "BTCUSDT", Side.LONG, 1, D("1"), D("1"), D("2"), D("0.5"), T0)
    store.apply(Changes(tranches=[t]))
    assert 5 not in [t.id for t in store.history().tranches]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1765000000", 1_765_000_000.0),
        ("1765000000.5", 1_765_000_000.5),
        ("2025-12-06", 1_764_979_200.0),
        ("2025-12-06T05:46:40", T0),
        ("2025-12-06T05:46:40Z", T0),
        ("2025-12-06T06:46:40+01:00", T0),
    ],
)
def test_since_takes_unix_seconds_or_iso_8601_utc_unless_an_offset_is_given(text, expected):
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "", "-5", "2025-13-01", "1e9", "2025-12-06T25:00"])
def test_since_refuses_what_is_not_a_time_saying_what_is_expected(text):
    with pytest.raises(ValueError, match="unix seconds"):
        parse_since(text)


@pytest.mark.parametrize("text", ["0", "-1", "x", "100001"])
def test_limit_refuses_what_is_not_a_row_count(text):
    with pytest.raises(ValueError, match="integer from 1"):
        parse_limit(text)


def _v2_store(path) -> None:
    """A store as posmon wrote it before v3: a TP-closed tranche (qty 0, no exit price) and its fill events."""
    conn = sqlite3.connect(path, isolation_level=None)
    db = Database(conn)
    for version, migration in enumerate(MIGRATIONS[:2], start=1):
        migration(db)
        conn.execute(f"PRAGMA user_version = {version}")
    row = dict(venue="sim", symbol="BTCUSDT", side="LONG", idx=0, entry="45000", tp="45450", sl="22500")
    conn.execute(
        "INSERT INTO tranches (id, venue, symbol, side, idx, entry, qty, tp, sl, opened_at, seq, realized_pnl, "
        "status, close_reason, closed_at) VALUES (1, :venue, :symbol, :side, :idx, :entry, '0', :tp, :sl, "
        f"{T0}, 2, '47.5', 'closed', 'TP', {T0 + 60})",
        row,
    )
    conn.execute(
        "INSERT INTO tranches (id, venue, symbol, side, idx, entry, qty, tp, sl, opened_at, seq, realized_pnl, "
        f"status) VALUES (2, :venue, :symbol, :side, 1, :entry, '0.2', :tp, :sl, {T0}, 2, '0', 'open')",
        row,
    )
    for qty, price in (("0.06", "45450"), ("0.04", "45500")):  # two partial fills of the TP
        data = orjson.dumps({"client_id": "pm-1-T1", "purpose": "TP", "qty": qty, "price": price}).decode()
        conn.execute(
            "INSERT INTO events (ts, venue, symbol, side, tranche_id, kind, data) "
            "VALUES (?, 'sim', 'BTCUSDT', 'LONG', 1, 'fill', ?)",
            [T0 + 60, data],
        )
    conn.close()


def test_a_v2_store_upgrades_in_place_and_recovers_exit_prices_from_its_journal(tmp_path):
    path = tmp_path / "old.sqlite"
    _v2_store(path)
    store = Store.open(path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        (t,) = store.history().tranches
        assert (t.id, t.exit_reason, t.realized_pnl) == (1, "TP", D("47.5"))
        assert t.qty == D("0.10")
        assert t.exit_price == D("45470")  # (0.06 x 45450 + 0.04 x 45500) / 0.1
        assert t.fees == 0  # never recorded before v3
        (open_t,) = store.open_tranches()
        assert (open_t.id, open_t.qty, open_t.exit_qty, open_t.fees) == (2, D("0.2"), 0, 0)
    finally:
        store.close()
    reopened = Store.open(path)  # applied once: opening again changes nothing
    try:
        assert reopened.history().tranches[0].exit_price == D("45470")
    finally:
        reopened.close()
