"""Request authentication, v1 (API key + HMAC-SHA256) and v3 (EIP-712 signed by an API wallet).

Both schemes sign the parameter string exactly as sent, so the checks work on the raw
query and body, never on re-encoded values: a client that re-orders or re-escapes
after signing fails here exactly as it would on the venue.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.messages import encode_typed_data

from posmon.sim.aster import errors as e
from posmon.sim.aster.credentials import ApiKey, ApiWallet
from posmon.sim.aster.errors import ApiError, invalid, mandatory
from posmon.sim.aster.params import Params, strip_signature

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
FUTURE_TOLERANCE_MS = 1_000
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAINNET_CHAIN_ID = 1666


class Security(enum.Enum):
    """What an endpoint demands (the venue's security types, folded to what differs in the checks)."""

    NONE = "NONE"  # public market data
    USER_STREAM = "USER_STREAM"  # v1: API key only; v3: signed like TRADE
    SIGNED = "SIGNED"  # TRADE and USER_DATA


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request was authenticated as (the simulator has one account; this says by which credential)."""

    scheme: str  # "v1" | "v3" | "none"
    credential: str  # API key or signer address
    user: str | None = None


def typed_message(msg: str, chain_id: int) -> dict[str, object]:
    """The EIP-712 document an Aster v3 request signs."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Message": [{"name": "msg", "type": "string"}],
        },
        "primaryType": "Message",
        "domain": {
            "name": "AsterSignTransaction",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": ZERO_ADDRESS,
        },
        "message": {"msg": msg},
    }


def recover_signer(msg: str, signature: str, chain_id: int) -> str | None:
    """The address that signed ``msg``, or None when the signature is not a valid one."""
    try:
        return str(
            Account.recover_message(
                encode_typed_data(full_message=typed_message(msg, chain_id)),
                signature=signature if signature.startswith("0x") else "0x" + signature,
            )
        )
    except Exception:  # malformed hex, wrong length, point not on the curve: all just "not valid"
        return None


@dataclass(slots=True)
class NonceBook:
    """The venue's replay guard for one signer: the newest ``capacity`` nonces, oldest evicted first.

    The venue's flow: a nonce already in the list is a duplicate; otherwise, when the list is
    full and the nonce is below its minimum, it is too old. Both answer -4225 here (see
    ``Authenticator._check_nonce``).
    """

    capacity: int
    _heap: list[int] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)

    def admit(self, nonce: int) -> bool:
        """Remember ``nonce`` and say True, or say False for a duplicate or one older than all remembered."""
        if nonce in self._seen:
            return False
        if len(self._heap) >= self.capacity:
            if nonce < self._heap[0]:
                return False
            self._seen.discard(heapq.heapreplace(self._heap, nonce))
        else:
            heapq.heappush(self._heap, nonce)
        self._seen.add(nonce)
        return True


