"""A batch signed in parallel worker threads: nonces taken in order first, consecutive, accepted by the simulator.

The Go signer is called from several threads at once (``LighterRest.sign_many``); these tests check what that
must not change: each transaction carries its own order's fields and the nonce assigned to it in order, a batch of
50 is one ``sendTxBatch`` the simulator accepts (it refuses gaps with 21105 and a wrong first nonce with 21104), a
refused batch leaves the keeper to re-fetch and the next batch goes through, and a call the signer refuses in the
middle of a batch leaves no hole in the nonces.

The simulator cannot check signatures (that needs lighter-go's Poseidon2/Schnorr, which the library does not
export); what is checked is that every transaction's signed fields are its own and every signature is present
and distinct.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
import trio

from posmon.domain.orders import OrderRequest, OrderSide, OrderType
from posmon.exchange.errors import GiveUp, NonceExpired, OutcomeUnknown
from posmon.exchange.lighter.settings import LighterSettings
from posmon.exchange.lighter.signer import LighterSigner, SignError
from posmon.exchange.lighter.venue import LighterVenue
from posmon.sim.lighter import LighterSim, build_exchange, serve_lighter_sim
from posmon.sim.lighter.credentials import (
    DEFAULT_ACCOUNT_INDEX,
    DEFAULT_API_KEY_INDEX,
    DEFAULT_API_PRIVATE_KEY,
    DEFAULT_CHAIN_ID,
)

D = Decimal
KEY = DEFAULT_API_KEY_INDEX


class RecordingSigner:
    """The real Go signer, recording each create_order's thread and tx_info; refuses client indexes in ``refuse``."""

    def __init__(self, inner: LighterSigner, refuse: frozenset[int] = frozenset()) -> None:
        self.inner = inner
        self.refuse = refuse
        self.lock = threading.Lock()
        self.signed: list[dict[str, Any]] = []
        self.threads: set[int] = set()

    def create_order(self, **kw: Any) -> tuple[int, str]:
        with self.lock:
            self.threads.add(threading.get_ident())
        if kw["client_order_index"] in self.refuse:
            raise SignError("refused for the test")
        tx_type, info = self.inner.create_order(**kw)
        with self.lock:
            self.signed.append(json.loads(info))
        return tx_type, info

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def real_signer(rest_url: str) -> LighterSigner:
    return LighterSigner(
        url=rest_url,
        private_key=DEFAULT_API_PRIVATE_KEY,
        chain_id=DEFAULT_CHAIN_ID,
        api_key_index=KEY,
        account_index=DEFAULT_ACCOUNT_INDEX,
    )


@asynccontextmanager
async def on_sim(
    refuse: frozenset[int] = frozenset(),
) -> AsyncIterator[tuple[LighterVenue, LighterSim, RecordingSigner]]:
    sim = LighterSim(build_exchange())
    async with trio.open_nursery() as nursery:
        rest_url, ws_url = await nursery.start(serve_lighter_sim, sim)
        settings = LighterSettings(
            rest_url=rest_url,
            ws_url=ws_url,
            account_index=DEFAULT_ACCOUNT_INDEX,
            api_key_index=KEY,
            api_private_key=DEFAULT_API_PRIVATE_KEY,
            tier="premium",
        )
        signer = RecordingSigner(real_signer(rest_url), refuse)
        async with LighterVenue.open(settings, signer=signer, clock=time.time) as venue:
            venue.rest.sign_threads = 2
            yield venue, sim, signer
        nursery.cancel_scope.cancel()


def orders(n: int, first: int = 1) -> list[OrderRequest]:
    """``n`` resting buys on ETH below the mark, client ids pm-<k>-E1 (distinct client order indexes)."""
    return [
        OrderRequest(
            client_id=f"pm-{k}-E1",
            symbol="ETH",
            side=OrderSide.BUY,
            position_side="BOTH",
            type=OrderType.LIMIT,
            qty=D("0.01"),
            price=D("2000.00") + k,
        )
        for k in range(first, first + n)
    ]


def check_signed(venue: LighterVenue, signer: RecordingSigner, sent: list[OrderRequest], first_nonce: int) -> None:
    """Each order's transaction carries its own fields and the nonce its place in the batch gave it."""
    by_coi = {tx["ClientOrderIndex"]: tx for tx in signer.signed}
    for offset, o in enumerate(sent):
        tx = by_coi[venue.ids.index(o.client_id)]
        assert (tx["Nonce"], tx["Price"], tx["MarketIndex"]) == (first_nonce + offset, int(o.price * 100), 0)
    sigs = [tx["Sig"] for tx in signer.signed]
    assert all(sigs) and len(set(sigs)) == len(sigs)


