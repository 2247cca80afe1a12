"""The accounts the Aster simulator knows, and a default set that tests and the default config share.

The defaults are made-up values derived from fixed seeds, never real keys: anything
signed with them is only ever accepted by this simulator on loopback. They are module
constants so a config file, a test and the daemon's defaults can name the same account.
"""

from __future__ import annotations

from dataclasses import dataclass

#: v1 (HMAC) API key sent as ``X-MBX-APIKEY``.
DEFAULT_API_KEY = "aster-sim-api-key-6f1c2a9e0b7d4e35a8c1f0d2b9e4a7c3"
#: v1 secret: ``signature = hex(HMAC-SHA256(secret, totalParams))``.
DEFAULT_API_SECRET = "aster-sim-api-secret-3e8b5d1f7a2c4960b1d8e5f2a7c3b9d0"
#: v3 API wallet ("signer", "agent") private key: sha256(b"posmon-aster-sim-signer").
DEFAULT_SIGNER_PRIVATE_KEY = "0x305e5394d20da22aa4acbb30d55599c88bd6cb85e0b1a7ebdf5efa846e11287e"
#: Address of ``DEFAULT_SIGNER_PRIVATE_KEY``.
DEFAULT_SIGNER_ADDRESS = "0x3cC7E3F85BD9Df27CDF284241cDd239d36F2F301"
#: The main wallet ("user") the signer trades for: address of sha256(b"posmon-aster-sim-user").
DEFAULT_USER_ADDRESS = "0xd5DdeEb5ABbB152aa8A4708e53a211f8dE87cf75"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A v1 key pair."""

    key: str
    secret: str


@dataclass(frozen=True, slots=True)
class ApiWallet:
    """A v3 API wallet (``signer``) registered to trade for a main wallet (``user``)."""

    signer: str
    user: str


DEFAULT_API_KEYS = (ApiKey(DEFAULT_API_KEY, DEFAULT_API_SECRET),)
DEFAULT_API_WALLETS = (ApiWallet(DEFAULT_SIGNER_ADDRESS, DEFAULT_USER_ADDRESS),)
