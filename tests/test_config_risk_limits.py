"""The risk limits' keys: off by default, read from [risk], [risk.symbols.X] and the environment, and a bad value
stops start-up with one line naming the key, the value and what is allowed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from posmon.config import ConfigError, load_settings
from tests.test_config import PACKAGED_CONFIG, REPO_CONFIG

SIM = '[daemon]\nvenue = "sim"\n'


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "posmon.toml"
    path.write_text(SIM + text, encoding="utf-8")
    return load_settings(path, env={} if env is None else env)


@pytest.mark.parametrize("path", [REPO_CONFIG, PACKAGED_CONFIG])
def test_the_shipped_configurations_set_no_limit(path: Path) -> None:
    risk = load_settings(path, env={}).risk
    assert (risk.max_open_positions, risk.max_notional_per_symbol, risk.max_risk_per_position_pct) == (0, 0, 0)
    assert risk.close_breaching_fills is False


def test_limits_are_read_from_risk_per_symbol_and_the_environment(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        "[risk]\nmax_open_positions = 3\nmax_notional_per_symbol = 5000\nmax_risk_per_position_pct = 1.5\n"
        "close_breaching_fills = true\n[risk.symbols.BTCUSDT]\nmax_notional_per_symbol = 20000\n",
        env={"POSMON_RISK_MAX_RISK_PER_POSITION_PCT": "2"},
    )
    assert s.risk.max_open_positions == 3 and s.risk.close_breaching_fills is True
    assert s.risk.max_risk_per_position_pct == Decimal(2)
    assert s.risk_for("BTCUSDT").max_notional_per_symbol == Decimal(20000)
    assert s.risk_for("ETHUSDT").max_notional_per_symbol == Decimal(5000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[risk]\nmax_open_positions = -1",
            "risk.max_open_positions: invalid value -1; expected an integer from 0 to 100000 (0: no limit)",
        ),
        (
            "[risk]\nmax_open_positions = 2.5",
            "risk.max_open_positions: invalid value 2.5; expected an integer from 0 to 100000 (0: no limit)",
        ),
        (
            '[risk]\nmax_notional_per_symbol = "lots"',
            "risk.max_notional_per_symbol: invalid value 'lots'; expected a number >= 0 and <= 1000000000000 "
            "(USD; 0: no limit)",
        ),
        (
            "[risk]\nmax_notional_per_symbol = -5",
            "risk.max_notional_per_symbol: invalid value -5; expected a number >= 0 and <= 1000000000000 "
            "(USD; 0: no limit)",
        ),
        (
            "[risk]\nmax_risk_per_position_pct = 101",
            "risk.max_risk_per_position_pct: invalid value 101; expected a number >= 0 and <= 100 (0: no limit)",
        ),
        (
            '[risk]\nclose_breaching_fills = "yes"',
            "risk.close_breaching_fills: invalid value 'yes'; expected a boolean (true or false)",
        ),
        (
            "[risk.symbols.BTCUSDT]\nmax_open_positions = 2",
            "risk.symbols.BTCUSDT.max_open_positions: invalid value 2; it limits the whole account, so set it in "
            "[risk], not per symbol",
        ),
        (
            "[risk.symbols.BTCUSDT]\nmax_risk_per_position_pct = -1",
            "risk.symbols.BTCUSDT.max_risk_per_position_pct: invalid value -1; expected a number >= 0 and <= 100 "
            "(0: no limit)",
        ),
    ],
)
def test_a_bad_limit_is_one_line_naming_key_value_and_range(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_a_bad_limit_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "", env={"POSMON_RISK_MAX_NOTIONAL_PER_SYMBOL": "NaN"})
    assert str(err.value).startswith("POSMON_RISK_MAX_NOTIONAL_PER_SYMBOL: invalid value 'NaN'; expected a number")
