"""The after-action report as Markdown, and as one self-contained HTML page with a timeline chart.

Both documents are built from one outline (sections of paragraphs, lists and tables), so they
say the same things. The HTML page carries its CSS and its SVG chart inline and has no script:
it can be mailed, archived and printed as it is. Text from the log (names, concerns, notes) is
wrapped in first-strong isolates here, which the HTML turns into `<bdi>` after jinja has escaped
it, so a Persian concern or an Arabic name keeps its direction inside an English sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

from playbook.report import (
    AfterAction,
    Evidence,
    ObjectiveResult,
    TimelineRow,
    clock,
    long_date,
    span,
)
from playbook.reportmetrics import FIRST_MESSAGE_GOAL

BANNER = "EXERCISE — EXERCISE — EXERCISE"
PLANNED, ON_TIME, LATE = "#6a3d9a", "#0072b2", "#d55e00"
FSI, PDI = "\u2068", "\u2069"
_ISOLATES = dict.fromkeys(map(ord, "\u2066\u2067\u2068\u2069"))
# Control characters (a BEL from a folded YAML line, say) show as boxes and break XML tools.
_CONTROLS = dict.fromkeys([*(c for c in range(32) if c not in (9, 10, 13)), 127])


@dataclass(frozen=True)
class Block:
    """One piece of a section: a paragraph, a heading, a list, a table, or the chart."""

    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    head: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    marked: tuple[bool, ...] = ()
    strong: bool = False


@dataclass(frozen=True)
class Section:
    """A numbered section of the report."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def user(value: object) -> str:
    """Text from the log, isolated so its direction cannot spill into the sentence around it."""
    text = str(value).translate(_ISOLATES)
    return FSI + text + PDI if text else ""


