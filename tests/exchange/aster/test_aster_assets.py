"""exchangeInfo's baseAsset, quoteAsset and marginAsset become the rules' assets (what names a symbol
``BASE/QUOTE:SETTLE``), for perpetuals only and only when well formed; a symbol without them still trades."""

from __future__ import annotations

import copy
from typing import Any

from posmon.domain.instruments import listed_instrument
from posmon.exchange.aster import codec
from tests.exchange.aster.test_aster_adapter_fakes import EXCHANGE_INFO


def info_with(**symbols: dict[str, Any]) -> dict[str, Any]:
    """EXCHANGE_INFO with fields added to the named symbols' entries."""
    info = copy.deepcopy(EXCHANGE_INFO)
    for entry in info["symbols"]:
        entry.update(symbols.get(entry["symbol"], {}))
    return info


def test_published_assets_are_kept_and_name_the_symbol() -> None:
    info = codec.parse_exchange_info(
        info_with(BTCUSDT={"baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT"})
    )
    btc = info.rules["BTCUSDT"]
    assert (btc.base_asset, btc.quote_asset, btc.settle_asset) == ("BTC", "USDT", "USDT")
    assert str(listed_instrument(btc)) == "BTC/USDT:USDT"


def test_a_contract_margined_in_another_asset_settles_in_it() -> None:
    info = codec.parse_exchange_info(
        info_with(BTCUSDT={"baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDC"})
    )
    assert str(listed_instrument(info.rules["BTCUSDT"])) == "BTC/USDT:USDC"


def test_dated_contracts_and_malformed_assets_get_no_assets_but_keep_their_rules() -> None:
    info = codec.parse_exchange_info(
        info_with(
            BTCUSDT={"baseAsset": "BTC", "quoteAsset": "USDT", "contractType": "CURRENT_QUARTER"},
            DOGEUSDT={"baseAsset": "DOGE USD", "quoteAsset": "USDT"},
        )
    )
    for symbol in ("BTCUSDT", "DOGEUSDT"):
        rules = info.rules[symbol]
        assert (rules.base_asset, rules.quote_asset, rules.settle_asset) == ("", "", "")
        assert rules.tick_size > 0
