"""Fan-out: one activation whose first step briefs every intermediary, in six languages.

Run: .venv/bin/python bench/fanout.py [--quick]      (prints the section's figures)
Child mode (one measurement in a fresh process):
     .venv/bin/python bench/fanout.py child SIZE [sqlite|postgresql]

The path is the real one (`playbook activate`): a `playbook.toml`, the directory read from a
CSV by `directoryfile`, `service.build`, `Engine.activate`. The playbook is generated, but its
one message is the library's real `natural_disaster_briefing` in en, ar, fr, es, uk and fa,
pre-approved, at `0m`, with `ack_within` (so every recipient also gets a confirmation code),
over Telegram and e-mail; every intermediary has both, so each gets two rows.
"""

from __future__ import annotations

import gc
import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PG_URL, ROOT, Figure, Section, in_child, report

LANGUAGES = ("en", "ar", "fr", "es", "uk", "fa")
TEMPLATE = "natural_disaster_briefing"
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
PG_SIZE = 10_000
GOAL_SECONDS = {1_000: 1.0, 10_000: 5.0, 100_000: 60.0}
"""A city's whole network of intermediaries briefed within seconds; 100,000 within a minute."""
GOAL_KIB_PER_ROW = 1.0
NOTE_SLOW = ("the time is SQLAlchemy's per-row parameter processing and SQLite's writes "
             "(each row carries its whole text); see the database column")
NOTE_DISK = ("each outbox row stores the full rendered text (2–4 KiB in these languages), so a "
             "briefing of 100,000 writes about 700 MiB; a table of texts by fingerprint, "
             "referenced from the outbox, would store six")

PLAYBOOK = f"""\
id: fan-out-bench
title: Flood warning (fan-out benchmark)
kind: natural_disaster
languages: [{", ".join(LANGUAGES)}]
parameters:
  hazard: {{type: choice, choices: [flood, storm, heat], example: flood}}
  area: {{type: area, example: city}}
  area_name: {{type: text, example: Riverside}}
  shelter: {{type: text, example: Riverton Sports Hall}}
roles:
  incident_lead: {{title: Incident lead, duties: [Lead], approves: true}}
steps:
  - id: brief-intermediaries
    message: {TEMPLATE}
    to:
      intermediaries: {{area: "{{{{ area }}}}"}}
    channels: [telegram, email]
    preapproved: true
    ack_within: 20m
    at: 0m
  - id: update
    task: Check the fan-out reached everyone
    role: incident_lead
    at: 30m
"""
PARAMS = {"hazard": "flood", "area": "city", "area_name": "Riverside and the Mill Quarter",
          "shelter": "Riverton Sports Hall, 4 Mill Lane"}


def write_installation(folder: Path, size: int, db_url: str) -> Path:
    """A config, the playbook, its templates and a directory of `size` intermediaries."""
    (folder / "protocols").mkdir()
    (folder / "protocols" / "fan_out.yaml").write_text(PLAYBOOK, encoding="utf-8")
    target = folder / "message_templates" / TEMPLATE
    target.mkdir(parents=True)
    for lang in LANGUAGES:
        shutil.copy(ROOT / "message_templates" / TEMPLATE / f"{lang}.j2", target)
    (folder / "staff.yaml").write_text(
        "staff:\n  - {id: lee, name: Lee, roles: [incident_lead], languages: [en], "
        "telegram_chat_id: '5001'}\n", encoding="utf-8")
    with (folder / "intermediaries.csv").open("w", encoding="utf-8") as out:
        out.write("id,name,communities,areas,languages,telegram_chat_id,email\n")
        for i in range(size):
            lang = LANGUAGES[i % len(LANGUAGES)]
            out.write(f"p{i:06d},Person {i},everyone,city,{lang},{100000 + i},"
                      f"p{i:06d}@x.example\n")
    config = folder / "playbook.toml"
    config.write_text(f"""
[city]
name = "Riverton"
timezone = "Europe/Vienna"
hotline = "+43 1 555 0100"
emergency_number = "112"
[database]
url = "{db_url}"
[directory]
staff = "staff.yaml"
intermediaries = "intermediaries.csv"
""", encoding="utf-8")
    return config


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """An empty database: a SQLite file in `folder`, or a fresh PostgreSQL database, dropped."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'playbook.db'}"
        return
    import sqlalchemy as sa

    name = f"pb_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def pg_reachable() -> bool:
    """Whether the benchmark PostgreSQL answers."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except sa.exc.OperationalError:
        return False
    return True


