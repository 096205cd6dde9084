"""`playbook directory import/export/invite`: intermediaries to and from a sheet, and the bot.

A city's community team keeps its intermediaries in Excel; these commands bring that sheet into
the configured directory file (checked whole, merged by id, written all or nothing) and give it
back out. Registered on the main app by `cli.py`, so it must not import `cli.py` itself.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from playbook import links
from playbook.atomicfile import replace_file
from playbook.config import DEFAULT_PATH, Settings, load_settings
from playbook.directory import Intermediary
from playbook.directoryfile import (
    Import,
    intermediaries_csv,
    intermediaries_file,
    load_directory,
    plan_import,
)
from playbook.duration import parse_duration
from playbook.errors import BadInput
from playbook.phrases import show_code
from playbook.service import build
from playbook.yamlfile import MAX_BYTES

app = typer.Typer(help="The people the city can reach: import and export intermediaries.",
                  no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file (default ./playbook.toml, else built-ins).",
                 dir_okay=False),
]


def _out() -> Console:
    # Made per call, so COLUMNS and NO_COLOR are read when the command runs, not at import.
    return Console(highlight=False)


def _target(settings: Settings, config: Path | None) -> Path:
    """The configured intermediaries file, or a `BadInput` saying how to configure one."""
    path = settings.directory_files().get("intermediaries")
    if path is None:
        raise BadInput.one(str(config or DEFAULT_PATH), "no intermediaries file is configured",
                           'add `[directory] intermediaries = "directory/intermediaries.csv"` '
                           "to playbook.toml (or pass --config FILE)",
                           field="directory.intermediaries")
    if not path.parent.is_dir():
        raise BadInput.one(str(path), "the folder of the intermediaries file does not exist",
                           f"create {path.parent}, or fix `[directory] intermediaries`")
    return path


def _current(path: Path) -> tuple[Intermediary, ...]:
    return load_directory({"intermediaries": path}).intermediaries


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A spreadsheet saved as CSV UTF-8.",
                                         dir_okay=False)],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Make the file's list the whole list: remove everyone not in it.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check and report what would change; write nothing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Check a spreadsheet of intermediaries and merge it, by id, into the directory."""
    settings = load_settings(config)
    target = _target(settings, config)
    # A first import creates the file; an existing one must be valid before it is merged into.
    current = _current(target) if target.exists() else ()
    result = plan_import(file, current, replace_all=replace)
    write = result.changed or not target.exists()
    data = intermediaries_file(target, result.intermediaries).encode("utf-8")
    if write and len(data) > MAX_BYTES:
        raise BadInput.one(str(file), f"the merged file would be {len(data):,} bytes, over the "
                           f"{MAX_BYTES:,} the directory reader accepts",
                           "remove the intermediaries who have left")
    if write and not dry_run:
        replace_file(target, data)
    _summary(file, target, result, replace=replace, dry_run=dry_run, written=write)


def _summary(file: Path, target: Path, result: Import, *, replace: bool, dry_run: bool,
             written: bool) -> None:
    out = _out()
    rows = len(result.added) + len(result.updated) + len(result.unchanged)
    if dry_run:
        out.print(f"[yellow]dry run[/yellow]: {escape(str(file))} has {rows} valid rows; "
                  "nothing written.")
    elif written:
        out.print(f"[green]imported[/green] {rows} rows from {escape(str(file))} into "
                  f"{escape(str(target))}")
    else:
        out.print(f"[green]checked[/green] {rows} rows from {escape(str(file))}; "
                  f"{escape(str(target))} already says this.")
    counts = [f"added {len(result.added)}", f"updated {len(result.updated)}",
              f"unchanged {len(result.unchanged)}"]
    if replace:
        counts.append(f"removed {len(result.removed)}")
    total = len(result.intermediaries)
    out.print(", ".join(counts) + f"; {'would be' if dry_run else 'now'} {total} "
              f"intermediar{'y' if total == 1 else 'ies'}")
    out.print("languages: " + ", ".join(f"{lang} {n}" for lang, n in result.languages))
    for label, ids in (("updated", result.updated), ("removed", result.removed)):
        if 0 < len(ids) <= 10:  # a short list helps check a small change; a long one is noise
            out.print(f"[dim]{label}: {', '.join(ids)}[/dim]")


@app.command("export")
def export_command(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here (default: print).", dir_okay=False)] = None,
    config: ConfigOption = None,
) -> None:
    """Write the configured intermediaries as a CSV spreadsheet that `import` reads back."""
    settings = load_settings(config)
    people = _current(_target(settings, config))
    text = intermediaries_csv(people)
    if output is None:
        sys.stdout.write(text)
        return
    if not output.parent.is_dir():
        raise BadInput.one(str(output), "its folder does not exist", "create it first")
    replace_file(output, text.encode("utf-8"))
    _out().print(f"wrote {len(people)} intermediaries to {escape(str(output))}")


@app.command("invite")
def invite_command(
    person: Annotated[str, typer.Argument(help="The intermediary's id in the directory.")],
    valid: Annotated[str | None, typer.Option(
        "--valid", help="How long the code works, e.g. 48h (default: [telegram] "
        "invite_valid, 7d).")] = None,
    actor: Annotated[str | None, typer.Option(
        "--as", help="Your staff id (default: $PLAYBOOK_USER).")] = None,
    config: ConfigOption = None,
) -> None:
    """A single-use code with which an intermediary joins the Telegram bot."""
    settings = load_settings(config)
    try:
        ttl = parse_duration(valid or settings.telegram.invite_valid)
    except ValueError as exc:
        raise BadInput.one("--valid", str(exc), "write a duration such as 48h or 7d") from None
    parts = build(settings)
    by = actor or os.environ.get("PLAYBOOK_USER") or f"cli:{getpass.getuser()}"
    row = links.invite(parts.engine, person, by=by, now=datetime.now(UTC), ttl=ttl)
    parts.store.dispose()
    entry = parts.engine.files.contact(row.person_id)
    name = entry.name if entry else person
    until = row.expires_at.astimezone(settings.zone)
    out = _out()
    out.print(f"Invite for [bold]{escape(name)}[/] ({escape(person)}): "
              f"[bold]{show_code(row.code)}[/]")
    out.print(f"Works once, until {until:%Y-%m-%d %H:%M} ({settings.city.timezone}).")
    out.print(f"They open the city's bot in Telegram and send: /start {row.code}")
    out.print("[dim]Give it to them in person or by phone; whoever sends it first becomes "
              "this intermediary to the bot.[/]")
