"""The after-action report: numbers computed from a synthetic log of a real protocol, exactly."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import ROOT
from playbook.config import load_settings
from playbook.errors import BadInput
from playbook.events import GENESIS, Event, chain
from playbook.loader import load_checked
from playbook.report import AfterAction, after_action, clock, span
from playbook.reportdoc import html, markdown
from playbook.scenario import Scenario, backup_id, with_injects
from playbook.version import freeze

SETTINGS = load_settings(ROOT / "examples" / "playbook.toml")
ZONE = ZoneInfo(SETTINGS.city.timezone)
START = datetime(2026, 5, 4, 9, 0, tzinfo=ZONE)
INCIDENT = "2026-0007"
PARAMS = {"hazard": "flood", "area": "east", "area_name": "Riverside",
          "shelter": "Riverton Sports Hall, 4 Mill Lane"}
SIX = ("en", "ar", "es", "fr", "uk", "fa")
CONCERN = "<script>alert(1)</script> الناس خائفون من الفيضان"
IMAM = "إمام المسجد"

SCENARIO = Scenario.model_validate({
    "title": "Riverside flood drill", "playbook": "natural-disaster",
    "summary": "The river rises overnight; the east side is warned at 09:00.",
    "objectives": [
        {"id": "media", "text": "Answer the media within 15 minutes",
         "capability": "Public Information and Warning"},
        {"id": "shelter", "text": "Redirect families when the shelter is full"},
        {"id": "rumours", "text": "Catch and correct rumours"},
        {"id": "vip", "text": "Brief the mayor's office"},
        {"id": "override", "text": "Handle a radio interview request"},
        {"id": "recovery", "text": "Plan the recovery information"},
    ],
    "injects": [
        {"id": "journalist-call", "at": "1h", "sender": "Gazette", "to": "spokesperson",
         "text": "Is the shelter full?", "objective": "media",
         "expect": {"action": "answer", "within": "15m"},
         "backup": {"after": "20m", "text": "The Gazette calls again."}},
        {"id": "shelter-call", "at": "1h20m", "sender": "Hall manager",
         "to": "shelter_coordinator", "text": "The hall is full.", "objective": "shelter",
         "expect": {"action": "answer", "within": "10m"},
         "backup": {"after": "15m", "text": "Families are queuing outside."}},
        {"id": "rumour-post", "at": "1h30m", "sender": "A resident", "to": "digital_monitor",
         "text": "A post says the dam broke.", "objective": "rumours",
         "expect": {"action": "log", "within": "20m"}},
        {"id": "rumour-voice", "at": "2h", "sender": "A voice message", "to": "digital_monitor",
         "text": "A voice message repeats it.", "objective": "rumours",
         "expect": {"action": "answer", "within": "10m"}},
        {"id": "vip-visit", "at": "2h10m", "sender": "Mayor's office", "to": "incident_lead",
         "text": "The mayor wants a briefing.", "objective": "vip",
         "expect": {"action": "answer", "within": "10m"}},
        {"id": "radio-call", "at": "2h20m", "sender": "Radio River", "to": "spokesperson",
         "text": "Live interview in ten minutes?", "objective": "override",
         "expect": {"action": "answer", "within": "10m"}},
    ],
})


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    """The `scenario` log entry as the drill runner writes it."""
    return {
        "title": scenario.title, "summary": scenario.summary, "players": "simulated",
        "speed": "instant", "objectives": [o.model_dump(mode="json") for o in scenario.objectives],
        "injects": [{
            "id": i.id, "at_seconds": int(i.at.total_seconds()), "kind": i.kind,
            "sender": i.sender, "to": i.to, "channel": i.channel, "objective": i.objective,
            "expect": {"action": i.expect.action, "step": i.expect.step,
                       "within_seconds": int(i.expect.within.total_seconds())}
            if i.expect else None,
            "backup_id": backup_id(i.id) if i.backup else None} for i in scenario.injects]}


@cache
def frozen(exercise: bool = True) -> tuple[str, Mapping[str, Any]]:
    """(version, frozen document) of the natural-disaster protocol, with the drill's injects."""
    pb = load_checked(ROOT / "protocols" / "natural_disaster.yaml",
                      city=SETTINGS.city_values(), timezone=ZONE)
    playbook = with_injects(pb.playbook, SCENARIO) if exercise else pb.playbook
    return freeze(playbook, pb.templates, SETTINGS.city_values(), SETTINGS.city.timezone)


