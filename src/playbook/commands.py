"""Incident commands: activate, status, approvals, tasks, events, run, log verify, export cap.

Each reads the settings, does one thing, and sends what is due now; a running service may send
too, which is safe because every delivery is claimed with a lease.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from playbook import drill
from playbook.approvals import Approvals
from playbook.audience import missing_public
from playbook.cap import CapAlert, alert_xml, merge_alert
from playbook.channels.cap import alert_for
from playbook.cli import ConfigOption, _check, _out, _parse_params, _resolve, app
from playbook.clock import SystemClock
from playbook.config import load_settings
from playbook.errors import BadInput, RuntimeFailure
from playbook.events import verify
from playbook.model import TriggerEvent
from playbook.plan import bind_parameters
from playbook.ports import DraftRow, IncidentRow, Tx
from playbook.service import Parts, Service, build

ActorOption = Annotated[str | None, typer.Option(
    "--as", help="Your staff id from the directory (default: $PLAYBOOK_USER).")]
StatusSection = Callable[[Console, Tx, IncidentRow, tzinfo], None]
status_sections: list[StatusSection] = []
"""More of `playbook status`, added by other command modules (outreach)."""
log_app = typer.Typer(help="The incident log.", no_args_is_help=True)
export_app = typer.Typer(help="Export an incident.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(export_app, name="export")


def _parts(config: Path | None) -> Parts:
    return build(load_settings(config))


def _now() -> datetime:
    return datetime.now(UTC)


def _at(parts: Parts, incident: str) -> datetime:
    """When an action on an incident happens: scenario time in a scaled drill."""
    return drill.now_for(parts.engine, incident, _now())


def _actor(value: str | None, *, required: bool = True) -> str:
    actor = value or os.environ.get("PLAYBOOK_USER", "")
    if not actor and required:
        raise BadInput.one("--as", "who is acting is not known",
                           "add --as YOUR_STAFF_ID, or set PLAYBOOK_USER")
    return actor or f"cli:{getpass.getuser()}"


def _send_now(parts: Parts) -> None:
    """Send what is due now through the configured channels (a running service may too)."""
    dispatcher = parts.dispatcher(SystemClock(), worker=f"cli:{os.getpid()}")

    async def drain() -> None:
        try:
            await dispatcher.drain()
        finally:
            await dispatcher.aclose()

    asyncio.run(drain())


@app.command()
def activate(
    playbook: Annotated[str, typer.Argument(help="A playbook file, or its id.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="An activation value, name=value (repeat).")] = None,
    exercise: Annotated[bool, typer.Option(
        "--exercise", help="A drill: nothing reaches real people, every message is marked.")
    ] = False,
    participant: Annotated[list[str] | None, typer.Option(
        "--participant", help="A staff id who plays in the exercise (repeat).")] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Open an incident: fill the roles, brief the holders, start the schedule."""
    settings = load_settings(config)
    checked = _check(_resolve(playbook, settings), settings)
    pb = checked.playbook
    values = bind_parameters(pb, _parse_params(param or []), "--param", settings.zone)
    parts = build(settings)
    missing = sorted({c for s in pb.message_steps() for c in missing_public(s.to, parts.directory)})
    if missing:
        raise BadInput.one(str(checked.loaded.path), "public channels the directory does not "
                           f"define: {', '.join(missing)}", "add them to the directory's "
                           "public file, or set [directory] public in the config")
    unknown = [p for p in participant or [] if parts.directory.staff_member(p) is None]
    if unknown:
        raise BadInput.one("--participant", f"not in the staff directory: {', '.join(unknown)}",
                           "use staff ids from the directory")
    incident = parts.engine.activate(
        pb, checked.templates, city=settings.city_values(), timezone=settings.city.timezone,
        params=values, actor=_actor(actor, required=False), now=_now(),
        mode="exercise" if exercise else "actual", participants=participant or [])
    _send_now(parts)
    out = _out()
    label = ("[bold black on yellow] EXERCISE [/]" if exercise
             else "[bold white on red] ACTUAL [/]")
    out.print(f"{label} incident [bold]{incident.id}[/] opened: {pb.title} "
              f"(version {incident.version[:12]})")
    _show_roles(parts, incident.id)
    with parts.store.begin() as tx:
        pending = [r for r in tx.schedule(incident.id) if r.state == "pending"]
    if pending:
        nxt = pending[0]
        out.print(f"Next: {nxt.step_id} at {nxt.due_at.astimezone(settings.zone):%H:%M}. "
                  "Keep `playbook run` running to send on time.")
    for note in parts.notes:
        out.print(f"[dim]{note}[/]")


