"""A two-venue run: both protocol simulators, one daemon watching both (``[daemon] venues``), hedge pairs.

Each venue gets the single-venue workload and faults (``run.plan``, drawn from the seed on the venue's own
stream), but the marks of the same base asset move together on both venues (a hedge's legs do) and only one
kill schedule applies (one daemon). On top: pairs opened over the daemon's API (``POST /api/pairs``) and
pair-specific events: one leg's mark alone through its exit on its venue, a liquidation of one leg, one venue's
streams down for a few seconds. ``no_pair_with_one_leg`` (``chaos.invariants.check_pairs``) is polled with the
state invariants while settling.
"""

from __future__ import annotations

import dataclasses
import random
import socket
from pathlib import Path
from typing import Any

import httpx
import trio

from chaos.invariants import Violation, check_pairs, read_pairs
from chaos.run import Action, Options, Runner, RunResult, Schedule, _price, plan, write_config
from chaos.venues import AsterVenue, LighterVenue, Venue

TWO_VENUE = "two-venue"  # the run's label (``RunResult.venue``, ``--venue`` value, kept directory's prefix)


def two_venues() -> list[Venue]:
    return [AsterVenue(), LighterVenue()]


def plan_two(seed: int, venues: list[Venue], opts: Options) -> Schedule:
    """Each venue's own schedule from the seed, its marks replaced by one path per base asset, plus pair events."""
    parts = [plan(seed, v, opts, stream=v.name) for v in venues]
    first = parts[0]
    rng = random.Random(f"{seed}-two")
    actions: list[Action] = []
    for v, part in zip(venues, parts, strict=True):
        actions += [dataclasses.replace(a, venue=v.name) for a in part.actions if a.kind != "marks"]
    # The first venue's mark path per base; the other venues follow it with a little basis noise.
    for a in first.actions:
        if a.kind != "marks":
            continue
        by_base = {venues[0].base(s): o for s, o in a.args["offsets"].items()}
        for i, v in enumerate(venues):
            offsets = {s: by_base[v.base(s)] + (rng.gauss(0, 0.05) if i else 0.0) for s in v.symbols}
            actions.append(Action(a.t, "marks", {"offsets": offsets}, venue=v.name))
    d = opts.duration
    bases = sorted({venues[0].base(s) for s in venues[0].symbols})
    for _ in range(rng.randint(1, 3)):
        long_on = rng.choice(venues).name
        actions.append(
            Action(
                rng.uniform(0, d * 0.5),
                "pair_open",
                {
                    "base": rng.choice(bases),
                    "long": long_on,
                    "notional": rng.randint(60, 200),
                    "second_symbol": rng.random() < 0.5,  # or left to the daemon (the same asset there)
                },
            )
        )
    for _ in range(rng.choice((0, 1, 1, 2))):  # one leg's mark alone through its TP (1 %) or SL (2 %)
        actions.append(
            Action(
                rng.uniform(d * 0.3, d),
                "leg_mark",
                {"base": rng.choice(bases), "jump": rng.choice((-1, 1)) * rng.uniform(2.3, 3.2), "pick": rng.random()},
                venue=rng.choice(venues).name,
            )
        )
    if rng.random() < 0.5:  # a liquidation of one leg
        actions.append(
            Action(
                rng.uniform(d * 0.3, d),
                "leg_liquidate",
                {"pick": rng.random(), "adl": rng.random() < 0.3, "partial": rng.random() < 0.3},
                venue=rng.choice(venues).name,
            )
        )
    if rng.random() < 0.4:  # one venue's streams down while the other trades on
        actions.append(
            Action(rng.uniform(0, d), "venue_down", {"seconds": rng.uniform(1.0, 3.0)}, venue=rng.choice(venues).name)
        )
    actions.sort(key=lambda a: a.t)
    pre = [dict(e, venue=v.name) for v, part in zip(venues, parts, strict=True) for e in part.pre_entries]
    late = [dataclasses.replace(a, venue=v.name) for v, part in zip(venues, parts, strict=True) for a in part.late]
    plans: dict[str, dict[str, Any]] = {}
    for part in parts:
        plans.update(part.plans)
    return Schedule(seed, TWO_VENUE, pre, actions, first.kills, instant_tp=first.instant_tp, late=late, plans=plans)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TwoVenueRunner(Runner):
    """``Runner`` over both venues, the API on loopback for the pairs, the pair invariant polled with the rest."""

    def __init__(self, schedule: Schedule, venues: list[Venue], opts: Options) -> None:
        super().__init__(schedule, venues, opts)
        self.api_port = free_port()
        self.pairs_supported: bool | None = None  # None: not asked yet; False: the daemon has no /api/pairs

    def write_config(self, path: Path, urls: list[tuple[Venue, str, str]]) -> None:
        venue, rest_url, ws_url = urls[0]
        write_config(
            path,
            self.store,
            venue,
            rest_url,
            ws_url,
            self.schedule,
            self.opts,
            others=tuple(urls[1:]),
            api_port=self.api_port,
        )

    def check_state(self) -> list[Violation]:
        out = super().check_state()
        out += check_pairs(self.venues, read_pairs(self.store))
        return out

    def _apply_action(self, action: Action, nursery: trio.Nursery) -> None:
        a = action.args
        if action.kind == "pair_open":
            nursery.start_soon(self._open_pair, a)
        elif action.kind == "leg_mark":
            venue = self._v(action.venue)
            symbol = venue.symbol_of(a["base"])
            marks = dict(self.marks[venue.name])
            now = marks[symbol]
            offset = float((now / venue.base_price(symbol) - 1) * 100) + a["jump"]
            marks[symbol] = _price(venue, symbol, offset)
            self.marks[venue.name] = marks  # until the next common step (a quarter second): the leg's exit fires
            venue.set_marks(dict(marks))
            self._did = f"{symbol} {now} -> {marks[symbol]}"
            self.result.workload["leg_mark"] += 1
            self._changed()
        elif action.kind == "leg_liquidate":
            self._liquidate_leg(action)
        elif action.kind == "venue_down":
            self._v(action.venue).go_down(a["seconds"], nursery)
            self.result.faults["venue_down"] += 1
        else:
            super()._apply_action(action, nursery)

    def _liquidate_leg(self, action: Action) -> None:
        """A liquidation of one open pair's leg on its venue (the other leg must follow)."""
        venue, a = self._v(action.venue), action.args
        legs = sorted(
            (leg.symbol, leg.side)
            for p in read_pairs(self.store) or []
            if p.status == "open"
            for leg in p.legs
            if leg.venue == venue.name
        )
        held = [key for key in legs if key in venue.positions()]
        if not held:
            return
        symbol, side = held[min(len(held) - 1, int(a["pick"] * len(held)))]
        position = venue.exchange.engine.position(symbol, side)
        if position is None:
            return
        qty = None
        if a["partial"]:
            step = venue.rules(symbol).step_size
            qty = max(step, (position.qty / 2 / step).to_integral_value() * step)
        self._did = f"{symbol} {side.value} {position.qty} minus {qty or 'all'}"
        if venue.liquidate(symbol, side, qty, adl=a["adl"]):
            self.result.workload["leg_adl" if a["adl"] else "leg_liquidation"] += 1
            self._changed()

    async def _open_pair(self, a: dict[str, Any]) -> None:
        """``POST /api/pairs``: long on one venue, short on the other, the notional at the first leg's mark.

        ``auto_rebalance``: the workload shrinks and grows legs behind posmon's back, and the invariant wants the
        legs within a step of each other once settled.
        """
        if self.pairs_supported is False:
            return
        first, second = list(self.venues.values())
        legs: list[dict[str, str]] = [
            {"venue": first.name, "symbol": first.symbol_of(a["base"])},
            {"venue": second.name},
        ]
        if a.get("second_symbol", True):
            legs[1]["symbol"] = second.symbol_of(a["base"])
        body = {
            "legs": legs,
            "side": "LONG" if first.name == a["long"] else "SHORT",
            "notional_usd": a["notional"],
            "on_leg_exit": "close",
            "auto_rebalance": True,
        }
        response = None
        with trio.move_on_after(8.0):  # an operator retries while the daemon restarts (nothing reached it)
            while response is None:
                try:
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10.0) as c:
                        response = await c.post("/api/pairs", json=body)
                except httpx.ConnectError:
                    await trio.sleep(0.5)
                except httpx.HTTPError as exc:  # killed mid-request: the pair may or may not have been made
                    self.result.workload["pair_open_unanswered"] += 1
                    self._note(f"pair_open {body}: {type(exc).__name__}")
                    return
                else:
                    if response.status_code == 503:  # starting, or no mark yet: asked again
                        response = None
                        await trio.sleep(0.5)
        if response is None:
            self.result.workload["pair_open_unanswered"] += 1
            self._note(f"pair_open {body}: the API did not answer for 8 s")
            return
        if response.status_code in (404, 405) and "/api/pairs" not in response.text:
            self.pairs_supported = False  # a daemon without pairs: the run goes on without them
        outcome = "pair_open" if response.status_code < 300 else f"pair_open_{response.status_code}"
        self.result.workload[outcome] += 1
        self._note(f"pair_open {body}: {response.status_code} {response.text[:300]}")
        if response.status_code < 300:
            self._changed()


async def two_venue_run(seed: int, opts: Options) -> RunResult:
    venues = two_venues()
    return await TwoVenueRunner(plan_two(seed, venues, opts), venues, opts).run()


__all__ = ["TWO_VENUE", "TwoVenueRunner", "plan_two", "two_venue_run"]
