"""The daemon's counters, gauges and histograms, exported in Prometheus text format at ``/metrics``.

Actors keep calling ``metrics.inc(name, n, **labels)``, ``set``, ``observe`` with short names; every name is
declared once in ``METRICS`` (type, help text, label names) and backed by a ``prometheus_client`` metric in a
registry owned by this instance (never the global default registry, so two daemons in one process do not
clash). A typo must never crash an actor in production, so an undeclared name or label set is logged once
and ignored; ``Metrics(strict=True)`` raises instead, for tests.

The registry also carries prometheus_client's process collector (``process_cpu_seconds_total``,
``process_resident_memory_bytes``, ``process_open_fds``, ...: read from ``/proc`` at scrape time, nothing on Linux
elsewhere) and platform collector (``python_info``), and ``posmon_build_info`` (1, labelled with the version, the
Python version and the venue), so a dashboard can tell which build it is looking at and how much it costs.

All actors run on one trio thread; the label children are cached by call shape to keep the hot paths (a
price frame, an order) to a dict lookup and an add.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from posmon import __version__

__all__ = ["METRICS", "PREFIX", "MetricError", "MetricSpec", "Metrics", "render"]

log = logging.getLogger(__name__)

PREFIX = "posmon_"
Kind = Literal["counter", "gauge", "histogram", "timestamp"]
Key = tuple[str, tuple[tuple[str, str], ...]]

# Tick-to-order latency: a local venue answers in milliseconds, a congested one in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its short name in the code, type, help and label names.

    Counters are exported as ``posmon_<name>_total``, the rest as ``posmon_<name>``; a ``timestamp`` is kept
    as the (trio-clock) time of the last event and exported as its age, ``posmon_<export>``, at scrape time.
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    export: str = ""  # exported name (without the prefix) when it differs from ``name``

    @property
    def exported(self) -> str:
        return PREFIX + (self.export or self.name)


_V = ("venue",)
METRICS: tuple[MetricSpec, ...] = (
    # price stream (PriceRouter)
    MetricSpec("price_frames", "counter", "Price frames received from the venue's stream", _V),
    MetricSpec("price_frames_dropped", "counter", "Price frames dropped as malformed", _V),
    MetricSpec(
        "price_last_frame",
        "timestamp",
        "Seconds since the last price frame arrived",
        _V,
        export="price_last_frame_age_seconds",
    ),
    MetricSpec("price_stream_up", "gauge", "1 while the price stream is connected, else 0", _V),
    MetricSpec("price_stream_stale", "counter", "Price stream reconnects because it went silent", _V),
    MetricSpec("price_stream_reconnects", "counter", "Price stream reconnects for any reason", _V),
    # user stream (UserStream)
    MetricSpec("user_frames", "counter", "Account events received from the venue's user stream", _V),
    MetricSpec("user_frames_dropped", "counter", "Account events dropped as malformed", _V),
    MetricSpec("user_events_unroutable", "counter", "Account events no position actor could take", _V),
    MetricSpec("user_stream_up", "gauge", "1 while the user stream is connected, else 0", _V),
    MetricSpec("user_stream_reconnects", "counter", "User stream reconnects", _V),
    # order gateway
    MetricSpec(
        "orders",
        "counter",
        "Orders sent to the venue by order type and result (placed, rejected, unknown)",
        ("venue", "type", "result"),
    ),
    MetricSpec(
        "tick_to_order_seconds",
        "histogram",
        "Seconds from the price tick that triggered an order to the order leaving for the venue",
        _V,
    ),
    MetricSpec("rest_calls", "counter", "REST calls made to the venue, by call", ("venue", "call")),
    MetricSpec("gateway_queue_depth", "gauge", "Requests waiting in the order gateway", _V),
    MetricSpec("gateway_paced", "counter", "Requests delayed to stay inside the venue's rate limits", _V),
    MetricSpec("gateway_throttled", "counter", "Rate-limit refusals from the venue, by kind", ("venue", "kind")),
    MetricSpec(
        "rate_limit_headroom",
        "gauge",
        "Fraction of the venue's request budget still unused (1 idle, 0 at the limit)",
        _V,
    ),
    # positions
    MetricSpec("position_actors", "gauge", "Position actors running (one per symbol and side)", _V),
    MetricSpec("open_tranches", "gauge", "Tranches currently monitored", _V),
    MetricSpec("unprotected_positions", "gauge", "Positions lacking a live TP or SL", _V),
    MetricSpec("exits_triggered", "counter", "Exits triggered by the monitor, by reason", ("venue", "reason")),
    MetricSpec("tranches_closed", "counter", "Tranches closed, by reason", ("venue", "reason")),
    MetricSpec("orders_rejected", "counter", "Orders the venue rejected, by purpose", ("venue", "purpose")),
    MetricSpec("protection_failures", "counter", "Tranches whose protection could not be placed", _V),
    MetricSpec("orphans_cancelled", "counter", "Orphan orders cancelled", _V),
    MetricSpec(
        "reconcile_sweeps",
        "counter",
        "Whole-account reads handed to every position actor, by result",
        ("venue", "result"),
    ),
    MetricSpec(
        "position_gaps",
        "counter",
        "Confirmed differences between the venue's position and the tranches, by what was done (adopted, shrunk)",
        ("venue", "action"),
    ),
    MetricSpec(
        "forced_exits", "counter", "Tranches closed by the venue's liquidation or auto-deleveraging", ("venue", "kind")
    ),
    MetricSpec("close_slippage_exhausted", "counter", "Closes still unfilled at the slippage cap (needs a human)", _V),
    MetricSpec(
        "stop_moves",
        "counter",
        "Stops moved, by reason (trailing, breakeven, protect: a hedge pair's tight stop); on Aster each is one "
        "STOP_MARKET cancel-replace",
        ("venue", "reason"),
    ),
    MetricSpec("open_pairs", "gauge", "Hedge pairs not closed yet (opening, open, closing or broken)"),
    MetricSpec(
        "pair_leg_imbalance_pct",
        "gauge",
        "A hedge pair's leg imbalance: how much its legs' quantities differ, in % of the larger",
        ("pair",),
    ),
    MetricSpec(
        "pair_exits",
        "counter",
        "Hedge pairs closed, by reason (LEG_SL, LEG_LIQUIDATION..., PAIR_TP, PAIR_SL, ENTRY_REJECTED, MANUAL)",
        ("reason",),
    ),
    MetricSpec(
        "partial_closes", "counter", "Partial closes: fills of a ladder level before the last, or of a trim", _V
    ),
    MetricSpec(
        "risk_limit_breaches",
        "counter",
        "Fills from outside posmon that broke a risk limit, by limit (operator entries are refused instead)",
        ("venue", "limit"),
    ),
    # supervision
    MetricSpec("actor_restarts", "counter", "Actor restarts after a failure", ("actor",)),
    MetricSpec("store_busy_waits", "counter", "Actors that waited for another process's lock on the store", ("actor",)),
    MetricSpec(
        "store_locked_seconds",
        "gauge",
        "Seconds the store has been locked by another process, or its PostgreSQL server unreachable (0: writable)",
        _V,
    ),
    MetricSpec("restart_budget_exhausted", "counter", "Actors that exhausted their restart budget", ("actor",)),
    # the cluster (posmon.cluster): leases per account
    MetricSpec("cluster_live_instances", "gauge", "Instances of the cluster heard of within the live window", ()),
    MetricSpec("lease_owner", "gauge", "1 while this instance owns the account's lease, else 0", ("account",)),
    MetricSpec(
        "lease_seconds_to_expiry",
        "gauge",
        "Seconds until this instance stops sending for the account unless its lease is renewed",
        ("account",),
    ),
    MetricSpec("lease_age_seconds", "gauge", "Seconds since the account's lease was last renewed", ("account",)),
    MetricSpec("lease_takeovers", "counter", "Leases this instance took over from another instance", ("account",)),
    # notifications
    MetricSpec("notices", "counter", "Operator notices raised, by kind", ("kind",)),
    MetricSpec("notify_sent", "counter", "Notification messages delivered, by channel", ("channel",)),
    MetricSpec("notify_retries", "counter", "Notification attempts retried after a failure", ("channel",)),
    MetricSpec("notify_merged", "counter", "Notices merged into another message by the rate limit", ("channel",)),
    MetricSpec(
        "notify_dropped", "counter", "Notices not delivered, by reason (queue_full, failed)", ("channel", "reason")
    ),
    MetricSpec("notify_queue_depth", "gauge", "Notices waiting in a notification channel", ("channel",)),
    # the build
    MetricSpec(
        "build_info",
        "gauge",
        "Always 1; its labels name the posmon version, the Python version and the venue",
        ("version", "python", "venue"),
    ),
)
_SPECS: dict[str, MetricSpec] = {s.name: s for s in METRICS}
_METHOD_KINDS: dict[str, tuple[Kind, ...]] = {
    "inc": ("counter",),
    "set": ("gauge", "timestamp"),
    "observe": ("histogram",),
}


class MetricError(ValueError):
    """A metric used with a name or label set that ``METRICS`` does not declare."""


class Metrics:
    """One per daemon, passed to every actor; ``registry`` is what ``/metrics`` renders."""

    def __init__(self, *, strict: bool = False, clock: Callable[[], float] = trio.current_time) -> None:
        """``clock`` must be the clock ``price_last_frame`` is stamped with (the router uses trio's)."""
        self.strict = strict
        self._clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self._families: dict[str, Any] = {}
        for spec in METRICS:
            if spec.kind != "timestamp":
                self._families[spec.name] = _family(spec, self.registry)
        self._stamps: dict[str, dict[Key, float]] = {s.name: {} for s in METRICS if s.kind == "timestamp"}
        self._children: dict[tuple[str, str, tuple[tuple[str, object], ...]], Any] = {}
        self._reported: set[tuple[str, str, tuple[str, ...]]] = set()
        self.registry.register(_AgeCollector(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    # --- writing (the actors' API) ------------------------------------------------------------------------

    def inc(self, name: str, n: float = 1, **labels: object) -> None:
        child = self._child("inc", name, labels)
        if child is not None:
            child.inc(n)

    def set(self, name: str, value: float, **labels: object) -> None:
        child = self._child("set", name, labels)
        if child is None:
            return
        if isinstance(child, dict):  # a timestamp: kept here, exported as an age
            child[_key(name, labels)] = value
        else:
            child.set(value)

    def set_function(self, name: str, read: Callable[[], float], **labels: object) -> None:
        """A gauge read when scraped (``read()``), for a value that changes with time alone, such as a rate
        budget that refills while nothing is sent (a value set only on activity would go stale while idle)."""
        child = self._child("set", name, labels)
        if child is not None and not isinstance(child, dict):
            child.set_function(read)

    def observe(self, name: str, value: float, **labels: object) -> None:
        """Record one observation of a histogram (e.g. ``tick_to_order_seconds``, in seconds)."""
        child = self._child("observe", name, labels)
        if child is not None:
            child.observe(value)

    def _child(self, method: str, name: str, labels: dict[str, object]) -> Any:
        shape = (method, name, tuple(labels.items()))
        try:
            return self._children[shape]
        except KeyError:
            pass
        except TypeError:  # an unhashable label value: validate without caching
            return self._resolve(method, name, labels)
        child = self._children[shape] = self._resolve(method, name, labels)
        return child

    def _resolve(self, method: str, name: str, labels: dict[str, object]) -> Any:
        spec = _SPECS.get(name)
        if spec is None:
            return self._problem(method, name, labels, "is not declared in posmon.metrics.METRICS")
        if spec.kind not in _METHOD_KINDS[method]:
            return self._problem(method, name, labels, f"is a {spec.kind}; {method}() does not apply")
        if set(labels) != set(spec.labels):
            return self._problem(method, name, labels, f"takes labels {list(spec.labels)}")
        if spec.kind == "timestamp":
            return self._stamps[name]
        family = self._families[name]
        return family.labels(**{k: str(v) for k, v in labels.items()}) if spec.labels else family

    def _problem(self, method: str, name: str, labels: dict[str, object], why: str) -> None:
        message = f"metrics.{method}({name!r}, labels {sorted(labels)}): {name!r} {why}"
        if self.strict:
            raise MetricError(message)
        marker = (method, name, tuple(sorted(labels)))
        if marker not in self._reported:
            self._reported.add(marker)
            log.error("%s; ignoring it (logged once)", message)
        return None

    def set_build_info(self, venue: str) -> None:
        """``posmon_build_info{version, python, venue} 1``: set once, when the daemon knows its venue."""
        self.set("build_info", 1, version=__version__, python=platform.python_version(), venue=venue)

    def forget(self, venue: str) -> None:
        """Drop the gauges (and frame ages) of a venue account this process no longer runs: a cluster's account
        handed over or lost. Left behind, its stream "down" or its frame age growing would alert on an instance no
        longer responsible for it. Counters and histograms stay: they are what happened here."""
        for shape in list(self._children):
            _method, name, labels = shape
            spec = _SPECS.get(name)
            values = {k: str(v) for k, v in labels}
            if spec is None or spec.kind != "gauge" or set(values) != set(spec.labels):
                continue
            if values.get("venue") != venue:
                continue
            del self._children[shape]
            with contextlib.suppress(KeyError):
                self._families[name].remove(*(values[k] for k in spec.labels))
        for stamps in self._stamps.values():
            for key in [k for k in stamps if dict(k[1]).get("venue") == venue]:
                del stamps[key]

    # --- reading (tests, status, the watchdog) ------------------------------------------------------------

    def get(self, name: str, **labels: object) -> float:
        """A metric's value for one label set (0 if never touched); given only some labels (or none), the sum
        over the label sets that match them.

        A counter or gauge gives its value, a histogram its number of observations, a timestamp the time
        it was last set (not the age).
        """
        spec = _SPECS.get(name)
        if spec is None:
            if self.strict:
                raise MetricError(f"metrics.get({name!r}): not declared in posmon.metrics.METRICS")
            return 0
        if spec.kind == "timestamp":
            stamps = self._stamps[name]
            return stamps.get(_key(name, labels), 0) if labels else sum(stamps.values())
        wanted = {k: str(v) for k, v in labels.items()}
        return sum(
            value
            for sample_labels, value in self._samples(spec)
            if all(sample_labels.get(k) == v for k, v in wanted.items())
        )

    def _samples(self, spec: MetricSpec) -> Iterator[tuple[dict[str, str], float]]:
        suffix = {"counter": "_total", "histogram": "_count"}.get(spec.kind, "")
        for family in self._families[spec.name].collect():
            for sample in family.samples:
                if sample.name == spec.exported + suffix:
                    yield sample.labels, sample.value

    @property
    def counters(self) -> dict[Key, float]:
        """Every counter's value by ``(name, sorted labels)``: a snapshot for reports and the benchmark."""
        return {
            _key(spec.name, labels): value
            for spec in METRICS
            if spec.kind == "counter"
            for labels, value in self._samples(spec)
        }

    def last_frame_ages(self, name: str = "price_last_frame") -> dict[Key, float]:
        """Seconds since each label set of a timestamp metric was last set, by the metrics clock."""
        now = self._clock()
        return {key: max(0.0, now - at) for key, at in self._stamps[name].items()}


def _key(name: str, labels: dict[str, Any]) -> Key:
    return name, tuple(sorted((k, str(v)) for k, v in labels.items()))


def _family(spec: MetricSpec, registry: CollectorRegistry) -> Any:
    name = spec.exported
    if spec.kind == "counter":
        return Counter(name, spec.help, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(name, spec.help, spec.labels, registry=registry)
    return Histogram(name, spec.help, spec.labels, registry=registry, buckets=LATENCY_BUCKETS)


class _AgeCollector:
    """Exports each ``timestamp`` metric as an age computed at scrape time with the metrics clock."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(s.exported, s.help, labels=s.labels) for s in METRICS if s.kind == "timestamp"]

    def collect(self) -> Iterable[Metric]:
        try:
            ages = {s.name: self._metrics.last_frame_ages(s.name) for s in METRICS if s.kind == "timestamp"}
        except RuntimeError:  # rendered outside trio with trio's clock: no ages to give
            ages = {}
        for spec in METRICS:
            if spec.kind != "timestamp":
                continue
            family = GaugeMetricFamily(spec.exported, spec.help, labels=spec.labels)
            for (_, labels), age in ages.get(spec.name, {}).items():
                family.add_metric([dict(labels)[label] for label in spec.labels], age)
            yield family


def render(metrics: Metrics, accept: str | None = None) -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type; OpenMetrics when the scraper's ``Accept`` asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(metrics.registry), content_type
