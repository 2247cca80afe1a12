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


class StepEnds(trio.abc.Instrument):
    """How many actors had their slice each time the sweeping task gave the scheduler back (a step ended).

    Read from trio's own instrumentation rather than from another task's turns: trio shuffles the order of the
    tasks it runs in one batch, so what another task happens to see is not deterministic; where the sweeping task
    yields is.
    """

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.task: trio.lowlevel.Task | None = None
        self.handed_at_yield: list[int] = []

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.handed_at_yield.append(len(self.directory.handed))


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

    steps = StepEnds(directory)
    nursery.start_soon(venue)
    trio.lowlevel.add_instrument(steps)
    try:
        steps.task = trio.lowlevel.current_task()
        assert await reconciler.sweep()
    finally:
        trio.lowlevel.remove_instrument(steps)
    assert len(directory.handed) == n
    between = [k for k in steps.handed_at_yield if 0 < k < n]
    # It yielded after every whole batch (other tasks, a price frame, run there), and only there.
    assert between == [HAND_OVER_BATCH, 2 * HAND_OVER_BATCH, 3 * HAND_OVER_BATCH]
