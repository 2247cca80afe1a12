"""Telling the demo as it happens: what the daemon did, read from its store, one line per event.

The narrator never guesses from the script: it diffs the store's tranches after every notice the daemon sends,
so a merge, an exit while posmon was down or a timeout read exactly as ``posmon history`` will show them; what an
exit plan did (a ladder level's partial close, a stop moved to break-even or by the trail) it reads from the
journal's ``partial_close``, ``level_filled`` and ``stop_moved`` events. Prices are shown on the symbol's tick and
quantities on its step; an average entry is rounded to the nearest tick.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from posmon.domain.exitplan import level_price, level_qty, pct_text
from posmon.domain.orders import Purpose, SymbolRules
from posmon.domain.protection import parse_client_order_id
from posmon.domain.rounding import quantize_qty, round_down
from posmon.domain.tranche import ExitReason, Tranche, position_pnl_pct
from posmon.store.history import ClosedTranche, History
from posmon.store.store import Store


class Happening(enum.StrEnum):
    """What a narration line reports."""

    ENTRY = "entry"  # another program traded the account (the script)
    MOVE = "move"  # the mark moved somewhere worth watching (the script)
    OPENED = "opened"  # a fill opened a position's first tranche
    ADDED = "added"  # a fill joined the newest tranche (position above the -X % threshold)
    NEW_TRANCHE = "new tranche"  # a fill at or below -X % opened another tranche
    MERGED = "merged"  # past the tranche limit, two tranches became one
    TP_FILL = "TP fill"  # the resting TP limit traded on the exchange
    INSTANT_TP = "instant TP"  # the mark ran through the TP first: posmon closed at market
    SL = "SL"  # the stop-market on the exchange triggered
    TIMEOUT = "timeout"  # held for max_hold_seconds: posmon closed at market
    EXIT = "exit"  # any other exit (manual, external, ...)
    STOPPED = "stopped"  # posmon was stopped (the script)
    STARTED = "started"  # posmon was started again on the same store (the script)
    RESTART = "restart"  # the restarted posmon picked up where it stopped
    ALERT = "alert"  # a notice that needs a human
    OPERATOR = "operator"  # the operator asked posmon to open a position (the script)
    REFUSED = "refused"  # a risk limit refused the operator's entry: nothing sent
    LEVEL = "TP level"  # a ladder level before the last filled: a partial close, the SL resized
    BREAK_EVEN = "break-even"  # the SL moved to the entry plus the offset
    TRAILING = "trailing"  # the trailing stop followed the best mark
    TRAIL_OUT = "trail stop"  # the trailing stop triggered


# What the script did, and who it was: the rest is the daemon's doing, which the summary counts.
SCRIPTED = {
    Happening.ENTRY: "market",
    Happening.MOVE: "market",
    Happening.STOPPED: "demo",
    Happening.STARTED: "demo",
    Happening.OPERATOR: "you",
}
# The journal events an exit plan leaves (``posmon.actors.position``).
PLAN_EVENTS = ("partial_close", "level_filled", "stop_moved")
DAEMON_EVENTS = frozenset(Happening) - set(SCRIPTED)


@dataclass(frozen=True, slots=True)
class DemoEvent:
    at: float  # seconds since the demo started
    kind: Happening
    symbol: str
    side: str
    tranche_id: int | None
    line: str
    reason: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # what a test checks beyond the line (the restart's)


def price(value: Decimal, rules: SymbolRules) -> str:
    """``value`` on the symbol's tick (the nearest one: an average entry is rarely on it), plain notation."""
    return format(round_down(value + rules.tick_size / 2, rules.tick_size), "f")


def qty(value: Decimal, rules: SymbolRules) -> str:
    return format(quantize_qty(value, rules.step_size), "f")


def usdt(value: Decimal) -> str:
    """Exact (as the store and ``posmon history`` have it), at least to the cent, at most 8 decimals."""
    exponent = value.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) else 2
    return f"{value.quantize(Decimal(1).scaleb(-min(max(places, 2), 8))):+f} USDT"


