"""The store on both backends (``location``: an SQLite file or a PostgreSQL URL): schema and versioning, ids,
atomic decisions, recovery queries, exact round-trips. Tests of SQLite's file take ``sqlite_path``."""

import sqlite3
from dataclasses import replace
from decimal import Decimal as D

import pytest

from posmon.domain.exitplan import NO_PLAN, make_plan
from posmon.domain.orders import OrderRequest, OrderSide, OrderStatus, OrderType, Purpose, Side, WorkingType
from posmon.domain.protection import LocalState, OrderRecord, protection_orders
from posmon.domain.tranche import Tranche
from posmon.store.errors import StoreError
from posmon.store.schema import POSTGRES, SCHEMA_VERSION, schema_version
from posmon.store.store import Changes, Event, Store

NOW = 1_700_000_000.0


@pytest.fixture
def path(location):
    return location


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "state" / "posmon.sqlite"


@pytest.fixture
def store(path):
    s = Store.open(path, clock=lambda: NOW)
    yield s
    s.close()


def tranche(
    id: int,
    *,
    venue: str = "sim",
    symbol: str = "BTCUSDT",
    side: Side = Side.LONG,
    index: int = 0,
    closing: str | None = None,
) -> Tranche:
    tp, sl = (D("45450.0"), D("22500.0")) if side is Side.LONG else (D("44550.0"), D("67500.0"))
    return Tranche(
        id=id,
        venue=venue,
        symbol=symbol,
        side=side,
        index=index,
        entry=D("44850.00"),
        qty=D("0.150"),
        tp=tp,
        sl=sl,
        opened_at=1234.5,
        deadline=None,
        seq=0,
        closing=closing,
    )


def protected(t: Tranche) -> tuple[Tranche, OrderRecord, OrderRecord]:
    return protection_orders(t, prefix="pm", working_type=WorkingType.MARK_PRICE, hedge_mode=True)


def row_count(store: Store, table: str) -> int:
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- opening ----------------------------------------------------------------------------------------------------


def test_open_creates_the_schema_in_wal_mode(sqlite_path):
    store = Store.open(sqlite_path)
    try:
        assert sqlite_path.exists()
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {"tranches", "orders", "events", "meta"} <= set(store.db.table_names())
        assert store.open_tranches() == []
        assert store.events() == []
    finally:
        store.close()


def test_open_creates_the_schema_on_postgresql(pg_url):
    store = Store.open(pg_url)
    try:
        assert schema_version(store.db, POSTGRES) == SCHEMA_VERSION
        assert {"tranches", "orders", "events", "meta", "entries", "unmonitored"} <= set(store.db.table_names())
        # Timestamps are 8-byte floats (PostgreSQL's REAL would be 4), ids 8-byte integers, money text.
        types = dict(
            store.db.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'tranches'"
            ).fetchall()
        )
        assert (types["opened_at"], types["id"], types["qty"]) == ("double precision", "bigint", "text")
        assert store.open_tranches() == []
    finally:
        store.close()


def test_reopening_keeps_the_data(path):
    s = Store.open(path, clock=lambda: NOW)
    t, tp, sl = protected(tranche(s.allocate_tranche_id()))
    s.apply(
        Changes(
            tranches=[t],
            orders=[tp, sl],
            events=[Event("tranche_opened", "sim", "BTCUSDT", "LONG", t.id, {"qty": D("0.150")})],
        )
    )
    s.close()

    s = Store.open(path, clock=lambda: NOW)
    try:
        assert schema_version(s.db.conn, s.dialect) == SCHEMA_VERSION
        assert s.open_tranches() == [t]
        assert s.active_orders([t.id]) == [tp, sl]
        (ev,) = s.events()
        assert (ev["kind"], ev["tranche_id"], ev["data"]) == ("tranche_opened", t.id, {"qty": "0.150"})
    finally:
        s.close()


