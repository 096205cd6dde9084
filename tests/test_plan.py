"""The timeline and activation parameters."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conftest import ROOT
from playbook.errors import BadInput
from playbook.loader import load_playbook
from playbook.model import Playbook
from playbook.plan import after, bind_parameters, timeline, who

ZONE = ZoneInfo("Europe/Vienna")
PLAYBOOK = load_playbook(ROOT / "protocols" / "hate_incident.yaml").playbook


def test_timeline_is_in_time_order_with_event_steps_last() -> None:
    """Timed steps come by offset; steps waiting for stand-down come after them."""
    occurrences = timeline(PLAYBOOK)
    timed = [o for o in occurrences if o.event is None]
    assert [o.offset for o in timed] == sorted(o.offset for o in timed)
    assert all(o.event == "stand_down" for o in occurrences[len(timed):])
    assert occurrences[0].step.id == "confirm-facts"


def test_repeating_steps_show_their_first_occurrences() -> None:
    """`every: 4h` from `at: 4h` falls due at +4h, +8h, +12h."""
    updates = [o for o in timeline(PLAYBOOK, repeats=3) if o.step.id == "update"]
    assert [(o.number, o.offset) for o in updates] == [
        (1, timedelta(hours=4)), (2, timedelta(hours=8)), (3, timedelta(hours=12))]


def test_wall_clock_time_follows_the_start() -> None:
    """An occurrence's time is the start plus its offset; event steps have no time yet."""
    start = datetime(2026, 5, 1, 14, 0, tzinfo=ZONE)
    first = timeline(PLAYBOOK)[0]
    assert first.when(start) == start
    assert timeline(PLAYBOOK)[-1].when(start) is None


@pytest.mark.parametrize(("start", "offset", "expected"), [
    ("2026-03-29T01:30", timedelta(minutes=45), "2026-03-29T03:15:00+02:00"),
    ("2026-03-29T01:30", timedelta(hours=4), "2026-03-29T06:30:00+02:00"),
    ("2026-10-25T01:30", timedelta(hours=2), "2026-10-25T02:30:00+01:00"),
    ("2026-05-01T14:00", timedelta(days=1), "2026-05-02T14:00:00+02:00"),
])
def test_offsets_are_real_elapsed_time_across_clock_changes(
        start: str, offset: timedelta, expected: str) -> None:
    """45 minutes after 01:30 on the spring-forward night is 03:15 local time."""
    moment = datetime.fromisoformat(start).replace(tzinfo=ZONE)
    assert after(moment, offset).isoformat() == expected


def test_parameters_are_checked_and_converted() -> None:
    """Every problem with the given parameters is reported at once."""
    with pytest.raises(BadInput) as caught:
        bind_parameters(PLAYBOOK, {"what": "arson", "colour": "red"}, "--param", ZONE)
    messages = sorted(f"{p.field}: {p.message}" for p in caught.value.problems)
    assert messages == [
        "colour: unknown parameter",
        "community: missing required parameter",
        "location: missing required parameter",
        "support_point: missing required parameter",
        "what: 'arson' is not one of vandalism, assault, threats",
    ]


def test_valid_parameters_bind() -> None:
    """Good values come back typed."""
    values = bind_parameters(PLAYBOOK, {"what": "assault", "location": " Old Town ",
                                        "community": "jewish_community",
                                        "support_point": "City Hall"}, "--param", ZONE)
    assert values["location"] == "Old Town"
    assert values["what"] == "assault"


def test_who_names_list_selectors_with_parameters_filled() -> None:
    """A selector list reads as alternatives, with its parameter reference filled in."""
    pb = Playbook.model_validate({
        "id": "x", "title": "X", "kind": "other", "languages": ["en"],
        "roles": {"lead": {"title": "Lead", "duties": ["Decide"], "approves": True}},
        "steps": [{"id": "brief", "message": "m", "at": "0m", "to": {"intermediaries": {
            "community": ["{{ community }}", "interfaith"], "language": "ar"}}}]})
    assert who(pb.steps[0], pb, {"community": "muslim_community"}) == (
        "intermediaries (community=muslim_community or interfaith, language=ar)")
