"""Lighter transaction signing through the Go library bundled in lighter-sdk, loaded with ctypes.

Why not ``lighter.SignerClient``: the SDK's Python side needs aiohttp and a running asyncio loop, and the
daemon runs on trio. Only the Go library (``lighter/signers/lighter-signer-<os>-<arch>.so``) is used here,
located through the installed package's directory without importing the package. Every call passes an
explicit nonce and api key index, so the Go code never fetches a nonce over the network.

The calls block (about 0.8-2.6 ms per order): callers run them with ``trio.to_thread.run_sync``. Signing calls
may run in several threads at once (``LighterRest.sign_many``): ctypes releases the GIL around each foreign call,
and the Go side (lighter-go 1.x ``sharedlib``/``client``) keeps its clients in a map guarded by a mutex, never
changes a ``TxClient`` after ``CreateClient``, builds each transaction and its options afresh per call, and
samples a fresh Schnorr nonce per signature, so concurrent calls with distinct explicit nonces share nothing
mutable. Only ``CreateClient`` (which writes that map) is serialised here.
The private key is held only to hand it to ``CreateClient``; it never appears in a repr, log or error.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
import threading
from typing import Any

__all__ = [
    "CROSS_MARGIN_MODE",
    "DEFAULT_28_DAY_ORDER_EXPIRY",
    "DEFAULT_IOC_EXPIRY",
    "ISOLATED_MARGIN_MODE",
    "NIL_TRIGGER_PRICE",
    "ORDER_TIME_IN_FORCE_GOOD_TILL_TIME",
    "ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL",
    "ORDER_TIME_IN_FORCE_POST_ONLY",
    "ORDER_TYPE_LIMIT",
    "ORDER_TYPE_MARKET",
    "ORDER_TYPE_STOP_LOSS",
    "ORDER_TYPE_STOP_LOSS_LIMIT",
    "ORDER_TYPE_TAKE_PROFIT",
    "ORDER_TYPE_TAKE_PROFIT_LIMIT",
    "ORDER_TYPE_TWAP",
    "PINNED_SDK",
    "TX_TYPE_CANCEL_ALL_ORDERS",
    "TX_TYPE_CANCEL_ORDER",
    "TX_TYPE_CREATE_GROUPED_ORDERS",
    "TX_TYPE_CREATE_ORDER",
    "TX_TYPE_MODIFY_ORDER",
    "TX_TYPE_UPDATE_LEVERAGE",
    "TX_TYPE_UPDATE_MARGIN",
    "LighterSigner",
    "SignError",
    "SignerUnavailable",
    "library_path",
]

#: The SDK version whose Go library's argument order this module follows.
PINNED_SDK = "lighter-sdk==1.1.8"

# Order types and times in force (names and values as in lighter.signer_client.SignerClient).
ORDER_TYPE_LIMIT = 0
ORDER_TYPE_MARKET = 1
ORDER_TYPE_STOP_LOSS = 2
ORDER_TYPE_STOP_LOSS_LIMIT = 3
ORDER_TYPE_TAKE_PROFIT = 4
ORDER_TYPE_TAKE_PROFIT_LIMIT = 5
ORDER_TYPE_TWAP = 6
ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL = 0
ORDER_TIME_IN_FORCE_GOOD_TILL_TIME = 1
ORDER_TIME_IN_FORCE_POST_ONLY = 2
NIL_TRIGGER_PRICE = 0
DEFAULT_28_DAY_ORDER_EXPIRY = -1
DEFAULT_IOC_EXPIRY = 0
CROSS_MARGIN_MODE = 0
ISOLATED_MARGIN_MODE = 1

# Transaction types: the ``tx_type`` form field of sendTx (lighter-go types/txtypes/constants.go).
TX_TYPE_CHANGE_PUB_KEY = 8
TX_TYPE_CREATE_SUB_ACCOUNT = 9
TX_TYPE_TRANSFER = 12
TX_TYPE_WITHDRAW = 13
TX_TYPE_CREATE_ORDER = 14
TX_TYPE_CANCEL_ORDER = 15
TX_TYPE_CANCEL_ALL_ORDERS = 16
TX_TYPE_MODIFY_ORDER = 17
TX_TYPE_UPDATE_LEVERAGE = 20
TX_TYPE_CREATE_GROUPED_ORDERS = 28
TX_TYPE_UPDATE_MARGIN = 29

_INSTALL_HINT = f"pip install --no-deps {PINNED_SDK}"
_CREATE_LOCK = threading.Lock()  # CreateClient writes the Go side's client map and its default client
_SKIP_NONCE_OFF = 0


class SignerUnavailable(Exception):
    """The Go signing library could not be found or loaded on this machine."""


class SignError(Exception):
    """The Go signer refused: the message is its error string."""


class _ApiKeyResponse(ctypes.Structure):
    _fields_ = [("privateKey", ctypes.c_void_p), ("publicKey", ctypes.c_void_p), ("err", ctypes.c_void_p)]


class _StrOrErr(ctypes.Structure):
    _fields_ = [("str", ctypes.c_void_p), ("err", ctypes.c_void_p)]


class _SignedTxResponse(ctypes.Structure):
    _fields_ = [
        ("txType", ctypes.c_uint8),
        ("txInfo", ctypes.c_void_p),
        ("txHash", ctypes.c_void_p),
        ("messageToSign", ctypes.c_void_p),
        ("err", ctypes.c_void_p),
    ]


_LIB_NAMES = {
    ("Linux", "x86_64"): "lighter-signer-linux-amd64.so",
    ("Linux", "arm64"): "lighter-signer-linux-arm64.so",
    ("Darwin", "x86_64"): "lighter-signer-darwin-amd64.dylib",
    ("Darwin", "arm64"): "lighter-signer-darwin-arm64.dylib",
    ("Windows", "x86_64"): "lighter-signer-windows-amd64.dll",
}


def library_path() -> str:
    """Path of the Go library for this platform inside the installed lighter-sdk (no import of ``lighter``)."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}.get(machine, machine)
    name = _LIB_NAMES.get((platform.system(), arch))
    if name is None:
        raise SignerUnavailable(f"no Lighter signer library for {platform.system()}/{platform.machine()}")
    try:
        spec = importlib.util.find_spec("lighter")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise SignerUnavailable(f"lighter-sdk is not installed: {_INSTALL_HINT}")
    path = os.path.join(locations[0], "signers", name)
    if not os.path.exists(path):
        raise SignerUnavailable(f"{path} is missing: {_INSTALL_HINT}")
    return path


