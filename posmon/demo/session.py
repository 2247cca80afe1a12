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
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import trio

from posmon.actors.messages import Notice
from posmon.api.settings import ApiSettings
from posmon.config import Settings, load_settings
from posmon.control import ControlError, OpenRequest
from posmon.daemon import Daemon, run_daemon
from posmon.demo import script
from posmon.demo.narration import DemoResult, Happening, Narrator, price, qty
from posmon.domain.orders import Side
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
        if own.plan != r.plan:
            changed.append(own.plan.describe())
        if own.max_notional_per_symbol != r.max_notional_per_symbol:
            changed.append(f"at most {own.max_notional_per_symbol} USDT notional")
        parts.append(f"{symbol}: {', '.join(changed)}")
    return "; ".join(parts)


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


@dataclass(slots=True)
class _Session:
    """One demo run's world: the simulated account (which outlives posmon), posmon, its store and the narrator."""

    settings: Settings
    exchange: SimExchange
    store: Store
    narrator: Narrator
    clock: Callable[[], float]
    nursery: trio.Nursery
    notices: trio.MemorySendChannel[Notice]
    api: ApiSettings = field(default_factory=lambda: ApiSettings(host="127.0.0.1", port=0))
    daemon: Daemon | None = None
    stopped: trio.Event = field(default_factory=trio.Event)
    before_restart: tuple[list[int], int] = ([], 0)  # (open tranche ids, orders sent) when posmon stopped

    @property
    def venue(self) -> str:
        return self.settings.daemon.venue

    @property
    def prefix(self) -> str:
        return self.settings.daemon.client_id_prefix

    async def start(self) -> None:
        """posmon itself, as ``posmon run`` starts it: the venue opened, the daemon and its API started."""
        stopped = self.stopped = trio.Event()
        settings, store = self.settings, self.store

        async def life(task_status: trio.TaskStatus[Daemon]) -> None:
            try:
                async with (
                    trio.open_nursery() as inner,
                    open_venue(settings, inner, env={}, clock=self.clock) as venue,
                ):
                    await run_daemon(
                        settings,
                        venue,
                        store,
                        clock=self.clock,
                        notice_listeners=[self.notices],
                        api=self.api,
                        freeze_heap=False,
                        task_status=task_status,
                    )
            finally:
                stopped.set()

        self.daemon = await self.nursery.start(life)
        if self.daemon.api_url:  # a restart serves the dashboard at the same address
            self.api = dataclasses.replace(self.api, port=int(self.daemon.api_url.rsplit(":", 1)[1]))
        self.narrator.store = store

    async def stop(self) -> None:
        """Stop posmon as SIGTERM does (nothing sent on the way out) and close its store."""
        if self.daemon is not None:
            self.daemon.stop()
            await self.stopped.wait()
            self.daemon = None
        self.narrator.store = None
        self.store.close()

    async def play(self, started: float) -> None:
        """Step through the script: the marks every tick, then that moment's moves, entries and restart steps."""
        t = script.TICK_SECONDS
        while t <= script.END_AT:
            await trio.sleep_until(started + float(t))
            self.step(t)
            for e in script.OPERATOR_ENTRIES:
                if e.at == t:
                    await self.operator_entry(e)
            if t == script.RESTART_DOWN_AT:
                await self.go_down()
            elif t == script.RESTART_UP_AT:
                await self.come_back()
            elif t == script.RESTART_CHECK_AT:
                self.check_restart()
            # Stop moves and ladder levels send no notice: look at the store once the tick has been acted on.
            await trio.sleep_until(started + float(t + script.LOOK_AFTER))
            self.narrator.observe()
            t += script.TICK_SECONDS
        self.narrator.observe()

    def step(self, t: Decimal) -> None:
        rules, say = self.exchange.engine.rules, self.narrator.say
        marks = {s: script.mark_at(s, t, rules[s].tick_size) for s in script.SYMBOLS}
        for trade in (True, False):
            batch = {s: p for s, p in marks.items() if script.trades_at(s, t) is trade}
            if batch:
                self.exchange.set_marks(batch, trade=trade)
        for m in script.MOVES:
            if m.at == t:
                say(Happening.MOVE, m.symbol, "", m.note.format(mark=price(marks[m.symbol], rules[m.symbol])))
        for e in script.ENTRIES:
            if e.at == t:
                verb = "buys" if e.side is Side.LONG else "sells"
                mark = price(marks[e.symbol], rules[e.symbol])
                text = f"another program {verb} {qty(e.qty, rules[e.symbol])} at market (mark {mark})"
                say(Happening.ENTRY, e.symbol, e.side.value, text)
                self.exchange.external_entry(e.symbol, e.side, e.qty)

    async def operator_entry(self, e: script.OperatorEntry) -> None:
        """The operator's ``posmon open`` (the daemon's control, as the API and CLI reach it): opened and narrated
        from the store, or refused in one line with nothing sent."""
        assert self.daemon is not None and self.daemon.control is not None
        self.narrator.say(Happening.OPERATOR, e.symbol, e.side.value, e.command())
        request = OpenRequest(e.symbol, e.side, e.size_usd, e.leverage, e.sl_pct, (Decimal(1), e.reward), e.plan_fields)
        sent = self.exchange.orders_sent
        try:
            await self.daemon.control.open_position(request)
        except ControlError as exc:
            why = str(exc).split(" (a ", 1)[0]  # the limit and the figure, without the request repeated
            self.narrator.say(
                Happening.REFUSED,
                e.symbol,
                e.side.value,
                f"{why}: HTTP {exc.status}, nothing sent",
                data={"field": exc.field, "status": exc.status, "sent": self.exchange.orders_sent - sent},
            )
            return
        self.narrator.observe()

    async def go_down(self) -> None:
        self.narrator.observe()
        ids, _ = _fully_protected(self.store, self.venue, self.exchange, self.prefix)
        resting = sum(_resting_legs(self.exchange, self.prefix).values())
        self.narrator.say(
            Happening.STOPPED,
            "",
            "",
            f"posmon stops (SIGTERM, as for a deploy) with {len(ids)} tranches open; their {resting} TP/SL orders "
            "stay on the exchange and keep protecting",
        )
        await self.stop()
        self.before_restart = (ids, self.exchange.orders_sent)

    async def come_back(self) -> None:
        self.store = Store.open(self.store.path, clock=self.clock)
        held = len(self.store.open_tranches(self.venue))
        self.narrator.say(
            Happening.STARTED, "", "", f"posmon starts again on the same store: {held} tranches to pick up"
        )
        await self.start()
        self.narrator.observe()

    def check_restart(self) -> None:
        """What the restarted posmon made of the store and the exchange: same tranches, nothing doubled."""
        self.narrator.observe()
        before, sent = self.before_restart
        ids, covered = _fully_protected(self.store, self.venue, self.exchange, self.prefix)
        kept = [i for i in before if i in ids]
        gone = {r["id"]: r["close_reason"] for r in self.store.closed_tranches(self.venue) if r["id"] in before}
        meanwhile = ", ".join(f"#{i} {reason}" for i, reason in gone.items())
        placed = self.exchange.orders_sent - sent
        self.narrator.say(
            Happening.RESTART,
            "",
            "",
            f"picked up where it stopped: {len(kept)} tranches kept under the same ids"
            + (f" ({meanwhile} booked from the exchange)" if meanwhile else "")
            + f", {covered} of {len(ids)} with exactly one TP and one SL, {placed} orders placed again",
            data={"before": before, "open": ids, "closed": gone, "covered": covered, "placed": placed},
        )

    def result(self, store_path: Path, config_path: Path) -> DemoResult:
        open_ids, covered = _fully_protected(self.store, self.venue, self.exchange, self.prefix)
        return DemoResult(
            events=tuple(self.narrator.events),
            protected=_protected_ever(self.store, self.venue),
            open_tranches=len(open_ids),
            open_fully_protected=covered,
            history=self.store.history(venue=self.venue),
            store_path=store_path,
            config_path=config_path,
            dashboard_url=_dashboard(self.daemon),
            rules=self.exchange.engine.rules,
        )


