"""One notification channel: a bounded queue and the task that drains it, rate-limited and retried.

``offer`` never blocks and never fails: a full queue drops its oldest notice (counted), so a dead receiver
costs the notifier nothing. The drain task sends at most one message per ``min_interval`` seconds; notices
that arrive meanwhile are merged into the next message (counted). A failed attempt (transport error, timeout,
429, 5xx) is retried with exponential backoff, honouring ``Retry-After``; other 4xx answers are permanent.
"""

from __future__ import annotations

import email.utils
import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import trio

from posmon.actors.messages import Notice
from posmon.metrics import Metrics
from posmon.notify.redact import snippet
from posmon.notify.senders import Sender

log = logging.getLogger(__name__)

MAX_BATCH = 20  # notices merged into one message at most; the rest wait for the next slot
MAX_RETRY_AFTER = 3600.0  # a receiver asking for a longer pause is not taken literally


@dataclass(frozen=True, slots=True)
class Delivery:
    """How hard a channel tries: from ``NotifySettings``."""

    kinds: frozenset[str]
    queue_size: int = 100
    min_interval: float = 1.0
    max_retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 10.0


class Channel:
    def __init__(self, sender: Sender, delivery: Delivery, metrics: Metrics, secrets: Sequence[str] = ()) -> None:
        self.sender = sender
        self.name = sender.name
        self.delivery = delivery
        self._metrics = metrics
        self._secrets = (*secrets, *sender.secrets)  # a receiver may echo any part of the URL in an error
        self._queue: deque[tuple[int, Notice]] = deque()
        self._wake = trio.Event()
        self._progress = trio.Event()
        self._offered = 0  # sequence number of the last notice queued
        self._done = 0  # every notice up to this sequence number is sent, given up or dropped
        self._next_at = -math.inf
        self._dropping = False

    # --- the notifier's side ----------------------------------------------------------------------------

    def offer(self, notice: Notice) -> int | None:
        """Queue ``notice`` if this channel sends its kind; returns its sequence number (for ``wait_done``)."""
        if notice.kind not in self.delivery.kinds:
            return None
        if len(self._queue) >= self.delivery.queue_size:
            self._queue.popleft()
            self._metrics.inc("notify_dropped", channel=self.name, reason="queue_full")
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "notify %s: queue full (%d); dropping the oldest notices until it drains",
                    self.name,
                    self.delivery.queue_size,
                )
        self._offered += 1
        self._queue.append((self._offered, notice))
        self._metrics.set("notify_queue_depth", len(self._queue), channel=self.name)
        self._wake.set()
        return self._offered

    async def wait_done(self, seq: int) -> None:
        """Until notice ``seq`` was sent, given up on or dropped; callers bound this with a timeout."""
        while self._done < seq:
            await self._progress.wait()

    # --- the drain task ---------------------------------------------------------------------------------

    async def run(
        self, client: httpx.AsyncClient, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            while not self._queue:
                self._wake = trio.Event()
                self._finished(self._offered)
                await self._wake.wait()
            await trio.sleep_until(self._next_at)  # the rate limit: excess piles up and is merged below
            batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            self._metrics.set("notify_queue_depth", len(self._queue), channel=self.name)
            if len(batch) > 1:
                self._metrics.inc("notify_merged", len(batch) - 1, channel=self.name)
            await self._deliver(client, [n for _, n in batch])
            self._finished(batch[-1][0])

    def _finished(self, seq: int) -> None:
        if seq > self._done:
            self._done = seq
            self._progress.set()
            self._progress = trio.Event()

    async def _deliver(self, client: httpx.AsyncClient, batch: list[Notice]) -> None:
        d = self.delivery
        for attempt in range(d.max_retries + 1):
            self._next_at = trio.current_time() + d.min_interval
            ok, retry_after, why = await self._attempt(client, batch)
            if ok:
                self._metrics.inc("notify_sent", channel=self.name)
                self._dropping = False
                return
            if retry_after is None or attempt == d.max_retries:
                break
            delay = max(retry_after, min(d.backoff_max, d.backoff * 2**attempt))
            self._metrics.inc("notify_retries", channel=self.name)
            log.warning(
                "notify %s: %s from %s; retry %d/%d in %.1fs",
                self.name,
                why,
                self.sender.shown_url,
                attempt + 1,
                d.max_retries,
                delay,
            )
            await trio.sleep(delay)
            await trio.sleep_until(self._next_at)
        self._metrics.inc("notify_dropped", len(batch), channel=self.name, reason="failed")
        log.error(
            "notify %s: gave up on %d notice(s) (%s) after %s; kinds %s",
            self.name,
            len(batch),
            why,
            "a permanent refusal" if retry_after is None else f"{d.max_retries + 1} attempts",
            ",".join(sorted({n.kind for n in batch})),
        )

    async def _attempt(self, client: httpx.AsyncClient, batch: list[Notice]) -> tuple[bool, float | None, str]:
        """(delivered, seconds to wait before retrying or None if retrying is pointless, what went wrong)."""
        req = self.sender.request(batch)
        response = None
        with trio.move_on_after(self.delivery.timeout):
            try:
                response = await client.post(
                    req.url, json=req.json, headers=dict(req.headers), timeout=self.delivery.timeout
                )
            except httpx.HTTPError as exc:
                return False, 0.0, snippet(f"{type(exc).__name__} {exc}".strip(), self._secrets)
        if response is None:
            return False, 0.0, f"no answer within {self.delivery.timeout:g}s"
        status = response.status_code
        if 200 <= status < 300:
            return True, None, ""
        why = f"HTTP {status} {snippet(response.text, self._secrets)}".strip()
        if status in (408, 425, 429) or status >= 500:
            return False, retry_after_of(response), why
        return False, None, why


def retry_after_of(response: httpx.Response) -> float:
    """Seconds the receiver asked us to wait: ``Retry-After`` (seconds or a date), or Telegram's JSON hint; else 0."""
    value = response.headers.get("retry-after", "").strip()
    if value:
        seconds = _header_seconds(value, response.headers.get("date"))
    elif len(response.content) <= 65536:  # a receiver's answer is untrusted: no huge, deep or absurd JSON
        try:
            seconds = float(response.json().get("parameters", {}).get("retry_after", 0))
        except (ValueError, AttributeError, TypeError, ArithmeticError, RecursionError):
            seconds = 0.0
    else:
        seconds = 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else 0.0


def _header_seconds(value: str, date: str | None) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        now = email.utils.parsedate_to_datetime(date) if date else datetime.now(UTC)
        return (email.utils.parsedate_to_datetime(value) - now).total_seconds()
    except (TypeError, ValueError):
        return 0.0
