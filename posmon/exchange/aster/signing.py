"""Request signing for Aster: v1 HMAC-SHA256 (Binance style) and v3 EIP-712 wallet signatures.

Both signers return the exact text that goes on the wire (query string or form body) with the signature
appended last, so what is signed is byte for byte what is sent: the venue re-computes the signature over
the parameter string as received, never over a re-sorted or re-encoded copy.

v3 signs EIP-712 typed data whose domain and type are constants; only ``keccak(msg)`` and the secp256k1
signature change per request, so the digest is assembled here from precomputed hashes (about 3x faster than
building the typed data with eth-account on every call; the tests check both give identical signatures).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import quote

import coincurve
from eth_hash.auto import keccak
from eth_keys import keys

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "VERIFYING_CONTRACT",
    "Eip712Signer",
    "HmacSigner",
    "Params",
    "ServerClock",
    "SignedRequest",
    "Signer",
    "encode_params",
]

Params = Sequence[tuple[str, str]]

DOMAIN_NAME = "AsterSignTransaction"
DOMAIN_VERSION = "1"
VERIFYING_CONTRACT = "0x0000000000000000000000000000000000000000"
_DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_MESSAGE_TYPEHASH = keccak(b"Message(string msg)")
_EMPTY_HEADERS: Mapping[str, str] = MappingProxyType({})


def encode_params(params: Params) -> str:
    """``k=v&k=v`` in the given order, every reserved character percent-encoded (JSON lists included)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)


class ServerClock:
    """The local wall clock corrected by the venue's offset (server time - local time), in milliseconds.

    Shared by the signers so a re-sync after a ``ClockSkew`` moves v1 timestamps and v3 nonces together.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.offset_ms = 0.0

    def local(self) -> float:
        """Local wall-clock seconds (the injected clock), for measuring a round trip."""
        return self._clock()

    def now_ms(self) -> int:
        return int(self._clock() * 1000 + self.offset_ms)

    def now_us(self) -> int:
        return int((self._clock() * 1000 + self.offset_ms) * 1000)

    def update(self, server_ms: int, sent_at: float, received_at: float) -> float:
        """Set the offset from a server time read between ``sent_at`` and ``received_at`` (local seconds)."""
        self.offset_ms = server_ms - (sent_at + received_at) / 2 * 1000
        return self.offset_ms


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What to send: the query string (after ``?``), the form body and the headers; one of query/body is empty.

    The headers may hold the API key, so they stay out of ``repr``.
    """

    query: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY_HEADERS, repr=False)

    @property
    def params_text(self) -> str:
        """The parameter string as sent (query or body), signature included."""
        return self.query or self.body.decode()


class Signer(Protocol):
    """Turns business parameters into the bytes to send; ``in_body`` puts them in a form body."""

    def sign(self, params: Params, *, in_body: bool) -> SignedRequest: ...

    def unsigned(self, params: Params, *, in_body: bool) -> SignedRequest:
        """Parameters for a call that needs the account's identity but no signature (v1 USER_STREAM)."""
        ...


def _place(text: str, headers: Mapping[str, str], in_body: bool) -> SignedRequest:
    if in_body:
        return SignedRequest(
            "", text.encode(), MappingProxyType({**headers, "Content-Type": "application/x-www-form-urlencoded"})
        )
    return SignedRequest(text, b"", MappingProxyType(dict(headers)))


class HmacSigner:
    """v1: ``X-MBX-APIKEY`` header, ``recvWindow`` and ``timestamp`` params, hex HMAC-SHA256 signature last."""

    def __init__(
        self, api_key: str, secret: str, *, clock: ServerClock | None = None, recv_window_ms: int = 5000
    ) -> None:
        self._headers = MappingProxyType({"X-MBX-APIKEY": api_key})
        self._secret = secret.encode()
        self.clock = clock if clock is not None else ServerClock()
        self.recv_window_ms = recv_window_ms

    def __repr__(self) -> str:
        return f"HmacSigner(recv_window_ms={self.recv_window_ms})"

    def signature(self, query: str, body: str = "") -> str:
        """Hex HMAC-SHA256 over ``query`` directly followed by ``body`` (no ``&`` between), as the venue checks."""
        return hmac.new(self._secret, (query + body).encode(), hashlib.sha256).hexdigest()

    def sign(self, params: Params, *, in_body: bool) -> SignedRequest:
        text = encode_params(
            [*params, ("recvWindow", str(self.recv_window_ms)), ("timestamp", str(self.clock.now_ms()))]
        )
        return _place(f"{text}&signature={self.signature(text)}", self._headers, in_body)

    def unsigned(self, params: Params, *, in_body: bool) -> SignedRequest:
        return _place(encode_params(params), self._headers, in_body)


