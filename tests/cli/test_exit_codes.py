"""The README's exit-code table is the ``ExitCode`` enum: same codes, same names, nothing more or less."""

from __future__ import annotations

import re
from pathlib import Path

from posmon.cli.exit_codes import ExitCode, exit_codes_help

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| code | `ExitCode` | meaning |"
ROW = re.compile(r"^\| (\d+) \| `([A-Z_]+)` \| (.+) \|$")


def readme_table() -> dict[int, str]:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines.count(HEADER) == 1, f"README.md needs exactly one exit-code table headed {HEADER!r}"
    rows: dict[int, str] = {}
    for line in lines[lines.index(HEADER) + 2 :]:  # past the header and its | --- | line
        if not line.startswith("|"):
            break
        m = ROW.match(line)
        assert m, f"README.md exit-code row not understood: {line!r}"
        code, name = int(m[1]), m[2]
        assert code not in rows, f"README.md lists exit code {code} twice"
        rows[code] = name
    return rows


def test_the_readme_table_lists_every_exit_code_and_only_those() -> None:
    assert readme_table() == {int(code): code.name for code in ExitCode}


def test_exit_codes_keep_their_numbers() -> None:
    # Scripts and the README depend on these numbers: a change here is a breaking change, not a refactor.
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "FAILED": 1,
        "CONFIG": 2,
        "UNREACHABLE": 3,
        "STORE": 4,
    }


def test_help_epilogs_are_in_code_order_with_the_enum_numbers() -> None:
    text = exit_codes_help({ExitCode.STORE: "store", ExitCode.OK: "done"}, title="exit codes of x")
    assert text == "exit codes of x:\n  0  done\n  4  store"
