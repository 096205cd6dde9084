"""The engine end to end on the example city, on a virtual clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from drive import START, Drive, checked
from playbook.approvals import Approvals
from playbook.errors import BadInput
from playbook.events import fingerprint
from playbook.plan import due_at
from playbook.store import SqlStore

H = timedelta(hours=1)
M = timedelta(minutes=1)


def test_every_step_fires_at_its_offset(store: SqlStore, tmp_path: Path) -> None:
    """Each timed step's `due` entry is written exactly at activation + its offset."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 9 * H)
    pb = checked().playbook
    fired = {(e.step_id, e.data["number"]): e.at for e in drive.events(incident.id, "due")}
    expected = {(s.id, n): due_at(s, START, n) for s in pb.steps for n in (1, 2)
                if s.on is None and (n == 1 or s.every)}
    assert fired == expected
    assert not drive.events(incident.id, "late")


def test_intermediaries_get_their_own_language(store: SqlStore, tmp_path: Path) -> None:
    """The briefing reaches the affected community's intermediaries, each in their language."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 20 * M)
    Approvals(drive.engine).approve(incident.id, "brief-intermediaries", actor="miriam",
                                    now=drive.clock.now())
    drive.send()
    rows = [r for r in drive.outbox(incident.id) if r.delivery.step_id == "brief-intermediaries"]
    langs = {r.delivery.recipient_id: r.delivery.lang for r in rows}
    assert langs == {
        # ar-EG reads the Arabic template with its dates and numbers written for Egypt
        "intermediary:imam-karim": "ar", "intermediary:amina-s": "ar-EG",
        "intermediary:hassan-r": "fa-AF",
        "intermediary:nasrin-k": "fa", "intermediary:awa-d": "fr",
        "intermediary:fatima-z": "fr"}
    assert all(r.state == "sent" for r in rows)
    arabic = next(r for r in rows if r.delivery.lang == "ar").delivery.text
    assert "\u200f" in arabic
    assert "Market Square" in arabic


def test_public_messages_wait_for_a_second_person(store: SqlStore, tmp_path: Path) -> None:
    """Nothing public is queued until a second person from the named roles approves it."""
    drive = Drive(store, tmp_path)
    incident = drive.activate(actor="anna")
    drive.run_until(START + 90 * M)
    public = [r for r in drive.outbox(incident.id)
              if r.delivery.recipient_id.startswith(("public:", "media:"))]
    assert public == []
    approvals = Approvals(drive.engine)
    with pytest.raises(BadInput, match="a second person must approve"):
        approvals.approve(incident.id, "first-statement", actor="anna", now=drive.clock.now())
    with pytest.raises(BadInput, match="does not fill any role"):
        approvals.approve(incident.id, "first-statement", actor="yusuf", now=drive.clock.now())
    approved = approvals.approve(incident.id, "first-statement", actor="miriam",
                                 now=drive.clock.now())
    drive.send()
    assert sorted(d.lang for d in approved) == sorted(checked().playbook.languages)
    sent = [r for r in drive.outbox(incident.id) if r.delivery.step_id == "first-statement"
            and r.delivery.recipient_id.startswith("public:")]
    by_channel = {(r.delivery.recipient_id.split(":")[1], r.delivery.lang) for r in sent}
    assert {("telegram_channel", lang) for lang in ("en", "ar", "fa")} <= by_channel
    assert all(r.state == "sent" for r in sent)
    stamps = {e.data["lang"]: e.data["fingerprint"] for e in
              drive.events(incident.id, "approved") if e.step_id == "first-statement"}
    for row in sent:
        assert stamps[row.delivery.lang] == fingerprint(row.delivery.text)


def test_standdown_stops_updates_and_fires_follow_up(store: SqlStore, tmp_path: Path) -> None:
    """After stand-down no update fires; the resolution and follow-up tasks fire on time."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 9 * H)
    updates_before = len([e for e in drive.events(incident.id, "due") if e.step_id == "update"])
    assert updates_before == 2  # at 4h and 8h
    stood = START + 9 * H
    assert drive.engine.event(incident.id, "stand_down", actor="anna", now=stood) == 4
    drive.run_until(START + 20 * 24 * H)
    due = drive.events(incident.id, "due")
    assert len([e for e in due if e.step_id == "update"]) == updates_before
    follow = {e.step_id: e.at for e in due if e.at >= stood}
    assert follow == {"resolution-statement": stood, "listening-session": stood + 24 * H,
                      "transparency-report": stood + 7 * 24 * H,
                      "support-follow-up": stood + 14 * 24 * H}
    with store.begin() as tx:
        pending = [r for r in tx.schedule(incident.id) if r.state == "pending"]
    assert pending == []
    with pytest.raises(BadInput, match="already stood_down"):
        drive.engine.event(incident.id, "stand_down", actor="anna", now=drive.clock.now())


