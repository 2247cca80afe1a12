"""Signing: the v1 HMAC matches Binance's published examples, the v3 signature recovers to the signer over the
exact parameter string that is sent, and timestamps/nonces follow the venue's clock."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from posmon.exchange.aster.signing import Eip712Signer, HmacSigner, ServerClock, encode_params
from tests.exchange.aster.test_aster_adapter_fakes import (
    API_KEY,
    API_SECRET,
    NOW,
    PRIVATE_KEY,
    SIGNER,
    USER,
    typed_data,
)

# Binance's worked example (the v1 API is Binance USD-M compatible).
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
DOC_MIXED_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
DOC_MIXED_BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


def fixed_clock(offset_ms: float = 0.0) -> ServerClock:
    clock = ServerClock(lambda: NOW)
    clock.offset_ms = offset_ms
    return clock


def split_signed(text: str) -> tuple[str, str]:
    payload, sep, signature = text.rpartition("&signature=")
    assert sep, f"no signature in {text!r}"
    return payload, signature


# --- v1 ---------------------------------------------------------------------------------------------------------


def test_hmac_matches_the_binance_doc_example() -> None:
    assert HmacSigner(API_KEY, API_SECRET).signature(DOC_QUERY) == DOC_SIGNATURE


def test_hmac_covers_query_directly_followed_by_body() -> None:
    assert HmacSigner(API_KEY, API_SECRET).signature(DOC_MIXED_QUERY, DOC_MIXED_BODY) == DOC_MIXED_SIGNATURE


def test_v1_sign_appends_window_timestamp_and_signature_last_in_the_query() -> None:
    signer = HmacSigner(API_KEY, API_SECRET, clock=fixed_clock(), recv_window_ms=7000)
    sent = signer.sign([("symbol", "LTCBTC"), ("side", "BUY")], in_body=False)
    payload, signature = split_signed(sent.query)
    assert payload == f"symbol=LTCBTC&side=BUY&recvWindow=7000&timestamp={int(NOW * 1000)}"
    assert signature == hmac.new(API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert sent.body == b"" and sent.headers == {"X-MBX-APIKEY": API_KEY}


def test_v1_sign_in_body_is_a_form_body_with_the_same_text() -> None:
    signer = HmacSigner(API_KEY, API_SECRET, clock=fixed_clock())
    sent = signer.sign([("symbol", "BTCUSDT")], in_body=True)
    assert sent.query == ""
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    payload, signature = split_signed(sent.body.decode())
    assert signature == HmacSigner(API_KEY, API_SECRET).signature(payload)


def test_v1_timestamp_follows_the_measured_clock_offset() -> None:
    clock = fixed_clock()
    clock.update(server_ms=int(NOW * 1000) + 2500, sent_at=NOW, received_at=NOW)
    sent = HmacSigner(API_KEY, API_SECRET, clock=clock).sign([], in_body=False)
    assert dict(parse_qsl(sent.query))["timestamp"] == str(int(NOW * 1000) + 2500)


def test_v1_key_only_call_carries_the_key_but_no_signature() -> None:
    sent = HmacSigner(API_KEY, API_SECRET).unsigned([], in_body=True)
    assert sent.body == b"" and sent.headers["X-MBX-APIKEY"] == API_KEY and "signature" not in sent.query


def test_json_list_parameters_are_percent_encoded_and_signed_as_encoded() -> None:
    text = encode_params([("origClientOrderIdList", '["a","b"]')])
    assert text == "origClientOrderIdList=%5B%22a%22%2C%22b%22%5D"
    sent = HmacSigner(API_KEY, API_SECRET, clock=fixed_clock()).sign(
        [("origClientOrderIdList", '["a","b"]')], in_body=True
    )
    assert sent.body.decode().startswith(text + "&")


# --- v3 ---------------------------------------------------------------------------------------------------------


def v3_signer(clock: ServerClock | None = None) -> Eip712Signer:
    return Eip712Signer(PRIVATE_KEY, SIGNER, USER, 1666, clock=clock or fixed_clock())


def test_v3_signature_recovers_to_the_signer_over_exactly_the_sent_string() -> None:
    sent = v3_signer().sign([("symbol", "BTCUSDT"), ("batchOrders", '[{"symbol":"BTCUSDT"}]')], in_body=True)
    text = sent.body.decode()
    msg, signature = split_signed(text)
    assert msg == (
        f"symbol=BTCUSDT&batchOrders=%5B%7B%22symbol%22%3A%22BTCUSDT%22%7D%5D"
        f"&nonce={int(NOW * 1_000_000)}&user={USER}&signer={SIGNER}"
    )
    signable = encode_typed_data(full_message=typed_data(msg))
    assert Account.recover_message(signable, signature=signature) == SIGNER
    assert signature == "0x" + Account.sign_message(signable, PRIVATE_KEY).signature.hex()
    assert "X-MBX-APIKEY" not in sent.headers and "timestamp" not in text


def test_v3_precomputed_digest_equals_eth_accounts_typed_data_hash() -> None:
    signer = v3_signer()
    for msg in ("", "symbol=BTCUSDT&nonce=1", "ünïcode=✓"):
        assert signer.typed_data(msg) == typed_data(msg)
        assert signer.digest(msg) == _eth_account_hash(msg)


def test_v3_fast_coincurve_signature_equals_eth_keys_and_eth_account() -> None:
    """The signer keeps one coincurve key (eth-keys rebuilds one per call); eth-keys signs identically."""
    fast, slow = v3_signer(), v3_signer()
    assert fast._fast_key is not None
    slow._fast_key = None
    for n in range(20):
        msg = f"symbol=BTCUSDT&origClientOrderIdList=%5B%22pm-{n}%22%5D&nonce={n}"
        signature = fast.signature(msg)
        assert signature == slow.signature(msg)
        signable = encode_typed_data(full_message=typed_data(msg))
        assert signature == "0x" + Account.sign_message(signable, PRIVATE_KEY).signature.hex()


def _eth_account_hash(msg: str) -> bytes:
    """EIP-191: keccak(0x19 || version || header || body) of eth-account's encoding."""
    signable = encode_typed_data(full_message=typed_data(msg))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def test_v3_nonces_are_microseconds_strictly_increasing_even_on_a_frozen_clock() -> None:
    signer = v3_signer()
    nonces = [int(dict(parse_qsl(signer.sign([], in_body=False).query))["nonce"]) for _ in range(5)]
    assert nonces[0] == int(NOW * 1_000_000)
    assert nonces == sorted(set(nonces)) and nonces[-1] - nonces[0] == 4


def test_v3_nonce_follows_the_measured_clock_offset() -> None:
    signer = v3_signer(fixed_clock(offset_ms=-1500))
    assert signer.next_nonce() == int(NOW * 1_000_000) - 1_500_000


def test_v3_query_placement_for_get_requests() -> None:
    sent = v3_signer().sign([("symbol", "BTCUSDT")], in_body=False)
    assert sent.body == b"" and sent.query.startswith("symbol=BTCUSDT&nonce=")


def test_signer_address_is_the_keys_address_and_reprs_hide_the_secrets() -> None:
    signer = v3_signer()
    assert signer.address == SIGNER
    assert PRIVATE_KEY[2:] not in repr(signer) and API_SECRET not in repr(HmacSigner(API_KEY, API_SECRET))
    assert API_KEY not in repr(HmacSigner(API_KEY, API_SECRET).sign([], in_body=True))
