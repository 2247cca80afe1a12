"""Venue errors: one hierarchy, each carrying what the gateway needs to decide.

Venue-neutral: which of a venue's codes means which class is that venue's adapter's business
(``posmon.exchange.aster.errors``, ``posmon.exchange.lighter.errors``).

The gateway's policy depends only on the class: ``Rejected`` is final for that
request, ``OutcomeUnknown`` must be resolved by querying the client order id
before anything is resent, ``RateLimited``/``Banned`` pause trading calls.
"""

from __future__ import annotations


class VenueError(Exception):
    """Base class: ``code`` and ``msg`` are the venue's own, ``request`` names the call."""

    def __init__(self, msg: str, *, code: int | None = None, request: str = "") -> None:
        super().__init__(f"{request}: {msg} (code {code})" if request else f"{msg} (code {code})")
        self.code = code
        self.msg = msg
        self.request = request


class Rejected(VenueError):
    """The venue refused the request; it had no effect."""


class OrderNotFound(Rejected):
    """Cancel or query of an order the venue does not know (or no longer has open)."""


class DuplicateClientId(Rejected):
    """The venue already holds an order with this client id: not a refusal of that order, which exists (look it up)."""


class PrecisionRejected(Rejected):
    """Price or quantity off the venue's tick/step (or too precise): refresh the rules, re-round, retry."""


class WouldTriggerImmediately(Rejected):
    """A stop whose trigger the market is already through; the position needs closing instead."""


class GiveUp(Rejected):
    """Refused for a reason no retry fixes (margin, reduce-only conflict): alert the operator."""


class AuthRejected(Rejected):
    """Bad signature, key or permissions: never retried blindly; the operator must fix credentials."""


class ClockSkew(Rejected):
    """Timestamp outside the venue's receive window: re-sync the clock offset, then retry."""


class NonceExpired(Rejected):
    """A signed nonce outside the venue's window or already used: retry with a fresh nonce."""


class OutcomeUnknown(VenueError):
    """Timeout, dropped connection or 5xx: the request may or may not have taken effect."""


class RateLimited(VenueError):
    """429: back off for ``retry_after`` seconds; the request was not executed."""

    def __init__(self, msg: str, *, retry_after: float, code: int | None = None, request: str = "") -> None:
        super().__init__(msg, code=code, request=request)
        self.retry_after = retry_after


class Banned(RateLimited):
    """418: no trading call until the ban ends."""
