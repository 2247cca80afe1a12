"""Close reasons and notice kinds are each one enum whose values are what the store, metrics and webhooks carry."""

from __future__ import annotations

import re
from pathlib import Path

from posmon.domain.tranche import ExitReason
from posmon.notify import DEFAULT_KINDS, KINDS, NoticeKind

POSMON = Path(__file__).resolve().parents[2] / "posmon"


def test_close_reasons_keep_the_strings_the_store_holds() -> None:
    # The store's close_reason column, the metrics' reason label and notices carry these: renaming one orphans
    # every stored row and dashboard that uses it.
    assert {r.name: r.value for r in ExitReason} == {
        r: r
        for r in (
            "TP",
            "SL",
            "TIMEOUT",
            "LIQUIDATION",
            "ADL",
            "MANUAL",
            "EXTERNAL",
            "MERGED",
            "PROTECTION_FAILED",
            "CLOSE",
            "UNMONITORED",
            "RISK_LIMIT",
            "PAIR",
        )
    }


def test_notice_kinds_keep_their_strings_and_every_one_can_be_chosen() -> None:
    assert [k.value for k in NoticeKind] == [
        "tranche_opened",
        "tranche_extended",
        "exit",
        "protection_failed",
        "close_failed",
        "position_shrunk",
        "double_exit",
        "risk_limit",
        "partial_exit",
        "stream_down",
        "stream_restored",
        "restart_budget_exhausted",
        "pair_leg_exit",
        "pair_exit",
        "pair_closed",
        "pair_imbalance",
        "pair_entry_failed",
        "pair_leg_unreachable",
        "takeover",
        "lease_lost",
    ]
    assert tuple(NoticeKind) == KINDS and set(DEFAULT_KINDS) <= set(KINDS)


def test_every_notice_raised_with_a_literal_kind_names_a_notice_kind() -> None:
    """A kind outside the enum could never be chosen in ``[notify] kinds``, so no channel would ever send it."""
    raised = re.compile(r"""\b(?:Notice|_notice)\(\s*["']([^"']+)["']""")
    found = {
        (path.relative_to(POSMON.parent).as_posix(), kind)
        for path in POSMON.rglob("*.py")
        for kind in raised.findall(path.read_text(encoding="utf-8"))
    }
    assert {(where, kind) for where, kind in found if kind not in set(NoticeKind)} == set()
