"""The type checker of `make test` (mypy, configured in pyproject.toml) catches what it is there to catch.

That the tree passes is `make typecheck` itself; here a planted error in a strict package must fail the check,
with the project's own configuration (so a config that silently checks nothing would be caught).
"""

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "posmon" / "domain" / "triggers.py"

PLANTED = """

def _planted_wrong_type(book: TriggerBook) -> int:
    return book.next_deadline()  # float | None is not an int


def _planted_untyped(tranche):  # strict on posmon.domain: every def is annotated
    return tranche
"""


def _mypy(shadow: Path | None, cache: Path) -> tuple[str, int]:
    args = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache), "--no-error-summary"]
    if shadow is not None:
        args += ["--shadow-file", str(TARGET), str(shadow)]
    stdout, stderr, status = api.run([*args, "-p", "posmon.domain"])
    return stdout + stderr, status


def test_a_planted_error_in_a_strict_package_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    clean, status = _mypy(None, tmp_path / "cache")
    assert status == 0, clean
    shadow = tmp_path / "triggers.py"
    shadow.write_text(TARGET.read_text() + PLANTED)
    out, status = _mypy(shadow, tmp_path / "cache")
    assert status == 1, out
    assert 'Incompatible return value type (got "float | None", expected "int")' in out
    assert "Function is missing a type annotation" in out and "[no-untyped-def]" in out
    assert out.count("posmon/domain/triggers.py") == 2, out  # exactly the two planted errors
