"""``posmon history`` and ``posmon report``: read the store named by the config (an SQLite file or a PostgreSQL
URL), with no daemon running."""

from __future__ import annotations

import csv
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from posmon.cli import main
from posmon.cli.exit_codes import ExitCode
from posmon.config import load_settings
from posmon.plots import EQUITY_PNG, INSTALL_HINT, REASONS_PNG
from posmon.store.store import Store
from tests.harness import make_settings
from tests.store.history_fixtures import T0, write_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def config(tmp_path, request):
    """A config whose daemon.store (an SQLite file or a PostgreSQL URL) holds the hand-built history (4 closed
    tranches, realized PnL -25)."""
    settings = make_settings(tmp_path)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").new_store_url()
        path = tmp_path / "config.toml"
        path.write_text(path.read_text().replace(f'store = "{settings.daemon.store}"', f'store = "{url}"'))
        settings = load_settings(path, env={})
        assert settings.daemon.store == url
    store = Store.open(settings.daemon.store)
    write_history(store)
    store.close()
    return str(tmp_path / "config.toml")


def test_history_prints_a_table_of_closed_tranches_and_totals(config, capsys):
    assert main(["--config", config, "history"]) == ExitCode.OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["closed", "(UTC)", "id", "symbol", "side", "reason"]
    assert out[1].split() == [
        "2025-12-06", "05:56:40Z", "1", "BTCUSDT", "LONG", "TP", "0.1", "45000", "45450", "45.0000", "1.8000",
        "43.2000", "10m00s",
    ]  # fmt: skip
    assert len(out) == 1 + 4 + 1
    assert out[-1] == "4 closed tranches; realized PnL -25.0000, fees 6.1000, net -31.1000"


def test_history_filters_by_symbol_and_since(config, capsys):
    assert main(["--config", config, "history", "--symbol", "ethusdt", "--since", str(int(T0 + 3000))]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert [r.split()[2] for r in rows] == ["4"]


def test_csv_has_one_row_per_closed_tranche_summing_to_the_realized_pnl(config, tmp_path, capsys):
    out = tmp_path / "h.csv"
    assert main(["--config", config, "history", "--csv", str(out)]) == ExitCode.OK
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert sum(D(r["realized_pnl"]) for r in rows) == D("-25")
    assert (rows[1]["exit_price"], rows[1]["exit_reason"], rows[1]["fees"]) == ("45900", "SL", "1.9")
    assert float(rows[3]["hold_seconds"]) == 3600.0
    assert "wrote 4 rows" in capsys.readouterr().err


def test_report_prints_the_figures_and_writes_two_pngs(config, tmp_path, capsys):
    out_dir = tmp_path / "report"
    assert main(["--config", config, "report", "--out", str(out_dir)]) == ExitCode.OK
    text = capsys.readouterr().out
    assert "win rate: 50.0 %" in text
    assert "largest loss: -91.9000 (tranche 2, BTCUSDT SHORT, SL)" in text
    assert "average hold: 30m50s" in text
    for name in (EQUITY_PNG, REASONS_PNG):
        data = (out_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_report_without_matplotlib_prints_the_numbers_and_how_to_install_it(config, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["--config", config, "report", "--out", str(tmp_path / "r")]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "win rate: 50.0 %" in out
    assert out.splitlines()[-1] == f"plots not written: {INSTALL_HINT}"
    assert "pip install 'posmon[report]'" in INSTALL_HINT
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["history", "report"])
def test_a_bad_since_exits_2_with_one_line(config, command, capsys):
    assert main(["--config", config, command, "--since", "last tuesday"]) == ExitCode.CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"posmon {command}: --since: 'last tuesday' is neither unix seconds")


def test_a_missing_store_exits_4_and_creates_nothing(tmp_path, capsys):
    settings = make_settings(tmp_path)
    assert main(["--config", str(tmp_path / "config.toml"), "history"]) == ExitCode.STORE
    (line,) = capsys.readouterr().err.splitlines()
    assert "no store at" in line
    assert not Path(settings.daemon.store).exists()


def test_a_store_that_is_not_posmons_exits_4(tmp_path, capsys):
    import sqlite3

    settings = make_settings(tmp_path)
    conn = sqlite3.connect(settings.daemon.store)
    conn.execute("CREATE TABLE other (x)")
    conn.close()
    assert main(["--config", str(tmp_path / "config.toml"), "report"]) == ExitCode.STORE
    (line,) = capsys.readouterr().err.splitlines()
    assert "not a posmon store" in line
