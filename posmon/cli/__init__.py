"""The ``posmon`` command line, one module per concern.

- ``parser``: the argument parser and ``COMMANDS``, the registry of sub-command groups, and ``main``;
- ``run``: ``posmon run`` (the daemon) and ``posmon demo``;
- ``commands``: the operator commands (status, open, close, stop, resume), each one request to the daemon's API;
- ``ops``: ``posmon verify`` and ``posmon protect`` (their work is in ``posmon.ops``);
- ``exit_codes``: ``ExitCode``, the one vocabulary of exit codes (the README's table lists it).
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The ``posmon`` console script: parse ``argv`` (default ``sys.argv[1:]``), run the command, its exit code."""
    # Imported here, not at the top: posmon.startup and posmon.ops.command import posmon.cli.exit_codes, and the
    # parser imports them (through the daemon), so importing the package must not import the parser.
    from posmon.cli.parser import main as parse_and_run

    return parse_and_run(argv)
