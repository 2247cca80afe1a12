"""``posmon verify`` and ``posmon protect``: open the configured venue and the store, compare, repair.

Exit codes (``ExitCode``): OK clean (protect: clean afterwards), FAILED gaps found (protect: gaps left, or a dry
run with something to do), CONFIG configuration or store error, UNREACHABLE exchange unreachable, STORE the store
is held by another process (a running daemon). ``protect`` must never run while the daemon trades the same
store/account.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, TextIO

import orjson
import trio

from posmon.cli.exit_codes import ExitCode
from posmon.config import ConfigError, Settings
from posmon.daemon import risk_of
from posmon.domain.orders import WorkingType
from posmon.exchange.errors import AuthRejected, VenueError
from posmon.exchange.venue import Venue
from posmon.ops import report
from posmon.ops.lock import StoreLocked, hold_store_lock, store_in_use
from posmon.ops.plan import PlanContext, plan_repairs
from posmon.ops.protect import carry_out
from posmon.ops.verify import Snapshot, take_snapshot
from posmon.store.errors import StoreError
from posmon.store.location import is_url
from posmon.store.store import Store
from posmon.venues import open_venue

VenueOpener = Callable[[Settings, trio.Nursery], AbstractAsyncContextManager[Venue]]


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _open_store(settings: Settings, *, write: bool) -> Store:
    """The daemon's store; a read that finds no store file reads an empty one instead of creating it."""
    path = settings.daemon.store
    if not write and path != ":memory:" and not is_url(path) and not Path(path).exists():
        return Store.open(":memory:")
    return Store.open(path)


@asynccontextmanager
async def _session(settings: Settings, opener: VenueOpener, *, write: bool) -> AsyncIterator[tuple[Venue, Store]]:
    store = _open_store(settings, write=write)
    try:
        async with trio.open_nursery() as nursery:
            async with opener(settings, nursery) as venue:
                yield venue, store
            nursery.cancel_scope.cancel()  # an embedded simulator stops with us
    finally:
        store.close()


async def _guarded(run: Callable[[], Any], err: TextIO) -> int:
    """Run a command, turning the errors an operator can act on into exit codes."""
    try:
        return await run()
    except BaseException as group:  # nurseries wrap what we map below; anything else is re-raised
        exc = _unwrap(group)
        if isinstance(exc, ConfigError | StoreError | AuthRejected):
            print(f"posmon: {'configuration error' if isinstance(exc, ConfigError) else 'error'}: {exc}", file=err)
            return ExitCode.CONFIG
        if isinstance(exc, StoreLocked):
            print(f"posmon: {exc}; stop the daemon before running protect", file=err)
            return ExitCode.STORE
        if isinstance(exc, VenueError | OSError | trio.TooSlowError):
            print(f"posmon: exchange unreachable: {exc}", file=err)
            return ExitCode.UNREACHABLE
        raise


def _emit(out: TextIO, as_json: bool, text: str, doc: dict[str, Any]) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json else text, file=out)


async def verify_command(
    settings: Settings,
    *,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    opener: VenueOpener = open_venue,
) -> int:
    """Compare the exchange with the store and report; ``OK`` clean, ``FAILED`` on any gap."""
    out, err = out or sys.stdout, err or sys.stderr

    async def run() -> int:
        in_use = store_in_use(settings.daemon.store)
        async with _session(settings, opener, write=False) as (venue, store):
            snap = await take_snapshot(settings, venue, store)
        _emit(
            out,
            as_json,
            report.render_verify(venue.name, snap, hedge_mode=settings.daemon.hedge_mode, in_use=in_use),
            report.verify_json(venue.name, snap, in_use=in_use),
        )
        return ExitCode.FAILED if snap.gaps else ExitCode.OK

    return await _guarded(run, err)


