"""An account sweep hands the actors their slices a few dozen at a time, so price frames keep flowing."""

import trio

from posmon.actors.messages import AccountSnapshot, FetchAccount, Reconcile
from posmon.actors.reconciler import HAND_OVER_BATCH, AccountReconciler
from posmon.domain.orders import Side
from posmon.metrics import Metrics


class Directory:
    """Just what a sweep uses: the keys, each key's inbox, the unmonitored symbols."""

    def __init__(self, n: int) -> None:
        self.keys = [(f"S{i:04d}USDT", Side.LONG) for i in range(n)]
        self.handed: list[tuple[str, Side]] = []
        self.unmonitored: set[str] = set()

    def __iter__(self):
        return iter(self.keys)

    def __contains__(self, key) -> bool:
        return key in self.keys

    def inbox(self, symbol, side):
        directory = self

        class Inbox:
            def send_nowait(self, msg) -> None:
                assert isinstance(msg, Reconcile)
                directory.handed.append((symbol, side))

        return Inbox()


async def test_a_sweep_lets_other_tasks_run_between_batches_of_hand_overs(nursery):
    n = 3 * HAND_OVER_BATCH + 7
    directory = Directory(n)
    gateway_send, gateway_recv = trio.open_memory_channel(1)
    reconciler = AccountReconciler(
        "sim", directory, gateway_send, Metrics(), interval=0, reply_timeout=5, prefix="pm", clock=trio.current_time
    )

    async def venue() -> None:
        request = await gateway_recv.receive()
        assert isinstance(request, FetchAccount)
        await request.reply_to.send(AccountSnapshot((), ()))

    seen: list[int] = []  # how many actors had their slice each time another task (a price frame) got to run

    async def ticks() -> None:
        while len(directory.handed) < n:
            seen.append(len(directory.handed))
            await trio.lowlevel.checkpoint()

    nursery.start_soon(venue)
    nursery.start_soon(ticks)
    assert await reconciler.sweep()
    assert len(directory.handed) == n
    between = {s for s in seen if 0 < s < n}
    assert len(between) >= 2  # other tasks ran while the sweep was under way, not only after it
    assert all(s % HAND_OVER_BATCH == 0 for s in between)  # and only between whole batches