def outline(report: AfterAction) -> list[Section]:
    """The six sections, as plain text: the Markdown and the HTML both render this."""
    ov, m = report.overview, report.metrics

    def when(moment: datetime | None) -> str:
        return clock(moment, ov.started) if moment else "—"

    def title(role: str) -> str:
        return ", ".join(report.role_titles.get(r, r) for r in role.split(",") if r)

    overview = Section("overview", "1. Overview", [Block("pairs", rows=tuple(
        row for row in (
            ("Mode", f"{ov.mode}" + (" (a drill)" if ov.exercise else " (a real incident)")),
            ("Incident", ov.incident_id),
            ("Playbook", f"{ov.playbook_title} ({ov.playbook_id}), version {ov.version}"),
            ("Scenario", user(ov.scenario_title) + (f": {user(ov.scenario_summary)}"
                                                     if ov.scenario_summary else "")),
            ("Played at", ov.speed),
            ("Started", f"{long_date(ov.started)} ({ov.timezone})"),
            ("Stood down", long_date(ov.stood_down) if ov.stood_down else ""),
            ("Ended", f"{long_date(ov.ended)}: {user(ov.end_reason)}"
             + (" (no play: ended by the controller)" if ov.no_play else "")),
            ("Duration", span(ov.duration) + ("" if ov.closed else " so far")),
            ("Participants", ", ".join(user(p) for p in ov.participants)),
            ("Activation values", "; ".join(f"{k} = {user(v)}" for k, v in ov.params)),
        ) if row[1] and not (row[0] == "Scenario" and not ov.scenario_title))),
        Block("heading", "Roles"),
        Block("table", head=("Role", "Holder", "Backup", "Note"), rows=tuple(
            (a.title, user(a.holder) if a.holder else "unfilled",
             user(a.backup) if a.backup else "—", user(a.note) if a.note else "")
            for a in ov.assignments), marked=tuple(not a.holder for a in ov.assignments))])
    if ov.unfilled:
        overview.blocks.append(Block("para", "Unfilled roles: " + ", ".join(
            report.role_titles.get(r, r) for r in ov.unfilled) + "."))

    objectives = Section("objectives", "2. Objectives and ratings")
    if not report.objectives:
        objectives.blocks.append(Block("para", "This was an actual incident: there were no "
                                       "exercise objectives." if not ov.exercise else
                                       "The drill logged no scenario, so no exercise "
                                       "objectives."))
    else:
        objectives.blocks.extend([
            Block("table", head=("Objective", "Capability", "Rating", "Decided by"), rows=tuple(
                (f"{o.id}: {user(o.text)}", user(o.capability), o.label, _decided(o))
                for o in report.objectives), marked=tuple(
                    o.rating in ("M", "U") for o in report.objectives)),
            Block("heading", "Evidence from the log"),
            Block("list", items=tuple(
                f"{o.id} — {_evidence(e, ov.started)}" for o in report.objectives
                for e in o.evidence) or ("No inject tested an objective.",))])

    timeline = Section("timeline", "3. Planned and actual timeline", [
        Block("para", f"Times in {ov.timezone}; the day is shown when it is not "
              f"{long_date(ov.started).rsplit(',', 1)[0]}. Actual: the first delivery of a "
              "message, the completion of a task, the arrival of an inject."),
        Block("chart"),
        Block("table", head=("Step", "#", "Kind", "Role", "Planned", "Fired", "Actual",
                             "Status"), rows=tuple(
            (r.step_id, str(r.number), r.kind, title(r.role), when(r.planned), when(r.fired),
             f"{when(r.actual)} ({r.actual_label})" if r.actual else "—",
             r.status + _lateness(r)) for r in report.timeline),
            marked=tuple(r.late for r in report.timeline))])

    first = m.first_public
    comms = Section("communication", "4. Communication", [Block("heading", "First public message")])
    goal = FIRST_MESSAGE_GOAL // timedelta(minutes=1)
    comms.blocks.append(Block("para", (
        f"{first.step_id} went out at {when(first.sent)}, {span(first.after)} after activation "
        f"(goal: within {goal} minutes)." if first.step_id and first.after is not None
        else "No public message went out.")))
    for check in m.cerc:
        state = (f"could not be checked again: {check.error}" if check.error else
                 "all six elements (empathy, facts, unknown, actions, instructions, more "
                 "information) in every language" if check.complete else "missing " + "; ".join(
                     f"{lang}: {', '.join(b)}" for lang, b in check.missing if b))
        comms.blocks.append(Block("para", f"First statement {check.step_id} (cerc: first), "
                                  f"{'sent at ' + when(check.sent) if check.sent else 'never sent'}"
                                  f": {state}."))
    comms.blocks.extend([
        Block("heading", "Draft to approval"),
        Block("table", head=("Step", "Language", "Approved", "Fastest", "Median", "Slowest",
                             "Rejected", "Never approved"), rows=tuple(
            (a.step_id, a.lang, str(len(a.times)), *(span(t) if t is not None else "—" for t in (
                a.fastest, a.median, a.slowest)), str(a.rejected), str(a.pending))
            for a in m.approvals)),
        Block("heading", "Languages"),
        Block("para", f"Required: {', '.join(m.languages_required)}. Delivered: "
              f"{', '.join(m.languages_delivered) or 'none'}. Never delivered: "
              f"{', '.join(m.languages_missing) or 'none'}."),
        Block("table", head=("Public message", "Languages it went out without"),
              rows=tuple((sid, ", ".join(gaps)) for sid, gaps in m.languages_short)),
        Block("heading", "Deliveries by channel"),
        Block("table", head=("Channel", "Sent", "Failed attempts (retried)", "Failed for good",
                             "Unknown outcome"), rows=tuple(
            (c.channel, str(c.sent), str(c.failed), str(c.dead), str(c.unknown))
            for c in m.channels), marked=tuple(bool(c.dead or c.unknown) for c in m.channels)),
        Block("heading", "Intermediaries' confirmations"),
        Block("para", _acks(report)),
        Block("heading", "Concerns"),
        Block("table", head=("Entry", "Received", "From", "Via", "Concern", "Answer"), rows=tuple(
            (str(c.seq), when(c.at), user(c.name), user(c.via), user(c.text),
             f"{when(c.answered_at)} by {user(c.answered_by)}, after "
             f"{span(c.answered_at - c.at)}: {user(c.answer)}" if c.answered_at else
             "not answered") for c in m.concerns),
            marked=tuple(c.answered_at is None for c in m.concerns)),
        Block("heading", "Task deadlines by role"),
        Block("table", head=("Role", "On time", "Late", "Not done", "Steps missed"), rows=tuple(
            (d.title, str(d.on_time), str(d.late), str(d.not_done), ", ".join(d.missed_steps))
            for d in m.deadlines), marked=tuple(bool(d.late or d.not_done) for d in m.deadlines))])

    findings = Section("findings", "5. Strengths and areas for improvement", [
        Block("heading", "Strengths"),
        Block("list", items=tuple(f.text for f in report.strengths) or ("None found in the log.",)),
        Block("heading", "Areas for improvement"),
        Block("list", items=tuple(f"{f.text} (step: {', '.join(f.steps) or '—'})"
                                  for f in report.improvements) or ("None found in the log.",))])
    plan = Section("plan", "6. Improvement plan", [
        Block("para", "For the city to complete: who does what by when, and its status."),
        Block("table", head=("#", "Issue / area", "Recommendation", "Playbook step",
                             "Responsible role", "Due date / status"), rows=tuple(
            (str(n), f"{f.area}: {f.text}", f.recommendation, ", ".join(f.steps) or "—",
             ", ".join(report.role_titles.get(r, r) for r in f.roles) or "—", "")
            for n, f in enumerate(report.improvements, 1)))])
    return [overview, objectives, timeline, comms, findings, plan]


