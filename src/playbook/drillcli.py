"""Drill commands: drill, pause, resume, end, answer, evaluate, and the after-action report."""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from playbook import drill
from playbook.atomicfile import replace_file
from playbook.cli import ConfigOption, _bind, _check, _out, _resolve, app
from playbook.clock import SystemClock, VirtualClock
from playbook.commands import ActorOption, _actor, _at, _parts
from playbook.config import Settings, load_settings
from playbook.directory import Directory
from playbook.dispatch import Dispatcher
from playbook.errors import BadInput, Problem
from playbook.events import Event
from playbook.ports import IncidentRow
from playbook.report import after_action
from playbook.reportdoc import html, markdown
from playbook.scenario import Scenario
from playbook.scenariofile import beside, load_scenario
from playbook.service import Parts, build
from playbook.yamlfile import read_text

EXAMPLE_CONFIG = Path("examples") / "playbook.toml"


def _wall() -> datetime:
    return datetime.now(UTC)


def drill_settings(settings: Settings, playbook_path: Path) -> tuple[Settings, str]:
    """The settings, or with none configured the example city's directory and a note saying so.

    The example directory makes `playbook drill` work on a fresh checkout; the database and the
    sandbox stay in the current folder.
    """
    if settings.directory_files():
        return settings, ""
    example = playbook_path.resolve().parent.parent / EXAMPLE_CONFIG
    if not example.is_file():
        return settings, "no directory configured: roles stay unfilled and messages reach nobody"
    city = load_settings(example)
    files = {k: str(v) for k, v in city.directory_files().items()}
    settings = settings.model_copy(update={
        "city": city.city, "directory": city.directory.model_copy(update=files)})
    return settings, f"no directory configured: using the example city's ({example.parent})"


def read_participants(path: Path, directory: Directory) -> list[str]:
    """Staff ids from a participants file: one per line (or separated by spaces or commas)."""
    text = read_text(path)
    found: list[str] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0]
        for match in re.finditer(r"[^\s,]+", body):
            if directory.staff_member(match[0]) is None:
                problems.append(Problem(str(path), number, match.start() + 1, "",
                                        f"{match[0]!r} is not in the staff directory",
                                        "use staff ids from the directory's staff file"))
            found.append(match[0])
    if problems:
        raise BadInput(problems)
    if not found:
        raise BadInput.one(str(path), "no participants listed", "write one staff id per line")
    return list(dict.fromkeys(found))


