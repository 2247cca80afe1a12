"""``posmon verify`` / ``posmon protect`` with ``[daemon] venues``: every account checked and repaired against its
own venue (Aster's and Lighter's protocol simulators side by side), the report grouped per venue.

The daemon protects a position on each venue and stops; then each venue gets a position nobody covers, the way
another program on the account leaves one, and the commands run as the CLI runs them.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal as D
from typing import Any

import trio

from posmon.cli.exit_codes import ExitCode
from posmon.config import Settings
from posmon.domain.orders import Side
from posmon.ops.command import protect_command, verify_command
from posmon.store.store import Store
from tests.daemon.test_multivenue import daemon_on, simulators, two_venue_settings
from tests.harness import settle, trio_clock


class Ops:
    """The two commands over both venues' simulators, their output and exit codes captured."""

    def __init__(self, settings: Settings, venues: dict[str, Any]) -> None:
        self.settings, self.venues = settings, venues
        self.opened: list[str] = []
        self.out = self.err = ""

    def opener(self, settings: Settings, nursery: trio.Nursery) -> Any:
        """What ``open_venue`` does for the account each run hands it (its own venue), on the test's simulators."""

        @asynccontextmanager
        async def opened() -> AsyncIterator[Any]:
            name = settings.daemon.venue
            self.opened.append(name)
            venue = self.venues[name]
            if venue is None:
                raise OSError(f"{name}: connection refused")
            await trio.lowlevel.checkpoint()
            yield venue

        return opened()

    async def verify(self, *, as_json: bool = False, venue: str | None = None) -> int:
        out, err = io.StringIO(), io.StringIO()
        code = await verify_command(self.settings, as_json=as_json, out=out, err=err, opener=self.opener, venue=venue)
        self.out, self.err = out.getvalue(), err.getvalue()
        return code

    async def protect(self, *, dry_run: bool = False, as_json: bool = False, venue: str | None = None) -> int:
        out, err = io.StringIO(), io.StringIO()
        code = await protect_command(
            self.settings,
            dry_run=dry_run,
            as_json=as_json,
            out=out,
            err=err,
            opener=self.opener,
            clock=trio_clock,
            venue=venue,
        )
        self.out, self.err = out.getvalue(), err.getvalue()
        return code

    async def report(self, **kw: Any) -> dict[str, Any]:
        await self.verify(as_json=True, **kw)
        return json.loads(self.out)


def gaps_by_venue(doc: dict[str, Any]) -> dict[str, list[tuple[str, str, str | None]]]:
    return {a["venue"]: [(g["kind"], g["symbol"], g.get("side")) for g in a["gaps"]] for a in doc["accounts"]}


@asynccontextmanager
async def two_accounts(tmp_path: Any) -> AsyncIterator[tuple[Ops, Any, Any, Any]]:
    """A BTC position protected by the daemon on each venue (then stopped); yields the commands, Aster's exchange,
    Lighter's exchange and the LighterSim."""
    settings = two_venue_settings(tmp_path)
    async with AsyncExitStack() as stack:
        aster, lighter, aster_x, lighter_x, lighter_sim, _ = await stack.enter_async_context(simulators(settings))
        async with daemon_on(settings, [aster, lighter]):
            aster_x.set_mark("BTCUSDT", D(45000))
            aster_x.external_entry("BTCUSDT", Side.LONG, D(1))
            lighter_x.set_mark("BTC", D(45000))
            lighter_sim.external_entry("BTC", Side.LONG, D(1))
            await settle()
        yield Ops(settings, {"aster": aster, "lighter": lighter}), aster_x, lighter_x, lighter_sim


def leave_unprotected(aster_x: Any, lighter_x: Any, lighter_sim: Any) -> None:
    """Another program opens ETH on each venue while the daemon is stopped."""
    aster_x.set_mark("ETHUSDT", D(3000))
    aster_x.external_entry("ETHUSDT", Side.SHORT, D(2))
    lighter_x.set_mark("ETH", D(3000))
    lighter_sim.external_entry("ETH", Side.LONG, D(2))


