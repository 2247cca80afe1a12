"""The CLI's operator commands (status, open, close, stop, resume): each one request to the daemon's API.

The base URL comes from ``--api`` or the config's ``[api]`` host and port, the token from ``POSMON_API_TOKEN``
or ``[api] token`` (never from the command line, where ``ps`` would show it). Exit codes tell a script what
happened without parsing text: see ``EXIT_CODES_HELP``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from posmon.api.client import DEFAULT_TIMEOUT_SECONDS, ApiClient, ApiRefused, ApiUnreachable
from posmon.api.settings import TOKEN_ENV, ApiSettings
from posmon.api.table import render_status
from posmon.api.validation import MAX_LEVERAGE, parse_side, parse_symbol, parse_tranche_id, parse_venue
from posmon.cli.exit_codes import ExitCode, exit_codes_help
from posmon.config import ConfigError, load_settings
from posmon.control import OpenRequest, Sizing, usd
from posmon.domain.exitplan import make_plan
from posmon.domain.orders import Side
from posmon.plan_fields import LEVELS_TEXT_EXAMPLE, PLAN_FIELDS, PlanField, levels_ok
from posmon.settings_fields import pairs_from_text

if TYPE_CHECKING:
    from posmon.cli.parser import Subparsers

EXIT_CODES_HELP = exit_codes_help(
    {
        ExitCode.OK: "done",
        ExitCode.FAILED: "the daemon refused the request or the operation failed (the message says why)",
        ExitCode.CONFIG: "usage or configuration error (including a missing or wrong API token)",
        ExitCode.UNREACHABLE: "the daemon is unreachable or did not answer in time",
    }
)
DEFAULT_WATCH_SECONDS = 2.0
MIN_WATCH_SECONDS = 0.1
CLEAR_SCREEN = "\x1b[H\x1b[2J"  # cursor home, erase the screen: each refresh replaces the last one
Call = Callable[[ApiClient, argparse.Namespace], dict[str, Any]]
Render = Callable[[dict[str, Any]], str]


@dataclass(frozen=True, slots=True)
class Target:
    base_url: str
    token: str | None


# ---- argument types (argparse turns their ArgumentTypeError into a usage error, exit 2) ------------------------


def _arg(parse: Callable[[Any], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _positive_decimal(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"{text!r} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{text!r}: expected a number > 0")
    return d


def _leverage(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LEVERAGE:
        raise ValueError(f"{text!r}: expected an integer from 1 to {MAX_LEVERAGE}")
    return value


def _rr(text: str) -> tuple[Decimal, Decimal]:
    risk, sep, reward = text.partition(":")
    if not sep:
        raise ValueError(f"{text!r}: expected RISK:REWARD, e.g. 1:2")
    return _positive_decimal(risk), _positive_decimal(reward)


def _plan_flag(f: PlanField) -> Callable[[str], Any]:
    """The parser of an exit-plan flag: the field alone, as far as it can be checked without the symbol's keys (a
    ladder entirely); the plan it makes with them is checked by the daemon (refused: exit 1 naming the field)."""
    off = f" ({f.off})" if f.off else ""

    def parse(text: str) -> Any:
        if f.bounds is None:
            expected = f"{text!r}: expected PCT:SHARE levels, e.g. {LEVELS_TEXT_EXAMPLE} ('' for none)"
            try:
                levels = pairs_from_text(text)
            except ValueError:
                raise ValueError(expected) from None
            if not levels_ok(levels):
                raise ValueError(expected)
            if levels:
                make_plan(tp_levels=levels)  # PlanError (a ValueError): "tp_levels: shares sum to 90, expected 100"
            return levels
        b = f.bounds
        try:
            value: Decimal | int = int(text) if f.kind == "int" else Decimal(text)
        except (ValueError, ArithmeticError):
            raise ValueError(f"{text!r} is not {'an integer' if f.kind == 'int' else 'a number'}") from None
        if not (isinstance(value, int) or value.is_finite()) or value not in b:
            raise ValueError(f"{text!r}: expected {b.text(f.kind == 'int')}{off}")
        if f.least is not None and 0 < value < f.least:
            raise ValueError(f"{text!r}: expected 0 or {f.least} to {b.high}{off}")
        return value

    return parse


def _plan_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: v for f in PLAN_FIELDS if (v := getattr(args, f.name, None)) is not None}


# ---- the commands -----------------------------------------------------------------------------------------------


def _status(client: ApiClient, _args: argparse.Namespace) -> dict[str, Any]:
    return client.status()


def _watch_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not MIN_WATCH_SECONDS <= value <= 86_400:
        raise ValueError(f"{text!r}: expected seconds from {MIN_WATCH_SECONDS:g} to 86400")
    return value


def _open(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    """Say what the order commits before it is sent (on stderr under ``--json``, which keeps stdout JSON)."""
    plan = _plan_fields(args)
    request = OpenRequest(args.symbol, Side[args.side], args.size_usd, args.leverage, args.sl_percent, args.rr, plan)
    print(_sizing_line("sending", request.sizing, "at the SL"), file=sys.stderr if args.json else sys.stdout)
    return client.open(
        args.side, args.symbol, args.size_usd, args.leverage, args.sl_percent, args.rr, plan, venue=args.venue
    )


def _sizing_line(what: str, s: Sizing, risk_at: str) -> str:
    return (
        f"{what}: notional {usd(s.notional_usd)} USD, margin {usd(s.margin_usd)} USD at {s.leverage}x, "
        f"{usd(s.risk_usd)} USD at risk {risk_at}"
    )


def _close(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    if args.tranche is not None:
        return client.close_tranche(args.tranche, args.symbol, args.venue)
    return client.close_position(args.symbol, args.side, args.venue)


def _stop(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    return client.stop(args.symbol, args.venue)


def _resume(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    return client.resume(args.symbol, args.venue)


def _opened(a: dict[str, Any]) -> str:
    plan = a.get("plan")
    plan_line = f"\n  exit plan: {plan['describe']}" if isinstance(plan, dict) and "describe" in plan else ""
    if a.get("entry_price") is None:
        return (
            f"{a['side']} {a['symbol']}: entry placed (tranche {a['tranche_id']}, qty {a['qty']}), not filled "
            f"yet; posmon protects it once it fills{plan_line}"
        )
    text = (
        f"{a['side']} {a['symbol']}: filled {a['qty']} at {a['entry_price']} (tranche {a['tranche_id']})\n"
        f"  TP {a['tp']} ({a['tp_percent']} %)   SL {a['sl']} ({a['sl_percent']} %)"
    )
    if "notional_usd" in a:
        sizing = Sizing(
            Decimal(a["notional_usd"]), int(a["leverage"]), Decimal(a["margin_usd"]), Decimal(a["risk_usd"])
        )
        text += "\n  " + _sizing_line("filled", sizing, "at the SL price")
    return text + plan_line


def _closing(a: dict[str, Any]) -> str:
    return "\n".join(
        f"closing {c['symbol']} {c['side']}: tranche(s) {', '.join(map(str, c['tranche_ids']))}"
        for c in a.get("closing", [])
    )


def _stopped(a: dict[str, Any]) -> str:
    return str(a["message"])  # the daemon says what it cancelled (control.StopResult.message)


def _resumed(a: dict[str, Any]) -> str:
    return f"monitoring {a['symbol']} again; its position is adopted at the next reconcile"


def _json_number(value: Any) -> float:
    """JSON numbers were parsed into ``Decimal``; they were the daemon's floats (times, ages), so print them so."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


