"""Outreach commands: confirmations and concerns by hand, and who was reached, for `status`.

An intermediary may confirm a briefing by e-mail (replying with its code) or by phone; staff
record that with `playbook ack CODE`. A concern heard on the phone is logged with
`playbook concern INCIDENT TEXT --from ID`, exactly as one sent through the bot.
"""

from __future__ import annotations

from collections import Counter
from datetime import tzinfo
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from playbook import listening
from playbook.cli import ConfigOption, _out, app
from playbook.commands import ActorOption, _actor, _now, _parts, _send_now, status_sections
from playbook.directory import Directory
from playbook.errors import BadInput
from playbook.phrases import show_code
from playbook.ports import IncidentRow, Tx


@app.command()
def ack(
    code: Annotated[str, typer.Argument(help="The confirmation code from the reply (K7F3-Q2MX).")],
    relayed: Annotated[bool, typer.Option(
        "--relayed", help="They also shared it with their community.")] = False,
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Record that an intermediary confirmed a briefing (a reply by e-mail, a phone call)."""
    parts = _parts(config)
    row = listening.acknowledge(parts.engine, code, relayed=relayed, via="cli",
                                actor=_actor(actor), now=_now())
    shared = " and shared it" if row.relayed_at else ""
    _out().print(f"Confirmed: {row.recipient_name} received {row.step_id} "
                 f"(incident {row.incident_id}){shared}.")


@app.command()
def concern(
    incident: Annotated[str, typer.Argument(help="The incident id.")],
    text: Annotated[str, typer.Argument(help="What they said, in their words.")],
    sender: Annotated[str, typer.Option(
        "--from", help="Who said it: a directory id (intermediary:karim) or a description.")],
    actor: ActorOption = None,
    config: ConfigOption = None,
) -> None:
    """Log a concern heard outside the bot; the community liaison is told at once."""
    parts = _parts(config)
    name = _name(parts.engine.directory, sender)
    listening.concern(parts.engine, text, sender=sender, name=name,
                      via=f"cli:{_actor(actor, required=False)}", now=_now(),
                      incident_id=incident)
    _send_now(parts)
    _out().print(f"Logged the concern from {name} in {incident}; the liaison was told.")


def _name(directory: Directory, sender: str) -> str:
    kind, _, ident = sender.partition(":")
    if kind not in ("intermediary", "staff", "media"):
        return sender  # "a caller from the north estate": said as they were described
    entry = directory.contact(sender)
    if entry is None:
        raise BadInput.one("--from", f"no {kind} `{ident}` in the directory",
                           "use an id from the directory, or describe who it was")
    return entry.name


def print_outreach(out: Console, tx: Tx, incident: IncidentRow, zone: tzinfo) -> None:
    """`status`: who was asked to confirm, who did, who is silent; and the concerns heard."""
    asks = tx.acks(incident.id)
    if asks:
        sent = {(r.delivery.step_id, r.delivery.number, r.delivery.recipient_id)
                for r in tx.outbox(incident.id) if r.state == "sent"}
        table = Table("briefing", "#", "asked", "received", "confirmed", "relayed", "waiting",
                      "silent", box=box.SIMPLE_HEAD, title="Confirmations")
        groups: Counter[tuple[str, int, str]] = Counter()
        for a in asks:
            key = (a.step_id, a.number)
            groups[(*key, "asked")] += 1
            groups[(*key, "received")] += (*key, a.recipient_id) in sent
            groups[(*key, "confirmed")] += a.acked_at is not None
            groups[(*key, "relayed")] += a.relayed_at is not None
            groups[(*key, "silent")] += a.silent
            groups[(*key, "waiting")] += a.acked_at is None and not a.silent
        for step, number in dict.fromkeys((a.step_id, a.number) for a in asks):
            table.add_row(step, str(number), *(str(groups[(step, number, k)]) for k in (
                "asked", "received", "confirmed", "relayed", "waiting", "silent")))
        out.print(table)
        silent = [a for a in asks if a.silent]
        if silent:
            quiet = Table("who", "briefing", "asked at", "code", box=box.SIMPLE_HEAD,
                          title="[red]Silent[/] (the liaison was told)")
            for a in silent:
                quiet.add_row(a.recipient_name + (" (backup)" if a.backup_for else ""),
                              a.step_id, f"{a.asked_at.astimezone(zone):%H:%M}",
                              show_code(a.token))
            out.print(quiet)
    concerns = [e for e in tx.events(incident.id) if e.kind == "concern"]
    if concerns:
        table = Table("at", "from", "via", "concern", box=box.SIMPLE_HEAD, title="Concerns")
        for e in concerns:
            text = str(e.data.get("text", ""))
            table.add_row(f"{e.at.astimezone(zone):%H:%M}", str(e.data.get("name", "")),
                          str(e.data.get("via", "")), text if len(text) <= 160 else
                          text[:159] + "…")
        out.print(table)


status_sections.append(print_outreach)
