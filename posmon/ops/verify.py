"""Reading both sides for a comparison: the store's book of a venue and the exchange's account."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from posmon.config import Settings
from posmon.domain.orders import SymbolRules
from posmon.exchange.errors import OutcomeUnknown
from posmon.exchange.venue import Venue
from posmon.ops.gaps import Account, Book, Gap, find_gaps
from posmon.store.store import Store


@dataclass(frozen=True, slots=True)
class Snapshot:
    book: Book
    account: Account
    rules: dict[str, SymbolRules]
    gaps: list[Gap]


def load_book(store: Store, venue: str) -> Book:
    """Open tranches and every active order record of the venue (closed tranches' leftovers included)."""
    tranches = store.open_tranches(venue)
    rows = store.db.execute(
        "SELECT DISTINCT tranche_id FROM orders WHERE venue = ? AND state != 'DONE'", [venue]
    ).fetchall()
    ids = sorted({t.id for t in tranches} | {r[0] for r in rows})
    return Book(tranches, store.active_orders(ids), frozenset(store.unmonitored(venue)))


async def fetch_account(venue: Venue, request_timeout: float) -> Account:
    """Every position and open order of the account; a venue that does not answer in time is unreachable."""
    try:
        with trio.fail_after(request_timeout):
            positions = await venue.positions()
        with trio.fail_after(request_timeout):
            orders = await venue.open_orders()
    except trio.TooSlowError as exc:
        raise OutcomeUnknown(f"no answer within {request_timeout}s", request="positions/openOrders") from exc
    return Account(positions, orders)


async def take_snapshot(
    settings: Settings, venue: Venue, store: Store, *, rules: dict[str, SymbolRules] | None = None
) -> Snapshot:
    """Read the exchange first, then the store: with the daemon stopped neither moves in between."""
    timeout = settings.daemon.request_timeout_seconds
    if rules is None:
        with trio.fail_after(timeout):
            rules = await venue.load_rules()
    account = await fetch_account(venue, timeout)
    book = load_book(store, venue.name)
    gaps = find_gaps(
        book,
        account,
        prefix=settings.daemon.client_id_prefix,
        hedge_mode=settings.daemon.hedge_mode,
        emulated_exits=venue.traits.emulated_exits,
        rules=rules,
        max_hold_of=lambda s: settings.risk_for(s).max_hold_seconds,
    )
    return Snapshot(book, account, rules, gaps)