async def protect_command(
    settings: Settings,
    *,
    dry_run: bool = False,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    opener: VenueOpener = open_venue,
    clock: Callable[[], float] = time.time,
    confirm_seconds: float = 2.0,
) -> int:
    """Repair every gap (adopt, protect, cancel orphans, close empty tranches); ``dry_run`` changes nothing."""
    out, err = out or sys.stdout, err or sys.stderr

    async def run() -> int:
        lock = nullcontext() if dry_run else hold_store_lock(settings.daemon.store)
        with lock:
            async with _session(settings, opener, write=not dry_run) as (venue, store):
                return await _protect(
                    settings,
                    venue,
                    store,
                    dry_run=dry_run,
                    as_json=as_json,
                    out=out,
                    clock=clock,
                    confirm_seconds=confirm_seconds,
                )

    if not as_json:
        print(f"posmon protect: {report.ONE_WRITER}", file=err)
    return await _guarded(run, err)


async def _confirmed(settings: Settings, venue: Venue, store: Store, confirm_seconds: float) -> Snapshot:
    """Position gaps count only when a second look shows them too: a fill may still be in flight (the
    daemon's own rule before it adopts or shrinks)."""
    first = await take_snapshot(settings, venue, store)
    if confirm_seconds <= 0 or not any(g.kind.position_level for g in first.gaps):
        return first
    await trio.sleep(confirm_seconds)
    second = await take_snapshot(settings, venue, store, rules=first.rules)
    seen = {(g.kind, g.symbol, g.side) for g in first.gaps if g.kind.position_level}
    gaps = [g for g in second.gaps if not g.kind.position_level or (g.kind, g.symbol, g.side) in seen]
    return Snapshot(second.book, second.account, second.rules, gaps)


def _provisional_ids(store: Store) -> Callable[[], int]:
    """Tranche ids for a dry run: the ones the store would hand out next, without taking them."""
    row = store.db.execute("SELECT value FROM meta WHERE key = 'next_tranche_id'").fetchone()
    return itertools.count(int(row[0]) if row else 1).__next__


async def _protect(
    settings: Settings,
    venue: Venue,
    store: Store,
    *,
    dry_run: bool,
    as_json: bool,
    out: TextIO,
    clock: Callable[[], float],
    confirm_seconds: float,
) -> int:
    d = settings.daemon
    snap = await _confirmed(settings, venue, store, confirm_seconds)
    ctx = PlanContext(
        venue=venue.name,
        prefix=d.client_id_prefix,
        hedge_mode=d.hedge_mode,
        rules=snap.rules,
        risk_of=lambda s: risk_of(settings, s),
        working_type_of=lambda s: WorkingType(settings.risk_for(s).working_type),
        now=clock(),
        new_id=_provisional_ids(store) if dry_run else store.allocate_tranche_id,
        emulated_exits=venue.traits.emulated_exits,
        taken=lambda cid: store.order(cid) is not None,
    )
    plan = plan_repairs(snap.gaps, snap.book, snap.account, ctx)
    head = f"posmon protect: {report.summary(venue.name, snap, hedge_mode=d.hedge_mode)}"
    lines = [head, *report.gap_lines(snap.gaps), *report.plan_lines(plan, dry_run=dry_run)]
    doc: dict[str, Any] = {
        "venue": venue.name,
        "dry_run": dry_run,
        "gaps": [g.to_json() for g in snap.gaps],
        "plan": report.plan_json(plan),
    }
    if dry_run or not plan.actions:
        doc["clean"] = not snap.gaps
        _emit(out, as_json, "\n".join(lines), doc)
        return ExitCode.FAILED if snap.gaps else ExitCode.OK
    outcome = await carry_out(plan, store, venue, request_timeout=d.request_timeout_seconds, clock=clock)
    after = await take_snapshot(settings, venue, store, rules=snap.rules)
    lines += report.outcome_lines(outcome)
    lines += ["after the repair:", *report.gap_lines(after.gaps)]
    doc |= {"outcome": outcome.to_json(), "remaining": [g.to_json() for g in after.gaps], "clean": not after.gaps}
    _emit(out, as_json, "\n".join(lines), doc)
    return ExitCode.FAILED if after.gaps else ExitCode.OK
