"""The daemon's notification service: builds the configured channels and runs them with the stream watchdog.

One ``httpx.AsyncClient`` is shared by the channels; while it runs, httpx's own log lines have the secrets
masked. ``restart_budget_exhausted`` is the supervisor's hook: it runs while every task is still alive, hands
the notice straight to the channels and waits (at most ``final_flush_seconds``) for it to go out before the
daemon stops.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import trio

from posmon.actors.messages import Notice
from posmon.metrics import Metrics
from posmon.notify.channel import Channel, Delivery
from posmon.notify.kinds import NoticeKind
from posmon.notify.redact import redacting
from posmon.notify.senders import Sender, TelegramSender, WebhookSender
from posmon.notify.settings import NotifySettings
from posmon.notify.watchdog import StreamWatchdog

log = logging.getLogger(__name__)


class NotifyService:
    def __init__(
        self,
        settings: NotifySettings,
        metrics: Metrics,
        *,
        notices: trio.MemorySendChannel[Notice] | None = None,
        venues: Sequence[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``notices`` (the notifier's inbox) and ``venues``: watch these venues' price streams and report there."""
        self.settings = settings
        self.metrics = metrics
        self._notices = notices
        self._venues = list(venues)
        self._transport = transport
        s = settings
        delivery = Delivery(
            kinds=frozenset(s.kinds),
            queue_size=s.queue_size,
            min_interval=s.min_interval_seconds,
            max_retries=s.max_retries,
            backoff=s.retry_backoff_seconds,
            backoff_max=s.retry_backoff_max_seconds,
            timeout=s.timeout_seconds,
        )
        senders: list[Sender] = []
        if s.telegram:
            senders.append(TelegramSender(s.telegram_api_url, s.telegram_bot_token, s.telegram_chat_id))
        if s.webhook:
            senders.append(WebhookSender(s.webhook_url, s.webhook_headers))
        self.channels = [Channel(sender, delivery, metrics, s.secrets) for sender in senders]

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the channels and (given the notifier's inbox and venues) the stream watchdog, until cancelled."""
        s = self.settings
        if self.channels:
            log.info(
                "notifications: %s for %s",
                ", ".join(f"{c.name} ({c.sender.shown_url})" for c in self.channels),
                ", ".join(s.kinds),
            )
        with redacting([*s.secrets, *(secret for c in self.channels for secret in c.sender.secrets)]):
            async with (
                httpx.AsyncClient(
                    transport=self._transport, timeout=s.timeout_seconds, follow_redirects=False
                ) as client,
                trio.open_nursery() as nursery,
            ):
                for channel in self.channels:
                    await nursery.start(channel.run, client)
                if self._notices is not None and self._venues:
                    await nursery.start(
                        StreamWatchdog(self.metrics, self._notices, self._venues, down_after=s.stream_down_seconds).run
                    )
                task_status.started()

    def offer(self, notice: Notice) -> None:
        """Hand ``notice`` to every channel that sends its kind; never blocks."""
        for channel in self.channels:
            channel.offer(notice)

    async def deliver_now(self, notice: Notice) -> bool:
        """Offer ``notice`` and wait until every channel is done with it, at most ``final_flush_seconds``."""
        waits = [(c, seq) for c in self.channels if (seq := c.offer(notice)) is not None]
        with trio.move_on_after(self.settings.final_flush_seconds):
            for channel, seq in waits:
                await channel.wait_done(seq)
            return True
        log.error("notice %s not confirmed sent within %.0fs", notice.kind, self.settings.final_flush_seconds)
        return False

    async def restart_budget_exhausted(self, actor: str, error: BaseException) -> None:
        """The supervisor's ``on_exhausted`` hook: tell the operator before the daemon stops."""
        self.metrics.inc("notices", kind=NoticeKind.RESTART_BUDGET_EXHAUSTED)
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:  # the actor's own error
            error = error.exceptions[0]
        await self.deliver_now(
            Notice(
                NoticeKind.RESTART_BUDGET_EXHAUSTED,
                "",
                "",
                "",
                f"actor {actor} exhausted its restart budget ({type(error).__name__}: {error}); the daemon is stopping",
                True,
                {"actor": actor, "error": repr(error)},
            )
        )