def test_a_store_from_a_newer_posmon_is_refused(sqlite_path):
    path = sqlite_path
    s = Store.open(path)
    s.apply(Changes(tranches=[tranche(1)]))
    s.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer"):
        Store.open(path)

    conn = sqlite3.connect(path)  # refused, not rewritten
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT count(*) FROM tranches").fetchone()[0] == 1
    finally:
        conn.close()


def test_a_postgresql_store_from_a_newer_posmon_is_refused_untouched(pg_url):
    s = Store.open(pg_url)
    s.apply(Changes(tranches=[tranche(1)]))
    s.db.execute("UPDATE posmon_schema SET version = ?", [SCHEMA_VERSION + 1])
    s.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(pg_url)
    import psycopg

    with psycopg.connect(pg_url) as conn:  # refused, not rewritten
        assert conn.execute("SELECT version FROM posmon_schema").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT count(*) FROM tranches").fetchone()[0] == 1


def test_an_unopenable_path_raises_store_error(tmp_path):
    (tmp_path / "not-a-db").write_bytes(b"this is not an sqlite database, just some bytes" * 100)
    with pytest.raises(StoreError):
        Store.open(tmp_path / "not-a-db")


# --- tranche ids ------------------------------------------------------------------------------------------------


def test_allocate_tranche_id_is_increasing_and_survives_reopen(path):
    s = Store.open(path)
    first = [s.allocate_tranche_id() for _ in range(5)]
    s.close()
    assert first == sorted(set(first))
    s = Store.open(path)
    try:
        later = [s.allocate_tranche_id() for _ in range(3)]
    finally:
        s.close()
    assert later == sorted(set(later))
    assert later[0] > first[-1]


# --- atomic decisions -------------------------------------------------------------------------------------------


def test_an_order_for_an_unknown_tranche_is_rejected(store):
    _, tp, _ = protected(tranche(999))
    with pytest.raises(StoreError, match="999"):
        store.apply(Changes(orders=[tp]))
    assert store.order(tp.client_id) is None


def test_a_failing_apply_writes_nothing_of_that_decision(store, path):
    t0, tp0, sl0 = protected(tranche(1))
    store.apply(Changes(tranches=[t0], orders=[tp0, sl0]))
    events_before = store.events()

    # One decision: a new tranche, a close of tranche 1, orders - one of them for a tranche that does not exist.
    t2, tp2, sl2 = protected(tranche(2, index=1))
    _, orphan, _ = protected(tranche(999))
    with pytest.raises(StoreError):
        store.apply(
            Changes(
                tranches=[t2],
                closed=[(1, "TP", NOW)],
                orders=[tp2, sl2, orphan],
                events=[Event("tranche_opened", "sim", "BTCUSDT", "LONG", 2)],
            )
        )

    assert store.open_tranches() == [t0]  # tranche 2 not written, tranche 1 not closed
    assert store.order(tp2.client_id) is None and store.order(sl2.client_id) is None
    assert store.events() == events_before
    store.close()
    reopened = Store.open(path)  # and nothing of it is on disk either
    try:
        assert reopened.open_tranches() == [t0]
        assert row_count(reopened, "orders") == 2
    finally:
        reopened.close()


def test_apply_writes_tranches_orders_and_events_together(store):
    t, tp, sl = protected(tranche(1))
    store.apply(
        Changes(
            tranches=[t],
            orders=[tp, sl],
            events=[Event("tranche_opened", "sim", "BTCUSDT", "LONG", 1, {"price": D("45000")})],
        )
    )
    assert store.open_tranches() == [t]
    assert store.active_orders([1]) == [tp, sl]
    (ev,) = store.events("tranche_opened")
    assert ev["ts"] == NOW and ev["data"] == {"price": "45000"}
    assert store.events("other") == []


def test_empty_changes_write_nothing(store):
    store.apply(Changes())
    assert row_count(store, "tranches") == row_count(store, "orders") == row_count(store, "events") == 0


