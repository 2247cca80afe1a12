"""The runner's control channel to its child processes: one JSON object per line over stdin/stdout.

A child reads commands (``{"id": n, "cmd": "...", ...}``) on stdin and answers each with ``{"id": n, ...}``
on stdout; it may also print events (``{"event": "...", ...}``) at any time. Children write nothing else to
stdout (their logs go to stderr). The parent side runs a reader thread per child so a chatty child never
blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import trio

ROOT = Path(__file__).resolve().parent.parent

# ---- child side (trio) ------------------------------------------------------------------------------------------


class ChildChannel:
    """Commands from the runner on stdin, answers and events to it on stdout."""

    def __init__(self) -> None:
        self._out = os.dup(1)
        os.dup2(2, 1)  # anything else that prints goes to the log, never into the protocol
        sys.stdout = sys.stderr
        self._in = trio.lowlevel.FdStream(os.dup(0))
        self._buf = b""

    def send(self, message: dict[str, Any]) -> None:
        data = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        view = memoryview(data)
        while view:
            n = os.write(self._out, view)
            view = view[n:]

    def event(self, name: str, **data: Any) -> None:
        self.send({"event": name, "t_ns": time.monotonic_ns(), **data})

    async def commands(self):  # -> AsyncIterator[dict]
        while True:
            while b"\n" not in self._buf:
                chunk = await self._in.receive_some(1 << 16)
                if not chunk:
                    return
                self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
            if line.strip():
                yield orjson.loads(line)


# ---- parent side (threads) --------------------------------------------------------------------------------------


class ChildError(RuntimeError):
    pass


class Child:
    """A child process speaking the line protocol; ``call`` sends a command and waits for its answer."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 -- closed in close()
        self.spawned_ns = time.monotonic_ns()
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        self.pid = self.proc.pid
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.strip():
                continue
            message = json.loads(line)
            if "event" in message:
                with self._events_lock:
                    self.events.append(message)
            else:
                self._answers.put(message)
        self._answers.put({"id": None, "eof": True})

    def call(self, cmd: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(orjson.dumps({"id": ident, "cmd": cmd, **args}) + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise ChildError(f"{self.name} is gone (see {self.log_path})") from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ChildError(
                    f"{self.name}: no answer to {cmd!r} within {timeout:.0f}s (see {self.log_path})"
                ) from None
            if answer.get("eof"):
                raise ChildError(
                    f"{self.name} exited (code {self.proc.poll()}) while running {cmd!r}; see {self.log_path}"
                )
            if answer.get("id") == ident:
                if "error" in answer:
                    raise ChildError(f"{self.name}: {cmd!r} failed: {answer['error']}")
                return answer

    def wait_event(
        self,
        name: str,
        timeout: float,
        *,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            with self._events_lock:
                for e in self.events:
                    if e["event"] == name and where(e):
                        return e
            if self.proc.poll() is not None:
                raise ChildError(f"{self.name} exited (code {self.proc.returncode}); see {self.log_path}")
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def events_named(self, name: str) -> list[dict[str, Any]]:
        with self._events_lock:
            return [e for e in self.events if e["event"] == name]

    def close(self, timeout: float = 10.0) -> int | None:
        """Stop it: close its stdin (children stop on end of input), then SIGTERM, then SIGKILL; its exit code.

        Not SIGINT: a runner started in the background by a shell ignores SIGINT, and its children inherit that.
        """
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            for stop in (lambda: None, self.proc.terminate, self.proc.kill):
                stop()
                try:
                    self.proc.wait(timeout / 2)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()
        return self.proc.returncode


# ---- /proc readings ---------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core; user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


class Interference:
    """How much CPU processes other than the benchmark's used during a phase (the machine is shared).

    ``others_cpu_pct``: the machine's busy CPU minus what the daemon, the simulator and the runner used, in % of one
    core; with 2 cores, 100 means another program kept one core busy the whole time. ``loadavg`` is the 1-minute
    load average when the phase began (it counts the benchmark's own processes too).
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.load = os.getloadavg()[0]
        self.t0 = time.monotonic()
        self.busy0 = busy_cpu_seconds()
        self.ours0 = self._ours()

    def _ours(self) -> float:
        total = sum(t for t in os.times()[:2])  # the runner itself (its reader threads included)
        for pid in self.pids:
            with contextlib.suppress(OSError):  # it has exited
                total += cpu_seconds(pid)
        return total

    def result(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self.t0)
        others = (busy_cpu_seconds() - self.busy0) - (self._ours() - self.ours0)
        return {"loadavg_1m": round(self.load, 2), "others_cpu_pct": round(max(0.0, 100 * others / wall), 1)}


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out
