"""Lighter's error answers: ``{"code": N, "message": "..."}`` with an HTTP status.

21104 / 21105 and the 429 code are the venue's; the order-field codes below are the simulator's
own (named here so tests and adapters can match them), each with a message saying which field
was wrong and why.
"""

from __future__ import annotations

from typing import Any

from posmon.sim.faults import HttpFault

OK = 200
INVALID_PARAM = 20001
ACCOUNT_NOT_FOUND = 21100
INVALID_API_KEY = 21109
INVALID_NONCE = 21104
BATCH_NONCE_GAP = 21105
INVALID_TX_TYPE = 21110
INVALID_TX_INFO = 21111
TX_EXPIRED = 21112
INVALID_MARKET = 21600
INVALID_CLIENT_ORDER_INDEX = 21700
INVALID_BASE_AMOUNT = 21701
INVALID_PRICE = 21702
INVALID_ORDER_TYPE = 21703
INVALID_TIME_IN_FORCE = 21704
INVALID_EXPIRY = 21705
INVALID_TRIGGER = 21706
BELOW_MIN_AMOUNT = 21707
DUPLICATE_CLIENT_ORDER_INDEX = 21708
ORDER_NOT_FOUND = 21709
REDUCE_ONLY_INCREASES = 21710
INVALID_LEVERAGE = 21711
BATCH_TOO_LARGE = 21712
INVALID_AUTH = 20013
TOO_MANY_REQUESTS = 23000
INTERNAL = 29500


class LighterError(Exception):
    """An error answer: its code, message and HTTP status."""

    def __init__(self, code: int, message: str, status: int = 400, *, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after  # seconds, sent as Retry-After on a 429

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def fault_error(fault: HttpFault) -> LighterError:
    """A scripted failure: its status, 5xx as the venue's internal error, anything else as its 429."""
    if fault.status >= 500:
        return LighterError(INTERNAL, "service unavailable", status=fault.status)
    return LighterError(TOO_MANY_REQUESTS, "Too Many Requests!", status=fault.status)