def test_apply_upserts_a_changed_tranche_by_id(store):
    t = tranche(1)
    store.apply(Changes(tranches=[t]))
    grown = replace(t, qty=D("0.230"), entry=D("43950"), tp=D("44389.5"), sl=D("21975.0"), seq=3)
    store.apply(Changes(tranches=[grown]))
    assert store.open_tranches() == [grown]


# --- recovery queries -------------------------------------------------------------------------------------------


def test_open_tranches_filters_by_venue_symbol_and_side_and_excludes_closed(store):
    ts = [
        tranche(1),
        tranche(2, index=1),
        tranche(3, side=Side.SHORT),
        tranche(4, symbol="ETHUSDT"),
        tranche(5, venue="aster"),
        tranche(6, index=2),
    ]
    store.apply(Changes(tranches=ts, closed=[(6, "TP", NOW)]))

    def ids(**kw):
        return [t.id for t in store.open_tranches(**kw)]

    assert ids() == [1, 2, 3, 4, 5]
    assert ids(venue="sim") == [1, 2, 3, 4]
    assert ids(venue="sim", symbol="BTCUSDT") == [1, 2, 3]
    assert ids(venue="sim", symbol="BTCUSDT", side=Side.LONG) == [1, 2]
    assert ids(venue="sim", symbol="BTCUSDT", side=Side.SHORT) == [3]
    assert ids(venue="aster", symbol="ETHUSDT") == []
    assert store.position_keys("sim") == [("BTCUSDT", Side.LONG), ("BTCUSDT", Side.SHORT), ("ETHUSDT", Side.LONG)]
    (closed,) = store.closed_tranches("sim")
    assert (closed["id"], closed["close_reason"], closed["closed_at"]) == (6, "TP", NOW)


def test_a_closing_tranche_round_trips_with_its_reason(store, path):
    t = tranche(1, closing="TIMEOUT")
    store.apply(Changes(tranches=[t]))
    assert store.open_tranches() == [t]
    assert store.open_tranches()[0].closing == "TIMEOUT"
    store.apply(Changes(tranches=[replace(t, closing=None)]))
    assert store.open_tranches()[0].closing is None
    store.apply(Changes(tranches=[replace(t, closing="close_command")]))
    store.close()
    s = Store.open(path)
    try:
        assert [x.closing for x in s.open_tranches()] == ["close_command"]
    finally:
        s.close()


def test_a_tranche_round_trips_every_field(store):
    t = Tranche(
        id=7,
        venue="sim",
        symbol="BTCUSDT",
        side=Side.SHORT,
        index=3,
        entry=D("45150.123456"),
        qty=D("0.0800"),
        tp=D("44698.5"),
        sl=D("67725.0"),
        opened_at=1234.25,
        deadline=4834.25,
        seq=11,
        realized_pnl=D("-12.3450"),
        closing="SL",
    )
    store.apply(Changes(tranches=[t]))
    (back,) = store.open_tranches()
    assert back == t
    assert [str(x) for x in (back.entry, back.qty, back.tp, back.sl, back.realized_pnl)] == [
        "45150.123456",
        "0.0800",
        "44698.5",
        "67725.0",
        "-12.3450",
    ]


def test_active_orders_exclude_done_and_other_tranches(store):
    t1, tp1, sl1 = protected(tranche(1))
    t2, tp2, sl2 = protected(tranche(2, index=1))
    done = replace(tp1, state=LocalState.DONE, final_status=OrderStatus.FILLED, filled_qty=D("0.150"))
    canceling = replace(sl1, state=LocalState.CANCELING)
    store.apply(Changes(tranches=[t1, t2], orders=[done, canceling, tp2, sl2]))
    assert store.active_orders([1]) == [canceling]
    assert store.active_orders([1, 2]) == [canceling, tp2, sl2]
    assert store.active_orders([]) == []
    assert store.order(done.client_id) == done  # still there, just not active


def test_an_order_update_replaces_the_row_by_client_id(store):
    t, tp, sl = protected(tranche(1))
    store.apply(Changes(tranches=[t], orders=[tp, sl]))
    live = replace(tp, state=LocalState.LIVE, exchange_id="98765")
    store.apply(Changes(orders=[live]))
    assert store.order(tp.client_id) == live
    assert row_count(store, "orders") == 2