def _dashboard(daemon: Daemon | None) -> str | None:
    return f"{daemon.api_url}/" if daemon is not None and daemon.api_url else None


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
    started = trio.current_time()  # the script's second 0, set again once everything runs
    narrator = Narrator(
        settings.daemon.venue,
        rules,
        max_tranches=lambda s: settings.risk_for(s).max_tranches_per_symbol_side,
        increment_pct=lambda s: settings.risk_for(s).tranche_pnl_increment_pct,
        elapsed=lambda: trio.current_time() - started,
        emit=emit,
        prefix=settings.daemon.client_id_prefix,
    )
    notices_send, notices_recv = trio.open_memory_channel[Notice](1000)

    async def listen() -> None:
        async for notice in notices_recv:
            narrator.observe()
            if notice.needs_human:
                narrator.say(Happening.ALERT, notice.symbol, notice.side, notice.text)

    with hold_store_lock(store_path):
        async with trio.open_nursery() as nursery:
            rest_url, ws_url = await nursery.start(serve_aster_sim, AsterSim(exchange, clock=clock))
            aster = {
                "rest_url": rest_url,
                "ws_url": ws_url,
                "auth": "v3",
                "signer_private_key": DEFAULT_SIGNER_PRIVATE_KEY,
                "user": DEFAULT_USER_ADDRESS,
            }
            session = _Session(
                dataclasses.replace(settings, aster=aster),
                exchange,
                Store.open(store_path, clock=clock),
                narrator,
                clock,
                nursery,
                notices_send,
            )
            try:
                nursery.start_soon(listen)
                await session.start()
                dashboard = _dashboard(session.daemon)
                emit(f"posmon demo: the embedded Aster-protocol simulator at {rest_url} (real HTTP and websockets)")
                emit(risk_line(settings))
                emit(f"dashboard: {dashboard}")
                if open_browser and dashboard:
                    await trio.to_thread.run_sync(_open_dashboard, dashboard, emit, abandon_on_cancel=True)
                    await trio.sleep(2)  # let the page load before the story starts
                started = trio.current_time()
                await session.play(started)
                result = session.result(store_path, config_path)
            finally:
                with trio.CancelScope(shield=True):
                    await session.stop()
            nursery.cancel_scope.cancel()
    return result