class Authenticator:
    """Checks v1 and v3 credentials against the configured accounts and the server clock."""

    def __init__(
        self,
        api_keys: Iterable[ApiKey],
        api_wallets: Iterable[ApiWallet],
        clock: Callable[[], float],
        *,
        chain_id: int = MAINNET_CHAIN_ID,
        nonce_window_seconds: float = 60.0,
        nonce_memory: int = 100,
    ) -> None:
        self._secrets = {k.key: k.secret for k in api_keys}
        self._wallets: dict[str, str] = {w.signer.lower(): w.user.lower() for w in api_wallets}
        self._users = frozenset(self._wallets.values())
        self._clock = clock
        self.chain_id = chain_id
        self.nonce_window_seconds = nonce_window_seconds
        self.nonce_memory = nonce_memory
        self._nonces: dict[str, NonceBook] = {}

    def add_api_key(self, key: ApiKey) -> None:
        self._secrets[key.key] = key.secret

    def add_api_wallet(self, wallet: ApiWallet) -> None:
        self._wallets[wallet.signer.lower()] = wallet.user.lower()
        self._users = frozenset(self._wallets.values())

    def authenticate(self, version: str, security: Security, params: Params, headers: Mapping[str, str]) -> Principal:
        """Raise the venue's ``ApiError`` unless the request carries what ``security`` demands."""
        if security is Security.NONE:
            return Principal("none", "")
        if version == "v3":
            return self._check_v3(params)
        return self._check_v1(security, params, headers)

    # ---- v1 -----------------------------------------------------------------------------------------------------

    def _check_v1(self, security: Security, params: Params, headers: Mapping[str, str]) -> Principal:
        key = headers.get("x-mbx-apikey", "")
        if not key:
            raise ApiError(e.BAD_API_KEY_FMT)
        secret = self._secrets.get(key)
        if secret is None:
            raise ApiError(e.REJECTED_KEY)
        principal = Principal("v1", key)
        if security is Security.USER_STREAM:
            return principal
        self._check_timestamp(params)
        query, query_signature = strip_signature(params.raw_query)
        body, body_signature = strip_signature(params.raw_body)
        signature = query_signature if query_signature is not None else body_signature
        if not signature:
            raise mandatory("signature")
        expected = hmac.new(secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(e.BAD_SIGNATURE)
        return principal

    def _check_timestamp(self, params: Params) -> None:
        raw = params.values.get("timestamp")
        if not raw:
            raise mandatory("timestamp")
        try:
            timestamp = int(raw)
        except ValueError:
            raise mandatory("timestamp") from None
        recv_window = DEFAULT_RECV_WINDOW_MS
        raw_window = params.values.get("recvWindow")
        if raw_window:
            try:
                recv_window = int(raw_window)
            except ValueError:
                raise invalid("recvWindow") from None
            if not 0 < recv_window <= MAX_RECV_WINDOW_MS:
                raise invalid("recvWindow")
        server_ms = round(self._clock() * 1000)
        if timestamp >= server_ms + FUTURE_TOLERANCE_MS:
            raise ApiError(e.BAD_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server_ms - timestamp > recv_window:
            raise ApiError(e.BAD_TIMESTAMP, "Timestamp for this request is outside of the recvWindow.")

    # ---- v3 -----------------------------------------------------------------------------------------------------

    def _check_v3(self, params: Params) -> Principal:
        values = params.values
        for name in ("nonce", "signer", "signature"):
            if not values.get(name):
                raise mandatory(name)
        signer = values["signer"].lower()
        user = (values.get("user") or signer).lower()
        query, query_signature = strip_signature(params.raw_query)
        body, body_signature = strip_signature(params.raw_body)
        signature = query_signature if query_signature is not None else body_signature
        # The docs name one parameter string; a request split over query and body signs both, joined by '&'.
        msg = "&".join(part for part in (query, body) if part)
        recovered = recover_signer(msg, signature or "", self.chain_id)
        if recovered is None or recovered.lower() != signer:
            raise ApiError(e.BAD_SIGNATURE)
        # ccxt sends user == signer: accept a registered signer for its own user, or a main wallet signing itself.
        registered_user = self._wallets.get(signer)
        if registered_user is None and signer not in self._users:
            raise ApiError(e.REJECTED_KEY)
        if user != signer and registered_user != user:
            raise ApiError(e.REJECTED_KEY)
        self._check_nonce(signer, values["nonce"])
        return Principal("v3", signer, registered_user or signer)

    def _check_nonce(self, signer: str, raw: str) -> None:
        """-4225 for a nonce outside ±window of the server clock, reused, or older than all remembered.

        The docs give ``{"code":-4225,"msg":"Nonce Expired"}`` for the expired case (and show it
        for a reused nonce in the noop example) but do not name a separate code for "duplicate
        request"; the simulator answers -4225 for every nonce refusal. It checks the signature
        first, so a forged request cannot burn a signer's nonces.
        """
        try:
            nonce = int(raw)
        except ValueError:
            raise mandatory("nonce") from None
        server_us = self._clock() * 1_000_000
        if abs(nonce - server_us) > self.nonce_window_seconds * 1_000_000:
            raise ApiError(e.NONCE_EXPIRED)
        book = self._nonces.setdefault(signer, NonceBook(self.nonce_memory))
        if not book.admit(nonce):
            raise ApiError(e.NONCE_EXPIRED)