def _load() -> ctypes.CDLL:
    path = library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise SignerUnavailable(f"cannot load {path} ({exc}): {_INSTALL_HINT}") from exc
    ll, i, u8 = ctypes.c_longlong, ctypes.c_int, ctypes.c_uint8
    lib.Free.argtypes = [ctypes.c_void_p]
    lib.Free.restype = None
    lib.GenerateAPIKey.argtypes = []
    lib.GenerateAPIKey.restype = _ApiKeyResponse
    lib.CreateClient.argtypes = [ctypes.c_char_p, ctypes.c_char_p, i, i, ll]
    lib.CreateClient.restype = ctypes.c_void_p
    lib.SignCreateOrder.argtypes = [ll, ll, ll, i, i, i, i, i, i, ll, ll, i, i, u8, u8, u8, ll, i, ll]
    lib.SignCreateOrder.restype = _SignedTxResponse
    lib.SignCancelOrder.argtypes = [ll, ll, u8, ll, i, ll]
    lib.SignCancelOrder.restype = _SignedTxResponse
    lib.SignUpdateLeverage.argtypes = [ll, i, i, u8, ll, i, ll]
    lib.SignUpdateLeverage.restype = _SignedTxResponse
    lib.CreateAuthToken.argtypes = [ll, i, ll]
    lib.CreateAuthToken.restype = _StrOrErr
    return lib


def _take(lib: ctypes.CDLL, ptr: Any) -> str | None:
    """Copy a Go-allocated C string and free it with the library's own ``Free``."""
    if not ptr:
        return None
    try:
        raw = ctypes.cast(ptr, ctypes.c_char_p).value
        return raw.decode("utf-8") if raw is not None else None
    finally:
        lib.Free(ptr)


