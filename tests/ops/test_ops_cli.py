"""``posmon verify`` / ``posmon protect`` through the real command line: parsing, settings, exit codes."""

from __future__ import annotations

import json
import socket

from posmon.cli import main
from posmon.sim.aster import credentials as cred

V1 = f'auth = "v1"\napi_key = "{cred.DEFAULT_API_KEY}"\napi_secret = "{cred.DEFAULT_API_SECRET}"'


EMBEDDED = f'rest_url = ""\nws_url = ""\n{V1}'  # no URLs: the embedded Aster-protocol simulator


def _config(tmp_path, aster: str = EMBEDDED) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[daemon]
venue = "aster"
store = "{tmp_path / "posmon.sqlite"}"
request_timeout_seconds = 2.0

[sim]
symbols = ["BTCUSDT"]
trader_enabled = false

[aster]
{aster}
""")
    return str(path)


def test_verify_on_the_embedded_simulator_is_clean_and_creates_no_store(tmp_path, capsys):
    assert main(["--config", _config(tmp_path), "verify", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["clean"] and doc["venue"] == "aster" and doc["gaps"] == []
    assert not (tmp_path / "posmon.sqlite").exists()


def test_protect_dry_run_on_the_embedded_simulator_has_nothing_to_do(tmp_path, capsys):
    assert main(["--config", _config(tmp_path), "protect", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "nothing to do" in captured.out and "stop the daemon first" in captured.err


def test_bad_configuration_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[risk]\ntp_pct = "lots"\n')
    assert main(["--config", str(bad), "verify"]) == 2
    assert "risk.tp_pct" in capsys.readouterr().err
    assert main(["--config", _config(tmp_path, 'auth = "v9"'), "protect"]) == 2


def test_unreachable_exchange_exits_3(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nobody listens there
    aster = f'rest_url = "http://127.0.0.1:{port}"\nws_url = "ws://127.0.0.1:{port}"\n{V1}'
    assert main(["--config", _config(tmp_path, aster), "verify"]) == 3
    assert "exchange unreachable" in capsys.readouterr().err


def test_verify_and_dry_run_on_the_embedded_lighter_simulator(tmp_path, capsys):
    """Lighter: emulated exits, one-way; a fresh account is clean (no posmon TP/SL may rest there)."""
    path = tmp_path / "lighter.toml"
    path.write_text(f"""
[daemon]
venue = "lighter"
store = "{tmp_path / "posmon.sqlite"}"
hedge_mode = false

[sim]
symbols = ["BTCUSDT"]
trader_enabled = false

[lighter]
rest_url = ""
ws_url = ""
""")
    assert main(["--config", str(path), "verify", "--json"]) == 0, capsys.readouterr()
    assert json.loads(capsys.readouterr().out)["venue"] == "lighter"
    assert main(["--config", str(path), "protect", "--dry-run"]) == 0


def test_verify_and_protect_with_two_venues_check_both_embedded_simulators(tmp_path, capsys):
    """``[daemon] venues`` and no URLs: each account on its own embedded simulator, one report per venue."""
    from posmon.sim.aster import credentials as aster_cred

    path = tmp_path / "two.toml"
    path.write_text(f"""
[daemon]
venues = ["aster", "lighter"]
store = "{tmp_path / "posmon.sqlite"}"

[sim]
trader_enabled = false

[aster]
rest_url = ""
ws_url = ""
auth = "v3"
signer_private_key = "{aster_cred.DEFAULT_SIGNER_PRIVATE_KEY}"
user = "{aster_cred.DEFAULT_USER_ADDRESS}"

[lighter]
rest_url = ""
ws_url = ""
""")
    assert main(["--config", str(path), "verify", "--json"]) == 0, capsys.readouterr()
    doc = json.loads(capsys.readouterr().out)
    assert doc["clean"] and [(a["venue"], a["gaps"]) for a in doc["accounts"]] == [("aster", []), ("lighter", [])]
    assert main(["--config", str(path), "protect", "--dry-run", "--venue", "lighter"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("posmon protect: lighter account (one-way mode)") and "aster" not in out
    assert main(["--config", str(path), "verify", "--venue", "binance"]) == 2
    assert "--venue: invalid value 'binance'" in capsys.readouterr().err
