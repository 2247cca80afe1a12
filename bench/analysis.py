"""Turning the simulator's and the daemon's timestamps into figures.

All times are ``time.monotonic_ns()`` from the simulator process (frame publish/write, request receipt) or the
daemon process (frame arrival at the price router); on one machine that clock is shared.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

_CID = re.compile(r"^pm-(\d+)-([TSC])(\d+)$")


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(values_ns: Iterable[int]) -> dict[str, Any]:
    """count, p50, p90, p99, max and mean in milliseconds."""
    ms = [v / 1e6 for v in values_ns]
    if not ms:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
    }


def first_requests(requests: Sequence[Sequence[Any]]) -> tuple[dict[int, int], dict[int, int], Counter[str]]:
    """For each tranche id: when its first cancel (TP/SL legs) and first close order reached the simulator.

    ``requests`` rows are ``[t_ns, method, path, client_ids]``. Returns (cancel time, close time, calls by kind).
    """
    cancel: dict[int, int] = {}
    close: dict[int, int] = {}
    kinds: Counter[str] = Counter()
    for t, method, path, ids in requests:
        kinds[f"{method} {path}"] += 1
        for cid in ids:
            m = _CID.match(cid)
            if m is None:
                continue
            tid, purpose = int(m[1]), m[2]
            if method == "DELETE" and purpose in "TS":
                cancel.setdefault(tid, t)
            elif method == "POST" and purpose == "C":
                close.setdefault(tid, t)
    return cancel, close, kinds


def frame_times(data: dict[str, Any]) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """(label -> E, E -> publish time, E -> write time) of the frames a run published."""
    label_e = {label: e for e, label, _ in data["published"]}
    pub = {e: t for e, _, t in data["published"]}
    write = {}
    for e, before, _after in data["writes"]:
        write.setdefault(e, before)
    return label_e, pub, write


def gateway_cancels(calls: Sequence[Sequence[Any]]) -> dict[int, int]:
    """Tranche id -> when the daemon's gateway first called the venue to cancel its legs."""
    out: dict[int, int] = {}
    for t, kind, ids in calls:
        if kind != "cancel":
            continue
        for cid in ids:
            m = _CID.match(cid)
            if m is not None and m[2] in "TS":
                out.setdefault(int(m[1]), t)
    return out


def gateway_closes(calls: Sequence[Sequence[Any]]) -> dict[int, int]:
    """Tranche id -> when the daemon's gateway first called the venue to place its market close."""
    out: dict[int, int] = {}
    for t, kind, ids in calls:
        if kind != "place":
            continue
        for cid in ids:
            m = _CID.match(cid)
            if m is not None and m[2] == "C":
                out.setdefault(int(m[1]), t)
    return out


def trigger_latency(
    expected: dict[int, int],
    data: dict[str, Any],
    arrivals: Sequence[Sequence[int]] = (),
    calls: Sequence[Sequence[Any]] = (),
) -> dict[str, Any]:
    """Tick-to-order figures for ``expected`` (tranche id -> label of the frame that triggers it).

    tick-to-order: the triggering frame written by the simulator -> the first request acting on the tranche (the
    batch DELETE of its TP and SL) received by the simulator; tick-to-close: -> its market close order received.
    With the daemon's ``arrivals`` and gateway ``calls``, each trigger's time is split into frame write -> router,
    router -> gateway calls the venue, and venue call -> request received by the simulator; the close's extra time
    after the cancel into cancel received -> gateway places the close (the cancel's answer, the decision, its
    commit) and close call -> close received.
    """
    label_e, pub, write = frame_times(data)
    cancel, close, kinds = first_requests(data["requests"])
    arrived = {e: t for e, t in arrivals}
    gateway = gateway_cancels(calls)
    closing = gateway_closes(calls)
    to_order, to_close, first_in_frame = [], [], []
    legs: dict[str, list[int]] = {
        "write_to_router": [],
        "router_to_gateway_call": [],
        "gateway_call_to_received": [],
        "cancel_received_to_close_call": [],
        "close_call_to_received": [],
    }
    per_frame: dict[int, list[int]] = defaultdict(list)
    missing = 0
    for tid, label in expected.items():
        e = label_e.get(label)
        t0 = write.get(e) if e is not None else None
        t1 = cancel.get(tid)
        if t0 is None or t1 is None:
            missing += 1
            continue
        to_order.append(t1 - t0)
        per_frame[label].append(t1 - t0)
        if (t2 := close.get(tid)) is not None:
            to_close.append(t2 - t0)
        ta, tg = arrived.get(e), gateway.get(tid)
        if ta is not None and tg is not None:
            legs["write_to_router"].append(ta - t0)
            legs["router_to_gateway_call"].append(tg - ta)
            legs["gateway_call_to_received"].append(t1 - tg)
        if (tc := closing.get(tid)) is not None and t2 is not None:
            legs["cancel_received_to_close_call"].append(tc - t1)
            legs["close_call_to_received"].append(t2 - tc)
    for lat in per_frame.values():
        first_in_frame.append(min(lat))
    unexpected = sorted(set(cancel) - set(expected))
    ours = {str(tid) for tid in expected}
    other = sum(
        1
        for _, _, _, ids in data["requests"]
        if not any(cid.split("-")[1] in ours for cid in ids if cid.count("-") == 2)
    )
    counts = Counter(expected.values())
    sim_delay = [write[e] - pub[e] for e in write if e in pub]
    out = {
        "triggers_planned": len(expected),
        "tick_to_order": summary_ms(to_order),
        "tick_to_close": summary_ms(to_close),
        "first_trigger_of_each_frame": summary_ms(first_in_frame),
        "triggers_per_frame": {
            "mean": round(len(expected) / max(1, len(counts)), 2),
            "max": max(counts.values(), default=0),
        },
        "missing": missing,
        "unexpected_closes": len(unexpected),
        "requests": dict(kinds),
        "requests_not_for_these_triggers": other,
        "sim_publish_to_write": summary_ms(sim_delay),
        "frames_published": len(pub),
        "frames_written": len(write),
    }
    if arrivals:
        lag = [t - write[e] for e, t in arrivals if e in write]
        out["frame_write_to_router"] = summary_ms(lag)
    if calls:
        out["breakdown"] = {k: summary_ms(v) for k, v in legs.items()}
    return out


def lag_growth(arrivals: Sequence[Sequence[int]], data: dict[str, Any], events: Iterable[int]) -> dict[str, Any]:
    """Frame-to-router lag (publish -> the daemon's router starts parsing it) of a run's frames (``events``)."""
    _, pub, write = frame_times(data)
    run = set(events) & set(pub)
    series = sorted((pub[e], t - pub[e]) for e, t in arrivals if e in run)
    received = len(series)
    out: dict[str, Any] = {"frames": len(run), "received": received, "written": len(run & set(write))}
    if received < 4:
        out.update(lag=summary_ms([]), growth_ms=None)
        return out
    lags = [lag for _, lag in series]
    q = max(1, received // 4)
    start = percentile([v / 1e6 for v in lags[:q]], 50)
    end = percentile([v / 1e6 for v in lags[-q:]], 50)
    out.update(
        lag=summary_ms(lags),
        lag_first_quarter_p50_ms=round(start, 3),
        lag_last_quarter_p50_ms=round(end, 3),
        growth_ms=round(end - start, 3),
    )
    return out


def calls(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests the simulator counted between two snapshots, by "METHOD /path"."""
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in sorted(set(after) | set(before))
        if after.get(k, 0) != before.get(k, 0)
    }