def _tx(lib: ctypes.CDLL, result: _SignedTxResponse) -> tuple[int, str]:
    err = _take(lib, result.err)
    info = _take(lib, result.txInfo)
    _take(lib, result.txHash)
    _take(lib, result.messageToSign)
    if err:
        raise SignError(err)
    if info is None:
        raise SignError("signer returned no tx_info")
    return int(result.txType), info


class LighterSigner:
    """Signs Lighter transactions for one (account, api key); blocking calls, safe from several threads at once."""

    def __init__(self, *, url: str, private_key: str, chain_id: int, api_key_index: int, account_index: int) -> None:
        self._lib = _load()
        self.api_key_index = api_key_index
        self.account_index = account_index
        key = private_key[2:] if private_key.startswith("0x") else private_key
        with _CREATE_LOCK:
            err = _take(
                self._lib,
                self._lib.CreateClient(url.encode(), key.encode(), chain_id, api_key_index, account_index),
            )
        if err is not None:
            raise SignError(f"CreateClient for account {account_index} api key {api_key_index}: {err}")

    def __repr__(self) -> str:
        return f"LighterSigner(account_index={self.account_index}, api_key_index={self.api_key_index})"

    def create_order(
        self,
        *,
        market_index: int,
        client_order_index: int,
        base_amount: int,
        price: int,
        is_ask: bool,
        order_type: int,
        time_in_force: int,
        reduce_only: bool,
        trigger_price: int,
        order_expiry: int,
        nonce: int,
    ) -> tuple[int, str]:
        """Sign a CreateOrder; returns ``(tx_type, tx_info JSON)`` for sendTx."""
        _explicit(nonce)
        result = self._lib.SignCreateOrder(
            market_index, client_order_index, base_amount, price, int(is_ask), order_type, time_in_force,
            int(reduce_only), trigger_price, order_expiry,
            0, 0, 0, 0, 0,  # no integrator, default self-trade behaviour
            _SKIP_NONCE_OFF, nonce, self.api_key_index, self.account_index,
        )  # fmt: skip
        return _tx(self._lib, result)

    def cancel_order(self, *, market_index: int, order_index: int, nonce: int) -> tuple[int, str]:
        """Sign a CancelOrder; ``order_index`` may be the exchange's order index or the client order index."""
        _explicit(nonce)
        result = self._lib.SignCancelOrder(
            market_index, order_index, _SKIP_NONCE_OFF, nonce, self.api_key_index, self.account_index
        )
        return _tx(self._lib, result)

    def update_leverage(self, *, market_index: int, leverage: int, margin_mode: int, nonce: int) -> tuple[int, str]:
        """Sign an UpdateLeverage; the wire carries the initial margin fraction ``10_000 // leverage``."""
        _explicit(nonce)
        if leverage < 1:
            raise SignError(f"leverage must be >= 1, got {leverage}")
        result = self._lib.SignUpdateLeverage(
            market_index, 10_000 // leverage, margin_mode, _SKIP_NONCE_OFF, nonce,
            self.api_key_index, self.account_index,
        )  # fmt: skip
        return _tx(self._lib, result)

    def create_auth_token(self, *, deadline: int) -> str:
        """An auth token for authenticated reads, valid until ``deadline`` (unix seconds)."""
        result = self._lib.CreateAuthToken(deadline, self.api_key_index, self.account_index)
        token = _take(self._lib, result.str)
        err = _take(self._lib, result.err)
        if err:
            raise SignError(err)
        if token is None:
            raise SignError("signer returned no auth token")
        return token

    @staticmethod
    def generate_api_key() -> tuple[str, str]:
        """A fresh ``(private_key, public_key)`` pair from the Go library."""
        lib = _load()
        result = lib.GenerateAPIKey()
        private = _take(lib, result.privateKey)
        public = _take(lib, result.publicKey)
        err = _take(lib, result.err)
        if err or private is None or public is None:
            raise SignError(err or "signer returned no key")
        return private, public


def _explicit(nonce: int) -> None:
    """A negative nonce would make the Go code fetch one over the network: refuse it."""
    if nonce < 0:
        raise SignError(f"nonce must be explicit (>= 0), got {nonce}")
