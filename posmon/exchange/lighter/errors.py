"""Lighter's answers (HTTP status + ``{"code", "message"}``) mapped onto posmon's typed venue errors.

Anything that does not prove the request had no effect (5xx, timeouts, dropped connections, an unreadable
answer) becomes ``OutcomeUnknown``; the gateway then looks the order up before resending. 429 is
``RateLimited``. 21104 (invalid nonce) and 21105 (batch nonces not consecutive) are ``NonceExpired``: the
venue refused before executing, and the nonce keeper re-fetches. Other business codes are ``Rejected``
subclasses via Lighter's own code table below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from posmon.exchange.errors import (
    AuthRejected,
    NonceExpired,
    OutcomeUnknown,
    PrecisionRejected,
    RateLimited,
    Rejected,
    VenueError,
)

__all__ = ["CODE_OK", "INVALID_NONCE", "NONCES_NOT_CONSECUTIVE", "RATE_LIMIT_RETRY_AFTER", "error_for"]

CODE_OK = 200
INVALID_NONCE = 21104
NONCES_NOT_CONSECUTIVE = 21105
INVALID_PUBLIC_KEY = 21108  # "invalid PublicKey, please run changePubKey": the key is not registered
RATE_LIMIT_RETRY_AFTER = 10.0  # a 429 without Retry-After: Lighter's window is a rolling minute

_BY_CODE: Mapping[int, type[Rejected]] = MappingProxyType(
    {
        INVALID_NONCE: NonceExpired,
        NONCES_NOT_CONSECUTIVE: NonceExpired,
        INVALID_PUBLIC_KEY: AuthRejected,
    }
)
_AUTH_WORDS = ("signature", "public key", "publickey", "auth", "api key")
_PRECISION_WORDS = ("tick", "step size", "decimals", "precision")


def _retry_after(header: str | None) -> float:
    try:
        value = float(header) if header is not None else RATE_LIMIT_RETRY_AFTER
    except ValueError:
        return RATE_LIMIT_RETRY_AFTER
    return value if value >= 0 else RATE_LIMIT_RETRY_AFTER


def error_for(
    status: int | None, code: int | None, msg: str, *, request: str, retry_after: str | None = None
) -> VenueError:
    """The typed error for one failed answer (``status`` None when only a body code is known)."""
    if status == 429 or code == 429:
        return RateLimited(
            msg or "too many requests", code=code, request=request, retry_after=_retry_after(retry_after)
        )
    if (status is not None and status >= 500) or (code is not None and code >= 500 and code < 600):
        return OutcomeUnknown(
            msg or f"HTTP {status}: the request may or may not have taken effect", code=code, request=request
        )
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code](msg or f"code {code}", code=code, request=request)
    low = msg.lower()
    if status in (401, 403) or any(w in low for w in _AUTH_WORDS):
        return AuthRejected(msg or f"HTTP {status}", code=code, request=request)
    if any(w in low for w in _PRECISION_WORDS):
        return PrecisionRejected(msg, code=code, request=request)
    return Rejected(msg or f"HTTP {status}", code=code, request=request)
