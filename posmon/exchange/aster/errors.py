"""Aster's answers (HTTP status + Binance error code) mapped onto posmon's typed venue errors.

The gateway's policy depends only on the error class, so this table is where "may the order exist?" is
decided: anything that does not prove the request had no effect (5xx, timeouts, dropped connections, the
codes the venue documents as "execution status unknown") becomes ``OutcomeUnknown``. Each error carries the
venue's code and message and names the request (method and path, never the signed parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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

__all__ = ["BAN_RETRY_AFTER", "CODE_CLASSES", "RATE_LIMIT_RETRY_AFTER", "error_for", "rejection", "retry_after_seconds"]

# Used when a 429/418 comes without a Retry-After header: a short pause for 429 (the gateway re-paces
# anyway), the shortest documented ban for 418.
RATE_LIMIT_RETRY_AFTER = 5.0
BAN_RETRY_AFTER = 120.0

# Binance-family codes (Aster and the simulator share them) and what the gateway must make of each.
CODE_CLASSES: Mapping[int, type[Rejected]] = MappingProxyType(
    {
        -1021: ClockSkew,
        -1002: AuthRejected,
        -1022: AuthRejected,
        -2014: AuthRejected,
        -2015: AuthRejected,
        -4225: NonceExpired,
        -1111: PrecisionRejected,
        -4014: PrecisionRejected,
        -4023: PrecisionRejected,
        -2011: OrderNotFound,
        -2013: OrderNotFound,
        -2019: GiveUp,
        -2022: GiveUp,
        -2021: WouldTriggerImmediately,
        -4116: DuplicateClientId,
    }
)
_RATE_LIMIT_CODES = frozenset({-1003, -1015})
# -1001 DISCONNECTED, -1006 UNEXPECTED_RESP, -1007 TIMEOUT: the venue itself says the outcome is unknown.
_UNKNOWN_OUTCOME_CODES = frozenset({-1001, -1006, -1007})


def retry_after_seconds(header: str | None, default: float) -> float:
    """``Retry-After`` in seconds (the venue sends an integer); ``default`` when absent or unreadable."""
    if header is None:
        return default
    try:
        value = float(header.strip())
    except ValueError:
        return default
    return value if value >= 0 else default


def error_for(
    status: int | None, code: int | None, msg: str, *, request: str, retry_after: str | None = None
) -> VenueError:
    """The typed error for one failed answer; ``status`` is None for an item of a batch answer."""
    if status == 418:
        return Banned(
            msg or "IP banned for ignoring 429s",
            code=code,
            request=request,
            retry_after=retry_after_seconds(retry_after, BAN_RETRY_AFTER),
        )
    if status == 429 or code in _RATE_LIMIT_CODES:
        return RateLimited(
            msg or "too many requests",
            code=code,
            request=request,
            retry_after=retry_after_seconds(retry_after, RATE_LIMIT_RETRY_AFTER),
        )
    if (status is not None and status >= 500) or code in _UNKNOWN_OUTCOME_CODES:
        return OutcomeUnknown(
            msg or f"HTTP {status}: the request may or may not have taken effect", code=code, request=request
        )
    if status == 403 and code is None:
        return Rejected(msg or "refused by the venue's web application firewall (HTTP 403)", request=request)
    cls = CODE_CLASSES.get(code, Rejected) if code is not None else Rejected
    return cls(msg or f"HTTP {status}", code=code, request=request)


def rejection(msg: str, *, code: int, request: str = "") -> Rejected:
    """The typed refusal for a Binance-family error code (plain ``Rejected`` for codes with no special handling)."""
    return CODE_CLASSES.get(code, Rejected)(msg, code=code, request=request)