class Log:
    """An incident log written with the real hash chain, at minutes after START."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, minutes: float, kind: str, step: str = "", actor: str = "",
            data: Mapping[str, Any] | None = None) -> Event:
        event = chain(INCIDENT, len(self.events) + 1, START + timedelta(minutes=minutes), kind,
                      prev_hash=self.events[-1].hash if self.events else GENESIS,
                      step_id=step, actor=actor, data=data)
        self.events.append(event)
        return event

    def due(self, minutes: float, step: str, number: int = 1) -> None:
        self.add(minutes, "due", step, data={"number": number, "due_at": (
            START + timedelta(minutes=minutes)).isoformat()})

    def deliver(self, minutes: float, step: str, recipient: str, lang: str, channel: str,
                kind: str = "sent", attempt: int = 1) -> None:
        self.add(minutes, kind, step, data={
            "key": f"{INCIDENT}/{step}/1/{recipient}/{lang}/{channel}", "recipient": recipient,
            "lang": lang, "channel": channel, "attempt": attempt})

    def draft(self, minutes: float, step: str, langs: tuple[str, ...], approve_at: float) -> None:
        for lang in langs:
            self.add(minutes, "drafted", step, "anna", {"number": 1, "lang": lang, "revision": 1})
        for lang in langs:
            self.add(approve_at, "approved", step, "ben", {"number": 1, "lang": lang})

    def inject(self, minutes: float, step: str, backup_for: str | None = None) -> None:
        self.due(minutes, step)
        self.add(minutes, "inject", step, data={"text": "…", "to": ["ben"], "role": "spokesperson",
                                                "backup_for": backup_for})


def drill_log(mode: str = "exercise") -> list[Event]:
    """A three-hour flood drill: on-time and late work, a concern answered and one not."""
    log = Log()
    log.add(0, "activated", actor="anna", data={
        "playbook": "natural-disaster", "version": frozen(mode == "exercise")[0], "mode": mode,
        "params": PARAMS, "participants": ["anna", "ben", "chloe", "dan", "eve"]})
    if mode == "exercise":
        log.add(0, "scenario", actor="anna", data=scenario_data(SCENARIO))
    for role, holder, backup in (("incident_lead", "anna", "ben"), ("spokesperson", "ben", "anna"),
                                 ("community_liaison", "chloe", "anna"),
                                 ("shelter_coordinator", "dan", None),
                                 ("victim_support_lead", None, None),
                                 ("digital_monitor", "eve", "ben")):
        log.add(0, "assigned", data={"role": role, "holder": holder, "backup": backup,
                                     "note": "" if holder else "nobody in the roster"})
    log.due(0, "confirm-warning")
    log.due(0, "safety-alert")
    for lang in SIX:
        log.add(0, "approved", "safety-alert", "preapproved", {"number": 1, "lang": lang})
    log.due(0, "open-shelters")
    for lang in SIX[:4]:
        log.deliver(2, "safety-alert", "public:telegram_channel", lang, "telegram")
    log.due(10, "brief-intermediaries")
    log.due(10, "check-vulnerable-residents")
    log.add(12, "task_done", "confirm-warning", "anna", {"number": 1, "note": "", "late": False})
    log.due(15, "watch-rumours")
    log.add(10, "drafted", "brief-intermediaries", "anna", {"number": 1, "lang": "en"})
    log.add(10, "drafted", "brief-intermediaries", "anna", {"number": 1, "lang": "ar"})
    log.add(16, "approved", "brief-intermediaries", "ben", {"number": 1, "lang": "en"})
    log.add(22, "approved", "brief-intermediaries", "ben", {"number": 1, "lang": "ar"})
    log.add(22, "enqueued", "brief-intermediaries", data={
        "number": 1, "languages": ["ar", "en"], "deliveries": 4, "asked_to_confirm": 4})
    log.deliver(23, "brief-intermediaries", "int:1", "en", "email", "failed")
    log.deliver(24, "brief-intermediaries", "int:1", "en", "email", attempt=2)
    for n in (2, 3, 4):
        log.deliver(23, "brief-intermediaries", f"int:{n}", "ar", "telegram")
    for n, after in ((2, 5), (3, 10), (4, 20)):
        log.add(22 + after, "acked", "brief-intermediaries", f"int:{n}", {
            "number": 1, "recipient": f"int:{n}", "relayed": False, "after_seconds": after * 60})
    log.add(50, "acked", "brief-intermediaries", "int:2", {
        "number": 1, "recipient": "int:2", "relayed": True, "after_seconds": 28 * 60})
    log.due(30, "collect-community-needs")
    log.due(30, "media-holding")
    log.add(30, "overdue", "open-shelters", data={"number": 1, "role": "shelter_coordinator"})
    log.add(40, "task_done", "watch-rumours", "eve", {"number": 1, "note": "", "late": False})
    log.due(45, "first-statement")
    log.draft(45, "first-statement", SIX, approve_at=52)
    log.add(50, "task_done", "open-shelters", "dan", {"number": 1, "note": "", "late": True})
    for lang in SIX[:4]:
        log.deliver(53, "first-statement", "public:telegram_channel", lang, "telegram")
    log.deliver(53, "first-statement", "public:telegram_channel", "uk", "telegram", "dead")
    log.draft(30, "media-holding", ("en",), approve_at=55)
    log.deliver(56, "media-holding", "media:gazette", "en", "email")
    log.inject(60, "journalist-call")
    concern = log.add(60, "concern", "brief-intermediaries", "int:2", {
        "from": "int:2", "name": IMAM, "text": CONCERN, "via": "telegram", "ref": ""})
    log.add(70, "answered", "journalist-call", "ben", {"text": "The hall has room."})
    log.add(70, "task_done", "collect-community-needs", "chloe", {"number": 1, "late": False})
    log.add(75, "answered", actor="chloe", data={"concern": concern.seq, "text": "تم فتح ملجأ"})
    log.due(80, "journalist-call-backup")
    log.add(80, "skipped", "journalist-call-backup", data={
        "reason": "expected action taken", "unless": "journalist-call"})
    log.inject(80, "shelter-call")
    log.inject(90, "rumour-post")
    log.inject(95, "shelter-call-backup", backup_for="shelter-call")
    log.add(95, "logged", actor="eve", data={"text": "Dam rumour is false <b>now</b>"})
    log.add(100, "answered", "shelter-call-backup", "dan", {"text": "Second site: the school"})
    log.add(100, "concern", actor="int:3", data={
        "from": "int:3", "name": "Maryam", "text": "Pets\x07?", "via": "email", "ref": ""})
    log.inject(120, "shelter-full-inject")
    log.inject(120, "rumour-voice")
    log.inject(130, "vip-visit")
    log.inject(140, "radio-call")
    log.due(150, "shelter-status")
    log.add(160, "rated", actor="eva", data={"objective": "override", "rating": "M", "note": ""})
    log.add(165, "rated", actor="eva", data={"objective": "override", "rating": "S",
                                             "note": "handled by phone, not logged"})
    log.add(170, "stood_down", actor="anna")
    log.add(170, "skipped", actor="anna", data={
        "reason": "stand_down ends repeating steps", "steps": ["shelter-status", "update"]})
    log.due(170, "all-clear")
    log.due(170, "close-shelters")
    log.draft(170, "all-clear", ("en",), approve_at=175)
    for lang in SIX[:4]:
        log.deliver(176, "all-clear", "public:telegram_channel", lang, "telegram")
    log.add(190, "closed", actor="anna", data={"reason": "drill finished", "no_play": False})
    return log.events


@pytest.fixture(scope="module")
def report() -> AfterAction:
    """The report of the synthetic drill."""
    return after_action(frozen()[1], drill_log())


def test_overview_names_the_version_mode_dates_and_roles(report: AfterAction) -> None:
    """The overview has the short version, EXERCISE, local times, duration and unfilled roles."""
    ov = report.overview
    assert ov.version == frozen()[0][:12]
    assert (ov.mode, ov.incident_id, ov.playbook_id) == ("EXERCISE", INCIDENT, "natural-disaster")
    assert (ov.started.hour, ov.ended.hour, ov.ended.minute) == (9, 12, 10)
    assert span(ov.duration) == "3 h 10 min"
    assert ov.unfilled == ("victim_support_lead",)
    assert ov.scenario_title == "Riverside flood drill"
    assert (ov.end_reason, ov.no_play, ov.speed) == ("drill finished", False, "instant")


def test_time_to_first_public_message_and_its_six_elements(report: AfterAction) -> None:
    """The first public delivery is timed from activation; the CERC step is re-rendered whole."""
    first = report.metrics.first_public
    assert (first.step_id, first.after) == ("safety-alert", timedelta(minutes=2))
    (cerc,) = report.metrics.cerc
    assert cerc.step_id == "first-statement"
    assert cerc.complete
    assert [lang for lang, _ in cerc.missing] == list(SIX)


def test_approval_times_per_step_and_language(report: AfterAction) -> None:
    """Draft to approval in minutes, per step and language, in playbook order."""
    got = {(a.step_id, a.lang): [t // timedelta(minutes=1) for t in a.times]
           for a in report.metrics.approvals}
    assert got == {("brief-intermediaries", "en"): [6], ("brief-intermediaries", "ar"): [12],
                   ("media-holding", "en"): [25], ("all-clear", "en"): [5],
                   **{("first-statement", lang): [7] for lang in SIX}}
    assert [a.step_id for a in report.metrics.approvals][:3] == ["brief-intermediaries"] * 2 + [
        "media-holding"]


def test_acknowledgements_count_each_intermediary_once(report: AfterAction) -> None:
    """3 of 4 confirmed (a later relay is the same confirmation); median delay 10 minutes."""
    acks = report.metrics.acks
    assert (acks.asked, acks.confirmed, acks.relayed, acks.rate) == (4, 3, 1, 0.75)
    assert sorted(acks.delays) == [timedelta(minutes=m) for m in (5, 10, 20)]
    assert acks.steps == ("brief-intermediaries",)


def test_languages_channels_and_concerns(report: AfterAction) -> None:
    """Missing languages, deliveries by channel, and which concern was answered when."""
    m = report.metrics
    assert m.languages_delivered == ("en", "ar", "es", "fr")
    assert m.languages_missing == ("uk", "fa")
    assert dict(m.languages_short) == {s: ("uk", "fa") for s in (
        "safety-alert", "first-statement", "all-clear")}
    assert [(c.channel, c.sent, c.failed, c.dead, c.unknown) for c in m.channels] == [
        ("email", 2, 1, 0, 0), ("telegram", 15, 0, 1, 0)]
    answered, unanswered = m.concerns
    assert (answered.name, answered.text) == (IMAM, CONCERN)
    assert answered.answered_at is not None
    assert answered.answered_at - answered.at == timedelta(minutes=15)
    assert (unanswered.name, unanswered.answered_at) == ("Maryam", None)


def test_deadlines_by_role(report: AfterAction) -> None:
    """Tasks done late and never done count against their role; open ones do not yet."""
    got = {d.role: (d.on_time, d.late, d.not_done, d.missed_steps)
           for d in report.metrics.deadlines}
    assert got == {
        "incident_lead": (1, 0, 0, ()), "community_liaison": (1, 0, 0, ()),
        "shelter_coordinator": (0, 1, 1, ("open-shelters", "shelter-status")),
        "victim_support_lead": (0, 0, 1, ("check-vulnerable-residents",)),
        "digital_monitor": (1, 0, 0, ())}


def test_objective_ratings_derived_and_overridden(report: AfterAction) -> None:
    """P on time, S after a backup, M partly, U never; the latest evaluator rating wins."""
    got = {o.id: (o.rating, o.derived, o.rated_by) for o in report.objectives}
    assert got == {"media": ("P", "P", ""), "shelter": ("S", "S", ""),
                   "rumours": ("M", "M", ""), "vip": ("U", "U", ""),
                   "override": ("S", "U", "eva"), "recovery": (None, None, "")}
    shelter = next(o for o in report.objectives if o.id == "shelter")
    (evidence,) = shelter.evidence
    assert (evidence.outcome, evidence.taken_kind, evidence.taken_by) == (
        "after backup", "answered", "dan")
    assert evidence.late_by == timedelta(minutes=10)


def test_timeline_planned_versus_actual(report: AfterAction) -> None:
    """Each occurrence has its planned and actual time and a status; later plans are left out."""
    rows = {(r.step_id, r.number): r for r in report.timeline}
    assert rows["media-holding", 1].status == "late"
    assert rows["media-holding", 1].actual == START + timedelta(minutes=56)
    assert rows["first-statement", 1].status == "on time"
    assert rows["open-shelters", 1].status == "late"
    assert rows["close-shelters", 1].status == "open"
    assert rows["journalist-call-backup", 1].status == "not needed"
    assert rows["all-clear", 1].planned == START + timedelta(minutes=170)
    assert ("update", 1) not in rows
    assert ("dam-rumour-inject", 1) not in rows
    assert [r.planned for r in report.timeline if r.planned] == sorted(
        r.planned for r in report.timeline if r.planned)


def test_improvement_plan_points_to_steps_and_roles(report: AfterAction) -> None:
    """Each area for improvement names the playbook steps and roles it concerns."""
    plan = [(f.area, f.steps, f.roles) for f in report.improvements]
    assert plan == [
        ("Approval time", ("media-holding",), ("spokesperson", "incident_lead")),
        ("Languages", ("safety-alert", "first-statement", "all-clear"),
         ("spokesperson", "incident_lead")),
        ("Delivery", ("first-statement",), ("spokesperson", "incident_lead")),
        ("Intermediaries", ("brief-intermediaries",), ("incident_lead",)),
        ("Concerns", ("brief-intermediaries",), ("incident_lead",)),
        ("Deadlines", ("open-shelters", "shelter-status"), ("shelter_coordinator",)),
        ("Deadlines", ("check-vulnerable-residents",), ("victim_support_lead",)),
        ("Timeline", ("media-holding",), ("spokesperson", "incident_lead")),
        ("Objectives", ("shelter-call",), ("shelter_coordinator",)),
        ("Objectives", ("rumour-voice",), ("digital_monitor",)),
        ("Objectives", ("vip-visit",), ("incident_lead",)),
        ("Objectives", ("radio-call",), ("spokesperson",)),
    ]
    texts = [f.text for f in report.improvements]
    assert "2 of 6 required languages were never delivered: uk, fa." in texts
    assert "Only 3 of 4 intermediaries confirmed the briefing (75%, goal 80%)." in texts
    assert ("First public message (safety-alert) 2 min after activation, within the 60-minute "
            "goal.") in [f.text for f in report.strengths]


def test_the_report_is_a_pure_function_of_the_log() -> None:
    """The same frozen document and log give byte-identical Markdown and HTML."""
    one, two = after_action(frozen()[1], drill_log()), after_action(frozen()[1], drill_log())
    assert markdown(one) == markdown(two)
    assert html(one) == html(two)


def test_html_escapes_logged_text_and_isolates_it(report: AfterAction) -> None:
    """A `<script>` in a concern is text in a <bdi>, control characters go; the banner shows."""
    page = html(report)
    assert "<script>" not in page
    assert "<b>now" not in page
    assert "<bdi>&lt;script&gt;alert(1)&lt;/script&gt; الناس" in page
    assert f"<bdi>{IMAM}</bdi>" in page
    assert "<bdi>Pets?</bdi>" in page
    assert "\x07" not in page + markdown(report)
    assert 'class="banner"' in page
    assert "EXERCISE — EXERCISE — EXERCISE" in page
    assert '<html lang="en">' in page
    assert re.search(r'<svg class="timeline" role="img"', page)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_markdown_has_every_section(report: AfterAction) -> None:
    """The Markdown carries the six HSEEP sections and neutralises logged markup."""
    text = markdown(report)
    for heading in ("## 1. Overview", "## 2. Objectives and ratings",
                    "## 3. Planned and actual timeline", "## 4. Communication",
                    "## 5. Strengths and areas for improvement", "## 6. Improvement plan"):
        assert heading in text
    assert "**EXERCISE — EXERCISE — EXERCISE**" in text
    assert "<script>" not in text
    assert r"\<script\>" in text
    assert "| 1 | Approval time: Approving media-holding (en) took a median of 25 min" in text


def test_actual_incident_has_no_objectives_and_no_banner() -> None:
    """A real incident reports without objectives or injects and without the exercise banner."""
    events = [e for e in drill_log("actual") if e.kind not in ("inject", "rated")]
    report = after_action(frozen(False)[1], events)
    assert report.overview.mode == "ACTUAL"
    assert report.objectives == ()
    assert all(r.kind != "inject" for r in report.timeline)
    text, page = markdown(report), html(report)
    assert "there were no exercise objectives" in text
    assert "EXERCISE — EXERCISE" not in text + page
    assert 'class="banner"' not in page


def test_times_and_durations_read_as_people_say_them() -> None:
    """HH:MM on the first day, the day after midnight; `1 h 05 min`, `48 min`, `45 s`."""
    assert clock(START + timedelta(hours=5), START) == "14:00"
    assert clock(START + timedelta(hours=16), START) == "Tue 5 May 01:00"
    assert [span(timedelta(seconds=s)) for s in (45, 48 * 60, 65 * 60, 26 * 3600)] == [
        "45 s", "48 min", "1 h 05 min", "1 d 2 h 00 min"]


def test_a_stand_down_cancels_a_pending_update_without_blame() -> None:
    """A draft the stand-down cancelled is skipped, not unsent; follow-up stays off the chart."""
    log = Log()
    log.add(0, "activated", actor="anna", data={
        "playbook": "natural-disaster", "version": frozen(False)[0], "mode": "actual",
        "params": PARAMS})
    log.due(180, "update")
    log.add(180, "drafted", "update", "anna", {"number": 1, "lang": "en"})
    log.add(185, "stood_down", actor="anna")
    log.add(185, "skipped", actor="anna", data={
        "reason": "stand_down ends repeating steps", "steps": ["shelter-status", "update"]})
    log.add(3 * 24 * 60, "closed", actor="anna", data={"reason": "recovered"})
    report = after_action(frozen(False)[1], log.events)
    rows = {(r.step_id, r.number): r for r in report.timeline}
    assert rows["update", 1].status == "skipped"
    assert rows["recovery-information", 1].status == "not fired"
    assert report.metrics.approvals == ()
    assert "Approval time" not in [f.area for f in report.improvements]
    assert "later steps (follow-up after the stand-down) are in the table" in html(report)


def test_a_log_without_activation_is_refused() -> None:
    """No activation entry means no incident: a BadInput, not a half-empty report."""
    log = Log()
    log.add(0, "logged", actor="anna", data={"text": "stray"})
    with pytest.raises(BadInput, match="no activation entry"):
        after_action(frozen()[1], log.events)