def _decided(o: ObjectiveResult) -> str:
    if o.rated_by:
        derived = f" (the log alone: {o.derived or 'not rated'})"
        return f"rated by {user(o.rated_by)}{derived}" + (f": {user(o.note)}" if o.note else "")
    return "derived from the log" if o.rating else "no inject tested it: an evaluator is needed"


def _evidence(e: Evidence, start: datetime) -> str:
    if e.arrived is None:
        return f"inject {e.inject_id} was never delivered (expected {e.expected})."
    head = f"inject {e.inject_id} arrived {clock(e.arrived, start)}, expected {e.expected}"
    if e.taken_at is None:
        return f"{head}; not taken."
    late = f", {span(e.late_by)} late" if e.late_by else ""
    backup = f", after the backup inject at {clock(e.backup_at, start)}" if (
        e.outcome == "after backup" and e.backup_at) else ""
    by = f" by {user(e.taken_by)}" if e.taken_by else ""
    return (f"{head}; {e.taken_kind} at {clock(e.taken_at, start)}{by} (log entry "
            f"{e.taken_entry}){late}{backup}: {e.outcome}.")


def _lateness(r: TimelineRow) -> str:
    if r.status == "late" and r.actual and r.planned:
        return f" ({span(r.actual - r.planned)} after planned)"
    return ""


