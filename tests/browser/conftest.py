"""Headless Chromium (the system's, driven by Playwright) against a daemon on the in-process simulator.

The daemon runs in a trio loop on a thread of its own, with its API on 127.0.0.1 and a free port; the tests are
plain synchronous functions driving Playwright's sync API, and reach into the daemon's loop through
``LiveDaemon.call`` / ``run_sync`` (its store and exchange belong to that thread). Time is real here: every wait
is a bounded condition wait (Playwright's ``expect``), never a fixed sleep.

Chromium is the Debian package at /usr/bin/chromium (``make`` installs it where missing); Playwright's own
browser download is never used. Without it the tests are skipped, except under ``CI=true``, where they fail.
Each test leaves a screenshot of its last state in tests/artifacts/.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from posmon.api import ApiSettings, create_app, serve_api
from posmon.api.dashboard import StreamSettings
from tests.emulated import lighter_like
from tests.harness import Harness, make_settings, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DAEMON_START_TIMEOUT = 30.0
TIMEOUT_MS = 10_000  # every expect/wait in these tests: generous for a loaded 2-core machine


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: run `make` (installs Debian's chromium) or `apt-get install chromium`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class LiveDaemon:
    """A running daemon: ``url`` of its API (and dashboard), ``h`` its harness (touch only through ``call``)."""

    url: str
    h: Harness | Any  # with two venues: tests.daemon.test_multivenue's ``Both``
    token: str | None
    _trio_token: trio.lowlevel.TrioToken

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await fn(*args)`` in the daemon's loop (e.g. ``h.entry``, ``h.mark``), returning its result."""
        return trio.from_thread.run(fn, *args, trio_token=self._trio_token)

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the daemon's thread: its store's SQLite connection may only be used there."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._trio_token)

    def open_tranche_ids(self, symbol: str | None = None) -> list[int]:
        return self.run_sync(lambda: [t.id for t in self.h.store.open_tranches(self.h.venue.name, symbol)])


@contextmanager
def live_daemon(tmp_path: Path, *, token: str | None = None, emulated: bool = False) -> Iterator[LiveDaemon]:
    """The daemon (BTCUSDT and ETHUSDT, marks 45000 and 3000; TP 1 %, SL 5 %, a new tranche 2 % down) with its API
    served, until the block ends. ``emulated``: a Lighter-like venue (one-way, exits watched by posmon)."""
    settings = make_settings(
        tmp_path, symbols=("BTCUSDT", "ETHUSDT"), tp_pct=1.0, sl_pct=5.0, tranche_pnl_increment_pct=2.0
    )
    exchange = venue = None
    if emulated:
        settings = dataclasses.replace(settings, daemon=dataclasses.replace(settings.daemon, hedge_mode=False))
        exchange, venue = lighter_like(settings)

    @asynccontextmanager
    async def one_venue() -> AsyncIterator[Harness]:
        async with running(settings, exchange, venue=venue) as h:
            await h.mark("BTCUSDT", "45000")
            await h.mark("ETHUSDT", "3000")
            yield h

    with _served(one_venue, token) as d:
        yield d


@contextmanager
def live_two_venues(tmp_path: Path) -> Iterator[LiveDaemon]:
    """One daemon running an Aster and a Lighter account (``[daemon] venues``) on both protocol simulators over
    loopback, marks BTCUSDT / BTC 45000 and ETHUSDT / ETH 3000 (TP 1 %, SL 5 %); ``h`` is a
    ``tests.daemon.test_multivenue.Both``."""
    from tests.daemon.test_multivenue import Both, daemon_on, simulators, two_venue_settings

    settings = two_venue_settings(tmp_path)

    @asynccontextmanager
    async def two_venues() -> AsyncIterator[Both]:
        async with AsyncExitStack() as stack:
            aster, lighter, aster_x, lighter_x, lighter_sim, _ = await stack.enter_async_context(simulators(settings))
            daemon, store, metrics = await stack.enter_async_context(daemon_on(settings, [aster, lighter]))
            h = Both(settings, store, metrics, daemon, aster_x, lighter_x, lighter_sim, lighter)
            await h.aster_mark("BTCUSDT", "45000")
            await h.aster_mark("ETHUSDT", "3000")
            await h.lighter_mark("BTC", "45000")
            await h.lighter_mark("ETH", "3000")
            yield h

    with _served(two_venues, None) as d:
        yield d


@contextmanager
def _served(start: Callable[[], AbstractAsyncContextManager[Any]], token: str | None) -> Iterator[LiveDaemon]:
    """The daemon ``start`` runs, with its API served on a thread of its own until the block ends."""
    ready: queue.Queue[LiveDaemon | BaseException] = queue.Queue()
    stop: list[trio.CancelScope] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            stop.append(scope)
            async with start() as h:
                app = create_app(h.daemon.control, metrics_render=None, token=token, stream=StreamSettings())
                async with trio.open_nursery() as nursery:
                    api = ApiSettings(host="127.0.0.1", port=0, token=token or "")
                    url = await nursery.start(serve_api, app, api)
                    ready.put(LiveDaemon(url, h, token, trio.lowlevel.current_trio_token()))
                    await trio.sleep_forever()

    def thread_main() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported to the test instead of dying silently in the thread
            ready.put(exc)

    thread = threading.Thread(target=thread_main, name="posmon-daemon", daemon=True)
    thread.start()
    got = ready.get(timeout=DAEMON_START_TIMEOUT)
    if isinstance(got, BaseException):
        raise got
    try:
        yield got
    finally:
        trio.from_thread.run_sync(stop[0].cancel, trio_token=got._trio_token)
        thread.join(timeout=DAEMON_START_TIMEOUT)
        assert not thread.is_alive(), "the daemon did not stop within its time limit"
        while not ready.empty():  # an error raised while stopping
            late = ready.get()
            if isinstance(late, BaseException):
                raise late


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab (its own sessionStorage); its last state is saved as tests/artifacts/<test>.png."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1480, "height": 820})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()
    assert errors == [], f"the page raised: {errors}"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[LiveDaemon]:
    with live_daemon(tmp_path) as d:
        yield d
