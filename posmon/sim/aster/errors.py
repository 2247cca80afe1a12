"""The venue's error answers: ``{"code": ..., "msg": ...}`` with the HTTP status Binance-compatible venues use.

Every refusal the simulator makes goes through ``ApiError`` so the status, code and
headers (``Retry-After``) are decided in one place, and messages match the venue's
canonical text where the code has one: clients (ccxt among them) map messages too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from posmon.exchange.errors import OrderNotFound, VenueError
from posmon.sim.faults import HttpFault

# Codes used by the simulator (Binance USD-M futures numbering, which Aster keeps).
TIMEOUT = -1007
TOO_MANY_REQUESTS = -1003
TOO_MANY_ORDERS = -1015
UNSUPPORTED = -1020
BAD_TIMESTAMP = -1021
BAD_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
DUPLICATE_PARAM = -1101
MANDATORY_PARAM = -1102
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
BAD_SYMBOL = -1121
INVALID_LISTEN_KEY = -1125
INVALID_PARAMETER = -1130
INVALID_RESP_TYPE = -1136
UNKNOWN_ORDER = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_KEY = -2015
WOULD_TRIGGER = -2021
MAX_OPEN_ORDERS = -2025
PRICE_TOO_HIGH = -4002
QTY_TOO_LOW = -4003
QTY_BELOW_MIN = -4004
QTY_ABOVE_MAX = -4005
STOP_PRICE_TOO_LOW = -4006
STOP_PRICE_TOO_HIGH = -4007
PRICE_BELOW_MIN = -4013
BAD_TICK = -4014
BAD_CLIENT_ID_LEN = -4015
PRICE_ABOVE_MULTIPLIER_UP = -4016
BAD_STEP = -4023
BAD_LEVERAGE = -4028
PRICE_BELOW_MULTIPLIER_DOWN = -4024
INVALID_WORKING_TYPE = -4031
BAD_CANCEL_BATCH_SIZE = -4032
MAX_STOP_ORDERS = -4045
NO_NEED_TO_CHANGE_POSITION_SIDE = -4059
INVALID_POSITION_SIDE = -4060
POSITION_SIDE_MISMATCH = -4061
POSITION_SIDE_CHANGE_OPEN_ORDERS = -4067
POSITION_SIDE_CHANGE_POSITION = -4068
BAD_BATCH_SIZE = -4082
QTY_WITH_CLOSE_POSITION = -4137
MIN_NOTIONAL = -4164
NONCE_EXPIRED = -4225
POST_ONLY_REJECTED = -5022

CANONICAL_MESSAGES: Mapping[int, str] = {
    TIMEOUT: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    UNSUPPORTED: "This operation is not supported.",
    BAD_SIGNATURE: "Signature for this request is not valid.",
    BAD_PRECISION: "Precision is over the maximum defined for this asset.",
    INVALID_TIF: "Invalid timeInForce.",
    INVALID_ORDER_TYPE: "Invalid orderType.",
    INVALID_SIDE: "Invalid side.",
    BAD_SYMBOL: "Invalid symbol.",
    INVALID_LISTEN_KEY: "This listenKey does not exist.",
    INVALID_RESP_TYPE: "Invalid newOrderRespType.",
    -2010: "NEW_ORDER_REJECTED",
    UNKNOWN_ORDER: "Unknown order sent.",
    NO_SUCH_ORDER: "Order does not exist.",
    BAD_API_KEY_FMT: "API-key format invalid.",
    REJECTED_KEY: "Invalid API-key, IP, or permissions for action.",
    WOULD_TRIGGER: "Order would immediately trigger.",
    -2022: "ReduceOnly Order is rejected.",
    MAX_OPEN_ORDERS: "Reach max open order limit.",
    PRICE_TOO_HIGH: "Price greater than max price.",
    QTY_TOO_LOW: "Quantity less than or equal to zero.",
    QTY_BELOW_MIN: "Quantity less than min quantity.",
    QTY_ABOVE_MAX: "Quantity greater than max quantity.",
    STOP_PRICE_TOO_LOW: "Stop price less than zero.",
    STOP_PRICE_TOO_HIGH: "Stop price greater than max price.",
    PRICE_BELOW_MIN: "Price less than min price.",
    BAD_TICK: "Price not increased by tick size.",
    BAD_CLIENT_ID_LEN: "Client order id length should not be more than 36 chars",
    PRICE_ABOVE_MULTIPLIER_UP: "Price is higher than mark price multiplier cap.",
    BAD_STEP: "Qty not increased by step size.",
    PRICE_BELOW_MULTIPLIER_DOWN: "Price is lower than mark price multiplier floor.",
    INVALID_WORKING_TYPE: "Invalid parameter working type",
    BAD_CANCEL_BATCH_SIZE: "Exceed maximum cancel order size.",
    MAX_STOP_ORDERS: "Reach max stop order limit.",
    NO_NEED_TO_CHANGE_POSITION_SIDE: "No need to change position side.",
    INVALID_POSITION_SIDE: "Invalid position side.",
    POSITION_SIDE_MISMATCH: "Order's position side does not match user's setting.",
    POSITION_SIDE_CHANGE_OPEN_ORDERS: "Position side cannot be changed if there exists open orders.",
    POSITION_SIDE_CHANGE_POSITION: "Position side cannot be changed if there exists position.",
    BAD_BATCH_SIZE: "Invalid number of batch place orders.",
    -4116: "ClientOrderId is duplicated.",
    QTY_WITH_CLOSE_POSITION: "Quantity must be zero with closePosition equals true",
    NONCE_EXPIRED: "Nonce Expired",
    POST_ONLY_REJECTED: "Due to the order could not be executed as maker, the Post Only order will be rejected.",
}

# Binance answers a bad or unknown key with 401; every other refusal is a 400.
_UNAUTHORIZED = frozenset({BAD_API_KEY_FMT, REJECTED_KEY})


class ApiError(Exception):
    """One refusal: the HTTP status, the venue code (a string for the odd ``"200"`` answers) and message."""

    def __init__(
        self, code: int, msg: str | None = None, *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        text = msg if msg is not None else CANONICAL_MESSAGES.get(code, "")
        super().__init__(f"{code}: {text}")
        self.code = code
        self.msg = text
        self.status = status if status is not None else (401 if code in _UNAUTHORIZED else 400)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    return ApiError(MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def not_required(name: str) -> ApiError:
    return ApiError(PARAM_NOT_REQUIRED, f"Parameter '{name}' sent when not required.")


def invalid(name: str) -> ApiError:
    return ApiError(INVALID_PARAMETER, f"Data sent for parameter '{name}' is not valid.")


def from_venue_error(exc: VenueError) -> ApiError:
    """The engine's refusal on the wire: its code, with the venue's canonical text where the code has one."""
    code = exc.code if exc.code is not None else -1000
    if isinstance(exc, OrderNotFound) and code not in CANONICAL_MESSAGES:
        code = NO_SUCH_ORDER
    # The engine's -4164 text already is the venue's, with the symbol's own minimum in it.
    return ApiError(code, CANONICAL_MESSAGES.get(code, exc.msg) if code != MIN_NOTIONAL else exc.msg)


def fault_error(fault: HttpFault) -> ApiError:
    """A scripted ``fail`` (503 -1007, as a backend timeout) or ``reject`` (429 rate limited / 418 IP banned)."""
    if fault.kind != "reject":
        return ApiError(TIMEOUT, status=503)
    message = (
        "Too many requests; please use the websocket for live updates."
        if fault.status == 429
        else "Way too many requests; IP banned until further notice."
    )
    return ApiError(
        TOO_MANY_REQUESTS, message, status=fault.status, headers={"Retry-After": str(max(1, math.ceil(fault.seconds)))}
    )
