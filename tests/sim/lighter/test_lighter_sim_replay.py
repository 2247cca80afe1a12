"""The embedded Lighter venue replays the recording: marks move and reach market_stats subscribers."""

from __future__ import annotations

from typing import Any

import orjson
import trio
from trio_websocket import open_websocket_url

from posmon.sim.lighter import DEFAULT_MARKETS, WsConfig, start_embedded_lighter
from tests.sim.lighter.test_lighter_sim_helpers import trio_epoch_clock


async def test_embedded_lighter_replays_marks_to_market_stats_subscribers(autojump_clock: Any):
    async with trio.open_nursery() as nursery:
        sim, rest_url, ws_url = await start_embedded_lighter(
            nursery, tick_seconds=1.0, clock=trio_epoch_clock, sim_options={"ws": WsConfig(ping_interval=None)}
        )
        assert rest_url.startswith("http://127.0.0.1:") and ws_url.endswith("/stream")
        assert set(sim.exchange.engine.rules) == {m.symbol for m in DEFAULT_MARKETS}
        async with open_websocket_url(ws_url) as ws:
            await ws.get_message()
            await ws.send_message('{"type":"subscribe","channel":"market_stats/all"}')
            first = orjson.loads(await ws.get_message())["market_stats"]
            seen = {k: {v["mark_price"]} for k, v in first.items()}
            for _ in range(20):
                with trio.fail_after(5):
                    update = orjson.loads(await ws.get_message())
                for market_id, stats in update["market_stats"].items():
                    seen[market_id].add(stats["mark_price"])
        assert all(len(prices) > 1 for prices in seen.values()), seen
        nursery.cancel_scope.cancel()
