"""A Lighter-like venue on the in-process simulator: one-way mode, emulated exits, bounded market orders."""

import dataclasses
from decimal import Decimal as D

from posmon.sim.exchange import SimExchange
from posmon.sim.markets import rules_for
from posmon.sim.venue import SimVenue
from tests.harness import make_settings, trio_clock

SLIPPAGE = (D("0.5"), D("0.5"), D("1.5"))  # first bound, widening step, cap (percent through the mark)


def one_way(tmp_path, **risk):
    s = make_settings(tmp_path, **risk)
    return dataclasses.replace(s, daemon=dataclasses.replace(s.daemon, hedge_mode=False))


def lighter_like(settings):
    exchange = SimExchange(rules_for(settings.sim.symbols), hedge_mode=False, clock=trio_clock, bounded_market=True)
    return exchange, SimVenue(exchange, emulated_exits=True, close_slippage=SLIPPAGE)
