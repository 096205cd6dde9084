"""A Markdown summary of playbooks (roles, timeline, audiences, languages) for docs/protocols.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from babel import Locale

from playbook.duration import format_duration
from playbook.model import InjectStep, MessageStep, Playbook, Step, TaskStep
from playbook.plan import approval, first_offset, timeline, who

COMMAND = "playbook catalog protocols/ --output docs/protocols.md"


@dataclass(frozen=True)
class Entry:
    """One playbook and the file it came from (as it should be shown, e.g. `protocols/x.yaml`)."""

    path: str
    playbook: Playbook


def catalog(entries: Sequence[Entry]) -> str:
    """The whole document: an overview table, then one section per playbook."""
    ordered = sorted(entries, key=lambda e: e.playbook.id)
    lines = [
        "# Protocols",
        "",
        f"Generated from the playbooks by `{COMMAND}`; edit the playbooks, not this file",
        "(a test fails when it is out of date). Times are offsets from activation;",
        "`playbook plan ID` shows them as clock times for a given start.",
        "",
        "| playbook | kind | roles | tasks | messages | injects | life-safety alert "
        "| intermediaries briefed | first public statement | languages |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_overview_row(e.playbook) for e in ordered]
    for entry in ordered:
        lines += ["", *_section(entry)]
    return "\n".join(lines) + "\n"


def _overview_row(pb: Playbook) -> str:
    counts = [sum(isinstance(s, kind) for s in pb.steps)
              for kind in (TaskStep, MessageStep, InjectStep)]
    briefing = next((s for s in _ordered_steps(pb) if isinstance(s, MessageStep)
                     and s.to.intermediaries is not None), None)
    first = next((s for s in pb.message_steps() if s.cerc == "first"), None)
    alert = next((s for s in _ordered_steps(pb) if isinstance(s, MessageStep)
                  and s.preapproved and s.to.is_public), None)
    moments = [_when(s) if s else "—" for s in (alert, briefing, first)]
    return (f"| [{_cell(pb.title)}](#{pb.id}) | {pb.kind.value} | {len(pb.roles)} | "
            f"{counts[0]} | {counts[1]} | {counts[2]} | {' | '.join(moments)} | "
            f"{' '.join(pb.languages)} |")


def _section(entry: Entry) -> list[str]:
    pb = entry.playbook
    lines = [f'<a id="{pb.id}"></a>', "", f"## {pb.title}", "",
             f"`{entry.path}` · id `{pb.id}` · kind `{pb.kind.value}`", ""]
    if pb.description:
        lines += [pb.description.strip(), ""]
    lines += ["**Languages:** " + ", ".join(f"{_language(tag)} (`{tag}`)" for tag in pb.languages)
              + f"; every message is written in all {len(pb.languages)}.", ""]
    if pb.parameters:
        lines += ["### Parameters", "", "| name | type | example | meaning |",
                  "| --- | --- | --- | --- |"]
        for name, p in pb.parameters.items():
            kind = p.type + (f": {', '.join(p.choices)}" if p.choices else "")
            lines.append(f"| `{name}` | {_cell(kind)} | {_cell(str(p.example))} | "
                         f"{_cell(p.description or '')} |")
        lines.append("")
    lines += ["### Roles", "", "| role | approves | backup role | duties |",
              "| --- | --- | --- | --- |"]
    for name, role in pb.roles.items():
        backup = pb.roles[role.backup].title if role.backup in pb.roles else "—"
        lines.append(f"| {_cell(role.title)} (`{name}`) | {'yes' if role.approves else ''} | "
                     f"{_cell(backup)} | {'<br>'.join(_cell(d) for d in role.duties)} |")
    lines += ["", "### Timeline", "", "| when | phase | step | what | who | approval |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [_step_row(step, pb) for step in _ordered_steps(pb)]
    lines += ["", "### Audiences", "", "| audience | message steps |", "| --- | --- |"]
    for audience, steps in _audiences(pb).items():
        lines.append(f"| {_cell(audience)} | {', '.join(f'`{s}`' for s in steps)} |")
    return lines


def _ordered_steps(pb: Playbook) -> list[Step]:
    seen: dict[str, Step] = {}
    for occurrence in timeline(pb, repeats=1):
        seen.setdefault(occurrence.step.id, occurrence.step)
    return [*seen.values(), *(s for s in pb.steps if s.id not in seen)]


def _step_row(step: Step, pb: Playbook) -> str:
    if isinstance(step, TaskStep):
        what = step.task + (f" (due within {format_duration(step.due)})" if step.due else "")
    elif isinstance(step, MessageStep):
        notes = [n for n in (
            "first public message, six CERC elements" if step.cerc == "first" else "",
            f"acknowledge within {format_duration(step.ack_within)}" if step.ack_within else "")
            if n]
        what = f"message `{step.message}`" + (f" ({'; '.join(notes)})" if notes else "")
    else:
        what = f"drill inject: {step.inject}"
    phase = step.phase.replace("_", " ") if step.phase else ""
    audience = who(step, pb, _named(pb))
    return (f"| {_when(step)} | {phase} | `{step.id}` | {_cell(what)} | {_cell(audience)} | "
            f"{_cell(approval(step, pb))} |")


def _when(step: Step) -> str:
    at = "+" + format_duration(first_offset(step))
    if step.every is not None:
        return (f"every {format_duration(step.every)} from {at} until "
                f"{(step.repeat_until or '').replace('_', '-')}")
    if step.on is not None:
        return f"on {step.on.replace('_', '-')}" + (f" {at}" if first_offset(step) else "")
    return at


def _audiences(pb: Playbook) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for step in pb.message_steps():
        for part in who(step, pb, _named(pb)).split("; "):
            found.setdefault(part, []).append(step.id)
    return found


def _named(pb: Playbook) -> dict[str, str]:
    # Audiences that take an activation parameter show which one, not a template expression.
    return {name: f"«{name}»" for name in pb.parameters}


def _language(tag: str) -> str:
    return Locale.parse(tag.replace("-", "_")).get_display_name("en") or tag


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")

