"""Log lines: a time zone on every line, and JSON lines that name the venue, symbol, side and tranche."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime

import pytest
import trio

from posmon.cli import main
from posmon.config import ConfigError, load_settings
from posmon.domain.orders import Side
from posmon.logs import JsonLinesFormatter, bind, configure
from tests.emulated import lighter_like, one_way
from tests.harness import running

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_text_lines_start_with_an_iso_8601_utc_time(capsys):
    configure("INFO")
    logging.getLogger("posmon.test").info("hello")
    [line] = capsys.readouterr().err.splitlines()
    assert ISO_UTC.match(line) and line.endswith(" INFO    posmon.test: hello")


def test_a_json_line_is_one_object_with_ts_level_logger_message_and_only_the_fields_known():
    record = logging.LogRecord("posmon.notices", logging.WARNING, __file__, 1, "%s closed", ("BTCUSDT",), None)
    record.tranche = 7
    line = JsonLinesFormatter().format(record)
    assert "\n" not in line
    fields = json.loads(line)
    assert datetime.fromisoformat(fields.pop("ts")).utcoffset().total_seconds() == 0
    assert fields == {"level": "WARNING", "logger": "posmon.notices", "message": "BTCUSDT closed", "tranche": 7}


async def test_bound_fields_reach_the_lines_of_the_task_that_bound_them_and_its_children_only(capsys):
    configure("INFO", json_lines=True)
    log = logging.getLogger("posmon.test")

    async def actor() -> None:
        bind(venue="sim", symbol="ETHUSDT", side="SHORT")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_child, log)
        log.info("about one tranche", extra={"tranche": 12})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor)
    log.info("outside")
    lines = {line["message"]: line for line in json_lines(capsys.readouterr().err)}
    assert lines["from a child task"] | {"ts": 0} == {
        "ts": 0,
        "level": "INFO",
        "logger": "posmon.test",
        "message": "from a child task",
        "venue": "sim",
        "symbol": "ETHUSDT",
        "side": "SHORT",
    }
    assert lines["about one tranche"]["tranche"] == 12 and lines["about one tranche"]["symbol"] == "ETHUSDT"
    assert "venue" not in lines["outside"]


async def _child(log: logging.Logger) -> None:
    log.info("from a child task")


async def test_a_position_actors_log_lines_carry_its_venue_symbol_side_and_the_tranche(
    tmp_path, autojump_clock, capsys
):
    configure("INFO", json_lines=True)
    settings = one_way(tmp_path)
    exchange, venue = lighter_like(settings)  # emulated exits: the actor itself closes at the TP, and says so
    async with running(settings, exchange, venue=venue) as h:
        await h.entry("BTCUSDT", Side.LONG, "0.1", "45000")
        [t] = h.store.open_tranches("sim")
        await h.mark("BTCUSDT", str(t.tp + 50))
    lines = json_lines(capsys.readouterr().err)
    [closing] = [line for line in lines if line["message"].startswith("sim:BTCUSDT:LONG: closing tranche")]
    assert (closing["venue"], closing["symbol"], closing["side"], closing["tranche"]) == (
        "sim",
        "BTCUSDT",
        "LONG",
        t.id,
    )
    [exit_notice] = [line for line in lines if line["logger"] == "posmon.notices" and "closed by" in line["message"]]
    assert (exit_notice["symbol"], exit_notice["side"], exit_notice["tranche"]) == ("BTCUSDT", "LONG", t.id)
    assert all(line["ts"].endswith("Z") for line in lines)


def test_log_format_is_validated_like_every_setting(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[daemon]\nlog_format = "xml"\n')
    with pytest.raises(ConfigError, match=r"daemon.log_format.*'xml'.*'text', 'json'"):
        load_settings(bad, env={})
    good = tmp_path / "good.toml"
    good.write_text('[daemon]\nlog_format = "json"\n')
    assert load_settings(good, env={}).daemon.log_format == "json"
    assert load_settings(good, env={"POSMON_DAEMON_LOG_FORMAT": "text"}).daemon.log_format == "text"
    with pytest.raises(SystemExit) as refused:
        main(["run", "--log-format", "yaml"])
    assert refused.value.code == 2 and "--log-format" in capsys.readouterr().err
