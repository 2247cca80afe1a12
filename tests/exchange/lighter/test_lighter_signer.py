"""The lighter-sdk Go signer behind ``LighterSigner``: real transactions, explicit nonces, no key in reprs."""

from __future__ import annotations

import json
import time

import pytest

from posmon.exchange.lighter.signer import (
    ORDER_TIME_IN_FORCE_GOOD_TILL_TIME,
    ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
    ORDER_TYPE_LIMIT,
    ORDER_TYPE_MARKET,
    TX_TYPE_CANCEL_ORDER,
    TX_TYPE_CREATE_ORDER,
    TX_TYPE_UPDATE_LEVERAGE,
    LighterSigner,
    SignError,
    library_path,
)
from posmon.sim.lighter.credentials import (
    DEFAULT_ACCOUNT_INDEX,
    DEFAULT_API_KEY_INDEX,
    DEFAULT_API_PRIVATE_KEY,
    DEFAULT_CHAIN_ID,
)


@pytest.fixture(scope="module")
def signer() -> LighterSigner:
    return LighterSigner(
        url="http://127.0.0.1:9",
        private_key=DEFAULT_API_PRIVATE_KEY,
        chain_id=DEFAULT_CHAIN_ID,
        api_key_index=DEFAULT_API_KEY_INDEX,
        account_index=DEFAULT_ACCOUNT_INDEX,
    )


def _order(signer: LighterSigner, **overrides: object) -> tuple[int, str]:
    args: dict = dict(
        market_index=1, client_order_index=42, base_amount=150, price=650_000, is_ask=False,
        order_type=ORDER_TYPE_LIMIT, time_in_force=ORDER_TIME_IN_FORCE_GOOD_TILL_TIME, reduce_only=False,
        trigger_price=0, order_expiry=-1, nonce=7,
    )  # fmt: skip
    args.update(overrides)
    return signer.create_order(**args)


def test_library_is_found_inside_the_installed_sdk() -> None:
    assert library_path().endswith(("lighter-signer-linux-amd64.so", "lighter-signer-linux-arm64.so"))


def test_create_order_signs_the_fields_given(signer: LighterSigner) -> None:
    tx_type, tx_info = _order(signer, is_ask=True, reduce_only=True)
    info = json.loads(tx_info)
    assert tx_type == TX_TYPE_CREATE_ORDER
    assert info["AccountIndex"] == DEFAULT_ACCOUNT_INDEX
    assert info["ApiKeyIndex"] == DEFAULT_API_KEY_INDEX
    assert (info["MarketIndex"], info["ClientOrderIndex"], info["BaseAmount"], info["Price"]) == (1, 42, 150, 650_000)
    assert (info["IsAsk"], info["ReduceOnly"], info["Type"], info["Nonce"]) == (1, 1, ORDER_TYPE_LIMIT, 7)
    assert info["Sig"]


def test_market_order_with_good_till_time_is_refused_by_the_go_side(signer: LighterSigner) -> None:
    with pytest.raises(SignError):
        _order(signer, order_type=ORDER_TYPE_MARKET, time_in_force=ORDER_TIME_IN_FORCE_GOOD_TILL_TIME)
    tx_type, _ = _order(
        signer, order_type=ORDER_TYPE_MARKET, time_in_force=ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL, order_expiry=0
    )
    assert tx_type == TX_TYPE_CREATE_ORDER


def test_negative_nonce_is_refused_so_the_go_code_never_fetches_one(signer: LighterSigner) -> None:
    with pytest.raises(SignError, match="explicit"):
        _order(signer, nonce=-1)


def test_cancel_leverage_and_auth_token(signer: LighterSigner) -> None:
    tx_type, tx_info = signer.cancel_order(market_index=0, order_index=2**48 + 5, nonce=8)
    assert tx_type == TX_TYPE_CANCEL_ORDER
    assert json.loads(tx_info)["Index"] == 2**48 + 5
    tx_type, tx_info = signer.update_leverage(market_index=0, leverage=5, margin_mode=0, nonce=9)
    assert tx_type == TX_TYPE_UPDATE_LEVERAGE
    assert json.loads(tx_info)["InitialMarginFraction"] == 2000
    deadline = int(time.time()) + 600
    token = signer.create_auth_token(deadline=deadline)
    assert token.startswith(f"{deadline}:{DEFAULT_ACCOUNT_INDEX}:{DEFAULT_API_KEY_INDEX}:")


def test_generated_keys_sign_and_the_private_key_stays_out_of_the_repr() -> None:
    private, public = LighterSigner.generate_api_key()
    assert private != public
    signer = LighterSigner(
        url="http://127.0.0.1:9", private_key=private, chain_id=304, api_key_index=4, account_index=9
    )
    assert private[2:12] not in repr(signer)
    tx_type, _ = signer.cancel_order(market_index=0, order_index=1, nonce=1)
    assert tx_type == TX_TYPE_CANCEL_ORDER