def _status_kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(found.group(1)) if found else 0


def _reset_peak() -> bool:
    """Start the kernel's peak-RSS mark (VmHWM) afresh; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _database_bytes(conn: Any) -> int:
    """The size of a PostgreSQL database; 0 for SQLite (its file is measured once closed)."""
    if conn.dialect.name != "postgresql":
        return 0
    return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())


def count_calls(owner: type, name: str) -> list[int]:
    """Wrap a method of `owner` so each call is counted (the real method still runs)."""
    counter = [0]
    real: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return real(*args, **kwargs)

    setattr(owner, name, counted)
    return counter


def measure(size: int, kind: str) -> dict[str, Any]:
    """One activation of `size` recipients on a fresh database (the child process's work)."""
    from playbook.config import load_settings
    from playbook.loader import load_checked
    from playbook.plan import bind_parameters
    from playbook.render import Renderer
    from playbook.service import build

    with tempfile.TemporaryDirectory(prefix="pb-fanout-") as tmp, database(kind, Path(tmp)) as url:
        config = write_installation(Path(tmp), size, url)
        settings = load_settings(config)
        checked = load_checked(config.parent / "protocols" / "fan_out.yaml",
                               city=settings.city_values(), timezone=settings.zone)
        values = bind_parameters(checked.playbook, PARAMS, "--param", settings.zone)
        start = time.perf_counter()
        parts = build(settings)  # reads the directory CSV: not part of the measured time
        directory_seconds = time.perf_counter() - start
        renders = count_calls(Renderer, "render")
        gc.collect()
        baseline = _status_kib("VmRSS")
        exact_peak = _reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        incident = parts.engine.activate(
            checked.playbook, checked.templates, city=settings.city_values(),
            timezone=settings.city.timezone, params=values, actor="lee", now=datetime.now(UTC))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = _status_kib("VmHWM") if exact_peak else _status_kib("VmRSS")
        with parts.store.begin() as tx:
            counts = tx.outbox_counts(incident.id)
            acks = len(tx.acks(incident.id))
            log = tx.events(incident.id)
            written = _database_bytes(tx.conn)
        parts.store.dispose()  # the last SQLite connection folds the log into the file
        written = written or sum(f.stat().st_size for f in Path(tmp).glob("playbook.db*"))
    rows = sum(counts.values())
    briefings = rows - 1  # the incident lead's role briefing is the one other row
    enqueued = [e for e in log if e.kind == "enqueued"]
    return {
        "size": size, "db": kind, "seconds": seconds, "cpu_seconds": cpu, "rows": rows,
        "briefings": briefings,
        "expected": 2 * size, "acks": acks, "renders": renders[0],
        "languages": enqueued[0].data["languages"] if enqueued else [],
        "mib": max(0, peak - baseline) / 1024, "baseline_mib": baseline / 1024,
        "exact_peak": exact_peak, "directory_seconds": directory_seconds,
        "db_mib": written / 2**20,
    }


def _row(result: Mapping[str, Any]) -> list[str]:
    rows = int(result["rows"])
    seconds = float(result["seconds"])
    mib = float(result["mib"])
    return [f"{int(result['size']):,}", str(result["db"]), f"{rows:,}", f"{seconds:.2f}",
            f"{float(result['cpu_seconds']):.2f}", f"{rows / seconds:,.0f}", f"{mib:.1f}",
            str(result["renders"]),
            f"{float(result['db_mib']):,.0f}", f"{float(result['directory_seconds']):.1f}"]


def run(quick: bool) -> Section:
    """Measure each size in a fresh child process; PostgreSQL at 10,000 when it answers."""
    sizes = QUICK_SIZES if quick else SIZES
    results: list[dict[str, Any]] = [in_child("fanout", "child", str(n), "sqlite")
                                     for n in sizes]
    pg_note = ""
    if pg_reachable():
        results.append(in_child("fanout", "child", str(PG_SIZE), "postgresql"))
    else:
        pg_note = f" PostgreSQL was not reachable at {PG_URL}, so it is left out."
    for r in results:
        if int(r["briefings"]) != int(r["expected"]):
            raise RuntimeError(f"fan-out incomplete: {r}")
    section = Section(
        title="Fan-out",
        method=(
            "One `Engine.activate` of a generated playbook whose first step (pre-approved, at "
            "`0m`, `ack_within: 20m`) briefs every intermediary with the library's real "
            f"`{TEMPLATE}` in {', '.join(LANGUAGES)}, over Telegram and e-mail: every "
            "intermediary has both, so two outbox rows and one confirmation code each, plus "
            "the incident lead's role briefing. The directory is a generated CSV, read by "
            "`directoryfile` through `service.build` as `playbook activate` does, the "
            "recipients spread evenly over the six languages; reading it is *not* part of the "
            "measured time (last column). Each size runs in a fresh process on an empty "
            "database (SQLite in a temporary folder; PostgreSQL in a fresh database, dropped "
            "afterwards). Time: from the call to `activate` until it returns, when the outbox "
            "holds every row (counted); CPU s is the process's own CPU time over the same "
            "span, steadier than wall time on a shared machine. Memory: the kernel's peak RSS "
            "during the activation (VmHWM, reset just before) minus the RSS before it. "
            "Renders: calls to `Renderer.render`, counted by wrapping the real method. "
            "Database: the size of the SQLite file once closed (or of the PostgreSQL "
            "database) afterwards. For scale: Telegram's 30 messages a second need 5.6 "
            "minutes to send the 10,000 Telegram rows of the 10,000 size, so queueing is never "
            "what a city waits for." + pg_note),
        table=[["recipients", "database", "outbox rows", "seconds", "CPU s", "rows/s",
                "peak MiB", "renders", "database MiB", "directory read (s, not measured)"]],
    )
    section.table += [_row(r) for r in results]
    for r in results:
        size, seconds = int(r["size"]), float(r["seconds"])
        goal = GOAL_SECONDS[size]
        section.figures.append(Figure(
            f"{size:,} recipients queued ({r['db']}): {int(r['rows']):,} rows",
            f"{seconds:.2f} s ({int(r['rows']) / seconds:,.0f} rows/s)", f"< {goal:g} s",
            seconds < goal, "" if seconds < goal else NOTE_SLOW))
    renders = sorted({int(r["renders"]) for r in results})
    section.figures.append(Figure(
        "renders per activation, at every size", ", ".join(map(str, renders)),
        f"{len(LANGUAGES)}: one per language, none per recipient",
        renders == [len(LANGUAGES)]))
    sqlite = [r for r in results if r["db"] == "sqlite"]
    if len(sqlite) >= 2:
        small, large = sqlite[-2], sqlite[-1]
        rows = int(large["rows"]) - int(small["rows"])
        per_row = (float(large["mib"]) - float(small["mib"])) * 1024 / rows
        section.figures.append(Figure(
            f"peak memory per extra outbox row, {int(small['size']):,} → "
            f"{int(large['size']):,} recipients (SQLite)", f"{per_row:.2f} KiB",
            f"< {GOAL_KIB_PER_ROW:g} KiB (linear, nothing held per row but the row)",
            per_row < GOAL_KIB_PER_ROW))
        ratio = (float(large["cpu_seconds"]) / float(small["cpu_seconds"])) / (
            int(large["size"]) / int(small["size"]))
        section.figures.append(Figure(
            f"CPU time, {int(small['size']):,} → {int(large['size']):,} recipients, relative "
            "to linear growth", f"{ratio:.2f} ×", "≤ 1.5 × (nothing quadratic)", ratio <= 1.5))
        disk = float(large["db_mib"]) * 1024 / int(large["rows"])
        section.figures.append(Figure(
            "SQLite database per outbox row", f"{disk:.1f} KiB", note=NOTE_DISK))
    return section


def main(argv: list[str]) -> None:
    if argv[:1] == ["child"]:
        print(json.dumps(measure(int(argv[1]), argv[2] if len(argv) > 2 else "sqlite")))
        return
    report(run("--quick" in argv))


if __name__ == "__main__":
    main(sys.argv[1:])
