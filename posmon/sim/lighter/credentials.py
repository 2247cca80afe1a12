"""The account and API key the Lighter simulator knows by default, shared by tests and the default config.

SIMULATOR KEY, NOT A REAL ONE: generated once with the lighter-sdk signer's ``GenerateAPIKey`` for this
simulator. It controls no account anywhere; only this loopback simulator accepts what it signs (and the
simulator checks fields and nonces, not signatures).
"""

from __future__ import annotations

#: Simulator-only API private key (40 bytes hex, the form ``GenerateAPIKey`` returns).
DEFAULT_API_PRIVATE_KEY = "0xd534a50e3faf4f3f6478831b4725b9bf806aed9a8cb0cf7cb50f2640fccdd411d6548d2d5267d31c"
#: Its public key, as ``GenerateAPIKey`` printed it.
DEFAULT_API_PUBLIC_KEY = "0x570be46347b4c5421f0924b8863950bf85bbac37fe23457a3d47961b6c584fca51adc8d9242943d9"
#: The simulated account the key trades for.
DEFAULT_ACCOUNT_INDEX = 281474
#: Api key slot of ``DEFAULT_API_PRIVATE_KEY`` on that account (0-1 are the web app's on the real venue).
DEFAULT_API_KEY_INDEX = 3
#: Chain id the SDK uses for mainnet-looking and localhost URLs.
DEFAULT_CHAIN_ID = 304
#: USDC collateral the default account starts with.
DEFAULT_COLLATERAL = "100000"
