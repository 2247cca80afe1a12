"""``posmon pair open|link|close|status``: hedge pairs over two venue accounts, each one request to the API.

A leg is written ``VENUE:SYMBOL`` (``aster:BTCUSDT``, ``aster:BTC/USDT:USDT``: the symbol may be a unified name),
and for ``open`` the second leg may be the venue alone (the first leg's asset there); ``link`` takes a leg's side
as ``VENUE:SYMBOL@SIDE`` when posmon holds both sides of it. Bad input is a usage error (exit 2) before anything is
sent; the daemon's refusals name the field (exit 1).
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from posmon.api.client import DEFAULT_TIMEOUT_SECONDS, ApiClient
from posmon.api.table import render_pairs
from posmon.api.validation import parse_side, parse_symbol, parse_tranche_id, parse_venue
from posmon.cli.commands import EXIT_CODES_HELP, _arg, _positive_decimal, run_ops_command

if TYPE_CHECKING:
    from posmon.cli.parser import Subparsers


def parse_leg(text: str) -> dict[str, Any]:
    """``VENUE[:SYMBOL][@SIDE]`` -> ``{"venue", "symbol"?, "side"?}`` (the API's leg object)."""
    text, _, side = text.partition("@")
    venue, _, symbol = text.partition(":")
    leg: dict[str, Any] = {"venue": parse_venue(venue)}
    if symbol:
        leg["symbol"] = parse_symbol(symbol)
    if side:
        leg["side"] = parse_side(side).value
    return leg


def _pair_id(text: str) -> int:
    try:
        return parse_tranche_id(text)
    except ValueError:
        raise ValueError(f"{text!r}: expected a pair id, a non-negative integer (posmon pair status)") from None


def _percent(text: str) -> Decimal:
    d = _positive_decimal(text)
    if d >= 100:
        raise ValueError(f"{text!r}: expected a number > 0 and < 100")
    return d


def _imbalance(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"{text!r} is not a number") from None
    if not d.is_finite() or not 0 <= d < 100:
        raise ValueError(f"{text!r}: expected 0 (no alarm) to under 100")
    return d


_RULES = (
    ("tp_usd", "--tp-usd", _positive_decimal, "close both legs when the combined PnL reaches this (USD)"),
    ("sl_usd", "--sl-usd", _positive_decimal, "close both legs when the combined PnL falls to minus this (USD)"),
    ("tp_percent", "--tp-percent", _percent, "the same in %% of the pair's notional"),
    ("sl_percent", "--sl-percent", _percent, "the same in %% of the pair's notional"),
    ("protect_stop_percent", "--protect-stop-percent", _percent, "the tight stop's distance with 'protect'"),
    ("max_leg_imbalance_pct", "--max-leg-imbalance-pct", _imbalance, "alarm beyond this (0: none; default 1)"),
)


def _rules(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {name: getattr(args, name) for name, *_ in _RULES if getattr(args, name) is not None}
    if args.on_leg_exit is not None:
        body["on_leg_exit"] = args.on_leg_exit
    if args.auto_rebalance:
        body["auto_rebalance"] = True
    return body


def _open(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"legs": [args.first, args.second], "side": args.side, **_rules(args)}
    body["qty" if args.qty is not None else "notional_usd"] = args.qty if args.qty is not None else args.notional_usd
    return client.open_pair(body)


def _link(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    return client.link_pair({"legs": [args.first, args.second], **_rules(args)})


def _close(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    return client.close_pair(args.id)


def _status(client: ApiClient, _args: argparse.Namespace) -> dict[str, Any]:
    return client.pairs()


def _pair_line(a: dict[str, Any]) -> str:
    if "legs" not in a:  # closed already (both entries refused, or an unwound pair)
        reason = f" ({a['close_reason']})" if a.get("close_reason") else ""
        return f"pair {a.get('id')}: {a.get('status')}{reason}"
    return render_pairs({"pairs": [a]})


def add_pair(sub: Subparsers) -> None:
    """Register ``posmon pair`` and its sub-commands."""
    group = sub.add_parser("pair", help="hedge pairs across two venues (open, link, close, status)")
    pair_sub = group.add_subparsers(dest="pair_command", required=True, metavar="PAIR_COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", metavar="URL", help="the daemon's API base URL (default: from the config's [api])")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS")
    common.add_argument("--json", action="store_true", help="print the daemon's JSON answer instead of text")
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="configuration file")

    def add(name: str, help_: str, call: Any) -> argparse.ArgumentParser:
        p = pair_sub.add_parser(
            name,
            help=help_,
            description=help_,
            parents=[common],
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=run_ops_command, call=call, render=_pair_line)
        return p

    def rules(p: argparse.ArgumentParser) -> None:
        for name, flag, parse, text in _RULES:
            p.add_argument(flag, dest=name, type=_arg(parse), default=None, help=text)
        p.add_argument("--on-leg-exit", choices=["close", "protect"], default=None, help="default: close")
        p.add_argument("--auto-rebalance", action="store_true", help="trim the larger leg on an imbalance alarm")

    p = add("open", "open a pair: SIDE on the first leg, the opposite on the second, the same base quantity", _open)
    p.add_argument("side", type=str.upper, choices=["LONG", "SHORT"], help="the first leg's side")
    p.add_argument(
        "first", type=_arg(parse_leg), metavar="VENUE:SYMBOL", help="e.g. aster:BTCUSDT, aster:BTC/USDT:USDT"
    )
    p.add_argument("second", type=_arg(parse_leg), metavar="VENUE[:SYMBOL]", help="e.g. lighter (the same asset)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--qty", type=_arg(_positive_decimal), help="base quantity of each leg")
    size.add_argument("--notional-usd", type=_arg(_positive_decimal), help="or notional at the first leg's mark")
    rules(p)
    p.set_defaults(render=_pair_line)

    p = add("link", "pair two positions posmon already holds, one on each venue", _link)
    p.add_argument("first", type=_arg(parse_leg), metavar="VENUE:SYMBOL[@SIDE]")
    p.add_argument("second", type=_arg(parse_leg), metavar="VENUE:SYMBOL[@SIDE]")
    rules(p)

    p = add("close", "close both legs of a pair now", _close)
    p.add_argument("id", type=_arg(_pair_id), help="the pair's id (posmon pair status)")

    p = add("status", "every pair not closed: both legs, PnL, funding, imbalance, stale legs", _status)
    p.set_defaults(render=render_pairs)
