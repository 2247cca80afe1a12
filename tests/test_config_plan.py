"""The exit-plan keys (issue 15) in ``[risk]`` and ``[risk.symbols.X]``: unset is no plan, each key reaches the
plan exactly (no float on the way), a per-symbol key replaces ``[risk]``'s of that key only, and a plan that
cannot be followed stops start-up with one line naming the section and key."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.config import ConfigError, Settings, load_settings
from posmon.daemon import risk_of
from posmon.domain.exitplan import NO_PLAN, BreakEven, ExitPlan, TpLevel, Trailing
from posmon.plan_fields import PLAN_FIELD_NAMES

BASE = '[daemon]\nvenue = "sim"\n[sim]\nsymbols = ["BTCUSDT", "ETHUSDT"]\n'
LADDER = "tp_levels = [[1.1, 30], [2.0, 30], [3, 40]]"


def load(tmp_path: Path, risk: str = "", symbol: str = "", env: dict[str, str] | None = None) -> Settings:
    text = f"{BASE}[risk]\n{risk}\n" + (f"[risk.symbols.BTCUSDT]\n{symbol}\n" if symbol else "")
    path = tmp_path / "posmon.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={} if env is None else env)


def error(tmp_path: Path, risk: str = "", symbol: str = "", env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, risk, symbol, env)
    msg = str(info.value)
    assert "\n" not in msg and msg.isprintable()
    return msg


def test_no_plan_key_set_is_no_plan_for_every_symbol_and_the_actors_risk(tmp_path):
    s = load(tmp_path, "tp_pct = 2.0", "sl_pct = 4.0")
    assert s.risk.plan is NO_PLAN and s.risk_for("BTCUSDT").plan is NO_PLAN
    assert risk_of(s, "BTCUSDT").plan is NO_PLAN and risk_of(s, "ETHUSDT").plan is NO_PLAN
    assert s.risk.tp_levels is None and s.risk.trailing_callback_pct is None


def test_every_key_reaches_the_plan_exactly_and_the_actors_risk(tmp_path):
    s = load(
        tmp_path,
        f"{LADDER}\ntrailing_activation_pct = 0.5\ntrailing_callback_pct = 1.3\ntrailing_min_step_pct = 0.2\n"
        "breakeven_after_tp = 1\nbreakeven_offset_pct = 0.1\nbreakeven_trigger_pct = 1.5",
    )
    want = ExitPlan(
        (TpLevel(D("1.1"), D(30)), TpLevel(D("2.0"), D(30)), TpLevel(D(3), D(40))),
        Trailing(D("0.5"), D("1.3"), D("0.2")),
        BreakEven(1, D("0.1"), D("1.5")),
    )
    assert s.risk.plan == want  # 1.1 is Decimal("1.1"), not the float's 1.100000000000000088...
    assert risk_of(s, "ETHUSDT").plan == want and risk_of(s, "BTCUSDT").plan == want


def test_a_symbol_key_replaces_that_key_only(tmp_path):
    s = load(tmp_path, f"{LADDER}\ntrailing_callback_pct = 1", "trailing_callback_pct = 2\nbreakeven_after_tp = 2")
    btc, eth = risk_of(s, "BTCUSDT").plan, risk_of(s, "ETHUSDT").plan
    assert btc.tp_levels == eth.tp_levels and len(btc.tp_levels) == 3  # [risk]'s ladder kept
    assert btc.trailing == Trailing(D(0), D(2), D("0.1")) and eth.trailing == Trailing(D(0), D(1), D("0.1"))
    assert btc.breakeven == BreakEven(2, D(0)) and eth.breakeven is None


def test_a_symbol_switches_off_what_risk_set_with_an_empty_ladder_or_zero(tmp_path):
    s = load(
        tmp_path,
        f"{LADDER}\ntrailing_callback_pct = 1\ntrailing_activation_pct = 2\nbreakeven_after_tp = 1\n"
        "breakeven_offset_pct = 0.1",
        "tp_levels = []\ntrailing_callback_pct = 0\nbreakeven_after_tp = 0",
    )
    assert s.risk_for("BTCUSDT").plan is not s.risk.plan
    assert s.risk_for("BTCUSDT").plan == NO_PLAN and bool(s.risk.plan)


def test_the_ladder_can_come_from_the_environment(tmp_path):
    s = load(tmp_path, env={"POSMON_RISK_TP_LEVELS": "1:50,2.5:50", "POSMON_RISK_BREAKEVEN_AFTER_TP": "1"})
    assert s.risk.plan.tp_levels == (TpLevel(D(1), D(50)), TpLevel(D("2.5"), D(50)))
    assert s.risk.plan.breakeven == BreakEven(1, D(0))


@pytest.mark.parametrize(
    ("risk", "symbol", "message"),
    [
        (
            "",
            "tp_levels = [[1.0, 30], [2.0, 60]]",
            "risk.symbols.BTCUSDT.tp_levels: shares sum to 90, expected 100",
        ),
        ("tp_levels = [[2, 50], [1, 50]]", "", "risk.tp_levels: level 2 pct 1 must be above level 1's 2"),
        ("tp_levels = [[1, 30], [2]]", "", "risk.tp_levels: invalid value [[1, 30], [2]]; expected a list of"),
        ('tp_levels = "1:30,2:70"', "", "risk.tp_levels: invalid value '1:30,2:70'; expected a list of"),
        ("tp_levels = [[100, 100]]", "", "risk.tp_levels: invalid value [[100, 100]]; expected a list of"),
        ("trailing_callback_pct = 0.05", "", "risk.trailing_callback_pct: 0.05 is outside 0.1-50 %"),
        ("trailing_callback_pct = 60", "", "risk.trailing_callback_pct: invalid value 60; expected a number >= 0"),
        ("", "trailing_activation_pct = 1", "risk.symbols.BTCUSDT.trailing_callback_pct: a trailing stop needs"),
        ("trailing_callback_pct = 1\ntrailing_activation_pct = -1", "", "risk.trailing_activation_pct: invalid"),
        ("trailing_callback_pct = 1\ntrailing_min_step_pct = 100", "", "risk.trailing_min_step_pct: invalid value"),
        (LADDER, "breakeven_after_tp = 3", "risk.symbols.BTCUSDT.breakeven_after_tp: 3 needs a ladder of more"),
        ("breakeven_after_tp = 1", "", "risk.breakeven_after_tp: 1 needs a ladder of more than 1 levels"),
        ('breakeven_after_tp = "1"', "", "risk.breakeven_after_tp: invalid value '1'; expected an integer"),
        ("breakeven_offset_pct = 0.1", "", "risk.breakeven_offset_pct: needs breakeven_after_tp or"),
        ("breakeven_trigger_pct = 1\nbreakeven_offset_pct = 10", "", "risk.breakeven_offset_pct: invalid value"),
        (
            "breakeven_trigger_pct = 0.5\nbreakeven_offset_pct = 1",
            "",
            "risk.breakeven_trigger_pct: 0.5 must be above breakeven_offset_pct (1)",
        ),
    ],
)
def test_a_plan_that_cannot_be_followed_is_one_line_naming_section_and_key(tmp_path, risk, symbol, message):
    assert error(tmp_path, risk, symbol).startswith(message)


def test_a_bad_key_from_the_environment_names_the_variable(tmp_path):
    msg = error(tmp_path, env={"POSMON_RISK_TP_LEVELS": "1:30;2:70"})
    assert msg.startswith("POSMON_RISK_TP_LEVELS: invalid value '1:30;2:70'") and "1:30,2:70" in msg


def test_posmon_run_with_a_bad_ladder_exits_with_the_config_code_and_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(f"{BASE}[risk]\ntp_levels = [[1, 30], [2, 60]]\n")
    assert main(["--config", str(bad), "run"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "risk.tp_levels: shares sum to 90, expected 100" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_readme_and_config_toml_document_every_plan_key():
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration") :]
    section = section[: section.index("\n## ")]
    config = (root / "config.toml").read_text(encoding="utf-8")
    for name in PLAN_FIELD_NAMES:
        assert f"`risk.{name}`" in section or f"`risk.{name}`," in section, name
        assert f"\n# {name} = " in config, name
    assert "`tp_pct` is **not** used for the TP" in section