@app.command("drill")
def drill_command(
    playbook: Annotated[str, typer.Argument(help="A playbook file, or its id.")],
    speed: Annotated[float | None, typer.Option(
        "--speed", min=0.1, max=100000, help="Scenario seconds per real second "
        "(60: an hour a minute). Players act through the bot and the CLI.")] = None,
    instant: Annotated[bool, typer.Option(
        "--instant", help="Run to the end at once on a virtual clock; the scenario answers "
        "for the players, and nothing leaves the sandbox.")] = False,
    scenario: Annotated[Path | None, typer.Option(
        "--scenario", help="A scenario file (default: scenarios/<playbook file> if it exists).",
        dir_okay=False)] = None,
    participants: Annotated[Path | None, typer.Option(
        "--participants", help="A file of staff ids who play (default: the scenario's).",
        dir_okay=False)] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write the after-action report here at the end (.html or .md).",
        dir_okay=False)] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="An activation value, name=value (repeat).")] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Run a playbook as a tabletop exercise and end with its after-action report."""
    if instant and speed is not None:
        raise BadInput.one("--speed", "--speed and --instant exclude each other",
                           "choose one: --instant, or --speed 60")
    if report is not None and report.suffix.lower() not in (".html", ".htm", ".md"):
        raise BadInput.one("--report", f"{report.name}: unknown report format",
                           "end the file name in .html or .md")
    base = load_settings(config)
    path = _resolve(playbook, base)
    settings, note = drill_settings(base, path)
    checked = _check(path, settings)
    scenario_path = scenario or beside(path)
    chosen = load_scenario(scenario_path, checked.playbook) if scenario_path else None
    with open(os.devnull, "w", encoding="utf-8") as sink:  # the drill prints its timeline
        parts = build(settings, out=sink)
        players = (read_participants(participants, parts.directory) if participants
                   else _scenario_players(chosen, parts.directory, scenario_path))
        values, _ = _bind(checked.playbook, [*_scenario_params(chosen), *(param or [])],
                          settings)
        setup = drill.prepare(checked.playbook, checked.templates, chosen, values, players,
                              None if instant else (speed or 60.0))
        out = _out()
        if note:
            out.print(f"[dim]{note}[/]")
        if scenario_path:
            out.print(f"[dim]scenario: {scenario_path}[/]")
        incident = asyncio.run(_run(parts, setup, settings, _actor(actor, required=False),
                                    out))
        if report is not None:
            write_report(parts, incident.id, report)
            out.print(f"After-action report: {report}")
        out.print(f"[dim]sandbox: {settings.path(settings.output.console_dir)}/"
                  f"exercise_{incident.id}.txt · `playbook report {incident.id}`[/]")


def _scenario_params(chosen: Scenario | None) -> list[str]:
    return [f"{k}={v}" for k, v in (chosen.params if chosen else {}).items()]


def _scenario_players(chosen: Scenario | None, directory: Directory,
                      where: Path | None) -> list[str]:
    ids = list(chosen.participants) if chosen else []
    unknown = [p for p in ids if directory.staff_member(p) is None]
    if unknown:
        raise BadInput.one(str(where), f"participants not in the staff directory: "
                           f"{', '.join(unknown)}", "use staff ids from the directory")
    return ids


async def _run(parts: Parts, setup: drill.Setup, settings: Settings, actor: str,
               out: Console) -> IncidentRow:
    wall = _wall()
    start = wall.replace(microsecond=0)
    engine = parts.engine
    incident = drill.start(engine, setup, city=settings.city_values(),
                           timezone=settings.city.timezone, actor=actor, now=start, wall=wall)
    clock = (VirtualClock(start) if setup.speed is None
             else drill.DrillClock(engine, incident.id, SystemClock(), setup.speed))
    dispatcher = parts.dispatcher(clock, worker=f"drill:{incident.id}", only=incident.id)
    label = "instant" if setup.speed is None else f"speed {setup.speed:g}"
    out.print(f"[bold black on yellow] EXERCISE [/] {incident.id}: {setup.playbook.title} "
              f"({label}; `playbook pause|resume|end {incident.id}`)")
    progress = Progress(out, incident.started_at, settings)
    instant = setup.speed is None
    run = drill.Drill(engine, incident.id, clock, _when_queued(dispatcher) if instant
                      else dispatcher.drain,
                      players=drill.SimulatedPlayers(engine, incident.id, setup)
                      if instant else None, on_events=progress.show)
    try:
        return await run.run()
    finally:
        await dispatcher.aclose()


def _when_queued(dispatcher: Dispatcher) -> drill.Send:
    """Drain the outbox only when something may be waiting in it (an instant drill).

    Only `Engine.send` fills the outbox, and it wakes the dispatcher when it does; rows put
    back for a retry later make every later call drain.
    """
    dispatcher.wake.set()  # the activation queued the role briefings before we listened

    async def send() -> int:
        if not dispatcher.wake.is_set() and not dispatcher.stats.retried:
            return 0
        dispatcher.wake.clear()
        return await dispatcher.drain()

    return send


class Progress:
    """The drill's live timeline: what fired, what was sent, what waits for whom."""

    def __init__(self, out: Console, start: datetime, settings: Settings) -> None:
        self.out, self.start, self.zone = out, start, settings.zone

    def show(self, events: Sequence[Event]) -> None:
        """Print one line per thing that happened (sends and confirmations counted)."""
        counts: Counter[str] = Counter()
        merged = _merged(events)
        for event in events:
            if event.kind in ("approved", "enqueued"):
                key = (event.kind, event.step_id, event.data.get("number"))
                if key not in merged:
                    continue
                event = merged.pop(key)
            line = describe(event)
            if line is None:
                counts[event.kind] += 1
                continue
            self.out.print(f"[dim]{self._when(event.at)}[/] {line}")
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())
                            if kind in ("sent", "acked", "reminded", "failed", "dead"))
        if summary and events:
            self.out.print(f"[dim]{self._when(events[-1].at)}   {summary}[/]")

    def _when(self, at: datetime) -> str:
        minutes = int((at - self.start).total_seconds()) // 60
        days, rest = divmod(minutes, 24 * 60)
        offset = f"+{days}d{rest // 60:02d}:{rest % 60:02d}" if days else (
            f"+{rest // 60:02d}:{rest % 60:02d}")
        return f"{offset} {at.astimezone(self.zone):%H:%M}"


