"""Error mapping: each (HTTP status, Binance code) the venue answers becomes the typed error whose class drives
the gateway's policy, carrying code, message and request name."""

from __future__ import annotations

import pytest

from posmon.exchange.aster.errors import BAN_RETRY_AFTER, RATE_LIMIT_RETRY_AFTER, error_for
from posmon.exchange.errors import (
    AuthRejected,
    Banned,
    ClockSkew,
    DuplicateClientId,
    GiveUp,
    NonceExpired,
    OrderNotFound,
    OutcomeUnknown,
    PrecisionRejected,
    RateLimited,
    Rejected,
    VenueError,
    WouldTriggerImmediately,
)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, None, RateLimited),
        (418, None, Banned),
        (500, None, OutcomeUnknown),
        (502, None, OutcomeUnknown),
        (503, -1001, OutcomeUnknown),
        (400, -1007, OutcomeUnknown),  # "Timeout waiting for response from backend server ... execution status unknown"
        (400, -1006, OutcomeUnknown),
        (400, -1021, ClockSkew),
        (400, -1022, AuthRejected),
        (401, -2014, AuthRejected),
        (401, -2015, AuthRejected),
        (400, -4225, NonceExpired),
        (400, -1111, PrecisionRejected),
        (400, -4014, PrecisionRejected),
        (400, -4023, PrecisionRejected),
        (400, -2011, OrderNotFound),
        (400, -2013, OrderNotFound),
        (400, -2019, GiveUp),
        (400, -2022, GiveUp),
        (400, -2021, WouldTriggerImmediately),
        (400, -4116, DuplicateClientId),
        (400, -1003, RateLimited),
        (400, -1015, RateLimited),
        (400, -1106, Rejected),
        (400, -4164, Rejected),
        (400, -1121, Rejected),
        (403, None, Rejected),
        (None, -2022, GiveUp),  # an item of a batch answer
        (None, -1007, OutcomeUnknown),
    ],
)
def test_status_and_code_map_to_the_typed_error(
    status: int | None, code: int | None, expected: type[VenueError]
) -> None:
    err = error_for(status, code, "venue says no", request="POST /fapi/v1/order")
    assert type(err) is expected
    assert err.code == code and err.request == "POST /fapi/v1/order"
    assert "POST /fapi/v1/order" in str(err)


def test_rate_limited_reads_retry_after_and_falls_back_to_a_default() -> None:
    limited = error_for(429, -1003, "Too many requests", request="r", retry_after="7")
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    assert error_for(429, None, "", request="r").retry_after == RATE_LIMIT_RETRY_AFTER  # type: ignore[attr-defined]
    assert error_for(429, None, "", request="r", retry_after="soon").retry_after == RATE_LIMIT_RETRY_AFTER  # type: ignore[attr-defined]


def test_ban_reads_retry_after_or_waits_the_shortest_documented_ban() -> None:
    banned = error_for(418, -1003, "Way too many requests; IP banned", request="r", retry_after="300")
    assert isinstance(banned, Banned) and banned.retry_after == 300.0
    assert error_for(418, None, "", request="r").retry_after == BAN_RETRY_AFTER  # type: ignore[attr-defined]


def test_5xx_status_wins_over_a_rejecting_code_because_the_order_may_exist() -> None:
    assert isinstance(error_for(503, -2010, "NEW_ORDER_REJECTED", request="r"), OutcomeUnknown)


def test_message_is_kept_verbatim() -> None:
    err = error_for(400, -2021, "Order would immediately trigger.", request="r")
    assert err.msg == "Order would immediately trigger."
