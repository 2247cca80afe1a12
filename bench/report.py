"""The human-readable table printed at the end of a run (the JSON holds everything, this the headline figures)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _grid(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(h) for h in headers]] + [[_f(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return lines


def _others(phase: dict[str, Any]) -> str:
    """CPU other programs used during the phase (% of one core): above ~30 on 2 cores the figure is suspect."""
    load = phase.get("machine_load")
    return "-" if not load else f"{load['others_cpu_pct']:g}%"


def table(out: dict[str, Any]) -> str:
    m = out["machine"]
    lines = [
        f"posmon benchmark ({out['kind']}) - commit {out['git_commit'][:12]}, {m['cpu_count']} cores, "
        f"Python {m['python']}, {out['started_at'][:19]}Z, {out.get('duration_s', '?')} s"
        + ("  [PROFILED: py-spy attached]" if out.get("profiled") else "")
        + (f"  [EXPERIMENT: {out['experiment']}]" if out.get("experiment") else ""),
        "daemon and Aster-protocol simulator in separate processes over 127.0.0.1; v3 auth; simulator rate "
        "limits 1e9/min (no pacing); tranches seeded into the store; 'others CPU': what other programs used "
        "during the phase (% of one core)",
        "",
    ]

    lat = out.get("latency", {})
    lines.append("Tick-to-order: trigger frame written by the simulator -> cancel (batch DELETE) received")
    rows = []
    for name, r in lat.items():
        t, c = r["tick_to_order"], r["tick_to_close"]
        rows.append(
            [
                f"{name}: {r['rate_hz']:g} Hz x {r['symbols_per_frame']} symbols",
                t["count"],
                t["p50_ms"],
                t["p99_ms"],
                t["max_ms"],
                c["p50_ms"],
                c["p99_ms"],
                r["triggers_per_frame"]["mean"],
                r["missing"],
                f"{r['daemon_cpu_pct']}%",
                _others(r),
            ]
        )
    lines += _grid(
        [
            "load",
            "triggers",
            "p50 ms",
            "p99 ms",
            "max ms",
            "close p50",
            "close p99",
            "per frame",
            "missing",
            "daemon CPU",
            "others CPU",
        ],
        rows,
    )
    for name, r in lat.items():
        f = r["first_trigger_of_each_frame"]
        lines.append(f"  {name}: first trigger of each frame p50 {_f(f['p50_ms'])} / p99 {_f(f['p99_ms'])} ms")
        b = r.get("breakdown")
        if b:
            lines.append(
                "    p50 / p99 ms: frame write -> router "
                f"{_f(b['write_to_router']['p50_ms'])} / {_f(b['write_to_router']['p99_ms'])}, "
                f"router -> gateway calls venue {_f(b['router_to_gateway_call']['p50_ms'])} / "
                f"{_f(b['router_to_gateway_call']['p99_ms'])}, venue call -> request received "
                f"{_f(b['gateway_call_to_received']['p50_ms'])} / "
                f"{_f(b['gateway_call_to_received']['p99_ms'])}"
            )
            if b.get("close_call_to_received", {}).get("count"):
                lines.append(
                    "    close, p50 / p99 ms: cancel received -> gateway places the close "
                    f"{_f(b['cancel_received_to_close_call']['p50_ms'])} / "
                    f"{_f(b['cancel_received_to_close_call']['p99_ms'])}, close call -> close received "
                    f"{_f(b['close_call_to_received']['p50_ms'])} / {_f(b['close_call_to_received']['p99_ms'])}"
                )
    lines.append("")

    thr = out.get("throughput")
    if thr:
        lines.append("Throughput: full-array frames at rising rates (frame lag = published -> router parses it)")
        rows = []
        for lv in thr["levels"]:
            g = lv["frame_lag"]
            rows.append(
                [
                    lv["updates_per_s"],
                    lv["frames_per_s"],
                    lv["keeps_up"],
                    g.get("lag", {}).get("p50_ms"),
                    g.get("lag", {}).get("p99_ms"),
                    g.get("growth_ms"),
                    lv["probe_tick_to_order"]["p50_ms"],
                    lv["probe_tick_to_order"]["max_ms"],
                    f"{lv['daemon_cpu_pct']}%",
                    "yes" if lv["sim_limited"] else "",
                    _others(lv),
                ]
            )
        lines += _grid(
            [
                "updates/s",
                "frames/s",
                "keeps up",
                "lag p50",
                "lag p99",
                "growth ms",
                "probe p50",
                "probe max",
                "daemon CPU",
                "sim-limited",
                "others CPU",
            ],
            rows,
        )
        lines.append(
            f"  highest rate kept up with: {_f(thr['max_updates_per_s'])} updates/s; daemon CPU at the 1 Hz "
            f"load {thr['cpu_at_1hz_pct']}% of a core "
            f"(stream only, no triggers: {thr['cpu_at_1hz_idle_pct']}%)"
        )
        lines.append("")

    mem = out.get("memory")
    if mem:
        lines.append("Resident memory of the daemon process")
        rows = []
        for name in ("working_set", "large_store"):
            if name in mem:
                r = mem[name]
                rows.append(
                    [
                        name,
                        r["tranches"],
                        round(r["VmRSS"] / 1024, 1),
                        round(r["VmHWM"] / 1024, 1),
                        mem.get(f"kib_per_tranche_{name}"),
                    ]
                )
        lines += _grid(["", "tranches", "RSS MiB", "peak MiB", "KiB/tranche"], rows)
        lines.append(f"  marginal: {_f(mem.get('kib_per_tranche_marginal'), 3)} KiB per added tranche")
        if "kib_per_tranche_after_startup" in mem:
            lines.append(
                f"  after start-up (both daemons): {_f(mem['kib_per_tranche_after_startup'], 3)} KiB per added "
                f"tranche; reachable from the daemon: {_f(mem.get('census_bytes_per_added_tranche'), 0)} B"
            )
        if mem.get("census_per_added_tranche"):
            top = ", ".join(f"{name} {b:g} B ({n:g})" for name, b, n in mem["census_per_added_tranche"][:8])
            lines.append(f"  per added tranche by type (bytes, objects): {top}")
        lines.append("")

    st = out.get("startup")
    if st:
        lines.append(
            "Start-up recovery from the store (seconds after the process was spawned; recovered = daemon up, "
            f"every actor watching, no REST request for {out['sizes'].get('quiet_s', 3):g} s)"
        )
        rows = []
        for name, r in st.items():
            note = []
            if r.get("price_stream_stuck"):
                note.append(
                    f"PRICE STREAM HUNG ({r['price_frames_received']} frames; handshake timeout "
                    f"{r['websocket_handshake_timeout_s']:g}s)"
                )
            if not r["finished"]:
                p = r.get("projection") or {}
                note.append(
                    f"cut at {r['gave_up_after_s']}s ({_f(r.get('tranches_loaded'))} tranches loaded); "
                    f"projected: store load {_f(p.get('store_load_done_s'), 0)}s, recovered "
                    f"{_f(p.get('recovered_s'), 0)}s"
                )
            rows.append(
                [
                    name,
                    r["tranches"],
                    r["venue_opened_s"],
                    r["actors_loaded_s"],
                    r["daemon_started_s"],
                    r["all_watching_s"],
                    r["recovered_s"],
                    f"{r['order_lookups']:,}/{r['order_lookups_needed']:,}",
                    _others(r),
                    "; ".join(note),
                ]
            )
        lines += _grid(
            [
                "",
                "tranches",
                "venue open",
                "all loaded",
                "daemon up",
                "watching",
                "recovered",
                "order lookups",
                "others CPU",
                "note",
            ],
            rows,
        )
        lines.append("")

    rest = out.get("rest")
    if rest:
        lines.append("REST calls counted by the simulator vs the specification's starting point")
        rows = [[k, v["posmon"], v["baseline"], f"{_f(v['reduction_pct'], 1)}%"] for k, v in rest["comparison"].items()]
        lines += _grid(["per", "posmon", "baseline", "reduction"], rows)
        h = rest["example_hour"]
        lines.append(
            f"  example hour {h['workload']}: posmon {_f(h['posmon_calls'], 1)} calls, baseline "
            f"{_f(h['baseline_calls'], 0)} -> {_f(h['reduction_pct'], 1)}% fewer"
        )
        lines.append("")

    lb = out.get("lighter_burst")
    if lb:
        from bench.lighter_burst import table as lighter_table

        lines += [lighter_table(lb), ""]
    parse = out.get("parse")
    if parse:
        from bench.parse import table as parse_table

        lines += [*parse_table(parse), ""]

    tg = out.get("targets")
    if tg:
        lines.append("Targets")
        rows = [[k, v["value"], v["target"], v["met"], v.get("note", "")] for k, v in tg.items()]
        lines += _grid(["figure", "value", "target", "met", ""], rows)
    return "\n".join(lines)
