"""Drill controls and after-action reports through the real PTB client and the fake Bot API."""

from __future__ import annotations

from datetime import timedelta

from drive import HATE_PARAMS, SETTINGS, checked
from playbook import drill
from test_bot_staff import ANNA, MIRIAM, YUSUF, Room, room

__all__ = ["room"]


def _drill(room: Room, speed: float | None = 60.0) -> str:
    """A scaled exercise of the hate-incident playbook with anna, miriam and yusuf playing."""
    pb = checked()
    setup = drill.prepare(pb.playbook, pb.templates, None, HATE_PARAMS,
                          ("anna", "miriam", "yusuf"), speed)
    now = room.drive.clock.now()
    incident = drill.start(room.drive.engine, setup, city=SETTINGS.city_values(),
                           timezone=SETTINGS.city.timezone, actor="anna", now=now, wall=now)
    room.drive.send()
    return incident.id


def test_a_player_answers_an_inject_with_its_button(room: Room) -> None:
    """The inject reaches a participant on Telegram marked EXERCISE; Answer logs their words."""
    incident = _drill(room)
    room.drive.run_until(room.drive.clock.now() + timedelta(hours=3, minutes=1))
    inject = next(m for m in room.chat(MIRIAM) if "A reporter from a national" in m.text)
    assert inject.text.startswith("EXERCISE — EXERCISE — EXERCISE")
    room.tap(MIRIAM, "Answer", "What is your answer?")
    room.say(MIRIAM, "No names, no photos; statement at 16:00", "Answer logged")
    answered = room.events("answered")[-1]
    assert (answered.step_id, answered.actor) == ("journalist-inject", "miriam")
    assert answered.incident_id == incident


def test_a_lead_pauses_resumes_and_ends_a_drill_from_the_bot(room: Room) -> None:
    """/pause and /resume stop and restart the drill; /end asks, then stops play for good."""
    incident = _drill(room)
    room.say(YUSUF, f"/pause {incident}", "Only the holders")
    room.say(ANNA, f"/pause {incident}", "paused")
    assert room.events("paused")[-1].actor == "anna"
    with room.drive.store.begin() as tx:
        assert room.drive.engine.incident(tx, incident).state == "paused"
    room.say(ANNA, f"/resume {incident}", "resumed")
    room.say(ANNA, f"/end {incident}", "Nothing more will be scheduled or sent")
    before = len(room.events("closed"))
    room.tap(ANNA, "End the exercise", "ended (no play)")
    closed = room.events("closed")[before:]
    assert [c.data["no_play"] for c in closed] == [True]
    with room.drive.store.begin() as tx:
        assert not [r for r in tx.schedule(incident) if r.state == "pending"]


def test_drill_controls_refuse_an_actual_incident(room: Room) -> None:
    """/pause on an actual incident points to /standdown and changes nothing."""
    actual = room.drive.activate()
    before = room.changes()
    room.say(ANNA, f"/pause {actual.id}", "/standdown")
    assert room.changes() == before


def test_report_sends_the_after_action_report_as_a_file(room: Room) -> None:
    """/report answers with the HTML after-action report as a document, captioned by mode."""
    incident = _drill(room)
    before = len(room.api.documents)
    room.api.push_message(MIRIAM, f"/report {incident}")
    assert room.until(lambda: len(room.api.documents) > before)
    document = room.api.documents[-1]
    assert document.chat_id == MIRIAM
    assert document.filename == f"after-action-{incident}.html"
    assert b'class="timeline"' in document.data
    assert "EXERCISE" in document.caption
