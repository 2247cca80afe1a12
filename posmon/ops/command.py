"""``posmon verify`` and ``posmon protect``: open each configured venue account and the store, compare, repair.

With ``[daemon] venues`` every account is checked (or repaired) against its own venue, one after the other, and
the report is grouped per venue; ``venue`` narrows it to one. One account's venue being unreachable never stops
the others being checked.

Exit codes (``ExitCode``): OK clean (protect: clean afterwards), FAILED gaps found on any venue (protect: gaps
left, or a dry run with something to do), CONFIG configuration or store error, UNREACHABLE an exchange
unreachable (it wins over FAILED: that account was not checked), STORE the store is held by another process (a
running daemon). ``protect`` must never run while the daemon trades the same store/account.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import orjson
import trio

from posmon.cli.exit_codes import ExitCode
from posmon.config import ConfigError, Settings
from posmon.config import Venue as VenueName
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

# Opens ``settings.daemon.venue``: each account is handed settings naming its own venue (``_account_settings``).
VenueOpener = Callable[[Settings, trio.Nursery], AbstractAsyncContextManager[Venue]]


@dataclass(frozen=True, slots=True)
class Result:
    """One account's part of a report: its exit code, its text block and its JSON document."""

    code: int
    text: str
    doc: dict[str, Any]


def _venues(settings: Settings, only: str | None) -> list[str]:
    """The venue accounts to act on: every one configured, or the one ``only`` names."""
    names = list(settings.daemon.venue_names)
    if only is None:
        return names
    if only.lower() not in names:
        raise ConfigError(f"--venue: invalid value {only!r}; expected one of {', '.join(names)} (daemon.venues)")
    return [only.lower()]


def _account_settings(settings: Settings, name: str) -> Settings:
    """The settings as a daemon running only ``name`` sees them."""
    daemon = dataclasses.replace(settings.daemon, venue=cast(VenueName, name), venues=())
    return dataclasses.replace(settings, daemon=daemon)


def _in_venue_mode(settings: Settings, venue: Venue) -> Settings:
    """A venue with only one position mode (Lighter: one-way) says so; otherwise the configuration does (as the
    daemon keeps positions)."""
    hedge = venue.traits.hedge_mode(settings.daemon.hedge_mode)
    if hedge == settings.daemon.hedge_mode:
        return settings
    return dataclasses.replace(settings, daemon=dataclasses.replace(settings.daemon, hedge_mode=hedge))


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


def _refusal(group: BaseException) -> tuple[int, str] | None:
    """The exit code and the one line for an error an operator can act on; None for anything else."""
    exc = _unwrap(group)
    if isinstance(exc, ConfigError | StoreError | AuthRejected):
        return ExitCode.CONFIG, f"{'configuration error' if isinstance(exc, ConfigError) else 'error'}: {exc}"
    if isinstance(exc, StoreLocked):
        return ExitCode.STORE, f"{exc}; stop the daemon before running protect"
    if isinstance(exc, VenueError | OSError | trio.TooSlowError):
        return ExitCode.UNREACHABLE, f"exchange unreachable: {exc}"
    return None


async def _guarded(run: Callable[[], Any], err: TextIO) -> int:
    """Run a command, turning the errors an operator can act on into exit codes."""
    try:
        return await run()
    except BaseException as group:  # nurseries wrap what we map below; anything else is re-raised
        refusal = _refusal(group)
        if refusal is None:
            raise
        print(f"posmon: {refusal[1]}", file=err)
        return refusal[0]


async def _each_account(
    settings: Settings,
    names: list[str],
    command: str,
    one: Callable[[Settings], Awaitable[Result]],
    err: TextIO,
) -> list[Result]:
    """``one`` for each venue account in turn; an account whose venue refuses gets a block saying so and the
    others are still checked (a store error stops them all: it is every account's)."""
    results = []
    for name in names:
        try:
            results.append(await one(_account_settings(settings, name)))
        except BaseException as group:
            refusal = _refusal(group)
            if refusal is None or isinstance(_unwrap(group), StoreError):
                raise
            code, line = refusal
            print(f"posmon: {name}: {line}", file=err)
            text = f"posmon {command}: {name} account not checked: {line}"
            results.append(Result(code, text, {"venue": name, "clean": False, "error": line}))
    return results


