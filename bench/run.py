"""Run every benchmark, one after another, and write `docs/benchmarks.md` from one run.

    .venv/bin/python bench/run.py              # the full run (about ten minutes on 2 cores)
    .venv/bin/python bench/run.py --quick      # small sizes: checks the benchmarks still work
    .venv/bin/python bench/run.py --only fanout --only lateness --output /tmp/b.md

Nothing else should run on the machine meanwhile: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from common import ROOT, Section, markdown, table, verdict

BENCHMARKS = ("fanout", "telegram_rate", "overhead", "lateness", "drill_speed", "validate")
COMMAND = ".venv/bin/python bench/run.py"


def document(sections: list[tuple[Section, float]], quick: bool, started: datetime) -> str:
    """The whole `docs/benchmarks.md`."""
    goals = [(s, f) for s, _ in sections for f in s.figures if f.goal]
    met = sum(1 for _, f in goals if f.met)
    out = [
        "# Benchmarks", "",
        f"Reproduce: `{COMMAND}{' --quick' if quick else ''}` — it runs every benchmark in "
        "`bench/`, one after another, and writes this file. The figures below are of one "
        f"run, started {started:%Y-%m-%d %H:%M} UTC on this project's machine: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}. The machine is shared and noisy; ratios "
        "measured in the same run (ours against a baseline) say more than absolute times.",
        "", "`.venv/bin/python bench/<name>.py` runs one benchmark and prints its figures.",
        "", f"## Goals ({met} of {len(goals)} met)", "",
        *table([["benchmark", "what", "figure", "goal", "met"]]
               + [[s.title, f.what, f.value, f.goal, verdict(f)] for s, f in goals]),
    ]
    missed = [(s, f) for s, f in goals if f.met is False]
    if missed:
        out += ["", "Where a goal is missed:", ""]
        out += [f"- **{s.title} — {f.what}.** {f.note or 'No reason recorded.'}"
                for s, f in missed]
    for section, seconds in sections:
        out += ["", *markdown(section), "", f"<sub>This benchmark took {seconds:,.0f} s.</sub>"]
    return "\n".join(out) + "\n"


def main() -> int:
    """Run the benchmarks and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="just these")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    chosen = args.only or list(BENCHMARKS)
    started = datetime.now(UTC)
    sections: list[tuple[Section, float]] = []
    for n, name in enumerate(chosen, 1):
        print(f"[{n}/{len(chosen)}] {name} …", file=sys.stderr, flush=True)
        module: ModuleType = importlib.import_module(name)
        began = time.perf_counter()
        section: Section = module.run(args.quick)
        took = time.perf_counter() - began
        sections.append((section, took))
        for f in section.figures:
            verdict = "" if f.met is None else (" ✓" if f.met else " ✗ MISSED")
            print(f"      {f.what}: {f.value}{verdict}", file=sys.stderr, flush=True)
        print(f"      ({took:,.0f} s)", file=sys.stderr, flush=True)
    text = document(sections, args.quick, started)
    tmp = args.output.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
