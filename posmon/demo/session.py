"""Running the demo: the Aster-protocol simulator on loopback, posmon trading it, the script driving both.

The simulator outlives the daemon, so the script can stop posmon mid-run and start it again on the same store
against the same account, as a deploy or a crash would. Every clock (the exchange's, the daemon's, the store's)
reads trio's, so under ``trio.testing.MockClock(autojump_threshold=0)`` the whole run takes no wall time and
unfolds the same way every time.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
import webbrowser
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import trio

from posmon.actors.messages import Notice
from posmon.api.settings import ApiSettings
from posmon.config import Settings, load_settings
from posmon.daemon import Daemon, run_daemon
from posmon.demo import script
from posmon.demo.narration import DemoResult, Happening, Narrator, price, qty
from posmon.domain.protection import parse_client_order_id
from posmon.ops.lock import hold_store_lock
from posmon.sim.aster import DEFAULT_SIGNER_PRIVATE_KEY, DEFAULT_USER_ADDRESS, AsterSim, serve_aster_sim
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.store.errors import StoreError
from posmon.store.store import Store
from posmon.venues import open_venue

STORE_NAME = "demo.sqlite"
CONFIG_NAME = "config.toml"


def prepare(workdir: Path | None) -> tuple[Path, Path]:
    """(store, config) paths in ``workdir`` (default: a new temporary directory, kept for ``posmon history``).

    A demo starts from an empty store: a directory that already holds one is refused (``StoreError``).
    """
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="posmon-demo-"))
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"demo directory {workdir}: cannot create it ({exc.strerror or exc})") from exc
    store, config = workdir.resolve() / STORE_NAME, workdir.resolve() / CONFIG_NAME
    if store.exists():
        raise StoreError(f"{store} already holds a demo's store; give the demo a new directory (--dir)")
    config.write_text(script.config_text(store), encoding="utf-8")
    return store, config


def risk_line(settings: Settings) -> str:
    """The demo's risk settings in one line: the defaults, then what each symbol changes."""
    r = settings.risk
    parts = [
        f"risk: TP {r.tp_pct} %, SL {r.sl_pct} %, a new tranche at -{r.tranche_pnl_increment_pct} %, "
        f"at most {r.max_tranches_per_symbol_side} tranches"
    ]
    names = {
        "tp_pct": "TP {} %",
        "sl_pct": "SL {} %",
        "max_tranches_per_symbol_side": "at most {} tranches",
        "max_hold_seconds": "max hold {} s",
        "instant_tp_enabled": "instant TP {}",
    }
    for symbol, own in sorted(settings.risk_symbols.items()):
        changed = [
            names[f].format({True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v)
            for f in names
            if (v := getattr(own, f)) != getattr(r, f)
        ]
        parts.append(f"{symbol}: {', '.join(changed)}")
    return "; ".join(parts)


@dataclass(slots=True)
class _Running:
    daemon: Daemon
    stopped: trio.Event


async def _start(
    nursery: trio.Nursery,
    settings: Settings,
    store: Store,
    api: ApiSettings,
    clock: Callable[[], float],
    listener: trio.MemorySendChannel[Notice],
) -> _Running:
    """posmon itself, as ``posmon run`` starts it: the venue opened, the daemon and its API started."""
    stopped = trio.Event()

    async def life(task_status: trio.TaskStatus[Daemon]) -> None:
        try:
            async with trio.open_nursery() as inner, open_venue(settings, inner, env={}, clock=clock) as venue:
                await run_daemon(
                    settings,
                    venue,
                    store,
                    clock=clock,
                    notice_listeners=[listener],
                    api=api,
                    freeze_heap=False,
                    task_status=task_status,
                )
        finally:
            stopped.set()

    daemon: Daemon = await nursery.start(life)
    return _Running(daemon, stopped)


def _resting_legs(exchange: SimExchange, prefix: str) -> Counter[tuple[int, str]]:
    legs: Counter[tuple[int, str]] = Counter()
    for o in exchange.engine.open_orders():
        parsed = parse_client_order_id(prefix, o.client_id)
        if parsed is not None:
            legs[(parsed[0], parsed[1].name)] += 1
    return legs


def _fully_protected(store: Store, venue: str, exchange: SimExchange, prefix: str) -> tuple[list[int], int]:
    """(open tranche ids, how many of them have exactly one TP and one SL resting on the exchange)."""
    legs = _resting_legs(exchange, prefix)
    ids = [t.id for t in store.open_tranches(venue)]
    return ids, sum(1 for i in ids if legs[(i, "TP")] == 1 and legs[(i, "SL")] == 1)


def _protected_ever(store: Store, venue: str) -> int:
    """Tranches that got both a TP and an SL order (the orders table keeps every order posmon placed)."""
    row = store.db.execute(
        "SELECT COUNT(*) FROM (SELECT tranche_id FROM orders WHERE venue = ? GROUP BY tranche_id "
        "HAVING SUM(purpose = 'T') > 0 AND SUM(purpose = 'S') > 0)",
        [venue],
    ).fetchone()
    return int(row[0])


def _open_dashboard(url: str, emit: Callable[[str], None]) -> None:
    """Open ``url`` in a graphical browser; a console one (lynx, w3m) would take over the terminal, so none."""
    graphical = sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    try:
        opened = bool(graphical) and webbrowser.open(url, new=2)
    except webbrowser.Error:
        opened = False
    if not opened:
        emit(f"no graphical browser here: open {url} yourself")


async def run_demo(
    workdir: Path | None = None,
    *,
    emit: Callable[[str], None] = print,
    open_browser: bool = False,
) -> DemoResult:
    """Run the scripted session, narrating through ``emit``; the result is read from the demo's store."""
    store_path, config_path = prepare(workdir)
    settings = load_settings(config_path, env={})  # the demo's own file only: no environment override
    epoch, origin = time.time(), trio.current_time()

    def clock() -> float:
        return epoch + (trio.current_time() - origin)

    rules = rules_for(script.SYMBOLS)
    exchange = SimExchange(rules, hedge_mode=settings.daemon.hedge_mode, clock=clock)
    exchange.set_marks({s: script.mark_at(s, Decimal(0), rules[s].tick_size) for s in script.SYMBOLS})
    prefix = settings.daemon.client_id_prefix
    venue = settings.daemon.venue
    started = trio.current_time()
    narrator = Narrator(
        venue,
        rules,
        max_tranches=lambda s: settings.risk_for(s).max_tranches_per_symbol_side,
        increment_pct=lambda s: settings.risk_for(s).tranche_pnl_increment_pct,
        elapsed=lambda: trio.current_time() - started,
        emit=emit,
    )
    notices_send, notices_recv = trio.open_memory_channel[Notice](1000)

    async def listen() -> None:
        async for notice in notices_recv:
            narrator.observe()
            if notice.needs_human:
                narrator.say(Happening.ALERT, notice.symbol, notice.side, notice.text)

    with hold_store_lock(store_path):
        store = Store.open(store_path, clock=clock)
        try:
            async with trio.open_nursery() as nursery:
                rest_url, ws_url = await nursery.start(serve_aster_sim, AsterSim(exchange, clock=clock))
                settings = dataclasses.replace(
                    settings,
                    aster={
                        "rest_url": rest_url,
                        "ws_url": ws_url,
                        "auth": "v3",
                        "signer_private_key": DEFAULT_SIGNER_PRIVATE_KEY,
                        "user": DEFAULT_USER_ADDRESS,
                    },
                )
                nursery.start_soon(listen)
                api = ApiSettings(host="127.0.0.1", port=0)
                running = await _start(nursery, settings, store, api, clock, notices_send)
                narrator.store = store
                url = running.daemon.api_url
                api = dataclasses.replace(api, port=int(url.rsplit(":", 1)[1])) if url else api  # same on restart
                emit(f"posmon demo: the embedded Aster-protocol simulator at {rest_url} (real HTTP and websockets)")
                emit(risk_line(settings))
                dashboard = f"{url}/" if url else None
                emit(f"dashboard: {dashboard}")
                if open_browser and dashboard:
                    await trio.to_thread.run_sync(_open_dashboard, dashboard, emit, abandon_on_cancel=True)
                    await trio.sleep(2)  # let the page load before the story starts
                started = trio.current_time()
                store, running = await _drive(
                    narrator, exchange, settings, store, running, api, clock, notices_send, nursery, started
                )
                narrator.observe()
                open_ids, covered = _fully_protected(store, venue, exchange, prefix)
                closed = tuple(store.closed_tranches(venue))
                result = DemoResult(
                    events=tuple(narrator.events),
                    protected=_protected_ever(store, venue),
                    open_tranches=len(open_ids),
                    open_fully_protected=covered,
                    exits=dict(Counter(r["close_reason"] for r in closed)),
                    realized_pnl=sum((Decimal(r["realized_pnl"]) for r in closed), Decimal(0)),
                    closed=closed,
                    store_path=store_path,
                    config_path=config_path,
                    dashboard_url=dashboard,
                    rules=rules,
                )
                running.daemon.stop()
                await running.stopped.wait()
                nursery.cancel_scope.cancel()
        finally:
            store.close()
    return result


async def _drive(
    narrator: Narrator,
    exchange: SimExchange,
    settings: Settings,
    store: Store,
    running: _Running,
    api: ApiSettings,
    clock: Callable[[], float],
    listener: trio.MemorySendChannel[Notice],
    nursery: trio.Nursery,
    started: float,
) -> tuple[Store, _Running]:
    """Step through the script: marks every tick, then that moment's entries, spikes and restart steps."""
    rules = exchange.engine.rules
    venue, prefix = settings.daemon.venue, settings.daemon.client_id_prefix
    before_restart: tuple[list[int], int] = ([], 0)
    t = script.TICK_SECONDS
    while t <= script.END_AT:
        await trio.sleep_until(started + float(t))
        marks = {s: script.mark_at(s, t, rules[s].tick_size) for s in script.SYMBOLS}
        for trade in (True, False):
            batch = {s: p for s, p in marks.items() if script.trades_at(s, t) is trade}
            if batch:
                exchange.set_marks(batch, trade=trade)
        for m in script.MOVES:
            if m.at == t:
                narrator.say(Happening.MOVE, m.symbol, "", m.note.format(mark=price(marks[m.symbol], rules[m.symbol])))
        for e in script.ENTRIES:
            if e.at == t:
                verb = "buys" if e.side.opening_order_side.value == "BUY" else "sells"
                narrator.say(
                    Happening.ENTRY,
                    e.symbol,
                    e.side.value,
                    f"another program {verb} {qty(e.qty, rules[e.symbol])} at market (mark "
                    f"{price(marks[e.symbol], rules[e.symbol])})",
                )
                exchange.external_entry(e.symbol, e.side, e.qty)
        if t == script.RESTART_DOWN_AT:
            narrator.observe()
            ids, covered = _fully_protected(store, venue, exchange, prefix)
            resting = sum(_resting_legs(exchange, prefix).values())
            narrator.say(
                Happening.STOPPED,
                "",
                "",
                f"posmon stops (SIGTERM, as for a deploy) with {len(ids)} tranches open; their {resting} TP/SL "
                "orders stay on the exchange and keep protecting",
            )
            running.daemon.stop()
            await running.stopped.wait()
            narrator.store = None
            store.close()
            before_restart = (ids, exchange.orders_sent)
        elif t == script.RESTART_UP_AT:
            store = Store.open(store.path, clock=clock)
            narrator.say(
                Happening.STARTED,
                "",
                "",
                f"posmon starts again on the same store: {len(store.open_tranches(venue))} tranches to pick up",
            )
            running = await _start(nursery, settings, store, api, clock, listener)
            narrator.store = store
            narrator.observe()
        elif t == script.RESTART_CHECK_AT:
            narrator.observe()
            ids, covered = _fully_protected(store, venue, exchange, prefix)
            kept = [i for i in before_restart[0] if i in ids]
            gone = {r["id"]: r["close_reason"] for r in store.closed_tranches(venue) if r["id"] in before_restart[0]}
            meanwhile = ", ".join(f"#{i} {reason}" for i, reason in gone.items())
            placed = exchange.orders_sent - before_restart[1]
            narrator.say(
                Happening.RESTART,
                "",
                "",
                f"picked up where it stopped: {len(kept)} tranches kept under the same ids"
                + (f" ({meanwhile} booked from the exchange)" if meanwhile else "")
                + f", {covered} of {len(ids)} with exactly one TP and one SL, {placed} orders placed again",
                data={"before": before_restart[0], "open": ids, "closed": gone, "covered": covered, "placed": placed},
            )
        t += script.TICK_SECONDS
    return store, running
