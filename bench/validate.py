"""Benchmarks for the playbook language: validation, rendering, and the cost bounds.

Run: .venv/bin/python bench/validate.py [--quick]   (prints the section's figures)
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from common import Figure, Section, report

from playbook import render
from playbook.checks import example_context
from playbook.config import load_settings
from playbook.errors import BadInput
from playbook.loader import load_checked
from playbook.render import Renderer, TemplateError, TemplateSource
from playbook.yamlfile import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
ZONE = ZoneInfo("Europe/Vienna")
CITY = load_settings(ROOT / "examples" / "playbook.toml").city_values()


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, int]:
    """Median seconds of `repeat` runs, and the peak traced memory of one run in bytes."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(samples), peak


def cold(path: Path) -> object:
    """Validate as a fresh `playbook validate` process would: no template compiled yet."""
    render._COMPILED.clear()
    return load_checked(path, city=CITY, timezone=ZONE)


def refused(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        try:
            fn()
        except (BadInput, TemplateError):
            return None
        raise AssertionError("expected a refusal")
    return run


def run(quick: bool) -> Section:
    """Validation, rendering and the template sandbox's limits."""
    path = ROOT / "protocols" / "hate_incident.yaml"
    checked = load_checked(path, city=CITY, timezone=ZONE)
    pb = checked.playbook
    context = example_context(pb, CITY, datetime(2026, 5, 1, 14, tzinfo=ZONE), ZONE)
    step = next(s for s in pb.message_steps() if s.cerc == "first")

    def render_all_languages() -> None:
        renderer = Renderer(ZONE)
        for lang in pb.languages:
            source = checked.templates.get(step.message, lang)
            assert source is not None
            for _ in range(100):
                renderer.render(source, context(step))

    bomb = "\n".join(
        ["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
        + [f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefgh", "bcdefghi",
                                                                       strict=True)])
    busy = TemplateSource("k", "en", "busy.j2",
                          "{% for i in range(1000) %}{% for j in range(1000) %}"
                          "{% if i == j and j < 0 %}x{% endif %}{% endfor %}{% endfor %}done")
    flood = TemplateSource("k", "en", "flood.j2",
                           "{% for i in range(1000) %}{% for j in range(1000) %}ab"
                           "{% endfor %}{% endfor %}")
    rows = [
        ("validate hate_incident (schema, 30 templates, all checks)",
         timed(lambda: cold(path), 1 if quick else 20)),
        ("validate the library: 6 protocols, 39 key messages × 6 languages",
         timed(lambda: [cold(f)
                        for f in sorted((ROOT / "protocols").glob("*.yaml"))], 1 if quick else 5)),
        ("render first statement: 6 languages × 100 (cached compile)",
         timed(render_all_languages, 1 if quick else 5)),
        ("refuse a billion-laughs alias bomb (9^9 nodes if expanded)",
         timed(refused(lambda: parse_yaml(bomb, "bomb.yaml")), 1 if quick else 50)),
        ("worst admissible loop: 1,000 × 1,000 iterations, no output",
         timed(lambda: Renderer(ZONE).render(busy, {}), 1 if quick else 3)),
        ("output flood cut off at 16,384 characters",
         timed(refused(lambda: Renderer(ZONE).render(flood, {})), 1 if quick else 20)),
    ]
    table = [["what", "median time", "peak memory"]]
    table += [[name, f"{seconds * 1000:,.2f} ms", f"{peak / 1024:,.0f} KiB"]
              for name, (seconds, peak) in rows]
    times = {name: seconds for name, (seconds, _) in rows}
    library = times[rows[1][0]]
    renders = times[rows[2][0]]
    refusal = times[rows[3][0]]
    loop = times[rows[4][0]]
    return Section(
        "Validation and rendering",
        "Each time is the median of several runs after a warm-up; memory is the peak traced "
        "by `tracemalloc` during one run. The worst-case loop is the bound behind the template "
        "rules in `docs/templates.md`: loops go only over given values or `range()` (at most "
        "1,000), at most two deep, so no template does more than about 10⁶ iterations.",
        [Figure("validate the whole library (6 protocols, 234 templates)",
                f"{library:.2f} s", "< 2 s, fast enough for every commit", library < 2.0),
         Figure("render rate, one core", f"{600 / renders:,.0f} renders/s",
                "≥ 1,000/s: rendering is never the bottleneck of a send", 600 / renders >= 1000),
         Figure("billion-laughs YAML refused", f"{refusal * 1000:.2f} ms", "< 10 ms",
                refusal < 0.01),
         Figure("worst admissible template", f"{loop * 1000:.0f} ms", "< 1 s", loop < 1.0)],
        table)


if __name__ == "__main__":
    report(run("--quick" in sys.argv))
