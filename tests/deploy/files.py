"""Readers for the deployment files shipped in the repository: a Dockerfile instruction parser, a .dockerignore
matcher, compose's variable interpolation, a systemd unit reader and the metric names of a PromQL expression.

Small on purpose: the tests check the files as a linter would (no container engine runs here), so each reader
understands exactly the syntax those files use and fails loudly on anything else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from posmon.metrics import Metrics, render

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


# ---- Dockerfile ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the instruction, continuation lines joined

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ``CMD``/``ENTRYPOINT``/``HEALTHCHECK CMD``, else None (shell form)."""
        text = self.args.strip()
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1].strip() if " CMD " in f" {text}" else ""
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def options(self) -> dict[str, str]:
        """``--name=value`` options before the arguments (``COPY --chown=...``, ``HEALTHCHECK --interval=...``)."""
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.args.split(" CMD ", 1)[0]))


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments and blank lines dropped, ``\\``-continued lines joined."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, args = " ".join(p for p in pending if p).partition(" ")
            out.append(Instruction(start, keyword.upper(), args.strip()))
            pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """Every ``ENV key=value`` of the file (the environment the container's process starts with)."""
    env: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ENV":
            for key, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', i.args):
                env[key] = value.strip('"')
    return env


# ---- .dockerignore ----------------------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, ignore_text: str) -> bool:
    """Whether ``.dockerignore`` leaves ``path`` (relative, ``/``-separated) out of the build context.

    Docker's rules: a pattern excluding a directory excludes everything under it, ``!`` re-includes, and the last
    pattern that matches decides.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in ignore_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _glob_regex(line.lstrip("!").strip().strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


# ---- compose -----------------------------------------------------------------------------------------------------


class MissingVariable(Exception):
    """``${VAR:?message}`` with VAR unset or empty: compose refuses to start with ``message``."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` with ``env``."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        given = env.get(name, "")
        if op == ":?" and not given:
            raise MissingVariable(f"{name}: {arg}")
        if op == ":-" and not given:
            return arg
        return given

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}", one, value)


# ---- systemd -----------------------------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# ---- Prometheus ----------------------------------------------------------------------------------------------

_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, aggregations, keywords and labels left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors and subqueries
    e = _LABEL_LISTS.sub(" ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end() :].lstrip().startswith("(") or m.group() in _PROMQL_KEYWORDS:
            continue  # a function or an aggregation operator
        names.add(m.group())
    return names


def label_matchers(expr: str) -> list[tuple[str, str, str]]:
    """``(metric, label, value)`` of every ``metric{label="value"}`` equality matcher in ``expr``."""
    found = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", expr):
        for label, value in re.findall(r'(\w+)\s*=\s*"([^"]*)"', m.group(2)):
            found.append((m.group(1), label, value))
    return found


def exported_names(metrics: Metrics | None = None) -> set[str]:
    """Every sample name posmon's ``/metrics`` can carry, read from a real ``Metrics`` instance's render.

    A labelled family nobody has touched yet shows no sample, only its ``# TYPE``: its sample names follow from
    the type (``_total`` for a counter; ``_bucket``, ``_count``, ``_sum`` for a histogram).
    """
    metrics = metrics or Metrics()
    metrics.set_build_info("sim")  # as every daemon does at start
    body, _ = render(metrics)
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    for family in text_string_to_metric_families(body.decode()):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names
