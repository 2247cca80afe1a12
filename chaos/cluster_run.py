"""One run of the cluster campaign (``python -m chaos --cluster``, issue 17): the single-instance run's workload and
venue faults, with two or three ``posmon run`` instances of one cluster on a throwaway PostgreSQL server instead of
one daemon on SQLite, and the cluster's own faults.

Every run starts its own server (``chaos/postgres.py``), migrates the store, installs the write audit
(``chaos.cluster.install_audit``) and starts the instances (``a`` first, so it owns the account). Its schedule is the
single-instance one for the same seed (``chaos.run.plan``: entries, marks through TPs and SLs, exit plans, venue
faults; its daemon kills are replaced) plus cluster faults drawn from their own stream (``cluster_faults``):

- ``kill_owner``: SIGKILL the lease's owner, restart it after 0.2-2 s (it comes back as a standby);
- ``pause_owner``: SIGSTOP the owner for its lease plus 0.3-1.5 s, then SIGCONT (it must find itself fenced off);
- ``db_restart``: ``pg_ctl stop -m fast``, 0-1.5 s down, start again;
- ``kill_standby``: SIGKILL an instance that does not own the account, restarted after 0.2-2 s.

Takeover times are measured from each kill or pause of the owner: until another instance holds the lease
(``lease_s``), and until its daemon logged ``posmon ready`` (``ready_s``).
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import trio

from chaos.cluster import Cluster, check_audit, check_leases, install_audit, ownership, read_pg_store
from chaos.invariants import StoreView, Violation, check_history, check_log, check_state
from chaos.postgres import PostgresServer, PostgresUnavailable, start_server
from chaos.run import Options, Runner, RunResult, Schedule, _has_plan_keys, _plan_sections, plan, venue_for
from chaos.venues import VENUES, Venue
from posmon.domain.orders import Side

LEASE_SECONDS, RENEW_SECONDS = 2.0, 0.5
CLUSTER_INVARIANTS = ("one_owner", "no_write_after_lease_lost")
FAULT_KINDS = ("kill_owner", "pause_owner", "db_restart", "kill_standby")


@dataclass(frozen=True)
class ClusterFault:
    t: float
    kind: str  # one of FAULT_KINDS
    hold: float  # seconds: until restart (kills), past the lease (pause), the server down (db_restart)


def instances_for(seed: int) -> tuple[str, ...]:
    return ("a", "b", "c") if random.Random(f"{seed}-instances").random() < 0.4 else ("a", "b")


def cluster_faults(seed: int, duration: float) -> list[ClusterFault]:
    """The run's cluster faults, from their own stream (the single-instance schedule of the seed stays as it is);
    at least one is a kill or a pause of the owner."""
    rng = random.Random(f"{seed}-cluster")
    kinds = [rng.choice(("kill_owner", "pause_owner"))]
    kinds += [rng.choice((*FAULT_KINDS, "kill_owner")) for _ in range(rng.randint(1, 3))]
    faults = []
    for kind in kinds:
        if kind == "pause_owner":
            hold = LEASE_SECONDS + rng.uniform(0.3, 1.5)
        elif kind == "db_restart":
            hold = rng.uniform(0.0, 1.5)
        else:
            hold = rng.uniform(0.2, 2.0)
        faults.append(ClusterFault(rng.uniform(0.3, duration), kind, hold))
    return sorted(faults, key=lambda f: f.t)


@dataclass
class ClusterRunResult(RunResult):
    instances: int = 0
    pauses: int = 0
    db_restarts: int = 0
    standby_kills: int = 0
    takeovers: int = 0  # lease changes of hands seen in the instances' logs
    takeover_lease_s: list[float] = field(default_factory=list)
    takeover_ready_s: list[float] = field(default_factory=list)
    audited_writes: int = 0

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {
            "instances": self.instances,
            "pauses": self.pauses,
            "db_restarts": self.db_restarts,
            "standby_kills": self.standby_kills,
            "takeovers": self.takeovers,
            "takeover_lease_s": [round(t, 3) for t in self.takeover_lease_s],
            "takeover_ready_s": [round(t, 3) for t in self.takeover_ready_s],
            "audited_writes": self.audited_writes,
        }


def _quietly(call: Any, *args: Any) -> Any:
    """A read of the shared store, None while the server is down (a ``db_restart``) or restarting."""
    import psycopg

    try:
        return call(*args)
    except psycopg.Error:
        return None


class ClusterRunner(Runner):
    """Runs one schedule against a cluster; the campaign makes one per run."""

    result: ClusterRunResult

    def __init__(self, schedule: Schedule, venue: Venue, opts: Options, faults: list[ClusterFault]) -> None:
        super().__init__(schedule, venue, opts)
        self.faults = faults
        self.result = ClusterRunResult(schedule.seed, venue.name, instances=len(instances_for(schedule.seed)))
        self.server: PostgresServer | None = None
        self.cluster: Cluster | None = None
        self.url = ""
        self.seen: list[tuple[str, int]] = []  # the lease row's (owner, token) as polled, each change once
        self.db_down = False
        self.paused: set[str] = set()

    # ---- the run ------------------------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        t0 = time.monotonic()
        try:
            self.server = await trio.to_thread.run_sync(start_server, f"chaos-pg-{self.schedule.seed}-")
            async with trio.open_nursery() as nursery:
                rest_url, ws_url = await self.venue.serve(nursery)
                self.url = self.server.admin_url()
                await trio.to_thread.run_sync(self._migrate)
                plans = _plan_sections(self.schedule.plans) if _has_plan_keys(self.opts.daemon_src or _root()) else ""
                self.cluster = Cluster(
                    self.work,
                    self.url,
                    self.venue,
                    rest_url,
                    ws_url,
                    names=instances_for(self.schedule.seed),
                    lease=LEASE_SECONDS,
                    renew=RENEW_SECONDS,
                    risk_extra=f"instant_tp_enabled = {str(self.schedule.instant_tp).lower()}\n{plans}",
                )
                for daemon in self.cluster.instances.values():
                    daemon.src = self.opts.daemon_src
                try:
                    await self._run(nursery)
                except Exception as exc:  # reported with the seed that replays it; the campaign goes on
                    import traceback

                    self.result.error = f"{type(exc).__name__}: {exc} ({traceback.format_exc(limit=-3)})"
                finally:
                    with trio.CancelScope(shield=True):
                        await self._stop_all()
                nursery.cancel_scope.cancel()
        except PostgresUnavailable as exc:
            self.result.error = str(exc)
        except BaseException:  # cancelled (SIGTERM, Ctrl-C): no instance, server or directory is left behind
            self._kill_all()
            self._cleanup()
            raise
        self.result.wall_seconds = time.monotonic() - t0
        self._finish()
        return self.result

    def _migrate(self) -> None:
        from posmon.store.postgres import PgStore

        PgStore.open(self.url).close()
        install_audit(self.url, self.venue.name)

    async def _run(self, nursery: trio.Nursery) -> None:
        venue, cluster = self.venue, self.cluster
        assert cluster is not None
        for entry in self.schedule.pre_entries:
            venue.entry(entry["symbol"], Side(entry["side"]), Decimal(entry["notional"]))
            self.result.workload["entry_before_start"] += 1
        nursery.start_soon(self._heartbeat)
        nursery.start_soon(self._watch_lease)
        names = list(cluster.instances)
        cluster.start(names[0])
        self._note(f"instance {names[0]} started")
        await cluster.until_owner(within=self.opts.start_timeout)
        for name in names[1:]:
            cluster.start(name)
            self._note(f"instance {name} started")
        if not await self._wait_connected():
            return
        await cluster.until_registered(*names, within=self.opts.start_timeout)
        if self.schedule.pre_entries:
            self._changed()
        nursery.start_soon(self._monitor)
        async with trio.open_nursery() as chaos:
            faults_done = trio.Event()

            async def faults() -> None:
                await self._faults(nursery)  # takeover timers outlive the chaos phase (each is bounded)
                faults_done.set()

            chaos.start_soon(faults)
            await self._workload(chaos)
            with trio.move_on_after(self.opts.start_timeout):  # the schedule's faults all happen, even if late
                await faults_done.wait()
            chaos.cancel_scope.cancel()
        self.chaos_over = True
        venue.clear_faults()
        await self._heal()
        self._note("faults cleared")
        if self.schedule.late and await self._wait_connected():
            await trio.sleep(0.5)
            for action in self.schedule.late:
                before = sum(self.result.workload.values())
                self._apply(action, nursery)
                if sum(self.result.workload.values()) > before:
                    self.result.workload[f"late_{action.kind}"] += 1
        await self._settle()
        self.result.violations += check_history(venue.fill_log)
        alive = [n for n, d in cluster.instances.items() if d.alive()]
        died = [f"{n}: {'; '.join(d.died)}" for n, d in cluster.instances.items() if d.died]
        if died or not alive:
            self.result.violations.append(Violation("daemon_alive", "; ".join(died) or "no instance alive"))

    async def _wait_connected(self) -> bool:
        """Until some instance's daemon holds the venue's streams (only the owner connects)."""
        with trio.move_on_after(self.opts.start_timeout):
            while not self.venue.connected():  # noqa: ASYNC110 - another process's connection
                await trio.sleep(0.05)
            return True
        self.result.violations.append(
            Violation("daemon_alive", f"no instance connected {self.opts.start_timeout:.0f} s after start")
        )
        return False

    # ---- the cluster's faults --------------------------------------------------------------------------------

    async def _owner(self, within: float = 10.0) -> str | None:
        """The lease's owner, once a running process holds it (its log says it holds the row's token: not a killed
        owner's lease, running out while the same instance, restarted, stands by); None if none within."""
        cluster = self.cluster
        assert cluster is not None
        with trio.move_on_after(within):
            while True:
                got = await trio.to_thread.run_sync(_quietly, cluster.owner)
                if got is not None and got[2] > 0 and got[0] not in self.paused and cluster.instances[got[0]].alive():
                    _acquired, holding, _ready = ownership(cluster.log(got[0]), got[0], self.venue.name)
                    if holding is not None and holding.token == got[1]:
                        return str(got[0])
                await trio.sleep(0.05)
        return None

    async def _faults(self, nursery: trio.Nursery) -> None:
        cluster = self.cluster
        assert cluster is not None
        start = trio.current_time()
        for fault in self.faults:
            await trio.sleep_until(start + fault.t)
            if fault.kind == "db_restart":
                await self._db_restart(fault.hold)
                continue
            owner = await self._owner()
            if owner is None:
                self._note(f"{fault.kind}: no owner to hit")
                continue
            if fault.kind == "kill_standby":
                standbys = [n for n, d in cluster.instances.items() if n != owner and d.alive()]
                if not standbys:
                    continue
                victim = standbys[int(fault.hold * 1000) % len(standbys)]
                cluster.kill(victim)
                self.result.standby_kills += 1
                self._note(f"SIGKILL standby {victim}")
                await trio.sleep(fault.hold)
                cluster.start(victim)
                self._note(f"instance {victim} restarted")
                continue
            if not await self._standby_up(owner):
                self._note(f"{fault.kind}: no standby registered within {self.opts.start_timeout:.0f} s")
            readies = {n: cluster.log(n).count("posmon ready") for n in cluster.instances}
            hit = time.monotonic()
            if fault.kind == "kill_owner":
                cluster.kill(owner)
                self._note(f"SIGKILL owner {owner}")
            else:
                cluster.signal(owner, signal.SIGSTOP)
                self.paused.add(owner)
                self.result.pauses += 1
                self._note(f"SIGSTOP owner {owner} for {fault.hold:.2f} s")
            nursery.start_soon(self._time_takeover, owner, hit, readies)
            await trio.sleep(fault.hold)
            if fault.kind == "kill_owner":
                cluster.start(owner)
                self._note(f"instance {owner} restarted")
            else:
                cluster.signal(owner, signal.SIGCONT)
                self.paused.discard(owner)
                self._note(f"SIGCONT {owner}")
            self._changed()  # a takeover is a change: the time to protect runs until the new owner protects it

    async def _standby_up(self, owner: str) -> bool:
        """Wait (bounded) until another instance runs and has registered since its last start: the takeover time
        measures the failover, not a restarted standby's own start-up (seconds of imports on a loaded machine)."""
        cluster = self.cluster
        assert cluster is not None

        def up(name: str) -> bool:
            text = cluster.log(name)
            last_start = text.rfind("=== chaos: daemon start")
            return cluster.instances[name].alive() and text.find("registered (lease", last_start) > last_start

        with trio.move_on_after(self.opts.start_timeout):
            while not any(up(n) for n in cluster.instances if n != owner and n not in self.paused):  # noqa: ASYNC110
                await trio.sleep(0.05)
            return True
        return False

    async def _db_restart(self, down: float) -> None:
        server = self.server
        assert server is not None
        self.db_down = True
        self._note("PostgreSQL stop")
        await trio.to_thread.run_sync(server.stop)
        await trio.sleep(down)
        await trio.to_thread.run_sync(server.start)
        self.db_down = False
        self.result.db_restarts += 1
        self._note(f"PostgreSQL started again after {down:.2f} s")

    async def _time_takeover(self, victim: str, hit: float, readies: dict[str, int]) -> None:
        """From a kill or pause of ``victim``: until another instance holds the lease, and its daemon is ready."""
        cluster = self.cluster
        assert cluster is not None
        with trio.move_on_after(4 * LEASE_SECONDS + 10):
            while True:
                got = await trio.to_thread.run_sync(_quietly, cluster.owner)
                if got is not None and got[0] != victim and got[2] > 0:
                    break
                await trio.sleep(0.02)
            self.result.takeover_lease_s.append(time.monotonic() - hit)
            new = str(got[0])
            while cluster.log(new).count("posmon ready") <= readies.get(new, 0):  # noqa: ASYNC110 - its log
                await trio.sleep(0.02)
            self.result.takeover_ready_s.append(time.monotonic() - hit)

    async def _watch_lease(self) -> None:
        """The lease row's changes of hands over the run (``one_owner``)."""
        cluster = self.cluster
        assert cluster is not None
        while True:
            got = await trio.to_thread.run_sync(_quietly, cluster.owner)
            if got is not None and (not self.seen or self.seen[-1] != (got[0], got[1])):
                self.seen.append((got[0], got[1]))
            await trio.sleep(0.1)

    async def _heal(self) -> None:
        """After the faults: every paused instance continued, every killed one running again, the server up."""
        cluster = self.cluster
        assert cluster is not None
        for name in sorted(self.paused):
            cluster.signal(name, signal.SIGCONT)
        self.paused.clear()
        for daemon in cluster.instances.values():
            if not daemon.alive() and not daemon.died:
                daemon.start()

    # ---- invariants ---------------------------------------------------------------------------------------------

    async def _view(self) -> StoreView | None:
        return await trio.to_thread.run_sync(_quietly, read_pg_store, self.url)

    async def _protected(self) -> bool:
        view = await self._view()
        ok = view is not None and not check_state(self.venue, view)
        if ok and self.unprotected_since is not None:
            self.result.protect_times.append(trio.current_time() - self.unprotected_since)
            self.unprotected_since = None
        return ok

    def _owners_ok(self) -> list[Violation]:
        cluster = self.cluster
        assert cluster is not None
        logs = {n: cluster.log(n) for n in cluster.instances}
        return check_leases(logs, self.venue.name, self.seen, _quietly(cluster.owner))

    async def _monitor(self) -> None:
        while not self.chaos_over:
            await trio.sleep(0.2)
            await self._protected()

    async def _settle(self) -> None:
        """Until the state invariants and one ready owner hold twice in a row (at most ``settle_timeout``)."""
        self._note("settling")
        start = trio.current_time()
        passes = 0
        while trio.current_time() < start + self.opts.settle_timeout:
            await trio.sleep(0.25)
            if await self._protected() and not self._owners_ok():
                passes += 1
                if passes >= 2:
                    self.result.settle_seconds = trio.current_time() - start
                    self._note(f"settled in {self.result.settle_seconds:.2f} s")
                    return
            else:
                passes = 0
        view = await self._view()
        self.result.violations += check_state(self.venue, view)
        self.result.violations += self._owners_ok()
        self._note(f"not settled after {self.opts.settle_timeout:.0f} s")

    # ---- the end ------------------------------------------------------------------------------------------------

    async def _stop_all(self) -> None:
        if self.cluster is not None:
            await self.cluster.stop_all()

    def _kill_all(self) -> None:
        if self.cluster is not None:
            for daemon in self.cluster.instances.values():
                if daemon.proc is not None and daemon.proc.poll() is None:
                    daemon.proc.send_signal(signal.SIGCONT)
                daemon.kill()

    def _cleanup(self) -> None:
        import shutil

        if self.server is not None:
            (self.work / "postgresql.log").write_bytes(_read(self.server.root / "server.log"))
            self.server.cleanup()
            self.server = None
        shutil.rmtree(self.work, ignore_errors=True)

    def _finish(self) -> None:
        import shutil

        cluster = self.cluster
        if cluster is not None:
            self.result.kills = sum(d.kills for d in cluster.instances.values()) - self.result.standby_kills
            self.result.starts = sum(d.starts for d in cluster.instances.values())
            for name in cluster.instances:
                text = cluster.log(name)
                self.result.violations += [Violation(v.invariant, f"{name}: {v.detail}") for v in check_log(text)]
                got, _holding, _ready = ownership(text, name, self.venue.name)
                self.result.takeovers += sum(1 for a in got if a.token > 1)
            if self.server is not None:
                self._audit()
        resting = "\n".join(f"  resting {o}" for o in self.venue.resting())
        (self.work / "chaos.log").write_text(
            "\n".join(self.journal)
            + "\n"
            + resting
            + "\n"
            + "\n".join(f"  violation {v}" for v in self.result.violations)
            + "\n"
        )
        if self.server is not None:
            (self.work / "postgresql.log").write_bytes(_read(self.server.root / "server.log"))
            self.server.cleanup()
            self.server = None
        if (self.result.violations or self.opts.keep_all) and self.opts.keep is not None:
            dest = self.opts.keep / f"cluster-{self.venue.name}-seed-{self.schedule.seed}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(self.work, dest)
            self.result.kept = str(dest)
        shutil.rmtree(self.work, ignore_errors=True)

    def _audit(self) -> None:
        """``no_write_after_lease_lost`` from the audit (read while the server still runs)."""
        found = _quietly(check_audit, self.url)
        if found is None:
            self.result.violations.append(Violation("no_write_after_lease_lost", "the audit could not be read"))
            return
        violations, self.result.audited_writes = found
        self.result.violations += violations


def _read(path: Any) -> bytes:
    try:
        return bytes(path.read_bytes())
    except OSError:
        return b""


def _root() -> Any:
    from chaos.run import ROOT

    return ROOT


async def one_cluster_run(seed: int, venue_name: str, opts: Options) -> RunResult:
    venue = VENUES[venue_for(seed, venue_name)]()
    schedule = plan(seed, venue, opts)
    return await ClusterRunner(schedule, venue, opts, cluster_faults(seed, opts.duration)).run()