def _overall(results: list[Result]) -> int:
    """An account that could not be checked decides the exit code; else gaps anywhere do."""
    codes = [r.code for r in results]
    return next((c for c in codes if c not in (ExitCode.OK, ExitCode.FAILED)), max(codes, default=ExitCode.OK))


def _emit_accounts(out: TextIO, as_json: bool, results: list[Result], head: dict[str, Any]) -> None:
    """Several accounts: their blocks one after the other, or one document listing them under ``accounts``."""
    doc = {**head, "clean": all(r.doc.get("clean") for r in results), "accounts": [r.doc for r in results]}
    _emit(out, as_json, "\n\n".join(r.text for r in results), doc)


def _emit(out: TextIO, as_json: bool, text: str, doc: dict[str, Any]) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json else text, file=out)


async def verify_command(
    settings: Settings,
    *,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    opener: VenueOpener = open_venue,
    venue: str | None = None,
) -> int:
    """Compare each account's exchange with the store and report; ``OK`` clean, ``FAILED`` on any gap."""
    out, err = out or sys.stdout, err or sys.stderr

    async def one(account: Settings, in_use: bool) -> Result:
        async with _session(account, opener, write=False) as (opened, store):
            account = _in_venue_mode(account, opened)
            snap = await take_snapshot(account, opened, store)
        return Result(
            ExitCode.FAILED if snap.gaps else ExitCode.OK,
            report.render_verify(opened.name, snap, hedge_mode=account.daemon.hedge_mode, in_use=in_use),
            report.verify_json(opened.name, snap, in_use=in_use),
        )

    async def run() -> int:
        names = _venues(settings, venue)
        in_use = store_in_use(settings.daemon.store)
        if len(names) == 1:
            result = await one(_account_settings(settings, names[0]), in_use)
            _emit(out, as_json, result.text, result.doc)
            return result.code
        results = await _each_account(settings, names, "verify", lambda a: one(a, in_use), err)
        _emit_accounts(out, as_json, results, {"daemon_running": in_use})
        return _overall(results)

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
    venue: str | None = None,
) -> int:
    """Repair every gap (adopt, protect, cancel orphans, close empty tranches) of each account; ``dry_run``
    changes nothing."""
    out, err = out or sys.stdout, err or sys.stderr

    async def one(account: Settings) -> Result:
        async with _session(account, opener, write=not dry_run) as (opened, store):
            return await _protect(
                _in_venue_mode(account, opened),
                opened,
                store,
                dry_run=dry_run,
                clock=clock,
                confirm_seconds=confirm_seconds,
            )

    async def run() -> int:
        names = _venues(settings, venue)
        lock = nullcontext() if dry_run else hold_store_lock(settings.daemon.store)
        with lock:  # one store for every account: held once, for all of them
            if len(names) == 1:
                result = await one(_account_settings(settings, names[0]))
                _emit(out, as_json, result.text, result.doc)
                return result.code
            results = await _each_account(settings, names, "protect", one, err)
        _emit_accounts(out, as_json, results, {"dry_run": dry_run})
        return _overall(results)

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
    clock: Callable[[], float],
    confirm_seconds: float,
) -> Result:
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
        return Result(ExitCode.FAILED if snap.gaps else ExitCode.OK, "\n".join(lines), doc)
    outcome = await carry_out(plan, store, venue, request_timeout=d.request_timeout_seconds, clock=clock)
    after = await take_snapshot(settings, venue, store, rules=snap.rules)
    lines += report.outcome_lines(outcome)
    lines += ["after the repair:", *report.gap_lines(after.gaps)]
    doc |= {"outcome": outcome.to_json(), "remaining": [g.to_json() for g in after.gaps], "clean": not after.gaps}
    return Result(ExitCode.FAILED if after.gaps else ExitCode.OK, "\n".join(lines), doc)
