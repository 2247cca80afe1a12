"""The bearer token never reaches the log, whatever the level (issue 11.4).

At DEBUG, ``hpack`` logs every HTTP/2 header it encodes or decodes, ``authorization: Bearer <token>`` included;
a client speaking HTTP/2 to the control API was enough to write the token to stderr. posmon's own logging
set-up (``posmon.logs.configure``) must keep such libraries at WARNING whatever the configured level.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import trio

from posmon.api.server import serve_api
from posmon.api.settings import ApiSettings
from posmon.logs import QUIET_LOGGERS, configure

TOKEN = "s3cr3t-bearer-token-0123456789"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``configure`` replaces the root handlers and sets library levels: put everything back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = [n for n in logging.root.manager.loggerDict if any(n == q or n.startswith(q + ".") for q in QUIET_LOGGERS)]
    levels = {n: logging.getLogger(n).level for n in (*names, *QUIET_LOGGERS)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


async def hello(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """A minimal ASGI app: lifespan acknowledged, every request answered 200."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_an_http2_request_with_a_bearer_token_at_debug_leaves_no_token_in_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("DEBUG")
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_api, hello, ApiSettings(host="127.0.0.1", port=0, token=TOKEN))
        async with httpx.AsyncClient(http1=False, http2=True) as client:  # h2c with prior knowledge
            answer = await client.get(f"{url}/health", headers={"Authorization": f"Bearer {TOKEN}"})
        nursery.cancel_scope.cancel()
    assert answer.status_code == 200 and answer.http_version == "HTTP/2"
    logging.getLogger("posmon.test").debug("request done")
    err = capsys.readouterr().err
    assert "posmon.test: request done" in err  # DEBUG is on: posmon's own lines are written
    assert TOKEN not in err
    assert "hpack" not in err


def test_header_loggers_stay_quiet_even_when_a_library_turns_itself_up(capsys: pytest.CaptureFixture[str]) -> None:
    configure("DEBUG")
    for name in ("hpack.hpack", "hpack.table", "h2.connection", "httpcore.http2", "hpack.some_new_child"):
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).debug("Decoded %s, consumed %d", (b"authorization", f"Bearer {TOKEN}".encode()), 40)
        logging.getLogger(name).info("header %s", TOKEN)
    logging.getLogger("hpack.hpack").warning("a warning still shows")
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert "a warning still shows" in err


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_bearer_token_in_any_message_is_masked(capsys: pytest.CaptureFixture[str], json_lines: bool) -> None:
    configure("DEBUG", json_lines=json_lines)
    logging.getLogger("posmon.api").debug("headers %s", {"authorization": f"Bearer {TOKEN}"})
    logging.getLogger("posmon.api").warning("Authorization: bearer %s", TOKEN)
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert err.count("***") == 2