# ---- wiring -----------------------------------------------------------------------------------------------------


def add_ops_commands(sub: Subparsers) -> None:
    """Register status/open/close/stop/resume on the ``posmon`` sub-command parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        metavar="URL",
        help="the daemon's API base URL (default: from the config's [api] host and port, e.g. http://127.0.0.1:8787)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the daemon's answer (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    common.add_argument("--json", action="store_true", help="print the daemon's JSON answer instead of text")

    def add(name: str, help_: str, call: Call, render: Render) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            parents=[common],
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=run_ops_command, call=call, render=render)
        if name != "status":
            p.add_argument(
                "--venue",
                type=_arg(parse_venue),
                default=None,
                help="the venue account (aster, lighter): needed when the daemon runs several",
            )
        return p

    p = add("status", "show the running daemon's tranches and stream health", _status, render_status)
    p.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_WATCH_SECONDS,
        type=_arg(_watch_seconds),
        metavar="SECONDS",
        help=f"redraw every SECONDS (default {DEFAULT_WATCH_SECONDS:g}) until Ctrl-C; an unreachable daemon is "
        "shown and retried",
    )

    p = add("open", "open a position at market and protect it (SL, and TP at RR times the SL distance)", _open, _opened)
    p.add_argument("side", type=str.upper, choices=["LONG", "SHORT"], help="long or short")
    p.add_argument("symbol", type=_arg(parse_symbol), help="symbol, e.g. BTCUSDT, or unified name BTC/USDT:USDT")
    p.add_argument(
        "--size-usd",
        type=_arg(_positive_decimal),
        required=True,
        metavar="USD",
        help="notional value of the position in USD (qty x price); margin = notional / leverage",
    )
    p.add_argument(
        "--leverage",
        type=_arg(_leverage),
        required=True,
        help=f"1 to {MAX_LEVERAGE}: set on the venue for the symbol before the entry (refused: nothing is sent); "
        "it changes the margin only, not the size or the USD at risk",
    )
    p.add_argument(
        "--sl-percent", type=_arg(_positive_decimal), required=True, help="stop-loss distance from the entry in percent"
    )
    p.add_argument(
        "--rr",
        type=_arg(_rr),
        required=True,
        metavar="RISK:REWARD",
        help="risk:reward, e.g. 1:2 puts the TP at twice the SL distance (with a ladder, its first level is the TP)",
    )
    plan = p.add_argument_group(
        "exit plan",
        "each overrides the symbol's configured key of the same name ([risk], [risk.symbols.X]), the others stay: "
        "an entry giving only --trailing-callback-pct keeps the symbol's ladder",
    )
    for f in PLAN_FIELDS:
        metavar = "PCT:SHARE,..." if f.bounds is None else ("N" if f.kind == "int" else "PCT")
        plan.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_arg(_plan_flag(f)),
            metavar=metavar,
            help=(
                f"{f.text}; e.g. {LEVELS_TEXT_EXAMPLE}, '' for no ladder"
                if f.bounds is None
                else f"{f.text}{f'; {f.off}' if f.off else ''}"
            ).replace("%", "%%"),  # argparse formats help with %
        )

    p = add("close", "close a symbol's tranches now (all, one side, or one tranche)", _close, _closing)
    p.add_argument("symbol", type=_arg(parse_symbol), help="symbol, e.g. BTCUSDT, or unified name BTC/USDT:USDT")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--side", type=_arg(parse_side), help="close only this side: LONG or SHORT")
    which.add_argument("--tranche", type=_arg(parse_tranche_id), metavar="ID", help="close only this tranche")

    p = add("stop", "stop monitoring a symbol (or Lighter market id) without closing it", _stop, _stopped)
    p.add_argument("symbol", type=_arg(parse_symbol), help="symbol or Lighter market id")
    p = add("resume", "resume monitoring a symbol stopped with 'posmon stop'", _resume, _resumed)
    p.add_argument("symbol", type=_arg(parse_symbol), help="symbol or Lighter market id")


def resolve_target(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    """``--api`` and ``POSMON_API_TOKEN`` when given; the rest from the configuration (read only if needed)."""
    if args.api and TOKEN_ENV in env:
        return Target(args.api, env[TOKEN_ENV] or None)
    settings = load_settings(args.config, env)
    api = ApiSettings.from_config(settings.api, env)
    return Target(args.api or api.client_url, api.token or None)


def _refused(exc: ApiRefused) -> int:
    field = f" [{exc.field}]" if exc.field else ""
    print(f"posmon: the daemon refused (HTTP {exc.status}){field}: {exc}", file=sys.stderr)
    if exc.status == 401:
        print(f"posmon: set {TOKEN_ENV} or [api] token to the daemon's token", file=sys.stderr)
        return ExitCode.CONFIG
    return ExitCode.FAILED


def run_ops_command(
    args: argparse.Namespace,
    env: Mapping[str, str] | None = None,
    *,
    client: Callable[[Target, float], ApiClient] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> int:
    """One request to the daemon; prints the answer (text or ``--json``) and returns the exit code.

    ``client``, ``sleep`` and ``clock`` are for tests (an ``httpx`` mock transport, no real waits).
    """
    env = os.environ if env is None else env
    try:
        target = resolve_target(args, env)
    except ConfigError as exc:
        print(f"posmon: configuration error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    connect = client or (lambda t, timeout: ApiClient(t.base_url, t.token, timeout=timeout))
    if getattr(args, "watch", None) is not None:
        return _watch(args, target, connect, sleep, clock)
    try:
        with connect(target, args.timeout) as api:
            answer = args.call(api, args)
    except ApiUnreachable as exc:
        print(f"posmon: {exc}", file=sys.stderr)
        return ExitCode.UNREACHABLE
    except ApiRefused as exc:
        return _refused(exc)
    print(json.dumps(answer, indent=2, default=_json_number) if args.json else args.render(answer))
    return ExitCode.OK


def _watch(
    args: argparse.Namespace,
    target: Target,
    connect: Callable[[Target, float], ApiClient],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    """``status --watch``: redraw every ``args.watch`` seconds until Ctrl-C (exit 0).

    A daemon that does not answer (restarting, briefly down) is shown as one line and asked again at the next
    refresh; only a refusal that retrying cannot fix (a wrong token: 401) ends the watch. ``--json`` prints one
    compact JSON document per refresh (JSON lines) instead of redrawing.
    """
    every: float = args.watch
    redraw = sys.stdout.isatty() and not args.json
    try:
        with connect(target, min(args.timeout, max(every, 1.0))) as api:
            while True:
                started = clock()
                stamp = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S")
                try:
                    answer = args.call(api, args)
                    body = json.dumps(answer, default=_json_number) if args.json else args.render(answer)
                except ApiUnreachable as exc:
                    body = f"posmon: {exc}; retrying every {every:g} s"
                except ApiRefused as exc:
                    if exc.status in (401, 403, 404):
                        return _refused(exc)
                    body = f"posmon: the daemon answered HTTP {exc.status}: {exc}; retrying every {every:g} s"
                if args.json:
                    print(body, flush=True)
                else:
                    header = f"posmon status at {stamp} UTC, every {every:g} s (Ctrl-C to stop)"
                    print(f"{CLEAR_SCREEN if redraw else ''}{header}\n\n{body}\n", flush=True)
                sleep(max(0.0, every - (clock() - started)))
    except KeyboardInterrupt:
        return ExitCode.OK
