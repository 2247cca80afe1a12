"""``posmon demo --pair``: a hedge pair across both embedded simulators; the Aster leg is stopped out on the venue
and posmon closes the Lighter leg at once.

A scenario of its own (the main demo is an Aster-only story): both protocol simulators on loopback, one daemon
watching both (``[daemon] venues``), the operator's ``POST /api/pairs`` through the daemon's control. BTC is
bought on Aster and sold on Lighter in the same base quantity; each leg gets its venue's exit style (TP limit and
stop-market resting on Aster, held by posmon on Lighter). The mark falls on both venues through the Aster leg's
stop (2 %) but not to the Lighter leg's TP (4 %): Aster's own order closes the long, and the pair coordinator
closes the short at market in the same tick. Every clock reads trio's, so under ``MockClock`` (``--fast``) the
~10 scripted seconds take no wall time and narrate the same lines every time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from posmon.actors.messages import Notice
from posmon.api.settings import ApiSettings
from posmon.config import Settings, load_settings
from posmon.control import PairLegRef, PairRequest
from posmon.daemon import Daemon, run_daemon
from posmon.domain.orders import Side
from posmon.notify.kinds import NoticeKind
from posmon.ops.lock import hold_store_lock
from posmon.sim.aster import DEFAULT_SIGNER_PRIVATE_KEY, DEFAULT_USER_ADDRESS, AsterSim, serve_aster_sim
from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.store.errors import StoreError
from posmon.store.store import Store

STORE_NAME = "demo-pair.sqlite"
CONFIG_NAME = "config.toml"
ASTER, LIGHTER = "BTCUSDT", "BTC"
NOTIONAL_USD = Decimal(2000)
# The mark of BTC on both venues (Lighter's a few dollars of basis above), second by second.
MARKS: tuple[tuple[int, Decimal], ...] = (
    (0, Decimal("45000.0")),
    (3, Decimal("44900.0")),
    (4, Decimal("44750.0")),
    (5, Decimal("44600.0")),
    (7, Decimal("44000.0")),  # through the Aster long's stop at 44100.0; the Lighter short's TP is at 43200.0
    (8, Decimal("43950.0")),
)
BASIS = Decimal("5.0")
OPEN_AT, PNL_AT, END_AT = 1, 5, 10
CONFIG_TEMPLATE = """\
# posmon demo --pair: written by the demo beside its store (for `posmon --config ... history`).
[daemon]
venues = ["aster", "lighter"]
store = {store}
hedge_mode = true
log_level = "WARNING"
stale_stream_seconds = 600.0

# Each leg: SL 2 %, TP 4 % (wider than the fall, so the Aster stop is what ends the pair).
[risk]
tp_pct = 4.0
sl_pct = 2.0
instant_tp_enabled = false