async def test_verify_and_protect_check_and_repair_every_account_on_its_own_venue(tmp_path, autojump_clock):
    async with two_accounts(tmp_path) as (ops, aster_x, lighter_x, lighter_sim):
        assert await ops.verify() == ExitCode.OK, ops.out + ops.err
        aster_block, lighter_block = ops.out.rstrip("\n").split("\n\n")
        assert aster_block.startswith("posmon verify: aster account (hedge mode): 1 positions, 1 open tranches")
        # Lighter keeps positions one-way whatever daemon.hedge_mode says; its exits are posmon's (none rest).
        assert lighter_block.startswith("posmon verify: lighter account (one-way mode): 1 positions, 1 open tranches")
        assert ops.opened == ["aster", "lighter"]

        leave_unprotected(aster_x, lighter_x, lighter_sim)
        assert await ops.verify() == ExitCode.FAILED
        aster_block, lighter_block = ops.out.rstrip("\n").split("\n\n")
        assert "[unknown_position] ETHUSDT SHORT: 2 held @ 3000" in aster_block and "ETH " not in aster_block
        assert "[unknown_position] ETH LONG: 2 held @ 3000" in lighter_block and "ETHUSDT" not in lighter_block
        doc = await ops.report()
        assert doc["clean"] is False and gaps_by_venue(doc) == {
            "aster": [("unknown_position", "ETHUSDT", "SHORT")],
            "lighter": [("unknown_position", "ETH", "LONG")],
        }

        # One venue by name: only its account is opened and reported, as a single-venue daemon's would be.
        ops.opened.clear()
        only = await ops.report(venue="lighter")
        assert ops.opened == ["lighter"] and only["venue"] == "lighter"
        assert [g["symbol"] for g in only["gaps"]] == ["ETH"]

        aster_orders = aster_x.orders_sent
        assert await ops.protect(dry_run=True) == ExitCode.FAILED
        assert ops.out.count("plan (dry run: nothing is changed)") == 2 and aster_x.orders_sent == aster_orders

        assert await ops.protect(as_json=True) == ExitCode.OK, ops.out + ops.err
        repaired = json.loads(ops.out)
        assert [(a["venue"], a["clean"]) for a in repaired["accounts"]] == [("aster", True), ("lighter", True)]
        # Aster: the adopted short's TP and SL rest on the venue; Lighter: posmon holds them, nothing rests.
        assert {o.type.value for o in aster_x.engine.open_orders("ETHUSDT")} == {"LIMIT", "STOP_MARKET"}
        assert lighter_sim.account.open_orders() == []
        store = Store.open(ops.settings.daemon.store, clock=trio_clock)
        try:
            assert {(t.symbol, t.side) for t in store.open_tranches("aster")} == {
                ("BTCUSDT", Side.LONG),
                ("ETHUSDT", Side.SHORT),
            }
            on_lighter = {(t.symbol, t.side) for t in store.open_tranches("lighter")}
            assert on_lighter == {("BTC", Side.LONG), ("ETH", Side.LONG)}
        finally:
            store.close()
        assert await ops.verify() == ExitCode.OK, ops.out


async def test_an_unreachable_venue_is_reported_and_the_other_account_still_checked(tmp_path, autojump_clock):
    async with two_accounts(tmp_path) as (ops, aster_x, lighter_x, lighter_sim):
        leave_unprotected(aster_x, lighter_x, lighter_sim)
        ops.venues["lighter"] = None  # its server refuses connections
        assert await ops.verify() == ExitCode.UNREACHABLE
        aster_block, lighter_block = ops.out.rstrip("\n").split("\n\n")
        assert "[unknown_position] ETHUSDT SHORT" in aster_block
        assert lighter_block == (
            "posmon verify: lighter account not checked: exchange unreachable: lighter: connection refused"
        )
        assert "posmon: lighter: exchange unreachable" in ops.err and "Traceback" not in ops.err

        assert await ops.protect() == ExitCode.UNREACHABLE  # Aster's account is repaired all the same
        assert {o.type.value for o in aster_x.engine.open_orders("ETHUSDT")} == {"LIMIT", "STOP_MARKET"}
        assert await ops.verify(venue="aster") == ExitCode.OK


async def test_a_venue_not_configured_is_one_configuration_error(tmp_path, autojump_clock):
    async with two_accounts(tmp_path) as (ops, *_):
        assert await ops.verify(venue="binance") == ExitCode.CONFIG
        assert ops.err.strip() == (
            "posmon: configuration error: --venue: invalid value 'binance'; expected one of aster, lighter "
            "(daemon.venues)"
        )
        assert await ops.protect(venue="binance") == ExitCode.CONFIG and ops.opened == []
