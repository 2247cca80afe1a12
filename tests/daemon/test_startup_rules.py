"""Start-up reads the venue's trading rules once: the rules opening the venue read are handed to ``run_daemon``
(at 1,000 symbols a second exchangeInfo read cost about half a second of start-up)."""

import trio

from posmon.daemon import run_daemon
from posmon.domain.orders import Side
from posmon.metrics import Metrics
from posmon.sim.venue import SimVenue
from posmon.store.store import Store
from posmon.venues import opened_rules
from tests.harness import make_settings, running, settle, trio_clock


async def _restart(settings, exchange, **kwargs) -> list:
    """Restart the daemon on the store and exchange; the resting orders of each position once it is up."""
    store = Store.open(settings.daemon.store, clock=trio_clock)
    try:
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(
                lambda task_status: run_daemon(
                    settings,
                    SimVenue(exchange),
                    store,
                    metrics=Metrics(),
                    freeze_heap=False,
                    task_status=task_status,
                    **kwargs,
                )
            )
            await settle()
            assert daemon.readiness.state == "ready"
            assert set(daemon.rules) == set(exchange.engine.rules)
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    return sorted(o.client_id for o in exchange.engine.open_orders("BTCUSDT"))


async def test_rules_handed_over_are_not_read_again_and_the_restart_reconciles_the_same(tmp_path, autojump_clock):
    settings = make_settings(tmp_path)
    async with running(settings) as h:
        await h.entry("BTCUSDT", Side.LONG, "1", "45000")
        exchange = h.exchange
    resting = sorted(o.client_id for o in exchange.engine.open_orders("BTCUSDT"))
    assert resting

    before = exchange.calls["load_rules"]
    assert await _restart(settings, exchange, rules=dict(exchange.engine.rules)) == resting
    assert exchange.calls["load_rules"] == before  # handed over: not read again

    assert await _restart(settings, exchange) == resting
    assert exchange.calls["load_rules"] == before + 1  # not handed over: read as before


class _OpenedVenue:
    """A venue that read its rules when it was opened (as Aster's and Lighter's do)."""

    def __init__(self, rules: dict) -> None:
        self.rules = rules


def test_opened_rules_are_those_the_venue_read_when_opened_and_none_when_it_read_none(tmp_path):
    rules = {"BTCUSDT": object()}
    opened = opened_rules(_OpenedVenue(rules))
    assert opened == rules and opened is not rules  # a copy: the daemon's table is its own
    assert opened_rules(_OpenedVenue({})) is None
    assert opened_rules(SimVenue(object())) is None