[sim]
symbols = ["BTCUSDT"]
trader_enabled = false
"""


@dataclass(frozen=True, slots=True)
class PairDemoLine:
    at: float  # seconds since the demo started
    kind: str  # "market", "operator", "opened", "protected", "pnl", "leg_exit", "other_leg", "pair_closed", ...
    line: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PairDemoResult:
    lines: tuple[PairDemoLine, ...]
    pair_id: int | None
    pair_status: str | None  # in the store at the end
    exits: dict[str, tuple[str, Decimal, float]]  # venue -> (close reason, realized PnL, when)
    flat: bool  # both venues hold nothing at the end
    store_path: Path
    config_path: Path

    @property
    def kinds(self) -> set[str]:
        return {line.kind for line in self.lines}

    @property
    def gap_seconds(self) -> float | None:
        """From the Aster leg's exit to the Lighter leg's close (virtual seconds)."""
        if "aster" not in self.exits or "lighter" not in self.exits:
            return None
        return self.exits["lighter"][2] - self.exits["aster"][2]

    def summary(self) -> str:
        pnl = sum((p for _, p, _ in self.exits.values()), Decimal(0))
        legs = ", ".join(f"{v} {reason} {p:+.4f} USDT" for v, (reason, p, _) in sorted(self.exits.items()))
        gap = self.gap_seconds
        return "\n".join(
            [
                f"pair #{self.pair_id}: {self.pair_status}; legs {legs or 'none closed'}; combined {pnl:+.4f} USDT",
                "the other leg closed "
                + (f"{gap:.3f} s after the stop-out" if gap is not None else "(no leg exited)")
                + f"; both venues {'flat' if self.flat else 'still holding'}",
                f"history: posmon --config {self.config_path} history --venue lighter",
            ]
        )


def prepare(workdir: Path | None) -> tuple[Path, Path]:
    """(store, config) in ``workdir`` (default: a new temporary directory); a directory with a store is refused."""
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="posmon-demo-pair-"))
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"demo directory {workdir}: cannot create it ({exc.strerror or exc})") from exc
    store, config = workdir.resolve() / STORE_NAME, workdir.resolve() / CONFIG_NAME
    if store.exists():
        raise StoreError(f"{store} already holds a demo's store; give the demo a new directory (--dir)")
    quoted = '"' + str(store).replace("\\", "\\\\").replace('"', '\\"') + '"'
    config.write_text(CONFIG_TEMPLATE.format(store=quoted), encoding="utf-8")
    return store, config


def mark_at(t: int) -> Decimal:
    return [m for at, m in MARKS if at <= t][-1]


@asynccontextmanager
async def _simulators(
    settings: Settings, clock: Callable[[], float]
) -> AsyncIterator[tuple[list[Any], SimExchange, SimExchange, Any, tuple[str, str]]]:
    """Both protocol simulators on loopback and a venue adapter open on each: (venues, Aster's exchange,
    Lighter's exchange, the LighterSim, (Aster URL, Lighter URL))."""
    from posmon.exchange.aster.settings import AsterSettings
    from posmon.exchange.aster.venue import AsterVenue
    from posmon.exchange.lighter.settings import LighterSettings
    from posmon.exchange.lighter.signer import LighterSigner
    from posmon.exchange.lighter.venue import LighterVenue
    from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
    from posmon.sim.lighter import credentials as cred

    aster_x = SimExchange(rules_for((ASTER,)), hedge_mode=True, clock=clock)
    lighter_x = build_exchange(clock=clock)
    lighter_sim = LighterSim(lighter_x, clock=clock, tx_clock=clock)
    aster_x.set_marks({ASTER: mark_at(0)})
    lighter_x.set_marks({LIGHTER: mark_at(0) + BASIS})
    async with trio.open_nursery() as nursery:
        a_rest, a_ws = await nursery.start(serve_aster_sim, AsterSim(aster_x, clock=clock))
        l_rest, l_ws = await nursery.start(serve_lighter_sim, lighter_sim)
        aster = AsterSettings.from_config(
            {
                "rest_url": a_rest,
                "ws_url": a_ws,
                "auth": "v3",
                "signer_private_key": DEFAULT_SIGNER_PRIVATE_KEY,
                "user": DEFAULT_USER_ADDRESS,
                "symbols": [ASTER],
            },
            {},
        )
        lighter = LighterSettings.from_config(
            {
                "rest_url": l_rest,
                "ws_url": l_ws,
                "account_index": cred.DEFAULT_ACCOUNT_INDEX,
                "api_key_index": cred.DEFAULT_API_KEY_INDEX,
                "chain_id": cred.DEFAULT_CHAIN_ID,
                "api_private_key": cred.DEFAULT_API_PRIVATE_KEY,
                "symbols": [LIGHTER],
            },
            {},
        )
        signer = LighterSigner(
            url=l_rest,
            private_key=lighter.api_private_key,
            chain_id=lighter.chain_id,
            api_key_index=lighter.api_key_index,
            account_index=cred.DEFAULT_ACCOUNT_INDEX,
        )
        async with (
            AsterVenue.open(aster, clock=clock, sign_in_thread=False) as aster_venue,
            LighterVenue.open(
                lighter,
                signer=signer,
                client_id_prefix=settings.daemon.client_id_prefix,
                clock=clock,
                sign_in_thread=False,
            ) as lighter_venue,
        ):
            yield [aster_venue, lighter_venue], aster_x, lighter_x, lighter_sim, (a_rest, l_rest)
        nursery.cancel_scope.cancel()


class _Story:
    """The narration: lines timed from the demo's start, printed as they are made."""

    def __init__(self, emit: Callable[[str], None], started: float) -> None:
        self.emit, self.started = emit, started
        self.lines: list[PairDemoLine] = []
        self.exits: dict[str, tuple[str, Decimal, float]] = {}

    @property
    def kinds(self) -> set[str]:
        return {line.kind for line in self.lines}

    def elapsed(self) -> float:
        return trio.current_time() - self.started

    def say(self, kind: str, text: str, **data: Any) -> None:
        at = self.elapsed()
        line = f"[{at:5.1f} s] {text}"
        self.lines.append(PairDemoLine(at, kind, line, data))
        self.emit(line)

    def notice(self, n: Notice) -> None:
        """The daemon's notices this story tells: each leg's exit, the pair's reaction, the pair closed."""
        if n.kind == NoticeKind.EXIT:
            reason, pnl = str(n.data.get("reason", "?")), Decimal(str(n.data.get("pnl", "0")))
            self.exits[n.venue] = (reason, pnl, self.elapsed())
            if n.venue == "aster":
                self.say(
                    "leg_exit",
                    f"aster: the long leg's stop-market SL filled on the venue (reason {reason}), PnL {pnl:+.4f} USDT",
                    venue=n.venue,
                    reason=reason,
                )
            else:
                self.say(
                    "other_leg",
                    f"{n.venue}: posmon closed the short leg at market (reason {reason}), PnL {pnl:+.4f} USDT",
                    venue=n.venue,
                    reason=reason,
                )
        elif n.kind == NoticeKind.PAIR_CLOSED or (
            n.kind == NoticeKind.PAIR_LEG_EXIT and "pair_leg_exit" not in self.kinds
        ):
            self.say(n.kind, f"posmon: {n.text}", pair_id=n.data.get("pair_id"))  # the first leg's exit: the cause
        elif n.needs_human:
            self.say("alert", f"ALERT {n.venue} {n.symbol}: {n.text}")


async def run_pair_demo(workdir: Path | None = None, *, emit: Callable[[str], None] = print) -> PairDemoResult:
    """Run the pair scenario, narrating through ``emit``; the result is read from the daemon and its store."""
    store_path, config_path = prepare(workdir)
    settings = load_settings(config_path, env={})  # the demo's own file only
    epoch, origin = time.time(), trio.current_time()

    def clock() -> float:
        return epoch + (trio.current_time() - origin)

    story = _Story(emit, trio.current_time())
    notices_send, notices_recv = trio.open_memory_channel[Notice](1000)

    async def listen() -> None:
        async for notice in notices_recv:
            story.notice(notice)

    with hold_store_lock(store_path):
        store = Store.open(store_path, clock=clock)
        try:
            async with trio.open_nursery() as nursery, _simulators(settings, clock) as sims:
                venues, aster_x, lighter_x, lighter_sim, (a_url, l_url) = sims
                nursery.start_soon(listen)
                daemon: Daemon = await nursery.start(
                    lambda task_status: run_daemon(
                        settings,
                        venues,
                        store,
                        clock=clock,
                        notice_listeners=[notices_send],
                        api=ApiSettings(host="127.0.0.1", port=0),
                        freeze_heap=False,
                        task_status=task_status,
                    )
                )
                emit(f"posmon demo --pair: Aster-protocol simulator at {a_url}, Lighter-protocol simulator at {l_url}")
                emit("one daemon watches both (venues = aster, lighter); each leg: SL 2 %, TP 4 %")
                story.started = trio.current_time()
                pair_id = await _play(daemon, story, aster_x, lighter_x, lighter_sim)
                status = _pair_status(store, pair_id)
                flat = not any(p.qty for p in aster_x.engine.positions()) and not any(
                    p.qty for p in lighter_x.engine.positions()
                )
                nursery.cancel_scope.cancel()
        finally:
            store.close()
    return PairDemoResult(tuple(story.lines), pair_id, status, dict(story.exits), flat, store_path, config_path)


def _pair_status(store: Store, pair_id: int | None) -> str | None:
    if pair_id is None:
        return None
    row = store.db.execute("SELECT status FROM pairs WHERE id = ?", [pair_id]).fetchone()
    return None if row is None else str(row[0])


async def _play(
    daemon: Daemon, story: _Story, aster_x: SimExchange, lighter_x: SimExchange, lighter_sim: Any
) -> int | None:
    """Second by second: both venues' marks, the operator's pair at ``OPEN_AT``, the PnL at ``PNL_AT``."""
    assert daemon.control is not None
    control, pair_id = daemon.control, None
    for t in range(END_AT + 1):
        await trio.sleep_until(story.started + t)
        mark = mark_at(t)
        if t and mark != mark_at(t - 1):
            story.say("market", f"market: BTC {mark} on Aster, {mark + BASIS} on Lighter", mark=str(mark))
        aster_x.set_marks({ASTER: mark})
        lighter_x.set_marks({LIGHTER: mark + BASIS})
        lighter_sim.flush()
        if t == OPEN_AT:
            pair_id = await _open(control, story, aster_x)
        elif t == PNL_AT and pair_id is not None:
            await _pnl(control, story, pair_id)
    await trio.sleep(0.5)  # the last tick's reactions
    return pair_id


async def _open(control: Any, story: _Story, aster_x: SimExchange) -> int | None:
    story.say(
        "operator",
        'you: POST /api/pairs {"legs": [{"venue": "aster", "symbol": "BTC/USDT:USDT"}, {"venue": "lighter"}], '
        f'"side": "LONG", "notional_usd": {NOTIONAL_USD}}}',
    )
    request = PairRequest(
        (PairLegRef("aster", "BTC/USDT:USDT"), PairLegRef("lighter")), Side.LONG, notional_usd=NOTIONAL_USD
    )
    answer = await control.open_pair(request)
    pair_id = int(answer["id"] if isinstance(answer, dict) else answer.id)
    with trio.move_on_after(5):
        while (view := _view(await control.pairs(), pair_id)) is None or view.status != "open":  # noqa: ASYNC110 (the control has no event to wait on)
            await trio.sleep(0.1)
    view = _view(await control.pairs(), pair_id)
    if view is None:
        story.say("alert", f"pair #{pair_id} did not open")
        return pair_id
    legs = "; ".join(f"{leg.venue} {leg.symbol} {leg.side} {leg.qty} @ {leg.entry}" for leg in view.legs)
    story.say("opened", f"posmon: pair #{pair_id} open, both entries filled: {legs}", legs=len(view.legs))
    resting = sorted(f"{o.type.value} {o.stop_price or o.price}" for o in aster_x.engine.open_orders(ASTER))
    story.say(
        "protected",
        f"aster leg: TP and SL rest on the venue ({', '.join(resting)}); lighter leg: TP and SL held by posmon "
        "(its exits are market orders it sends itself)",
        resting=len(resting),
    )
    return pair_id


async def _pnl(control: Any, story: _Story, pair_id: int) -> None:
    view = _view(await control.pairs(), pair_id)
    if view is None:
        return
    legs = ", ".join(f"{leg.venue} {leg.pnl:+.2f}" for leg in view.legs)
    story.say("pnl", f"posmon: pair #{pair_id} PnL {legs}: combined {view.pnl:+.2f} USDT (the hedge holds)")


def _view(views: list[Any], pair_id: int) -> Any:
    return next((v for v in views if v.id == pair_id), None)


__all__ = ["PairDemoLine", "PairDemoResult", "run_pair_demo"]
