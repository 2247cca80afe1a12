"""What a notice is about: the one vocabulary of notice kinds (``Notice.kind``, ``[notify] kinds``, the
``notices`` metric's ``kind`` label, the webhook's ``kind`` field).

A ``StrEnum``: a member is its string value everywhere it is compared, logged or sent.
"""

from __future__ import annotations

import enum


class NoticeKind(enum.StrEnum):
    # raised by the position actors
    TRANCHE_OPENED = "tranche_opened"  # a fill opened a tranche
    TRANCHE_EXTENDED = "tranche_extended"  # a fill joined the newest tranche
    EXIT = "exit"  # a tranche was closed (by posmon, or outside it), with its PnL
    PROTECTION_FAILED = "protection_failed"  # a TP/SL was refused (needs a human)
    CLOSE_FAILED = "close_failed"  # a close could not fill (attempts used up, or the slippage cap)
    POSITION_SHRUNK = "position_shrunk"  # the position was reduced outside posmon; tranches resized
    DOUBLE_EXIT = "double_exit"  # both legs of a tranche filled (needs a human)
    RISK_LIMIT = "risk_limit"  # a fill from elsewhere broke a risk limit (closed with close_breaching_fills)
    PARTIAL_EXIT = "partial_exit"  # part of a tranche was closed (a ladder level, a pair's trim), the rest held
    # raised by the notify package
    STREAM_DOWN = "stream_down"  # a venue's price stream silent for stream_down_seconds
    STREAM_RESTORED = "stream_restored"  # ... and back
    RESTART_BUDGET_EXHAUSTED = "restart_budget_exhausted"  # an actor failed too often: the daemon is stopping
    # raised by the pair coordinator (posmon.actors.pairs)
    PAIR_LEG_EXIT = "pair_leg_exit"  # a hedge pair's leg exited; says what its other leg gets
    PAIR_EXIT = "pair_exit"  # a pair-level TP or SL on the combined PnL closes both legs
    PAIR_CLOSED = "pair_closed"  # both legs of a pair are flat
    PAIR_IMBALANCE = "pair_imbalance"  # a pair's legs differ by more than max_leg_imbalance_pct
    PAIR_ENTRY_FAILED = "pair_entry_failed"  # a pair's entry was rejected or filled partially: unwound or trimmed
    PAIR_LEG_UNREACHABLE = "pair_leg_unreachable"  # a leg's position actor could not be told (needs a human)
    # raised by the cluster (posmon.cluster)
    TAKEOVER = "takeover"  # this instance took over an account another instance owned (its lease had expired)
    LEASE_LOST = "lease_lost"  # this instance lost an account's lease and stopped it (standing by again)