@pytest.mark.parametrize(
    "record",
    [
        OrderRecord(
            request=OrderRequest(
                client_id="pm-1-T3",
                symbol="BTCUSDT",
                side=OrderSide.SELL,
                position_side="LONG",
                type=OrderType.LIMIT,
                qty=D("0.150"),
                price=D("45298.50"),
                reduce_only=False,
                working_type=WorkingType.MARK_PRICE,
            ),
            tranche_id=1,
            purpose=Purpose.TP,
            state=LocalState.LIVE,
            filled_qty=D("0.050"),
            exchange_id="1234567890123",
            final_status=None,
        ),
        OrderRecord(
            request=OrderRequest(
                client_id="pm-1-S3",
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                position_side="BOTH",
                type=OrderType.STOP_MARKET,
                qty=D("1E-3"),
                stop_price=D("0.00001230"),
                reduce_only=True,
                working_type=WorkingType.CONTRACT_PRICE,
            ),
            tranche_id=1,
            purpose=Purpose.SL,
            state=LocalState.DONE,
            filled_qty=D("0.001"),
            exchange_id="",
            final_status=OrderStatus.EXPIRED,
        ),
        OrderRecord(
            request=OrderRequest(
                client_id="pm-1-C4",
                symbol="BTCUSDT",
                side=OrderSide.SELL,
                position_side="SHORT",
                type=OrderType.MARKET,
                qty=D("123456789.123456789"),
            ),
            tranche_id=1,
            purpose=Purpose.CLOSE,
        ),
    ],
    ids=["tp-live-partial", "sl-done-expired", "close-pending"],
)
def test_order_record_round_trips_every_field_exactly(store, record, backend):
    store.apply(Changes(tranches=[tranche(1)], orders=[record]))
    back = store.order(record.client_id)
    assert back == record
    r, b = record.request, back.request
    # Decimals come back with the same digits, not merely equal values.
    pairs = ((r.qty, b.qty), (r.price, b.price), (r.stop_price, b.stop_price), (record.filled_qty, back.filled_qty))
    for sent, got in pairs:
        assert str(sent) == str(got)
    # Stored as text, never as a float.
    if backend == "postgresql":
        assert declared_types(store, "orders", "qty", "price", "stop_price", "filled_qty") == ("text",) * 4
        return
    types = store.db.execute(
        "SELECT typeof(qty), typeof(price), typeof(stop_price), typeof(filled_qty) FROM orders WHERE client_id = ?",
        [record.client_id],
    ).fetchone()
    assert types == tuple("null" if v is None else "text" for v in (r.qty, r.price, r.stop_price, record.filled_qty))


def declared_types(store: Store, table: str, *columns: str) -> tuple[str, ...]:
    """PostgreSQL: each column's declared type (its values cannot have another)."""
    types = dict(
        store.db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [table],
        ).fetchall()
    )
    return tuple(types[c] for c in columns)


def test_tranche_decimals_are_stored_as_text(store, backend):
    store.apply(Changes(tranches=[tranche(1)]))
    if backend == "postgresql":
        types = declared_types(store, "tranches", "entry", "qty", "tp", "sl", "realized_pnl")
    else:
        types = store.db.execute(
            "SELECT typeof(entry), typeof(qty), typeof(tp), typeof(sl), typeof(realized_pnl) FROM tranches"
        ).fetchone()
    assert types == ("text",) * 5
    (raw,) = store.db.execute("SELECT qty FROM tranches").fetchone()
    assert raw == "0.150"


