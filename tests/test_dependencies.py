"""``pip install .`` brings everything posmon imports, and the same fast signing as ``make run``.

Each third-party top-level import under posmon/ maps (``importlib.metadata.packages_distributions``) to a
distribution pyproject.toml declares: in ``[project] dependencies``, or in the extra that names the feature (the
report's plots, Lighter's signer). The v3 signing path's packages, coincurve included, are plain dependencies: an
install without coincurve still signs, through eth-keys' pure-Python backend, ~12x slower.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from posmon.exchange.aster.signing import Eip712Signer
from posmon.exchange.lighter import signer as lighter_signer

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def name(requirement: str) -> str:
    """The normalized distribution name of a requirement (``eth-hash[pycryptodome]>=0.5`` -> ``eth-hash``)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the files under posmon/ that import it (absolute imports outside the stdlib)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "posmon").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            for module in modules:
                top = module.split(".")[0]
                if top != "posmon" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


REQUIRED = {name(r) for r in PROJECT["dependencies"]}
EXTRAS = {extra: {name(r) for r in reqs} for extra, reqs in PROJECT["optional-dependencies"].items()}


def test_every_third_party_import_is_declared() -> None:
    declared = REQUIRED | EXTRAS["report"] | EXTRAS["lighter"]
    distributions = packages_distributions()
    imports = third_party_imports()
    assert {"trio", "msgspec", "eth_keys", "eth_hash"} <= set(imports)  # the walk sees posmon's imports
    missing = {
        module: sorted(files)
        for module, files in imports.items()
        if not {name(d) for d in distributions.get(module, [])} & declared
    }
    assert not missing, f"imported under posmon/ but not declared in pyproject.toml: {missing}"


def test_the_daemon_needs_no_extra_beyond_the_report_plots() -> None:
    """Only posmon/plots.py (``posmon report``'s PNGs) may import something outside ``[project] dependencies``."""
    distributions = packages_distributions()
    outside = {
        module: files
        for module, files in third_party_imports().items()
        if not {name(d) for d in distributions.get(module, [])} & REQUIRED
    }
    assert set(outside) <= {"matplotlib"} and outside.get("matplotlib", {"posmon/plots.py"}) == {"posmon/plots.py"}


def test_fast_v3_signing_is_a_plain_dependency_and_in_use() -> None:
    assert {"coincurve", "eth-keys", "eth-hash", "eth-account"} <= REQUIRED
    signer = Eip712Signer("0x" + "11" * 32, "0x" + "22" * 20, "0x" + "33" * 20, 1666)
    assert type(signer._key.backend).__name__ == "CoinCurveECCBackend"


def test_lighter_extra_pins_the_sdk_the_signer_and_the_makefile_expect() -> None:
    """The Go signer is found inside lighter-sdk (never imported): the extra, the signer and make agree on it."""
    assert PROJECT["optional-dependencies"]["lighter"] == [lighter_signer.PINNED_SDK]
    assert f"--no-deps '{lighter_signer.PINNED_SDK}'" in (ROOT / "Makefile").read_text()
