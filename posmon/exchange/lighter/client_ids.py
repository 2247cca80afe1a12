"""posmon's client order ids <-> Lighter's integer ``client_order_index`` (1 .. 2**48-1), reversibly.

posmon ids are ``<prefix>-<tranche_id>-<P><seq>`` (``posmon.domain.protection``). Lighter carries only a
48-bit integer, so the id is packed into fixed bit fields:

    bit 47        1: the order is posmon's (indexes below 2**47 are never ours)
    bits 45..46   purpose: E=0, T=1, S=2, C=3
    bits 32..44   seq, 0 .. 8191
    bits  0..31   tranche id, 0 .. 2**32-1

The prefix is not encoded (there is no room): every posmon-marked index on the account maps back under the
configured prefix, which is one more reason one account key has one posmon. Ids outside these limits are
refused, never truncated. Another program's order comes back as ``lighter-<client_order_index>`` (or
``lighter-<order_index>`` when it has none), which never parses as posmon's, and maps back to that index
so it can still be cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from posmon.domain.orders import Purpose
from posmon.domain.protection import client_order_id, parse_client_order_id

__all__ = ["FOREIGN_PREFIX", "MAX_CLIENT_ORDER_INDEX", "MAX_SEQ", "MAX_TRANCHE_ID", "ClientIds", "UnmappableId"]

MAX_CLIENT_ORDER_INDEX = 2**48 - 1
POSMON_BIT = 1 << 47
_PURPOSE_SHIFT = 45
_SEQ_SHIFT = 32
MAX_SEQ = 2**13 - 1
MAX_TRANCHE_ID = 2**32 - 1
FOREIGN_PREFIX = "lighter-"
_CODES = {Purpose.ENTRY: 0, Purpose.TP: 1, Purpose.SL: 2, Purpose.CLOSE: 3}
_PURPOSES = {code: purpose for purpose, code in _CODES.items()}


class UnmappableId(ValueError):
    """A client id that has no Lighter index (not posmon-shaped, or beyond the bit fields' limits)."""


@dataclass(frozen=True, slots=True)
class ClientIds:
    """The mapping for one posmon instance (its client id prefix)."""

    prefix: str

    def index(self, client_id: str) -> int:
        """The ``client_order_index`` of a posmon id (or the index inside a ``lighter-<n>`` id)."""
        if client_id.startswith(FOREIGN_PREFIX):
            digits = client_id[len(FOREIGN_PREFIX) :]
            if digits.isdigit() and digits.isascii() and int(digits) > 0:
                return int(digits)
            raise UnmappableId(f"{client_id!r} is not 'lighter-<positive integer>'")
        parsed = parse_client_order_id(self.prefix, client_id)
        if parsed is None:
            raise UnmappableId(f"{client_id!r} is not a posmon client id with prefix {self.prefix!r}")
        tranche_id, purpose, seq = parsed
        if tranche_id > MAX_TRANCHE_ID:
            raise UnmappableId(f"{client_id!r}: tranche id {tranche_id} exceeds {MAX_TRANCHE_ID}")
        if seq > MAX_SEQ:
            raise UnmappableId(f"{client_id!r}: seq {seq} exceeds {MAX_SEQ}")
        if client_id != client_order_id(self.prefix, tranche_id, purpose, seq):
            raise UnmappableId(f"{client_id!r} has leading zeros; it would not map back to itself")
        return POSMON_BIT | _CODES[purpose] << _PURPOSE_SHIFT | seq << _SEQ_SHIFT | tranche_id

    def is_ours(self, client_order_index: int) -> bool:
        return 0 < client_order_index <= MAX_CLIENT_ORDER_INDEX and bool(client_order_index & POSMON_BIT)

    def client_id(self, client_order_index: int, order_index: int = 0) -> str:
        """posmon's id for an order seen on Lighter: ours decoded, anyone else's as ``lighter-<index>``."""
        if self.is_ours(client_order_index):
            purpose = _PURPOSES[client_order_index >> _PURPOSE_SHIFT & 0b11]
            seq = client_order_index >> _SEQ_SHIFT & MAX_SEQ
            return client_order_id(self.prefix, client_order_index & MAX_TRANCHE_ID, purpose, seq)
        return f"{FOREIGN_PREFIX}{client_order_index or order_index}"