def _merged(events: Sequence[Event]) -> dict[tuple[str, str, object], Event]:
    """One approval and one enqueue line per message occurrence, all languages together."""
    merged: dict[tuple[str, str, object], Event] = {}
    for event in events:
        if event.kind not in ("approved", "enqueued"):
            continue
        key = (event.kind, event.step_id, event.data.get("number"))
        if key not in merged:
            merged[key] = event
            continue
        data = dict(merged[key].data)
        if event.kind == "enqueued":
            data["deliveries"] = int(data.get("deliveries", 0)) + int(
                event.data.get("deliveries", 0))
            data["languages"] = sorted({*data.get("languages", []),
                                        *event.data.get("languages", [])})
        merged[key] = replace(merged[key], data=data)
    return merged


def describe(event: Event) -> str | None:
    """A short line for the timeline, or None for what is only counted."""
    d, step = event.data, event.step_id
    lines = {
        "activated": f"▶ exercise opened ({d.get('playbook')})",
        "assigned": (f"  {d.get('role')}: {d.get('holder') or '[red]unfilled[/]'}"),
        "approval_requested": f"⏳ [bold]{step}[/] waits for approval: "
                              f"{', '.join(d.get('notified') or []) or 'nobody to ask'}",
        "enqueued": f"✉ [bold]{step}[/]: {d.get('deliveries')} message(s) in "
                    f"{', '.join(d.get('languages') or [])}",
        "inject": f"⚡ [bold magenta]inject {step}[/] → {', '.join(d.get('to') or [])}"
                  + (f" from {d['sender']}" if d.get("sender") else ""),
        "answered": f"↩ {event.actor} answered {step or '#' + str(d.get('concern'))}",
        "task_done": f"☑ {step} done by {event.actor}" + (" [red](late)[/]" if d.get("late")
                                                          else ""),
        "overdue": f"[red]⚠ {step} overdue ({d.get('holder')})[/]",
        "late": f"[yellow]⚠ {step} fired late by {d.get('late_by_seconds')} s[/]",
        "logged": f"✎ log by {event.actor}: {str(d.get('text', ''))[:80]}",
        "escalated": f"▲ escalated by {event.actor}",
        "stood_down": f"■ stood down by {event.actor}",
        "paused": f"⏸ paused by {event.actor}",
        "resumed": f"▶ resumed by {event.actor}",
        "rated": f"★ {d.get('objective')} rated {d.get('rating')} by {event.actor}",
        "closed": f"■ [bold]closed[/]: {d.get('reason')}",
        "concern": f"? concern from {d.get('name') or d.get('from')}",
        "approval_escalated": f"[yellow]⏳ {step}: approval overdue, asking backups[/]",
    }
    if event.kind == "approved":
        return None if event.actor == "internal" else (
            f"✔ {step} pre-approved (life safety)" if event.actor == "preapproved"
            else f"✔ {step} approved by {event.actor}")
    if event.kind == "skipped" and d.get("unless"):
        return f"· backup {step} not needed: the expected action was taken"
    if event.kind == "failed" and "lang" not in d and "reason" in d and "channel" not in d:
        return f"[red]✖ {step}: {d['reason']}[/]"
    return lines.get(event.kind)