def _show_roles(parts: Parts, incident_id: str) -> None:
    table = Table("role", "holder", "backup", "note", box=box.SIMPLE_HEAD)
    with parts.store.begin() as tx:
        for a in tx.assignments(incident_id):
            table.add_row(a.role, a.holder or "[red]unfilled[/]", a.backup or "", a.note)
    _out().print(table)


@app.command()
def status(
    incident: Annotated[str | None, typer.Argument(help="An incident id; omit to list.")] = None,
    config: ConfigOption = None,
) -> None:
    """Roles, next steps, approvals waiting, deliveries and dead letters."""
    parts = _parts(config)
    parts.engine.tick(_now())
    out, zone = _out(), parts.settings.zone
    with parts.store.begin() as tx:
        if incident is None:
            table = Table("incident", "playbook", "mode", "state", "started", "waiting approval",
                          "deliveries", box=box.SIMPLE_HEAD)
            for row in tx.incidents():
                counts = tx.outbox_counts(row.id)
                drafts = len(tx.drafts(row.id, "pending"))
                table.add_row(row.id, row.playbook_id, row.mode, row.state,
                              f"{row.started_at.astimezone(zone):%Y-%m-%d %H:%M}", str(drafts),
                              ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
            out.print(table if table.row_count else "No incidents yet.")
            return
        row = parts.engine.incident(tx, incident)
        out.print(f"[bold]{row.id}[/] {row.title} — {row.mode}, {row.state}, started "
                  f"{row.started_at.astimezone(zone):%Y-%m-%d %H:%M}")
        roles = Table("role", "holder", "backup", box=box.SIMPLE_HEAD, title="Roles")
        for a in tx.assignments(row.id):
            roles.add_row(a.role, a.holder or "[red]unfilled[/]", a.backup or "")
        out.print(roles)
        upcoming = Table("due", "step", "#", box=box.SIMPLE_HEAD, title="Next due")
        for s in [s for s in tx.schedule(row.id) if s.state == "pending"][:8]:
            upcoming.add_row(f"{s.due_at.astimezone(zone):%d %b %H:%M}", s.step_id, str(s.number))
        out.print(upcoming if upcoming.row_count else "Nothing scheduled.")
        approvals = Table("step", "#", "languages", "requested by", "since",
                          box=box.SIMPLE_HEAD, title="Waiting for approval")
        waiting: dict[tuple[str, int], list[str]] = {}
        firsts: dict[tuple[str, int], DraftRow] = {}
        for d in tx.drafts(row.id, "pending"):
            waiting.setdefault((d.step_id, d.number), []).append(d.lang)
            firsts.setdefault((d.step_id, d.number), d)
        for (step, number), langs in waiting.items():
            d = firsts[(step, number)]
            approvals.add_row(step, str(number), " ".join(langs), d.requested_by,
                              f"{d.requested_at.astimezone(zone):%H:%M}")
        out.print(approvals if approvals.row_count else "No drafts waiting for approval.")
        tasks = tx.tasks(row.id)
        if tasks:
            table = Table("task", "holder", "due by", "state", box=box.SIMPLE_HEAD, title="Tasks")
            for t in tasks:
                state = ("done" if t.done_at else "[red]overdue[/]" if t.overdue else "open")
                table.add_row(t.step_id, t.holder or "-", f"{t.due_by.astimezone(zone):%H:%M}"
                              if t.due_by else "-", state)
            out.print(table)
        for section in status_sections:
            section(out, tx, row, zone)
        outbox = tx.outbox(row.id)
    if outbox:
        by_lang = Counter((r.delivery.lang, r.state) for r in outbox)
        states = sorted({s for _, s in by_lang})
        table = Table("language", *states, box=box.SIMPLE_HEAD, title="Deliveries")
        for lang in sorted({lang for lang, _ in by_lang}):
            table.add_row(lang, *(str(by_lang[(lang, s)]) for s in states))
        out.print(table)
        dead = [r for r in outbox if r.state == "dead"]
        if dead:
            table = Table("recipient", "channel", "attempts", "reason", box=box.SIMPLE_HEAD,
                          title="[red]Dead letters[/]")
            for r in dead:
                table.add_row(r.delivery.recipient_id, r.delivery.channel, str(r.attempts),
                              r.last_error)
            out.print(table)


@app.command()
def approve(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    step: Annotated[str, typer.Argument(help="The message step waiting for approval.")],
    lang: Annotated[str | None, typer.Option("--lang", help="Only this language.")] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Approve a draft (all its languages, or one); it is sent at once."""
    parts = _parts(config)
    done = Approvals(parts.engine).approve(incident, step, actor=_actor(actor),
                                           now=_at(parts, incident), lang=lang)
    _send_now(parts)
    _out().print(f"Approved {step} in {', '.join(d.lang for d in done)}; sent.")


@app.command()
def reject(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    step: Annotated[str, typer.Argument(help="The message step waiting for approval.")],
    reason: Annotated[str, typer.Option("--reason", help="What must change.")] = "",
    lang: Annotated[str | None, typer.Option("--lang", help="Only this language.")] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Reject a draft; fix it with `playbook edit` and approve the new version."""
    parts = _parts(config)
    done = Approvals(parts.engine).reject(incident, step, actor=_actor(actor), reason=reason,
                                          now=_at(parts, incident), lang=lang)
    _out().print(f"Rejected {step} in {', '.join(d.lang for d in done)}.")


@app.command()
def edit(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    step: Annotated[str, typer.Argument(help="The message step to re-render.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="A corrected value, name=value (repeat).")] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Correct the facts of a draft; every language is re-rendered and needs approval again."""
    if not param:
        raise BadInput.one("--param", "nothing to change", 'add --param location="..."')
    parts = _parts(config)
    revision = Approvals(parts.engine).edit(incident, step, actor=_actor(actor),
                                            raw=_parse_params(param), now=_at(parts, incident))
    _send_now(parts)
    _out().print(f"Re-rendered {step} as revision {revision}; it needs approval again.")


@app.command()
def done(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    step: Annotated[str, typer.Argument(help="The task step.")],
    note: Annotated[str, typer.Option("--note", help="What was done.")] = "",
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Mark a task done, with a note for the log."""
    parts = _parts(config)
    parts.engine.complete_task(incident, step, actor=_actor(actor), note=note,
                               now=_at(parts, incident))
    _out().print(f"Task {step} done.")


def _event(incident: str, event: TriggerEvent, actor: str | None, config: Path | None) -> None:
    parts = _parts(config)
    scheduled = parts.engine.event(incident, event, actor=_actor(actor, required=False),
                                   now=_at(parts, incident))
    _send_now(parts)
    _out().print(f"{incident}: {event.replace('_', '-')}; {scheduled} follow-up step(s) "
                 "scheduled.")


@app.command()
def standdown(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Stand down: stop the repeating updates and start the follow-up steps."""
    _event(incident, "stand_down", actor, config)


@app.command()
def escalate(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Escalate: fire the steps the playbook keeps for escalation."""
    _event(incident, "escalate", actor, config)


@app.command("run")
def run_service(config: ConfigOption = None) -> None:
    """The service: wake on time, fire due steps, send; stop cleanly on Ctrl-C or SIGTERM."""
    parts = _parts(config)
    asyncio.run(Service(parts).run())


@log_app.command("verify")
def log_verify(
    incident: Annotated[str | None, typer.Argument(help="One incident; omit for all.")] = None,
    config: ConfigOption = None,
) -> None:
    """Check every log entry against its hash chain; exit 1 on any change."""
    parts = _parts(config)
    broken, checked = [], 0
    with parts.store.begin() as tx:
        rows = [parts.engine.incident(tx, incident)] if incident else tx.incidents()
        for row in rows:
            events = tx.events(row.id)
            checked += len(events)
            found = verify(row.id, events, (row.head_seq, row.head_hash))
            if found:
                broken.append(found)
    for b in broken:
        _out().print(f"[red]{b.incident_id} entry {b.seq}: {b.reason}[/]")
    if broken:
        raise RuntimeFailure(f"the log of {len(broken)} incident(s) was changed")
    _out().print(f"{checked} entries in {len(rows)} incident(s): every hash matches.")


@export_app.command("cap")
def export_cap(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    out: Annotated[Path | None, typer.Option("--out", help="A folder for the files.")] = None,
    config: ConfigOption = None,
) -> None:
    """The incident's public messages as CAP 1.2 alerts (one <info> per language)."""
    parts = _parts(config)
    with parts.store.begin() as tx:
        row: IncidentRow = parts.engine.incident(tx, incident)
        public = [r.delivery for r in tx.outbox(row.id)
                  if r.delivery.meta.get("cap_identifier") and r.state == "sent"]
    alerts: dict[str, CapAlert] = {}
    for delivery in public:
        fresh = alert_for(delivery, parts.settings.output.cap_sender)
        ident = fresh.identifier
        alerts[ident] = merge_alert(alerts[ident], fresh) if ident in alerts else fresh
    if not alerts:
        raise BadInput.one(incident, "no public message of this incident has been sent yet",
                           "CAP alerts are made from sent public messages")
    for ident, alert in alerts.items():
        text = alert_xml(alert)
        if out is None:
            typer.echo(text)
        else:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{ident}.cap.xml").write_text(text, encoding="utf-8")
    if out is not None:
        _out().print(f"{len(alerts)} alert(s) written to {out}/")

