"""``posmon open`` beyond a risk limit: the daemon's one-line refusal, exit 1, nothing sent to the venue."""

from __future__ import annotations

from posmon.cli.exit_codes import ExitCode
from tests.api.test_api_fakes import served
from tests.cli.test_cli_ops import _no_api_environment, app_for, posmon  # noqa: F401 (autouse fixture)
from tests.harness import make_settings, running

OPEN = ("open", "long", "BTCUSDT", "--size-usd", "4500", "--leverage", "5", "--sl-percent", "3", "--rr", "1:2")


async def test_open_beyond_a_limit_prints_the_refusal_on_one_line_and_exits_1(tmp_path, capsys):
    async with running(make_settings(tmp_path, max_notional_per_symbol=4000)) as h:
        await h.mark("BTCUSDT", "45000")
        async with served(app_for(h.daemon.control)) as url:
            code = await posmon(*OPEN, "--api", url)
        # The CLI's lines (the in-process daemon's own logging may share stderr here).
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("posmon:")]

        assert code == ExitCode.FAILED
        assert len(err) == 1 and err[0].startswith(
            "posmon: the daemon refused (HTTP 422) [max_notional_per_symbol]: refused by the risk limits: "
            "max_notional_per_symbol is 4000 USD; this would make it 4500 USD (a LONG of 0.1 BTCUSDT"
        ), err
        assert err[0].endswith("nothing was sent")
        assert h.exchange.orders_sent == 0 and h.exchange.calls["set_leverage"] == 0
