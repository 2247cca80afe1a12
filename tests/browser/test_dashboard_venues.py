"""The dashboard of a daemon running two venue accounts (Aster's and Lighter's protocol simulators): each account's
state, streams and request budget, a Venue column on positions, and buttons that address the position's venue."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from posmon.domain.orders import Side
from tests.browser.conftest import LiveDaemon, live_two_venues
from tests.browser.test_dashboard import api_status, cell, row


@pytest.fixture
def both(tmp_path: Path) -> Any:
    with live_two_venues(tmp_path) as d:
        yield d


def account(page: Page, venue: str, name: str) -> Any:
    return page.locator(f'#accounts tr[data-venue="{venue}"] td[data-cell="{name}"]')


def test_two_venues_show_each_account_and_the_venue_of_each_position(both: LiveDaemon, page: Page) -> None:
    both.call(both.h.aster_entry, "BTCUSDT", Side.LONG, "0.1", "45000")
    both.call(both.h.lighter_entry, "BTC", Side.SHORT, "0.1", "45000")
    status = api_status(both)
    by_venue = {t["venue"]: t for t in status["tranches"]}
    assert set(by_venue) == {"aster", "lighter"}

    page.goto(both.url)

    expect(page.locator("#feed")).to_have_text("live")
    expect(page.locator("#venue")).to_have_text("aster,lighter")
    expect(page.locator("#accounts tbody tr")).to_have_count(2)
    for venue, exits in (("aster", "resting"), ("lighter", "emulated")):
        expect(account(page, venue, "venue")).to_have_text(venue)
        expect(account(page, venue, "state")).to_have_text("ready")
        expect(account(page, venue, "exits")).to_have_text(exits)
        expect(account(page, venue, "positions")).to_have_text("1")
        expect(account(page, venue, "streams")).to_contain_text("price up")
        expect(account(page, venue, "streams")).to_contain_text("user up")
        expect(account(page, venue, "budget")).to_contain_text("weight")
    expect(page.locator("#accounts-summary")).to_have_text("2 of 2 ready")
    # The header's single-venue streams and budget give way to the accounts table.
    expect(page.locator("#streams .chip")).to_have_count(0)
    expect(page.locator("#ratelimit .chip")).to_have_count(0)

    expect(page.locator("#positions th.venue-col")).to_be_visible()
    for venue, t in by_venue.items():
        expect(cell(page, t["id"], "venue")).to_have_text(venue)
        for name in ("symbol", "side", "qty", "entry", "tp", "sl"):
            expect(cell(page, t["id"], name)).to_have_text(t[name])
    expect(page.locator('#positions tr[data-position="aster BTCUSDT LONG"]')).to_contain_text("aster · BTCUSDT LONG")
    expect(page.locator('#positions tr[data-position="lighter BTC SHORT"]')).to_be_visible()

    # Closing the Lighter position from the page names its venue: Lighter's leg closes, Aster's stays.
    lighter_id, aster_id = by_venue["lighter"]["id"], by_venue["aster"]["id"]
    lighter_position = page.locator('#positions tr[data-position="lighter BTC SHORT"]')
    lighter_position.get_by_role("button", name="Close position").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_contain_text("Close the whole BTC SHORT position on lighter at market?")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_have_text("Close BTC SHORT on lighter: done.")
    expect(row(page, lighter_id)).to_have_count(0)
    expect(row(page, aster_id)).to_be_visible()
    expect(account(page, "lighter", "positions")).to_have_text("0")
    exit_row = page.locator(f'#exits tr[data-tranche="{lighter_id}"]')  # the recent exit names its venue too
    expect(exit_row.locator('td[data-cell="venue"]')).to_have_text("lighter")
    expect(page.locator("#exits th.venue-col")).to_be_visible()
    assert both.run_sync(lambda: both.h.lighter.account.signed_position("BTC")) == D(0)
    assert [t["venue"] for t in api_status(both)["tranches"]] == ["aster"]