@app.command()
def pause(
    incident: Annotated[str, typer.Argument(help="The exercise's incident id.")],
    actor: ActorOption = None, config: ConfigOption = None,
) -> None:
    """Pause an exercise: its scenario clock stops until `playbook resume`."""
    parts = _parts(config)
    at = drill.pause(parts.engine, incident, actor=_actor(actor, required=False), wall=_wall())
    with parts.store.begin() as tx:
        zone = parts.engine.version(parts.engine.incident(tx, incident)).zone
    _out().print(f"{incident} paused at scenario time {at.astimezone(zone):%H:%M} "
                 f"({zone.key}).")


@app.command()
def resume(
    incident: Annotated[str, typer.Argument(help="The exercise's incident id.")],
    actor: ActorOption = None, config: ConfigOption = None,
) -> None:
    """Resume a paused exercise where its scenario clock stopped."""
    parts = _parts(config)
    drill.resume(parts.engine, incident, actor=_actor(actor, required=False), wall=_wall())
    _out().print(f"{incident} resumed.")


@app.command()
def end(
    incident: Annotated[str, typer.Argument(help="The exercise's incident id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why play stops.")] = "no play",
    actor: ActorOption = None, config: ConfigOption = None,
) -> None:
    """End an exercise now ("no play"): nothing more is scheduled or sent."""
    parts = _parts(config)
    steps, unsent = drill.end(parts.engine, incident, actor=_actor(actor, required=False),
                              reason=reason, now=_at(parts, incident))
    _out().print(f"{incident} ended ({reason}): {steps} step(s) and {unsent} unsent "
                 "message(s) cancelled.")


@app.command()
def answer(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    ref: Annotated[str, typer.Argument(help="The inject's step id, or #N for concern N.")],
    text: Annotated[str, typer.Argument(help="What you said or did.")],
    actor: ActorOption = None, config: ConfigOption = None,
) -> None:
    """Answer an inject (or a concern); the answer goes into the incident log."""
    parts = _parts(config)
    drill.answer(parts.engine, incident, ref, text, actor=_actor(actor),
                 now=_at(parts, incident))
    _out().print(f"Answer to {ref} logged.")


@app.command()
def evaluate(
    incident: Annotated[str, typer.Argument(help="The exercise's incident id.")],
    objective: Annotated[str, typer.Argument(help="The objective id from the scenario.")],
    rating: Annotated[str, typer.Argument(help="P, S, M or U.")],
    note: Annotated[str, typer.Option("--note", help="What the evaluator saw.")] = "",
    actor: ActorOption = None, config: ConfigOption = None,
) -> None:
    """Rate an exercise objective P/S/M/U; the report uses the latest rating."""
    parts = _parts(config)
    drill.rate(parts.engine, incident, objective, rating, actor=_actor(actor), note=note,
               now=_at(parts, incident))
    _out().print(f"{objective} rated {rating.upper()}.")


@app.command("report")
def report_command(
    incident: Annotated[str, typer.Argument(help="The incident id (exercise or actual).")],
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file (default: print).", dir_okay=False)] = None,
    config: ConfigOption = None,
) -> None:
    """The after-action report and improvement plan, made from the incident log alone."""
    if fmt not in ("md", "html"):
        raise BadInput.one("--format", f"unknown format {fmt!r}", "use md or html")
    parts = _parts(config)
    text = report_text(parts, incident, fmt)
    if output is None:
        typer.echo(text, nl=False)
        return
    replace_file(output, text.encode("utf-8"))
    _out().print(f"Report written to {output}")


def report_text(parts: Parts, incident: str, fmt: str) -> str:
    """The report of one incident in `md` or `html`."""
    with parts.store.begin() as tx:
        row = parts.engine.incident(tx, incident)
        events = tx.events(row.id)
    made = after_action(row.frozen, events)
    return html(made) if fmt == "html" else markdown(made)


def write_report(parts: Parts, incident: str, path: Path) -> None:
    """Write the report in the format its file name says."""
    fmt = "md" if path.suffix.lower() == ".md" else "html"
    replace_file(path, report_text(parts, incident, fmt).encode("utf-8"))

