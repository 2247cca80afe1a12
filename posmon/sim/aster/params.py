"""Request parameters as the venue reads them: query string and form body, raw text kept for signatures.

Signatures cover the bytes exactly as sent, so the raw strings travel with the parsed
values; typed accessors turn a missing or malformed value into the venue's own error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from posmon.sim.aster.errors import DUPLICATE_PARAM, ApiError, invalid, mandatory

#: Parameters that authenticate a request rather than describe it; handlers never see them.
AUTH_PARAMS = frozenset({"timestamp", "recvWindow", "signature", "nonce", "signer", "user"})


@dataclass(slots=True)
class Params:
    """Parsed parameters (query first, then body) plus the raw strings they came from."""

    values: dict[str, str] = field(default_factory=dict)
    raw_query: str = ""
    raw_body: str = ""
    duplicate: str | None = None  # first repeated name: the venue refuses the request (-1101)

    def check_duplicates(self) -> None:
        if self.duplicate is not None:
            raise ApiError(DUPLICATE_PARAM, f"Duplicate values for a parameter detected: '{self.duplicate}'.")

    def business(self) -> dict[str, str]:
        """The parameters a handler acts on (authentication ones removed)."""
        return {k: v for k, v in self.values.items() if k not in AUTH_PARAMS}


def parse_params(raw_query: bytes, raw_body: bytes) -> Params:
    """Both halves of a request; undecodable bytes are kept as text so a signature over them simply fails."""
    query = raw_query.decode("latin-1")
    body = raw_body.decode("utf-8", errors="replace")
    params = Params(raw_query=query, raw_body=body)
    for part in (query, body):
        for name, value in parse_qsl(part, keep_blank_values=True):
            if name in params.values and params.duplicate is None:
                params.duplicate = name
            params.values[name] = value
    return params


def strip_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` without its ``signature=...`` pair (and that pair's separator), and the signature found."""
    kept: list[str] = []
    signature = None
    for pair in raw.split("&") if raw else []:
        if pair.startswith("signature="):
            signature = pair[len("signature=") :]
        else:
            kept.append(pair)
    return "&".join(kept), signature


# ---- typed accessors over a plain mapping (request or batch item) ----------------------------------------------


def text(values: Mapping[str, str], name: str) -> str | None:
    """The value, or None when absent; an empty value counts as not sent."""
    value = values.get(name)
    return value if value else None


def required(values: Mapping[str, str], name: str) -> str:
    value = text(values, name)
    if value is None:
        raise mandatory(name)
    return value


def decimal(values: Mapping[str, str], name: str) -> Decimal | None:
    value = text(values, name)
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise mandatory(name) from None
    if not number.is_finite():
        raise mandatory(name)
    return number


def boolean(values: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    """``"true"``/``"false"`` in any case, as the venue accepts them."""
    value = text(values, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise invalid(name)
    return lowered == "true"


def integer(values: Mapping[str, str], name: str) -> int | None:
    value = text(values, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise mandatory(name) from None


def choice(values: Mapping[str, str], name: str, allowed: Iterable[str], error: ApiError, default: str) -> str:
    value = text(values, name)
    if value is None:
        return default
    if value not in allowed:
        raise error
    return value
