"""What the ``posmon`` process exits with: one vocabulary for every command, the README's table lists it.

Each command documents what each code means for it in its ``--help`` (``exit_codes_help``); the numbers come
from here only. ``tests/cli/test_exit_codes.py`` keeps the README's table equal to this enum.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class ExitCode(enum.IntEnum):
    OK = 0  # done, clean, or stopped by SIGINT/SIGTERM
    FAILED = 1  # a failure or a refusal: a restart budget exhausted, the daemon refused, verify found a gap
    CONFIG = 2  # bad configuration or usage (argparse's own usage errors exit 2 too)
    UNREACHABLE = 3  # the daemon or the exchange could not be reached, or refused start-up or our keys
    STORE = 4  # the store cannot be used: locked or held by another process, read-only, full, corrupt, foreign


def exit_codes_help(meanings: Mapping[ExitCode, str], title: str = "exit codes") -> str:
    """A ``--help`` epilog: what each code means for one command, in the codes' order."""
    return f"{title}:\n" + "\n".join(f"  {int(code)}  {meanings[code]}" for code in sorted(meanings))