@dataclass(slots=True)
class Narrator:
    """Turns the store's changes into lines; ``emit`` prints each as it is made."""

    venue: str
    rules: Mapping[str, SymbolRules]
    max_tranches: Callable[[str], int]
    increment_pct: Callable[[str], Decimal]
    elapsed: Callable[[], float]
    emit: Callable[[str], None] = print
    prefix: str = "pm"  # posmon's client order id prefix (a fill's purpose is in its id)
    store: Store | None = None  # None while posmon is down
    events: list[DemoEvent] = field(default_factory=list)
    open: dict[int, Tranche] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)
    journal_seen: int = 0  # the last journal event id read
    trailed: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)  # tranche -> (stop, best mark)

    def say(
        self,
        kind: Happening,
        symbol: str,
        side: str,
        text: str,
        *,
        tranche_id: int | None = None,
        reason: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> DemoEvent:
        who = SCRIPTED.get(kind, "posmon")
        at = self.elapsed()
        tag = f"#{tranche_id}" if tranche_id is not None else ""
        line = f"{at:5.1f}s  {who:<6}  {symbol:<8} {side:<5} {tag:<4} {kind.value:<11} {text}".rstrip()
        event = DemoEvent(at, kind, symbol, side, tranche_id, line, reason, dict(data or {}))
        self.events.append(event)
        self.emit(line)
        return event

    def observe(self) -> None:
        """Narrate whatever changed in the store since the last look (nothing while posmon is down)."""
        if self.store is None:
            return
        now_open = {t.id: t for t in self.store.open_tranches(self.venue) if t.closing is None}
        rows = [c for c in self.store.history(venue=self.venue).tranches if c.id not in self.closed]
        before = dict(self.open)
        leveled = self._plan_events({**before, **now_open})
        merged = [c for c in rows if c.exit_reason == ExitReason.MERGED]
        survivors = {c.id: self._survivor(c, before, now_open) for c in merged}
        grown = {t.id for t in survivors.values() if t is not None}
        for t in sorted(now_open.values(), key=lambda t: t.id):
            old = before.get(t.id)
            if old is None:
                self._opened(t, before)
            elif t.qty < old.qty:
                if t.id not in leveled:  # a ladder level's close is narrated from the journal
                    self._shrunk(t, old)
            elif (old.qty, old.entry) != (t.qty, t.entry) and t.id not in grown:
                self._added(t, old)
        for c in merged:
            self._merged(c, survivors[c.id])
        exits = [c for c in rows if c.exit_reason != ExitReason.MERGED]
        fills = self._fill_purposes() if exits else {}
        for c in exits:
            self._exited(c, before.get(c.id), fills.get(c.id))
        self.closed.update(c.id for c in rows)
        self.open = {**{k: v for k, v in before.items() if k not in self.closed}, **now_open}
        # A tranche still closing stays known under its last open state (its exit is narrated when it closes).

    # --- one kind of change each ----------------------------------------------------------------------------

    def _plan_events(self, known: Mapping[int, Tranche]) -> set[int]:
        """Narrate the exit plans' journal events since the last look; the tranches a ladder level shrank."""
        assert self.store is not None
        fresh = sorted(
            (e for kind in PLAN_EVENTS for e in self.store.events(kind) if e["id"] > self.journal_seen),
            key=lambda e: e["id"],
        )
        leveled: set[int] = set()
        for i, e in enumerate(fresh):
            t = known.get(e["tranche_id"])
            if t is None:
                continue
            r, d = self.rules[t.symbol], e["data"]
            if e["kind"] == "partial_close":
                leveled.add(t.id)
                after = next(
                    (f["data"] for f in fresh[i + 1 :] if f["kind"] == "level_filled" and f["tranche_id"] == t.id),
                    None,
                )
                self._level(t, d, after, r)
            elif e["kind"] == "stop_moved":
                new, best = Decimal(d["new"]), d.get("best_mark")
                if d["why"] == "trailing" and best is not None:
                    moved = f"to {price(new, r)} (best mark {price(Decimal(best), r)})"
                    text = f"trailing stop moved {moved}"
                    if t.id not in self.trailed:
                        gain = (Decimal(best) - t.entry) * t.side.sign * 100 / t.entry
                        old = price(Decimal(d["old"]), r)
                        text = f"trailing stop active at {gain:+.2f} %: SL moved from {old} {moved}"
                    self.trailed[t.id] = (new, Decimal(best))
                    self.say(Happening.TRAILING, t.symbol, t.side.value, text, tranche_id=t.id)
                else:
                    be = t.plan.breakeven
                    offset = f" + {pct_text(be.offset_pct)} %" if be is not None and be.offset_pct else ""
                    text = (
                        f"SL moved from {price(Decimal(d['old']), r)} to break-even {price(new, r)} "
                        f"(entry {price(t.entry, r)}{offset})"
                    )
                    self.say(Happening.BREAK_EVEN, t.symbol, t.side.value, text, tranche_id=t.id)
        if fresh:
            self.journal_seen = fresh[-1]["id"]
        return leveled

    def _level(self, t: Tranche, d: Mapping[str, Any], after: Mapping[str, Any] | None, r: SymbolRules) -> None:
        """One fill of a ladder level before the last: by its resting TP limit, or closed at market because the
        mark ran through it; once the level is done, the SL resized and the next level's TP."""
        n, lv = len(t.plan.tp_levels), int(d["level"])
        done, px, pnl = f"{qty(Decimal(d['qty']), r)} @ {price(Decimal(d['price']), r)}", "", usdt(Decimal(d["pnl"]))
        parsed = parse_client_order_id(self.prefix, d.get("client_id") or "")
        if parsed is not None and parsed[1] is Purpose.TP:
            text = f"level {lv} of {n} filled: the resting TP limit traded {done}, PnL {pnl}"
        else:
            px = price(level_price(t.side, t.entry, t.plan.tp_levels[lv - 1].pct, r), r)
            text = f"the mark ran through level {lv} of {n} (TP {px}): closed {done} at market, PnL {pnl}"
        if after is not None:
            left = Decimal(after["qty"])
            nxt = level_qty(replace(t, qty=left, level=int(after["level"])), r)
            tp = price(Decimal(after["tp"]), r)
            text += f"; SL resized to {qty(left, r)}, level {lv + 1} rests: TP {qty(nxt, r)} @ {tp}"
        elif not d.get("level_done", True):
            text += "; the rest of the level keeps resting"
        self.say(Happening.LEVEL, t.symbol, t.side.value, text, tranche_id=t.id)

    def _legs(self, t: Tranche) -> str:
        r = self.rules[t.symbol]
        return f"TP {price(t.tp, r)} / SL {price(t.sl, r)}"

    def _opened(self, t: Tranche, before: Mapping[int, Tranche]) -> None:
        r = self.rules[t.symbol]
        held = [o for o in before.values() if (o.symbol, o.side) == (t.symbol, t.side) and o.id not in self.closed]
        size = f"{qty(t.qty, r)} @ {price(t.entry, r)}"
        if not held:
            self.say(
                Happening.OPENED,
                t.symbol,
                t.side.value,
                f"{size}, protected: {self._legs(t)} resting on the exchange{self._plan(t)}",
                tranche_id=t.id,
            )
            return
        pnl = position_pnl_pct(held, t.entry)
        self.say(
            Happening.NEW_TRANCHE,
            t.symbol,
            t.side.value,
            f"{size}: position {pnl:+.1f} % is at or below -{self.increment_pct(t.symbol)} %, so a tranche of its "
            f"own with {self._legs(t)}",
            tranche_id=t.id,
        )

    @staticmethod
    def _plan(t: Tranche) -> str:
        return f"; {t.plan.describe()}" if t.plan else ""

    def _added(self, t: Tranche, old: Tranche) -> None:
        r = self.rules[t.symbol]
        self.say(
            Happening.ADDED,
            t.symbol,
            t.side.value,
            f"{qty(t.qty - old.qty, r)} joins it (position above -{self.increment_pct(t.symbol)} %): now "
            f"{qty(t.qty, r)} @ {price(t.entry, r)}, {self._legs(t)} moved",
            tranche_id=t.id,
        )

    def _shrunk(self, t: Tranche, old: Tranche) -> None:
        r = self.rules[t.symbol]
        text = f"{qty(old.qty - t.qty, r)} of it closed outside posmon: now {qty(t.qty, r)}, {self._legs(t)} resized"
        self.say(Happening.EXIT, t.symbol, t.side.value, text, tranche_id=t.id)

    def _survivor(self, c: ClosedTranche, before: Mapping[int, Tranche], now: Mapping[int, Tranche]) -> Tranche | None:
        """The open tranche of the same position that grew by the merged one's quantity."""
        grown = [
            t
            for t in now.values()
            if (t.symbol, t.side) == (c.symbol, c.side) and t.id in before and t.qty > before[t.id].qty and t.id != c.id
        ]
        return min(grown, key=lambda t: t.index) if grown else None

    def _merged(self, c: ClosedTranche, survivor: Tranche | None) -> None:
        r = self.rules[c.symbol]
        limit = self.max_tranches(c.symbol)
        text = f"merged into another tranche (a fill made {limit + 1} tranches, the limit is {limit})"
        if survivor is not None:
            text = (
                f"merged into #{survivor.id} (a fill made {limit + 1} tranches, the limit is {limit}): "
                f"#{survivor.id} now {qty(survivor.qty, r)} @ {price(survivor.entry, r)}, {self._legs(survivor)}"
            )
        self.say(Happening.MERGED, c.symbol, c.side.value, text, tranche_id=c.id, reason=c.exit_reason)

    def _fill_purposes(self) -> dict[int, tuple[set[str], Mapping[str, Any]]]:
        """Which of its orders closed each tranche (the journal's fills: a TP limit, a stop, a market close), and
        its last fill."""
        assert self.store is not None
        out: dict[int, tuple[set[str], Mapping[str, Any]]] = {}
        for e in self.store.events("fill"):
            if e["tranche_id"] is not None:
                purposes = out.get(e["tranche_id"], (set(), {}))[0]
                purposes.add(e["data"]["purpose"])
                out[e["tranche_id"]] = (purposes, e["data"])
        return out

    def _exited(self, c: ClosedTranche, last: Tranche | None, fills: tuple[set[str], Mapping[str, Any]] | None) -> None:
        r = self.rules[c.symbol]
        purposes, final = fills or (set(), {})
        how = f"{qty(c.qty, r)} @ {price(c.exit_price, r)}" if c.exit_price is not None else "closed"
        if last is not None and last.plan.tp_levels and last.level and final and c.exit_price is not None:
            # The last ladder level: its own fill, then the tranche as a whole (exit price averaged over levels).
            n = len(last.plan.tp_levels)
            how = (
                f"{qty(Decimal(final['qty']), r)} @ {price(Decimal(final['price']), r)} (level {n} of {n}); "
                f"{qty(c.qty, r)} closed in all, averaging {price(c.exit_price, r)}"
            )
        if c.exit_reason == ExitReason.SL and c.id in self.trailed and c.exit_price is not None:
            stop, best = self.trailed[c.id]
            kind, text = (
                Happening.TRAIL_OUT,
                f"stopped out by the trail at {price(c.exit_price, r)} (stop {price(stop, r)}, best mark "
                f"{price(best, r)}): {qty(c.qty, r)} closed",
            )
        elif c.exit_reason == ExitReason.TP and Purpose.TP.value in purposes:
            kind, text = Happening.TP_FILL, f"the resting TP limit traded: {how}"
        elif c.exit_reason == ExitReason.TP:
            kind, text = (
                Happening.INSTANT_TP,
                f"the mark ran through the TP before its limit traded: closed at market {how}",
            )
        elif c.exit_reason == ExitReason.SL:
            kind, text = Happening.SL, f"the stop-market on the exchange triggered: {how}"
        elif c.exit_reason == ExitReason.TIMEOUT:
            held = f"held {last.deadline - last.opened_at:.0f} s" if last and last.deadline else "held too long"
            kind, text = Happening.TIMEOUT, f"{held}: closed at market {how}"
        else:
            kind, text = Happening.EXIT, f"{c.exit_reason}: {how}"
        self.say(
            kind,
            c.symbol,
            c.side.value,
            f"{text} (entry {price(c.entry, r)}), PnL {usdt(c.realized_pnl)}",
            tranche_id=c.id,
            reason=c.exit_reason,
        )


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What one run of the demo showed: its events in order, and the summary read from its store."""

    events: tuple[DemoEvent, ...]
    protected: int  # tranches that got a TP and an SL on the exchange
    open_tranches: int  # still open at the end
    open_fully_protected: int  # of those, how many have exactly one TP and one SL resting
    history: History  # the store's closed tranches: what `posmon history` shows
    store_path: Path
    config_path: Path
    dashboard_url: str | None
    rules: Mapping[str, SymbolRules]

    @property
    def kinds(self) -> set[Happening]:
        return {e.kind for e in self.events}

    @property
    def exits(self) -> dict[str, int]:
        """Closed tranches by exit reason, as the store has them."""
        return dict(Counter(c.exit_reason for c in self.history.tranches))

    @property
    def realized_pnl(self) -> Decimal:
        return self.history.realized_pnl

    def summary(self) -> str:
        exits = ", ".join(f"{reason} {n}" for reason, n in sorted(self.exits.items())) or "none"
        shown = Counter(e.kind for e in self.events if e.kind in DAEMON_EVENTS)
        h = self.history
        lines = [
            "",
            "=== posmon demo summary ===",
            "what happened: " + ", ".join(f"{k.value} {shown[k]}" for k in Happening if shown[k]),
            f"tranches protected: {self.protected}, each with a TP limit and an SL stop on the exchange; "
            f"{self.open_tranches} still open, {self.open_fully_protected} of them with exactly one TP and one SL",
            f"exits by reason: {exits}",
        ]
        for c in h.tranches:
            r = self.rules[c.symbol]
            out = price(c.exit_price, r) if c.exit_price is not None else "-"
            lines.append(
                f"  #{c.id:<3} {c.symbol:<8} {c.side.value:<5} {c.exit_reason:<8} "
                f"entry {price(c.entry, r):>10}  exit {out:>10}  PnL {usdt(c.realized_pnl)}"
            )
        lines += [
            f"realized PnL: {usdt(h.realized_pnl)} over {len(h.tranches)} closed tranches "
            f"(fees {usdt(h.fees).lstrip('+')}, net {usdt(h.net_pnl)}), from the store",
            f"store: {self.store_path}",
            f"history: posmon --config {self.config_path} history",
        ]
        return "\n".join(lines)
