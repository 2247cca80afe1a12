"""Opening the configured venues: the in-process simulator, or Aster and Lighter over their real protocols.

With ``venue = "aster"`` and no URLs, the Aster-protocol simulator is started on 127.0.0.1 first and the
adapter trades it over real HTTP and websockets, so the default run exercises the code a live account uses;
likewise Lighter's. ``venues = ["aster", "lighter"]`` with no URLs starts both simulators in-process.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from posmon.config import ConfigError, Settings
from posmon.domain.orders import SymbolRules
from posmon.exchange.venue import Venue
from posmon.sim.exchange import SimExchange
from posmon.startup import retry_startup, venue_is_embedded

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_venue(
    settings: Settings,
    nursery: trio.Nursery,
    *,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    exchange: SimExchange | None = None,
    name: str | None = None,
) -> AsyncIterator[Venue]:
    """The venue the daemon trades (``name``, default ``[daemon] venue``), with any embedded simulator running in
    ``nursery``.

    ``exchange``: a simulated exchange the caller drives itself (the demo); otherwise one replaying the
    configured recording is started when the configuration asks for a simulator.
    """
    env = os.environ if env is None else env
    venue = name or settings.daemon.venue
    if venue == "sim":
        from posmon.sim.session import start_replay
        from posmon.sim.venue import SimVenue

        await trio.lowlevel.checkpoint()
        yield SimVenue(exchange or start_replay(settings, nursery, clock=clock))
    elif venue == "aster":
        from posmon.exchange.aster.settings import AsterSettings
        from posmon.exchange.aster.venue import AsterVenue

        aster = AsterSettings.from_config(settings.aster, env)  # a bad value stops here, before any network
        if aster.embedded:
            rest_url, ws_url = await start_embedded_aster(settings, nursery, clock=clock, exchange=exchange)
            log.info("aster: no URLs configured; trading the embedded Aster-protocol simulator at %s", rest_url)
            aster = dataclasses.replace(aster, rest_url=rest_url, ws_url=ws_url)
        # Aster's signatures take ~0.1 ms (HMAC, or the constant-folded EIP-712 digest): cheaper on the trio
        # thread than the hop to a worker thread and back (bench: ~4.5 ms from gateway call to request).
        async with AsterVenue.open(aster, clock=clock, sign_in_thread=False) as opened:
            await _check_position_mode(opened, settings.daemon.hedge_mode)
            yield opened
    elif venue == "lighter":
        from posmon.exchange.lighter.settings import LighterSettings
        from posmon.exchange.lighter.venue import LighterVenue

        lighter = LighterSettings.from_config(settings.lighter, env)  # a bad value stops here, before any network
        if lighter.embedded:
            lighter = await start_embedded_lighter(settings, lighter, nursery, clock=clock)
            log.info(
                "lighter: no URLs configured; trading the embedded Lighter-protocol simulator at %s", lighter.rest_url
            )
        async with LighterVenue.open(lighter, client_id_prefix=settings.daemon.client_id_prefix, clock=clock) as opened:
            yield opened
    else:
        raise ConfigError(f"daemon.venue: {venue!r} is not available; expected 'sim', 'aster' or 'lighter'")


@dataclass(frozen=True, slots=True)
class VenueOpener:
    """One venue account that ``run_daemon`` opens itself, in the account's own nursery (``[daemon] venues``):
    a venue that is down at start-up then holds up only its own account, never the others."""

    settings: Settings
    name: str
    embedded: bool  # a simulator posmon starts itself: opened once, never retried
    env: Mapping[str, str] | None = None
    clock: Callable[[], float] = time.time

    @property
    def venue_kind(self) -> str:
        """Which venue this opens; the account's ``name`` is the same here (``cluster.accounts`` names others)."""
        return self.name

    async def open_once(
        self, nursery: trio.Nursery, stack: AsyncExitStack, *, per_try: float, log: logging.Logger
    ) -> Venue:
        """One try at opening the venue (bounded by ``per_try``), closed by ``stack``; ``StartupFailure`` else.
        The opened venue is named after the account, so ``run_daemon`` keys actors, store rows and metrics by it."""

        async def attempt() -> Venue:
            opener = open_venue(self.settings, nursery, env=self.env, clock=self.clock, name=self.venue_kind)
            venue = await opener.__aenter__()
            stack.push_async_exit(opener.__aexit__)
            if self.name != self.venue_kind:
                venue.name = self.name  # the account's key (the adapter's class attribute, shadowed)
            return venue

        auth = None
        if self.venue_kind == "aster":
            from posmon.exchange.aster.settings import AsterSettings

            auth = AsterSettings.from_config(self.settings.aster, os.environ if self.env is None else self.env).auth
        return await retry_startup(
            attempt,
            venue=self.name,
            what="connecting",
            give_up_after=per_try,
            log=log,
            per_try=per_try,
            auth=auth,
            retry=False,
        )