def _acks(report: AfterAction) -> str:
    a = report.metrics.acks
    if not a.asked:
        return "No intermediary was asked to confirm a briefing."
    delays = sorted(a.delays)
    middle = span(delays[len(delays) // 2] if len(delays) % 2 else
                  (delays[len(delays) // 2 - 1] + delays[len(delays) // 2]) / 2) if delays else "—"
    return (f"{a.confirmed} of {a.asked} intermediaries confirmed ({a.rate or 0:.0%}); "
            f"{a.relayed} said they passed it on. Median delay {middle}, slowest "
            f"{span(delays[-1]) if delays else '—'}. Reminders sent: {a.reminded}; "
            f"silences passed to a backup or the liaison: {a.overdue}.")


# Markdown

def markdown(report: AfterAction) -> str:
    """The report as Markdown (tables, no chart)."""
    ov = report.overview
    lines = [f"# After-action report: {_md(ov.playbook_title)}", ""]
    if ov.exercise:
        lines += [f"> **{BANNER}**", ""]
    lines += [f"Incident {_md(ov.incident_id)} · **{ov.mode}** · computed from {ov.entries} "
              f"log entries (last entry hash `{ov.head[:16]}`)", ""]
    for section in outline(report):
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if block.kind == "heading":
                lines += [f"### {_md(block.text)}", ""]
            elif block.kind == "para":
                lines += [_md(block.text), ""]
            elif block.kind == "list":
                lines += [f"- {_md(item)}" for item in block.items] + [""]
            elif block.kind == "pairs":
                lines += [f"- **{_md(key)}:** {_md(value)}" for key, value in block.rows] + [""]
            elif block.kind == "table" and block.rows:
                lines += ["| " + " | ".join(_md(h) for h in block.head) + " |",
                          "|" + "---|" * len(block.head)]
                lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
                lines.append("")
            elif block.kind == "table":
                lines += ["None.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _md(text: str) -> str:
    """Plain text made inert in Markdown: no HTML, links, emphasis or table breaks."""
    text = text.translate(_CONTROLS)
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


# HTML

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", sans-serif;
       color: #1a1a1a; margin: 0; background: #fff; }
main { max-width: 1000px; margin: 0 auto; padding: 0 24px 32px; }
.banner { background: #ffd500; color: #000; font-weight: 800; letter-spacing: .12em;
          text-align: center; padding: 10px; margin: 0; border-bottom: 3px solid #000; }
h1 { font-size: 1.7em; margin: 24px 0 4px; }
h2 { font-size: 1.3em; margin: 32px 0 8px; border-bottom: 2px solid #ccc; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
.mode { font-weight: 700; }
.mode.exercise { color: #7a5d00; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: .93em; }
th, td { border: 1px solid #bbb; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #eee; }
table.pairs th { width: 11em; }
tr.marked td { background: #fdebe0; }
svg.timeline { width: 100%; height: auto; display: block; margin: 8px 0; }
footer { color: #555; font-size: .85em; max-width: 1000px; margin: 0 auto; padding: 12px 24px; }
@page { margin: 14mm; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  .banner, tr.marked td, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2, h3 { break-after: avoid; }
  tr, svg.timeline { break-inside: avoid; }
}
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>After-action report: {{ ov.playbook_title }} ({{ ov.incident_id }}, {{ ov.mode }})</title>
<style>{{ css }}</style>
</head>
<body>
{% if ov.exercise %}<p class="banner" role="note">{{ banner }}</p>
{% endif %}
<main>
<h1>After-action report: {{ ov.playbook_title }}</h1>
<p class="mode {{ 'exercise' if ov.exercise else 'actual' }}">{{ ov.mode }} · incident
{{ ov.incident_id }} · {{ start }}</p>
{% for section in sections %}
<section id="{{ section.id }}" aria-labelledby="{{ section.id }}-title">
<h2 id="{{ section.id }}-title">{{ section.title }}</h2>
{% for b in section.blocks %}
{% if b.kind == "heading" %}<h3>{{ b.text }}</h3>
{% elif b.kind == "para" %}<p>{{ b.text | isolate }}</p>
{% elif b.kind == "list" %}<ul>
{% for item in b.items %}<li>{{ item | isolate }}</li>
{% endfor %}</ul>
{% elif b.kind == "chart" %}{{ chart }}
{% elif b.kind == "pairs" %}<table class="pairs">
{% for key, value in b.rows %}<tr><th scope="row">{{ key }}</th><td>{{ value | isolate }}</td></tr>
{% endfor %}</table>
{% elif b.rows %}<table>
<thead><tr>{% for h in b.head %}<th scope="col">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in b.rows %}<tr{% if b.marked and b.marked[loop.index0] %} class="marked"{% endif %}>
{%- for cell in row %}<td>{{ cell | isolate }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% else %}<p>None.</p>
{% endif %}
{% endfor %}
</section>
{% endfor %}
</main>
<footer>Computed from the {{ ov.entries }} entries of the incident log (last entry hash
<code>{{ ov.head }}</code>) and the playbook version {{ ov.version }} frozen at activation.
</footer>
</body>
</html>
"""


def _isolate(text: str) -> Markup:
    # Escape first, then turn our isolates into <bdi>: user text cannot carry tags through.
    safe = str(escape(text.translate(_CONTROLS)))
    return Markup(safe.replace(FSI, "<bdi>").replace(PDI, "</bdi>"))


_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                   lstrip_blocks=True)
_ENV.filters["isolate"] = _isolate
_PAGE = _ENV.from_string(PAGE)


def html(report: AfterAction) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no scripts."""
    ov = report.overview
    return _PAGE.render(ov=ov, css=Markup(CSS), banner=BANNER, sections=outline(report),
                        start=f"{long_date(ov.started)} ({ov.timezone})", chart=chart(report))


def chart(report: AfterAction) -> Markup:
    """The planned-versus-actual chart: hours from activation across, one row per occurrence."""
    ov = report.overview
    # Follow-up work days after the stand-down would squeeze the response into a sliver at the
    # left: the chart shows the response, the table shows everything.
    limit = ov.stood_down or ov.ended
    drawn = [r for r in report.timeline if r.planned or r.actual]
    rows = [r for r in drawn if min(t for t in (r.planned, r.actual) if t) <= limit]

    def hours(moment: datetime) -> float:
        return (moment - ov.started).total_seconds() / 3600

    last = max([hours(t) for r in rows for t in (r.planned, r.actual) if t]
               + [hours(limit), 0.25])
    step = next((s for s in (0.25, 0.5, 1, 2, 3, 6, 12, 24, 48, 72, 168) if last / s <= 10), 336)
    top = math.ceil(last / step) * step
    ended = min(ov.ended, ov.started + timedelta(hours=top))
    width, left, right, head, row_h = 960, 230, 24, 58, 22
    height = head + len(rows) * row_h + 52

    def x(moment: datetime | float) -> float:
        value = hours(moment) if isinstance(moment, datetime) else moment
        return round(left + (width - left - right) * value / top, 1)

    out: list[Markup] = [Markup(
        '<svg class="timeline" role="img" aria-labelledby="chart-title chart-desc" '
        'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'font-family="system-ui, sans-serif" font-size="12">').format(w=width, h=height),
        Markup('<title id="chart-title">Planned and actual times of each step, in hours from '
               'activation</title><desc id="chart-desc">{} steps; {} late or not done.</desc>'
               ).format(len(rows), sum(r.late for r in rows))]
    out += _legend()
    bottom = head + len(rows) * row_h
    tick = 0.0
    while tick <= top + 1e-9:
        out.append(Markup(
            '<line x1="{x}" x2="{x}" y1="{y1}" y2="{y2}" stroke="#ddd"/><text x="{x}" y="{t}" '
            'text-anchor="middle" fill="#333">{label} h</text>').format(
                x=x(tick), y1=head - 4, y2=bottom + 4, t=bottom + 18, label=f"{tick:g}"))
        tick += step
    out.append(Markup(
        '<line x1="{l}" x2="{r}" y1="{y}" y2="{y}" stroke="#333"/><text x="{c}" y="{t}" '
        'text-anchor="middle" fill="#333">Hours from activation ({start}, {zone})</text>').format(
            l=left, r=width - right, y=bottom + 4, c=(left + width - right) / 2, t=bottom + 40,
            start=long_date(ov.started), zone=ov.timezone))
    for i, r in enumerate(rows):
        out.append(_chart_row(r, head + i * row_h, i, x, ended, ov.started))
    if ov.stood_down:
        out.append(Markup(
            '<line x1="{x}" x2="{x}" y1="{y1}" y2="{y2}" stroke="#1a1a1a" stroke-dasharray="2 3"/>'
            '<text x="{x}" y="{t}" text-anchor="middle" fill="#1a1a1a">stand-down</text>').format(
                x=x(ov.stood_down), y1=head - 12, y2=bottom + 4, t=head - 16))
    out.append(Markup("</svg>"))
    if len(rows) < len(drawn):
        out.append(Markup('<p class="note">{} later steps (follow-up after the stand-down) are '
                          'in the table, not in the chart.</p>').format(len(drawn) - len(rows)))
    return Markup("\n").join(out)


def _legend() -> list[Markup]:
    return [Markup(
        '<g class="legend"><polygon points="236,14 242,20 236,26 230,20" fill="{p}"/>'
        '<text x="248" y="24">Planned</text>'
        '<rect x="330" y="15" width="22" height="10" fill="{o}"/>'
        '<text x="358" y="24">Actual, on time</text>'
        '<rect x="480" y="15" width="22" height="10" fill="{late}"/>'
        '<text x="508" y="24">Late, or not done by the end</text></g>').format(
            p=PLANNED, o=ON_TIME, late=LATE)]


def _chart_row(r: TimelineRow, y: int, index: int, x: Callable[[datetime | float], float],
               ended: datetime, start: datetime) -> Markup:
    colour = LATE if r.late else ON_TIME
    middle = y + 11
    label = r.step_id + (f" #{r.number}" if r.number > 1 else "")
    tip = (f"{label}: planned {clock(r.planned, start) if r.planned else '—'}, "
           f"{r.actual_label} {clock(r.actual, start) if r.actual else '—'} ({r.status})")
    parts = [Markup('<g class="row {}"><title>{}</title>').format(r.status.replace(" ", "-"),
                                                                  tip)]
    if index % 2:
        parts.append(Markup('<rect x="0" y="{}" width="960" height="22" fill="#f4f4f4"/>')
                     .format(y))
    parts.append(Markup('<text x="222" y="{}" text-anchor="end" fill="#1a1a1a">{}</text>')
                 .format(middle + 4, label))
    if r.actual is not None:
        a, b = sorted((x(r.planned or r.actual), x(r.actual)))
        parts.append(Markup('<rect class="actual" x="{}" y="{}" width="{}" height="8" '
                            'fill="{}"/>').format(a, middle - 4, max(round(b - a, 1), 1), colour))
    elif r.late and r.planned is not None:
        parts.append(Markup(
            '<line class="missing" x1="{}" x2="{}" y1="{m}" y2="{m}" stroke="{c}" '
            'stroke-width="3" stroke-dasharray="6 4"/>').format(
                x(r.planned), x(ended), m=middle, c=colour))
    if r.planned is not None:
        px = x(r.planned)
        parts.append(Markup('<polygon class="planned" points="{},{} {},{} {},{} {},{}" '
                            'fill="{}"/>').format(px, middle - 7, px + 7, middle, px,
                                                  middle + 7, px - 7, middle, PLANNED))
    if r.actual is not None:
        # Smaller than the diamond and drawn over it: an inject on time shows both marks.
        parts.append(Markup('<circle class="done" cx="{}" cy="{}" r="4" fill="{}"/>').format(
            x(r.actual), middle, colour))
    parts.append(Markup("</g>"))
    return Markup("").join(parts)
