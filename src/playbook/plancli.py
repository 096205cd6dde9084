"""`playbook plan`: the timeline a playbook would follow, and who each message would reach.

With a directory configured, each message step shows how many recipients it reaches, per
language and per channel, and every recipient who would get a language that is not theirs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from playbook.audience import Fallback, available, reach
from playbook.cli import ConfigOption, _bind, _check, _out, _resolve, _start, app
from playbook.config import load_settings
from playbook.directory import Directory, assign_roles
from playbook.directoryfile import load_directory
from playbook.duration import format_duration
from playbook.loader import CheckedPlaybook
from playbook.model import InjectStep, MessageStep, Playbook, TaskStep
from playbook.plan import Occurrence, approval, timeline, who


@app.command()
def plan(
    playbook: Annotated[str, typer.Argument(help="A playbook file, or its id.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="An activation parameter, name=value (repeatable).")] = None,
    start: Annotated[str | None, typer.Option(
        help="Planned activation time, ISO 8601 (default: now).")] = None,
    repeats: Annotated[int, typer.Option(min=1, max=50,
                                         help="Occurrences shown per repeating step.")] = 3,
    config: ConfigOption = None,
) -> None:
    """Show the timeline a playbook would follow if activated now (or at --start)."""
    settings = load_settings(config)
    checked = _check(_resolve(playbook, settings), settings)
    pb = checked.playbook
    values, examples = _bind(pb, param or [], settings)
    begin = _start(start, settings)
    _out().print(f"[bold]{pb.title}[/bold]  [dim]{pb.id} · {pb.kind.value}[/dim]\n"
              f"activated {begin:%a %d %b %Y %H:%M} ({settings.city.timezone}) · "
              f"languages {' '.join(pb.languages)}")
    occurrences = timeline(pb, repeats=repeats)
    events = sorted({o.event for o in occurrences if o.event})
    for event in [None, *events]:
        rows = [o for o in occurrences if o.event == event]
        table = _timeline_table(f"on {event}" if event else "", with_time=event is None)
        for occ in rows:
            table.add_row(*_timeline_row(occ, pb, values, begin, with_time=event is None))
        _out().print(table)
    if examples:
        _out().print(Text("Example values used for: " + ", ".join(examples)
                       + " (give them with --param name=value)", style="dim"))
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    _out().print(Text(f"Parameters: {shown}", style="dim"))
    files = settings.directory_files()
    if not files:
        _out().print(Text("No directory configured: set [directory] in playbook.toml to see "
                          "who each message reaches.", style="dim"))
        return
    _print_reach(checked, values, load_directory(files))


def _print_reach(checked: CheckedPlaybook, values: dict[str, Any],
                 directory: Directory) -> None:
    """Who each message step reaches with this directory, per language and per channel."""
    pb = checked.playbook
    holders = {a.role: a.holder for a in assign_roles(pb, directory)}
    table = Table("step", "recipients", "by language", "by channel", "notes",
                  title="Who each message reaches", title_justify="left", title_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    gaps: dict[str, Fallback] = {}
    for step in pb.message_steps():
        found = reach(step, pb, directory, values, holders,
                      available(pb, checked.templates, step.message))
        notes = []
        if found.fallbacks:
            notes.append(f"[yellow]{len(found.fallbacks)} get a fallback language[/]")
            gaps.update({f.recipient.id: f for f in found.fallbacks})
        if found.unreachable:
            notes.append(f"[red]{len(found.unreachable)} have none of its channels[/]")
        if not found.recipients:
            notes.append("[red]nobody matches the audience[/]")
        table.add_row(step.id, str(found.recipients),
                      " · ".join(f"{k} {n}" for k, n in found.by_language.items()),
                      " · ".join(f"{k} {n}" for k, n in found.by_channel.items()),
                      ", ".join(notes))
    _out().print(table)
    for gap in gaps.values():
        r = gap.recipient
        _out().print(f"[yellow]warning[/]: {r.name} <{r.id}> reads {', '.join(r.languages)}; "
                     f"no template has any of them, so they get {gap.gets} — add a "
                     "translation, or a language they read to the directory")


def _timeline_table(title: str, *, with_time: bool) -> Table:
    table = Table(title=title or None, title_justify="left", title_style="bold", expand=False,
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("offset", no_wrap=True)
    if with_time:
        table.add_column("time", no_wrap=True)
    table.add_column("step", min_width=14, overflow="fold")
    table.add_column("role or audience", min_width=14, ratio=3, overflow="fold")
    table.add_column("langs", min_width=5)
    table.add_column("approval", min_width=10, ratio=2, overflow="fold")
    return table


def _timeline_row(occ: Occurrence, pb: Playbook, values: dict[str, Any], begin: datetime,
                  *, with_time: bool) -> list[str | Text]:
    step = occ.step
    kind = "task" if isinstance(step, TaskStep) else \
        "inject" if isinstance(step, InjectStep) else "message"
    label = Text(step.id, style="bold" if kind == "message" else "")
    label.append(f"\n{kind}", style="dim")
    if step.every is not None:
        label.append(f" #{occ.number}", style="cyan")
        if occ.number == 1:
            label.append(f", every {format_duration(step.every)} until {step.repeat_until}",
                         style="dim")
    row: list[str | Text] = ["+" + format_duration(occ.offset)]
    if with_time:
        moment = occ.when(begin)
        row.append("—" if moment is None else moment.strftime(
            "%H:%M" if moment.date() == begin.date() else "%a %H:%M"))
    languages = f"all {len(pb.languages)}" if isinstance(step, MessageStep) else ""
    return [*row, label, Text(who(step, pb, values)), languages, approval(step, pb)]