def test_injects_are_skipped_in_an_actual_incident(store: SqlStore, tmp_path: Path) -> None:
    """A drill inject never reaches anyone in a real incident; the log says why."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 3 * H)
    skipped = [e for e in drive.events(incident.id, "skipped") if e.step_id == "rumour-inject"]
    assert skipped
    assert "exercises" in skipped[0].data["reason"]
    assert not drive.events(incident.id, "inject")


def test_exercise_reaches_only_the_sandbox(store: SqlStore, tmp_path: Path) -> None:
    """In an exercise every delivery goes to the sandbox and starts with the banner."""
    drive = Drive(store, tmp_path)
    incident = drive.activate(mode="exercise", participants=["miriam"])
    drive.run_until(START + 65 * M)
    approvals = Approvals(drive.engine)
    for step in ("brief-intermediaries", "media-holding", "first-statement"):
        approvals.approve(incident.id, step, actor="miriam", now=drive.clock.now())
    drive.send()
    rows = drive.outbox(incident.id)
    assert rows
    for row in rows:
        d = row.delivery
        personal = d.recipient_id == "staff:miriam"
        assert (d.channel, d.address) == (("telegram", "5002") if personal
                                          else ("console", f"exercise/{incident.id}"))
        assert d.exercise
    banners = {"en": "EXERCISE", "ar": "تمرين", "fa": "رزمایش", "fa-AF": "تمرین",
               "fr": "EXERCICE", "es": "SIMULACRO", "uk": "НАВЧАННЯ"}
    for row in rows:
        lang = row.delivery.lang
        banner = banners.get(lang) or banners[lang[:2]]  # ar-EG reads the Arabic banner
        assert row.delivery.text.lstrip("\u200f").startswith(banner)
    drive.run_until(START + 3 * H)
    assert [e.step_id for e in drive.events(incident.id, "inject")] == ["rumour-inject",
                                                                        "journalist-inject"]


def test_a_restarted_engine_fires_what_fell_due_as_late(store: SqlStore, tmp_path: Path) -> None:
    """Steps that fell due while nothing ran fire on the next tick and are logged late."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    later = Drive(store, tmp_path)  # a new process: nothing in memory
    later.clock.set(START + 50 * M)
    later.engine.tick(later.clock.now())
    late = {e.step_id: e.data["late_by_seconds"] for e in later.events(incident.id, "late")}
    assert late == {"brief-intermediaries": 30 * 60, "watch-rumours": 30 * 60,
                    "media-holding": 5 * 60}


def test_missed_repeats_collapse_into_one_late_update(store: SqlStore, tmp_path: Path) -> None:
    """After a long outage one late update goes out, not a burst of stale ones."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.clock.set(START + 17 * H)
    drive.engine.tick(drive.clock.now())
    updates = [e for e in drive.events(incident.id, "due") if e.step_id == "update"]
    assert len(updates) == 1
    skipped = [e for e in drive.events(incident.id, "skipped") if e.step_id == "update"]
    assert skipped[0].data["numbers"] == [2, 3, 4]
    with store.begin() as tx:
        nxt = [r for r in tx.schedule(incident.id) if r.step_id == "update" and
               r.state == "pending"]
    assert [(r.number, r.due_at) for r in nxt] == [(5, START + 20 * H)]


def test_tick_twice_changes_nothing(store: SqlStore, tmp_path: Path) -> None:
    """The engine is idempotent: a second tick at the same moment fires and queues nothing."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 2 * H)
    before = (len(drive.events(incident.id)), len(drive.outbox(incident.id)))
    assert drive.engine.tick(drive.clock.now()) == 0
    assert (len(drive.events(incident.id)), len(drive.outbox(incident.id))) == before


def test_the_version_is_frozen_at_activation(store: SqlStore, tmp_path: Path) -> None:
    """The incident keeps the playbook and templates it started with, under a content hash."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    with store.begin() as tx:
        row = tx.incident(incident.id)
    assert row is not None
    assert len(row.version) == 64
    assert row.frozen["templates"]["hate_incident_update"]["ar"].strip()
    assert drive.events(incident.id, "activated")[0].data["version"] == row.version


def test_each_update_promises_the_next_one(store: SqlStore, tmp_path: Path) -> None:
    """Update #2 at +8h names +12h as the next update, not the time update #1 promised."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 8 * H)
    with store.begin() as tx:
        drafts = {d.number: d.text for d in tx.drafts(incident.id)
                  if d.step_id == "update" and d.lang == "en"}
    assert "Next update: 5:00\u202fPM" in drafts[1]
    assert "Next update: 9:00\u202fPM" in drafts[2]
