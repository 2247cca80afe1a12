"""The dashboard in headless Chromium against a running daemon: what it shows, how it follows, what it does.

Each test asserts what the operator sees (rows, exact price strings) against what the API and the store say,
and leaves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from posmon.domain.exitplan import make_plan
from posmon.domain.orders import Side
from posmon.store.store import Changes
from tests.browser.conftest import LiveDaemon, live_daemon

TOKEN = "dash-token-0123456789abcdef"


def api_status(daemon: LiveDaemon) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {daemon.token}"} if daemon.token else {}
    answer = httpx.get(f"{daemon.url}/api/monitor/status", headers=headers, timeout=10)
    answer.raise_for_status()
    return answer.json()


def row(page: Page, tranche_id: int) -> Any:
    return page.locator(f'#positions tr[data-tranche="{tranche_id}"]')


def cell(page: Page, tranche_id: int, name: str) -> Any:
    return row(page, tranche_id).locator(f'td[data-cell="{name}"]')


def position_qty(daemon: LiveDaemon, symbol: str, side: Side) -> D:
    def qty() -> D:
        p = daemon.h.exchange.engine.position(symbol, side)
        return p.qty if p is not None else D(0)

    return daemon.run_sync(qty)


def test_the_page_shows_every_tranche_the_api_shows_with_its_exact_prices(daemon: LiveDaemon, page: Page) -> None:
    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "43900")  # down 2.4 %: a second tranche
    daemon.call(daemon.h.entry, "ETHUSDT", Side.SHORT, "0.5", "3000")
    daemon.call(daemon.h.mark, "BTCUSDT", "44123.4")
    tranches = api_status(daemon)["tranches"]
    assert len(tranches) == 3

    page.goto(daemon.url)

    expect(page.locator("#positions tr[data-tranche]")).to_have_count(3)
    expect(page.locator("#feed")).to_have_text("live")
    for t in api_status(daemon)["tranches"]:  # marks do not move meanwhile: the strings are the API's own
        for name in ("symbol", "side", "qty", "entry", "mark", "tp", "sl"):
            expect(cell(page, t["id"], name)).to_have_text(t[name])
        expect(cell(page, t["id"], "exits")).to_have_text("resting")  # the simulator rests TP/SL orders
        expect(cell(page, t["id"], "upnl")).to_have_text(
            re.compile(r"^[+-]?" + re.escape(t["unrealized_pnl"].lstrip("-")) + "$")
        )
    long_ids = [t["id"] for t in tranches if t["side"] == "LONG"]
    expect(page.locator('#positions tr[data-position="BTCUSDT LONG"]')).to_contain_text("2 tranches")
    first = next(t for t in tranches if t["id"] == long_ids[0])
    to_tp = (D(first["tp"]) - D("44123.4")) / D("44123.4") * 100
    expect(cell(page, first["id"], "toTp")).to_have_text(f"+{to_tp:.2f} %")
    expect(page.locator("#streams")).to_contain_text("price up")
    expect(page.locator("#ratelimit")).to_contain_text(re.compile(r"weight \d+%"))
    # One venue: no accounts table and no Venue column (the header names the venue).
    expect(page.locator("#accounts-section")).to_be_hidden()
    expect(page.locator("#positions th.venue-col")).to_be_hidden()
    expect(page.locator("#exits th.venue-col")).to_be_hidden()


def test_the_page_follows_a_tranche_opening_and_exiting_without_a_reload(daemon: LiveDaemon, page: Page) -> None:
    page.goto(daemon.url)
    expect(page.locator("#no-positions")).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloaded

    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
    [opened] = daemon.open_tranche_ids("BTCUSDT")
    expect(row(page, opened)).to_be_visible()
    expect(cell(page, opened, "entry")).to_have_text("45000")

    tp = D(api_status(daemon)["tranches"][0]["tp"])
    daemon.call(daemon.h.mark, "BTCUSDT", str(tp + 50))  # through the TP: the tranche exits
    assert daemon.open_tranche_ids("BTCUSDT") == []
    expect(page.locator("#positions tr[data-tranche]")).to_have_count(0)
    expect(page.locator("#no-positions")).to_be_visible()

    history = httpx.get(f"{daemon.url}/api/history", timeout=10)
    if history.status_code == 404:  # GET /api/history not in this daemon yet: the page says so
        expect(page.locator("#history-state")).to_have_text(re.compile("history unavailable"))
    else:
        expect(page.locator(f'#exits tr[data-tranche="{opened}"]')).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True


def close_button(page: Page, tranche_id: int) -> Any:
    return cell(page, tranche_id, "action").get_by_role("button", name="Close")


def test_a_close_confirmed_on_the_page_closes_the_tranche(daemon: LiveDaemon, page: Page) -> None:
    daemon.call(daemon.h.entry, "ETHUSDT", Side.SHORT, "0.5", "3000")
    daemon.call(daemon.h.entry, "ETHUSDT", Side.SHORT, "0.5", "3100")  # up 3.3 % against a SHORT: a second one
    first, second = sorted(daemon.open_tranche_ids("ETHUSDT"))
    page.goto(daemon.url)
    expect(row(page, first)).to_be_visible()

    close_button(page, first).click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Close tranche #{first}")
    expect(dialog).to_contain_text("0.5")
    dialog.get_by_role("button", name="Confirm").click()

    expect(row(page, first)).to_have_count(0)
    expect(row(page, second)).to_be_visible()
    assert daemon.open_tranche_ids("ETHUSDT") == [second]
    assert position_qty(daemon, "ETHUSDT", Side.SHORT) == D("0.5")
    expect(page.locator("#notice")).to_have_text(f"Close tranche #{first}: done.")


def test_a_dismissed_confirmation_sends_nothing_and_closes_nothing(daemon: LiveDaemon, page: Page) -> None:
    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
    [tid] = daemon.open_tranche_ids()
    page.goto(daemon.url)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    dialog = page.locator("dialog#confirm")

    close_button(page, tid).click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.locator('#positions tr[data-position="BTCUSDT LONG"]').get_by_role("button", name="Close position").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # A round trip through the daemon after the dismissals: anything they had sent would have arrived by now.
    page.evaluate("fetch('/health').then(r => r.status)")
    assert posts == []
    assert daemon.open_tranche_ids() == [tid]
    assert position_qty(daemon, "BTCUSDT", Side.LONG) == D("0.01")
    expect(row(page, tid)).to_be_visible()


def test_stop_and_resume_monitoring_from_the_page(daemon: LiveDaemon, page: Page) -> None:
    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
    [tid] = daemon.open_tranche_ids()
    page.goto(daemon.url)
    dialog = page.locator("dialog#confirm")

    page.locator('#positions tr[data-position="BTCUSDT LONG"]').get_by_role("button", name="Stop monitoring").click()
    dialog.get_by_role("button", name="Confirm").click()
    expect(row(page, tid)).to_have_count(0)
    resume = page.locator("#unmonitored").get_by_role("button", name="Resume")
    expect(page.locator("#unmonitored")).to_contain_text("BTCUSDT")
    assert api_status(daemon)["unmonitored"] == ["BTCUSDT"]
    assert position_qty(daemon, "BTCUSDT", Side.LONG) == D("0.01")  # stopped, not closed

    resume.click()
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator("#unmonitored")).to_be_hidden()
    assert api_status(daemon)["unmonitored"] == []


def test_with_a_token_the_page_shows_nothing_until_it_is_given(tmp_path: Path, page: Page) -> None:
    with live_daemon(tmp_path, token=TOKEN) as daemon:
        daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
        [tid] = daemon.open_tranche_ids()

        page.goto(daemon.url)
        expect(page.locator("#auth")).to_be_visible()
        expect(page.locator("#data")).to_be_hidden()
        assert page.locator("[data-tranche]").count() == 0 and "45000" not in page.content()

        page.fill("#auth-token", "wrong-token-0123456789")
        page.click("#auth-form button[type=submit]")
        expect(page.locator("#auth-message")).to_contain_text("refused")
        assert page.locator("[data-tranche]").count() == 0

        page.fill("#auth-token", TOKEN)
        page.click("#auth-form button[type=submit]")
        expect(row(page, tid)).to_be_visible()
        expect(cell(page, tid, "entry")).to_have_text("45000")

        fresh = page.context.new_page()  # a new tab shares nothing: the token comes from the fragment
        fresh.goto(f"{daemon.url}/#token={TOKEN}")
        expect(fresh.locator(f'#positions tr[data-tranche="{tid}"]')).to_be_visible()
        assert "token" not in fresh.url  # taken out of the address bar
        close = fresh.locator(f'#positions tr[data-tranche="{tid}"]').get_by_role("button", name="Close")
        close.click()
        fresh.locator("dialog#confirm").get_by_role("button", name="Confirm").click()  # a POST with the bearer
        expect(fresh.locator(f'#positions tr[data-tranche="{tid}"]')).to_have_count(0)
        assert daemon.open_tranche_ids() == []
        fresh.close()


HISTORY = {
    "tranches": [
        {
            "id": 4,
            "venue": "sim",
            "symbol": "BTCUSDT",
            "side": "LONG",
            "index": 0,
            "entry": "45000.0",
            "exit_price": "45450.0",
            "qty": "0.010",
            "exit_reason": "TP",
            "realized_pnl": "4.500",
            "fees": "0.18",
            "net_pnl": "4.320",
            "opened_at": 1_765_000_000.0,
            "closed_at": 1_765_000_600.0,
            "hold_seconds": 600.0,
        },
        {
            "id": 5,
            "venue": "sim",
            "symbol": "ETHUSDT",
            "side": "SHORT",
            "index": 0,
            "entry": "3000.00",
            "exit_price": "3060.00",
            "qty": "0.5",
            "exit_reason": "SL",
            "realized_pnl": "-30.000",
            "fees": "0.60",
            "net_pnl": "-30.600",
            "opened_at": 1_765_000_100.0,
            "closed_at": 1_765_003_700.0,
            "hold_seconds": 3600.0,
        },
    ],
    "realized_pnl": "-25.500",
    "fees": "0.78",
    "net_pnl": "-26.280",
}


@pytest.mark.parametrize("answer", ["history", "missing"])
def test_recent_exits_and_the_pnl_chart_come_from_the_history_endpoint(
    daemon: LiveDaemon, page: Page, answer: str
) -> None:
    """The contract of ``GET /api/history`` rendered as given; a daemon without it (404) is said, not broken."""
    if answer == "history":
        page.route("**/api/history", lambda route: route.fulfill(json=HISTORY))
    else:
        page.route("**/api/history", lambda route: route.fulfill(status=404, json={"error": "Not Found"}))
    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
    page.goto(daemon.url)
    expect(page.locator("#positions tr[data-tranche]")).to_have_count(1)  # the live part works either way

    if answer == "missing":
        expect(page.locator("#history-state")).to_have_text("history unavailable (this daemon has no /api/history)")
        expect(page.locator("#exits")).to_be_hidden()
        return
    rows = page.locator("#exits tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("SL")  # newest first
    expect(rows.nth(0).locator("td").nth(10)).to_have_text("-30.600")
    expect(rows.nth(1).locator("td").nth(6)).to_have_text("45450.0")
    expect(rows.nth(1).locator("td").nth(10)).to_have_text("+4.320")
    expect(page.locator("#chart-summary")).to_have_text("realized -25.500 · fees 0.78 · net -26.280")
    expect(page.locator("#chart circle")).to_have_count(2)
    expect(page.locator("#chart text.last")).to_have_text("-26.280")  # exact running sum, not a float's


def test_a_long_decimal_is_shown_rounded_exactly_and_says_so(daemon: LiveDaemon, page: Page) -> None:
    """An average entry such as 45180.666... is cut to 8 places by exact decimal rounding, its full value kept."""
    page.goto(daemon.url)
    expect(page.locator("#feed")).to_have_text("live")
    shown = page.evaluate(
        """() => [decShown("45180.66666666666666666666667"), decShown("-0.81520000000000000000000002"),
                  decShown("-0.000000001"), decShown("2973.63"), decSum(["0.1", "0.2", "-0.30"])]"""
    )
    assert shown == [["45180.66666667", False], ["-0.8152", False], ["0", False], ["2973.63", True], "0.00"]


def test_emulated_exits_are_shown_as_such_and_a_close_from_the_page_closes_at_market(
    tmp_path: Path, page: Page
) -> None:
    """On a venue without resting TP/SL (Lighter-like), posmon watches the exits itself and the page says so."""
    with live_daemon(tmp_path, emulated=True) as daemon:
        daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
        [tid] = daemon.open_tranche_ids()
        assert daemon.run_sync(lambda: daemon.h.exchange.engine.open_orders("BTCUSDT")) == []  # nothing rests
        assert position_qty(daemon, "BTCUSDT", Side.LONG) == D("0.01")
        page.goto(daemon.url)
        expect(cell(page, tid, "exits")).to_have_text("emulated")

        close_button(page, tid).click()
        page.locator("dialog#confirm").get_by_role("button", name="Confirm").click()
        expect(row(page, tid)).to_have_count(0)
        assert daemon.open_tranche_ids() == []
        assert position_qty(daemon, "BTCUSDT", Side.LONG) == 0


def test_a_tranche_whose_sl_is_gone_from_the_venue_is_shown_as_not_protected(daemon: LiveDaemon, page: Page) -> None:
    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.01", "45000")
    [tranche] = daemon.open_tranche_ids("BTCUSDT")
    page.goto(daemon.url)
    expect(cell(page, tranche, "exits")).to_have_text("resting")

    # Someone cancels the SL on the venue and none of posmon's attempts to put it back gets an answer.
    def cancel_the_sl() -> None:
        [sl] = [o for o in daemon.h.orders() if o.type.value == "STOP_MARKET"]
        daemon.h.exchange.fail_next("place_orders", 10_000)  # every re-placement: it stays gone
        daemon.h.exchange.cancel_orders("BTCUSDT", [sl.client_id])

    daemon.run_sync(cancel_the_sl)

    expect(cell(page, tranche, "exits")).to_have_text(re.compile(r"^resting: SL (MISSING|PENDING)$"))
    expect(cell(page, tranche, "exits")).to_have_class(re.compile(r"\bdead\b"))


def test_a_tranche_with_an_exit_plan_shows_it_in_a_plan_column(daemon: LiveDaemon, page: Page) -> None:
    """The Plan column appears only once a tranche has a plan; the plan's state in short, the plan in its title."""
    daemon.call(daemon.h.entry, "BTCUSDT", Side.LONG, "0.1", "45000")
    daemon.call(daemon.h.entry, "ETHUSDT", Side.SHORT, "0.5", "3000")
    [btc] = daemon.open_tranche_ids("BTCUSDT")
    [eth] = daemon.open_tranche_ids("ETHUSDT")
    page.goto(daemon.url)
    expect(row(page, btc)).to_be_visible()
    expect(page.locator("#positions th.plan-col")).to_be_hidden()
    expect(cell(page, btc, "plan")).to_be_hidden()
    assert_group_row_spans_the_table(page)

    plan = make_plan(tp_levels=[[1, 30], [2, 30], [3, 40]], trailing_callback_pct=1, breakeven_after_tp=1)

    def give_plan() -> None:  # level 1 filled, break-even earned, the stop trailing the best mark of 46000
        store = daemon.h.store
        [t] = store.open_tranches(daemon.h.venue.name, "BTCUSDT")
        moved = dataclasses.replace(t, plan=plan, level=1, tp=D("45900"), sl=D("45540"), best_mark=D("46000"))
        store.apply(Changes(tranches=[moved]))

    daemon.run_sync(give_plan)

    expect(page.locator("#positions th.plan-col")).to_be_visible()
    expect(cell(page, btc, "plan")).to_have_text("TP 2/3 TRAIL BE")
    expect(cell(page, btc, "plan")).to_have_attribute("title", re.compile("^" + re.escape(plan.describe())))
    expect(cell(page, btc, "plan")).to_have_attribute("title", re.compile(r"level 2 TP 45900 for 0\.042"))
    expect(cell(page, btc, "tp")).to_have_text("45900")
    expect(cell(page, btc, "sl")).to_have_text("45540")
    expect(cell(page, eth, "plan")).to_have_text("-")
    assert_group_row_spans_the_table(page)


def assert_group_row_spans_the_table(page: Page) -> None:
    """A position's row lines up with the columns shown: its uPnL sits under the uPnL header."""
    header = page.locator("#positions th", has_text="uPnL").bounding_box()
    group_upnl = page.locator('#positions tr[data-position="BTCUSDT LONG"] td').nth(1).bounding_box()
    assert header is not None and group_upnl is not None and abs(header["x"] - group_upnl["x"]) < 1
