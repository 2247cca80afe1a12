"""``posmon demo``: one scripted session on the simulated Aster venue that shows everything the daemon does.

- ``script``: the demo's configuration, price paths and moments (entries, a spike, a restart);
- ``narration``: one line per event, read from the store, and the ``DemoResult`` with its summary;
- ``session``: the simulator, the daemon (stopped and started again mid-run) and the script driving them.
"""

from __future__ import annotations

from posmon.demo.narration import DemoEvent, DemoResult, Happening
from posmon.demo.session import run_demo

__all__ = ["DemoEvent", "DemoResult", "Happening", "run_demo"]
