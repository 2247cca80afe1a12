"""Operator notifications: Telegram and a generic JSON webhook, each a bounded, rate-limited, retrying channel.

``NotifyService`` owns the channels and the stream watchdog; the ``Notifier`` actor hands it every notice with
a non-blocking ``offer``, so a slow or dead receiver never stalls an actor.
"""

from posmon.notify.kinds import NoticeKind
from posmon.notify.service import NotifyService
from posmon.notify.settings import DEFAULT_KINDS, KINDS, NotifySettings

__all__ = ["DEFAULT_KINDS", "KINDS", "NoticeKind", "NotifyService", "NotifySettings"]