class Eip712Signer:
    """v3: ``nonce`` (microseconds, strictly increasing), ``user``, ``signer``; EIP-712 signature of the text.

    ``sign`` is thread-safe (the REST client runs it in a worker thread: secp256k1 signing is CPU work).
    """

    def __init__(
        self, signer_private_key: str, signer: str, user: str, chain_id: int, *, clock: ServerClock | None = None
    ) -> None:
        secret = bytes.fromhex(signer_private_key.removeprefix("0x"))
        self._key = keys.PrivateKey(secret)
        # One coincurve key for the signer's lifetime: 0.14 ms a signature instead of eth-keys' 0.43 ms, which
        # derives the public key again on each call (a frame's eight exits sign eight cancels and eight closes).
        self._fast_key: coincurve.PrivateKey | None = coincurve.PrivateKey(secret)
        self.signer = signer
        self.user = user
        self.chain_id = chain_id
        self.clock = clock if clock is not None else ServerClock()
        self._domain_separator = keccak(
            _DOMAIN_TYPEHASH
            + keccak(DOMAIN_NAME.encode())
            + keccak(DOMAIN_VERSION.encode())
            + chain_id.to_bytes(32, "big")
            + bytes.fromhex(VERIFYING_CONTRACT[2:]).rjust(32, b"\0")
        )
        self._last_nonce = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Eip712Signer(signer={self.signer!r}, user={self.user!r}, chain_id={self.chain_id})"

    @property
    def address(self) -> str:
        """The address of the private key (must equal ``signer`` for the venue to accept the signatures)."""
        return str(self._key.public_key.to_checksum_address())

    def next_nonce(self) -> int:
        """Server-corrected microseconds, bumped past the last one so no two requests share a nonce."""
        with self._lock:
            self._last_nonce = max(self.clock.now_us(), self._last_nonce + 1)
            return self._last_nonce

    def digest(self, msg: str) -> bytes:
        """The EIP-712 hash of ``Message{msg}`` in the Aster domain: what the wallet signs."""
        struct_hash = keccak(_MESSAGE_TYPEHASH + keccak(msg.encode()))
        return keccak(b"\x19\x01" + self._domain_separator + struct_hash)

    def signature(self, msg: str) -> str:
        """``0x`` + r + s + v (v = 27/28), as eth-account writes it."""
        digest = self.digest(msg)
        if self._fast_key is not None:
            raw = self._fast_key.sign_recoverable(digest, hasher=None)  # r + s + recovery id, as eth-keys' bytes
        else:
            raw = self._key.sign_msg_hash(digest).to_bytes()
        return "0x" + (raw[:64] + bytes([raw[64] + 27])).hex()

    def typed_data(self, msg: str) -> dict[str, Any]:
        """The full typed-data document (for checking against eth-account; the hot path uses ``digest``)."""
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
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": self.chain_id,
                "verifyingContract": VERIFYING_CONTRACT,
            },
            "message": {"msg": msg},
        }

    def sign(self, params: Params, *, in_body: bool, nonce: int | None = None) -> SignedRequest:
        """``nonce`` taken beforehand (``next_nonce``) lets the signing itself run on a worker thread."""
        nonce = self.next_nonce() if nonce is None else nonce
        msg = encode_params([*params, ("nonce", str(nonce)), ("user", self.user), ("signer", self.signer)])
        return _place(f"{msg}&signature={self.signature(msg)}", _EMPTY_HEADERS, in_body)

    def unsigned(self, params: Params, *, in_body: bool, nonce: int | None = None) -> SignedRequest:
        """v3 has no key-only calls: everything that identifies the account is signed."""
        return self.sign(params, in_body=in_body, nonce=nonce)