async def test_fifty_orders_signed_in_parallel_carry_consecutive_nonces_and_are_accepted_in_one_batch() -> None:
    async with on_sim() as (venue, sim, signer):
        first = sim.next_nonce(DEFAULT_ACCOUNT_INDEX, KEY)
        batch = orders(50)
        answers = await venue.place_orders(batch)
        assert [a.client_id for a in answers if not isinstance(a, Exception)] == [o.client_id for o in batch]
        assert len(signer.threads) == 2  # really signed in two worker threads
        check_signed(venue, signer, batch, first)
        assert sim.counters.requests["POST /api/v1/sendTxBatch"] == 1 and sim.counters.txs_accepted == 50
        assert sim.next_nonce(DEFAULT_ACCOUNT_INDEX, KEY) == first + 50
        assert {o.client_id for o in await venue.open_orders("ETH")} == {o.client_id for o in batch}


@pytest.mark.parametrize("fault", ["nonce", "503"])
async def test_a_refused_batch_leaves_the_nonces_to_a_refetch_and_the_next_batch_goes_through(fault: str) -> None:
    async with on_sim() as (venue, sim, signer):
        if fault == "nonce":
            sim.force_nonce_error(1)
            expected: type[Exception] = NonceExpired
        else:
            sim.fail_next("/api/v1/sendTxBatch", status=503)
            expected = OutcomeUnknown
        with pytest.raises(expected):
            await venue.place_orders(orders(50))
        assert not venue.nonces.known  # the batch's nonces may or may not be used: fetched before the next send
        assert sim.counters.txs_accepted == 0
        signer.signed.clear()
        first = sim.next_nonce(DEFAULT_ACCOUNT_INDEX, KEY)
        retry = orders(50, first=100)
        answers = await venue.place_orders(retry)
        assert not any(isinstance(a, Exception) for a in answers)
        check_signed(venue, signer, retry, first)
        assert sim.counters.txs_accepted == 50


async def test_a_signer_refusal_mid_batch_leaves_no_hole_in_the_nonces() -> None:
    async with on_sim(refuse=frozenset()) as (venue, sim, signer):
        batch = orders(6)
        bad = venue.ids.index(batch[2].client_id)
        signer.refuse = frozenset({bad})
        first = sim.next_nonce(DEFAULT_ACCOUNT_INDEX, KEY)
        answers = await venue.place_orders(batch)
        assert isinstance(answers[2], GiveUp) and "signer refused" in str(answers[2])
        kept = [o for i, o in enumerate(batch) if i != 2]
        assert [a.client_id for a in answers if not isinstance(a, Exception)] == [o.client_id for o in kept]
        # the first round signed 5 with a hole; only the second round (consecutive) was sent
        sent = signer.signed[-5:]
        assert [tx["Nonce"] for tx in sent] and sorted(tx["Nonce"] for tx in sent) == list(range(first, first + 5))
        assert sim.counters.txs_accepted == 5 and sim.next_nonce(DEFAULT_ACCOUNT_INDEX, KEY) == first + 5
        assert venue.nonces.known  # nothing unknown happened: no re-fetch needed


def test_the_go_signer_signs_from_four_threads_at_once_without_crosstalk() -> None:
    signer = real_signer("http://127.0.0.1:9")  # never contacted: every call passes its nonce

    def sign(k: int) -> dict[str, Any]:
        _, info = signer.create_order(
            market_index=k % 3,
            client_order_index=1000 + k,
            base_amount=10 + k,
            price=200_000 + k,
            is_ask=bool(k % 2),
            order_type=0,
            time_in_force=1,
            reduce_only=False,
            trigger_price=0,
            order_expiry=-1,
            nonce=5000 + k,
        )
        return dict(json.loads(info))

    with ThreadPoolExecutor(4) as pool:
        txs = list(pool.map(sign, range(200)))
    for k, tx in enumerate(txs):
        assert (tx["Nonce"], tx["ClientOrderIndex"], tx["BaseAmount"], tx["Price"], tx["MarketIndex"]) == (
            5000 + k,
            1000 + k,
            10 + k,
            200_000 + k,
            k % 3,
        )
    assert len({tx["Sig"] for tx in txs}) == 200
