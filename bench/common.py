"""What every benchmark reports, and the helpers they share.

A benchmark module has `run(quick: bool) -> Section`. `bench/run.py` runs them all, in one
process after another, and writes `docs/benchmarks.md` from the sections.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("PLAYBOOK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Figure:
    """One measured figure beside its goal; `met` is None where there is no goal."""

    what: str
    value: str
    goal: str = ""
    met: bool | None = None
    note: str = ""
    """Where a goal is missed: the reason and the fix."""


@dataclass
class Section:
    """One benchmark's figures, the table it prints, and a paragraph on the method."""

    title: str
    method: str
    figures: list[Figure] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)
    """Optional extra table: the first row is the header."""


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0–100) by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median, or NaN for nothing."""
    return statistics.median(values) if values else float("nan")


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(module: str, *args: str, timeout: float = 900) -> dict[str, object]:
    """Run `python bench/<module>.py ARGS` in a fresh process; it prints one JSON object last.

    A fresh process per measurement keeps peak memory honest (one size's garbage does not
    count against the next) and lets a benchmark kill and restart what it measures.
    """
    done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{module}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench/{module}.py {' '.join(args)} failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(rows: list[list[str]]) -> list[str]:
    """A markdown table; the first row is the header."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    head, *body = rows
    lines = ["| " + " | ".join(map(cell, head)) + " |",
             "| " + " | ".join("---" for _ in head) + " |"]
    return lines + ["| " + " | ".join(map(cell, row)) + " |" for row in body]


def verdict(figure: Figure) -> str:
    """`yes`, `**no**`, or nothing where the figure has no goal."""
    return "" if figure.met is None else ("yes" if figure.met else "**no**")


def markdown(section: Section) -> list[str]:
    """A section as markdown lines: its heading, method, figures, notes and extra table."""
    out = [f"## {section.title}", "", section.method, "",
           *table([["what", "figure", "goal", "met"]]
                  + [[f.what, f.value, f.goal, verdict(f)] for f in section.figures])]
    notes = [f for f in section.figures if f.note and f.met is not False]
    if notes:
        out += ["", *(f"- {f.what}: {f.note}" for f in notes)]
    if section.table:
        out += ["", *table(section.table)]
    return out


def report(section: Section) -> None:
    """Print a section, for a benchmark run on its own; missed goals with their reasons."""
    print("\n".join(markdown(section)))
    for f in section.figures:
        if f.met is False:
            print(f"\nMissed — {f.what}: {f.note or 'no reason recorded'}")