def venue_openers(
    settings: Settings, *, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time
) -> list[VenueOpener]:
    """An opener per venue of ``[daemon] venues``, for ``run_daemon`` to open each in its account's nursery."""
    return [
        VenueOpener(settings, name, venue_is_embedded(settings, env, name=name), env, clock)
        for name in settings.daemon.venue_names
    ]


def opened_rules(venue: Venue) -> dict[str, SymbolRules] | None:
    """The trading rules opening ``venue`` already read (Aster, Lighter), for ``run_daemon`` not to read them twice;
    None for a venue that reads none when opened (the in-process simulator)."""
    rules = getattr(venue, "rules", None)
    return dict(rules) if rules else None


async def _check_position_mode(venue: Venue, hedge_mode: bool) -> None:
    """Refuse to run when the account's position mode is not the one the configuration describes."""
    actual = await venue.position_mode()
    if actual != hedge_mode:
        want, have = ("hedge", "one-way") if hedge_mode else ("one-way", "hedge")
        raise ConfigError(
            f"daemon.hedge_mode: invalid value {hedge_mode!r}; the account is in {have} mode, not "
            f"{want} mode (change daemon.hedge_mode or the account's position mode)"
        )


async def start_embedded_lighter(
    settings: Settings, lighter: Any, nursery: trio.Nursery, *, clock: Callable[[], float] = time.time
) -> Any:
    """Serve the Lighter-protocol simulator (replaying the recording) on loopback; the settings pointed at it.

    Keys left empty take the simulator's made-up account and API key (never real ones).
    """
    from posmon.sim.lighter import credentials as cred
    from posmon.sim.lighter.session import start_embedded_lighter as serve

    _, rest_url, ws_url = await serve(
        nursery, tick_seconds=settings.sim.tick_seconds, seed=settings.sim.seed, clock=clock
    )
    if lighter.api_private_key:  # the operator's own key against the simulator: keep what was configured
        return dataclasses.replace(lighter, rest_url=rest_url, ws_url=ws_url)
    return dataclasses.replace(
        lighter,
        rest_url=rest_url,
        ws_url=ws_url,
        account_index=cred.DEFAULT_ACCOUNT_INDEX,
        api_key_index=cred.DEFAULT_API_KEY_INDEX,
        api_private_key=cred.DEFAULT_API_PRIVATE_KEY,
    )


async def start_embedded_aster(
    settings: Settings,
    nursery: trio.Nursery,
    *,
    clock: Callable[[], float] = time.time,
    exchange: SimExchange | None = None,
) -> tuple[str, str]:
    """Serve a simulated exchange (by default one replaying the recording) over the Aster protocol on loopback.

    Returns its (REST, websocket) base URLs.
    """
    from posmon.sim.aster import serve_aster_sim
    from posmon.sim.aster.sim import AsterSim
    from posmon.sim.session import start_replay

    exchange = exchange or start_replay(settings, nursery, clock=clock)
    return await nursery.start(serve_aster_sim, AsterSim(exchange))