def test_restore_reads_for_every_key_what_each_actor_would_read_itself(store):
    """The start-up read of every key at once equals, key by key, the per-actor reads it replaces."""
    from posmon.domain.tranche import Risk
    from posmon.store.store import PendingEntry, Restored

    btc_long, tp1, sl1 = protected(tranche(1))
    btc_long2, tp2, sl2 = protected(tranche(2, index=1, closing="tp"))
    eth_short, tp3, sl3 = protected(tranche(3, symbol="ETHUSDT", side=Side.SHORT))
    merged, tp4, sl4 = protected(tranche(4, symbol="XRPUSDT", side=Side.SHORT))  # closed; its SL still canceling
    other_venue, tp5, _sl5 = protected(tranche(5, venue="other"))
    done = replace(tp2, state=LocalState.DONE, final_status=OrderStatus.CANCELED)
    store.apply(
        Changes(
            tranches=[btc_long, btc_long2, eth_short, merged, other_venue],
            closed=[(4, "merged", NOW)],
            orders=[
                tp1,
                sl1,
                done,
                sl2,
                tp3,
                sl3,
                replace(tp4, state=LocalState.DONE),
                replace(sl4, state=LocalState.CANCELING),
                tp5,
            ],
        )
    )
    entry = PendingEntry("pm-e-1", 6, "sim", "ETHUSDT", Side.SHORT, D("2"), Risk(tp_pct=D("1"), sl_pct=D("2")))
    store.add_entry(entry)
    store.set_monitored("sim", "ETHUSDT", False)

    restored = store.restore("sim")

    assert list(restored) == store.position_keys("sim")
    assert list(restored) == [("BTCUSDT", Side.LONG), ("ETHUSDT", Side.SHORT), ("XRPUSDT", Side.SHORT)]
    for (symbol, side), r in restored.items():
        tranches = store.open_tranches("sim", symbol, side)
        owned = sorted({*(t.id for t in tranches), *store.tranches_with_active_orders("sim", symbol, side)})
        assert r == Restored(
            tranches=tranches,
            orders=store.active_orders(owned),
            entries=store.pending_entries("sim", symbol, side),
            stopped=symbol in store.unmonitored("sim"),
        )
    assert restored[("ETHUSDT", Side.SHORT)].entries == [entry] and restored[("ETHUSDT", Side.SHORT)].stopped
    btc = restored[("BTCUSDT", Side.LONG)]
    assert btc.orders[0].request.qty is btc.tranches[0].qty  # one Decimal per distinct stored number
    assert [o.client_id for o in restored[("XRPUSDT", Side.SHORT)].orders] == [sl4.client_id]
    assert [o.client_id for o in restored[("BTCUSDT", Side.LONG)].orders] == [
        tp1.client_id,
        sl1.client_id,
        sl2.client_id,
    ]


def test_a_tranches_exit_plan_and_its_state_round_trip_through_both_reads(store):
    plan = make_plan(
        tp_levels=[["1", "30"], ["2", "30"], ["3", "40"]],
        trailing_activation_pct="1",
        trailing_callback_pct="0.5",
        breakeven_after_tp=1,
        breakeven_offset_pct="0.1",
    )
    t = replace(tranche(1), plan=plan, level=1, best_mark=D("45500.5"))
    plain = tranche(2, index=1)
    store.apply(Changes(tranches=[t, plain]))
    assert store.open_tranches() == [t, plain]
    restored = store.restore("sim")[("BTCUSDT", Side.LONG)].tranches
    assert restored == [t, plain]
    assert restored[0].plan is restored[0].plan and restored[1].plan is NO_PLAN


async def test_restore_async_reads_what_restore_reads(store):
    """PostgreSQL's start-up read runs in a worker thread on its own connection: the same rows, the same order."""
    t1, tp1, sl1 = protected(tranche(1))
    t2, tp2, sl2 = protected(tranche(2, symbol="ETHUSDT", side=Side.SHORT))
    store.apply(Changes(tranches=[t1, t2], orders=[tp1, sl1, tp2, sl2]))
    store.set_monitored("sim", "ETHUSDT", False)
    restored = await store.restore_async("sim")
    assert restored == store.restore("sim")
    assert restored[("BTCUSDT", Side.LONG)].orders == [tp1, sl1] and restored[("ETHUSDT", Side.SHORT)].stopped
