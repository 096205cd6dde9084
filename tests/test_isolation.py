"""An exercise never reaches a real recipient: the gate, and the property over generated cities."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playbook.approvals import Approvals
from playbook.channels.cap import alert_for
from playbook.delivery import Delivery
from playbook.directory import Directory
from playbook.engine import Engine
from playbook.errors import BadInput
from playbook.isolation import SANDBOX_CHANNEL, reachable, sandbox, seal
from playbook.model import Playbook
from playbook.render import EXERCISE_BANNER, TemplateLibrary, TemplateSource, exercise_banner
from playbook.store import SqlStore
from stores import fresh_url, open_store

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LANGS = ("en", "ar", "fa", "uk")
CITY = {"name": "Testville", "info_url": "https://testville.example/safety",
        "hotline": "+1 555 0100", "media_contact": "+1 555 0199", "emergency_number": "112"}


def _delivery(recipient: str, channel: str, address: str, lang: str = "en") -> Delivery:
    return Delivery(key=f"k/{recipient}/{channel}", incident_id="2026-0001", exercise=True,
                    step_id="s", number=1, recipient_id=recipient, recipient_name="X", lang=lang,
                    channel=channel, address=address, subject="", text="Hello", created_at=START)


def _directory(**parts: Any) -> Directory:
    return Directory.model_validate(parts)


def test_the_gate_keeps_only_a_participants_own_private_chat() -> None:
    """Only a participant's own private chat or mailbox is real; all else goes to the sandbox."""
    directory = _directory(
        staff=[{"id": "ann", "name": "Ann", "languages": ["en"], "telegram_chat_id": "11",
                "email": "ann@city.example"},
               {"id": "bob", "name": "Bob", "languages": ["en"], "telegram_chat_id": "12"}],
        intermediaries=[{"id": "imam", "name": "Imam", "languages": ["ar"],
                         "telegram_chat_id": "21"}])
    allowed = reachable(directory, ["ann"])
    assert allowed == {("telegram", "11"), ("email", "ann@city.example")}
    box = (SANDBOX_CHANNEL, sandbox("2026-0001"))

    def where(d: Delivery) -> tuple[str, str]:
        out = seal(d, exercise=True, incident_id="2026-0001", allowed=allowed)
        return out.channel, out.address

    assert where(_delivery("staff:ann", "telegram", "11")) == ("telegram", "11")
    assert where(_delivery("staff:bob", "telegram", "12")) == box
    assert where(_delivery("intermediary:imam", "telegram", "21")) == box
    assert where(_delivery("public:news:en", "telegram", "@news")) == box
    assert where(_delivery("staff:ann", "webhook", "https://x.example/hook")) == box
    assert where(_delivery("staff:ann", "telegram", "21")) == box  # not her own chat
    actual = seal(_delivery("intermediary:imam", "telegram", "21"), exercise=False,
                  incident_id="2026-0001", allowed=allowed)
    assert (actual.channel, actual.address, actual.text) == ("telegram", "21", "Hello")


def test_a_directory_cannot_lend_a_real_chat_to_a_participant() -> None:
    """A participant's entry that borrows someone's chat, a group or a channel reaches nobody."""
    directory = _directory(
        staff=[{"id": "ann", "name": "Ann", "languages": ["en"], "telegram_chat_id": "21"},
               {"id": "cy", "name": "Cy", "languages": ["en"], "telegram_chat_id": "-100500"},
               {"id": "di", "name": "Di", "languages": ["en"], "telegram_chat_id": "31",
                "email": "desk@paper.example"}],
        intermediaries=[{"id": "imam", "name": "Imam", "languages": ["ar"],
                         "telegram_chat_id": "21"}],
        media=[{"id": "paper", "name": "Paper", "languages": ["en"],
                "email": "desk@paper.example"}],
        public=[{"id": "news", "channel": "telegram", "addresses": {"en": "31"}}])
    assert reachable(directory, ["ann", "cy", "di", "imam"]) == frozenset()


@pytest.mark.parametrize("lang", sorted(EXERCISE_BANNER))
def test_every_exercise_text_starts_with_the_banner_of_its_language(lang: str) -> None:
    """The banner comes first, in the message's own language, and is never doubled."""
    once = seal(_delivery("public:news", "telegram", "@news", lang), exercise=True,
                incident_id="2026-0001", allowed=frozenset())
    twice = seal(once, exercise=True, incident_id="2026-0001", allowed=frozenset())
    assert once.text == f"{exercise_banner(lang)}\n\nHello" == twice.text
    assert once.exercise


# The property: generated directories and playbooks, run end to end on the real engine.

ROLES = ("lead", "speaker", "liaison")
_chat = st.one_of(st.integers(1, 40).map(str), st.integers(1, 5).map(lambda n: f"-100{n}"),
                  st.sampled_from(["@news", "@city"]))
_mail = st.sampled_from(["a@x.example", "b@x.example", "desk@paper.example", ""])


@st.composite
def cities(draw: st.DrawFn) -> tuple[Directory, Playbook, list[str]]:
    """A directory whose entries may share chats, and a playbook reaching every audience."""
    def contact(prefix: str, n: int, **extra: Any) -> dict[str, Any]:
        chat, mail = draw(_chat), draw(_mail)
        entry = {"id": f"{prefix}{n}", "name": f"{prefix} {n}",
                 "languages": [draw(st.sampled_from(LANGS))], **extra}
        if chat:
            entry["telegram_chat_id"] = chat
        if mail or not chat:
            entry["email"] = mail or f"{prefix}{n}@x.example"
        return entry

    staff = [contact("s", n, roles=[role]) for n, role in enumerate(ROLES)]
    staff += [contact("s", n) for n in range(3, 3 + draw(st.integers(0, 2)))]
    people = [contact("i", n, communities=["c1"]) for n in range(draw(st.integers(1, 4)))]
    media = [contact("m", n) for n in range(draw(st.integers(0, 2)))]
    public = [{"id": "tg", "channel": "telegram",
               "addresses": {lang: draw(_chat) for lang in LANGS}},
              {"id": "feed", "channel": "cap", "addresses": {"*": "cap"}},
              {"id": "site", "channel": "file", "addresses": {"*": "web"}},
              {"id": "hook", "channel": "webhook", "addresses": {"*": "https://h.example/x"}}]
    directory = _directory(staff=staff, intermediaries=people, media=media, public=public)
    audiences: list[dict[str, Any]] = [
        {"roles": list(ROLES)}, {"intermediaries": {}}, {"media": True},
        {"public": ["tg", "feed", "site", "hook"]}, {"roles": ["lead"], "media": True}]
    steps: list[dict[str, Any]] = [{"id": "t1", "task": "Check", "role": "lead", "at": "0m",
                                    "due": "30m"},
                                   {"id": "x1", "inject": "A reporter calls", "at": "10m"}]
    for n, audience in enumerate(draw(st.lists(st.sampled_from(audiences), min_size=1,
                                               max_size=4))):
        step: dict[str, Any] = {"id": f"m{n}", "message": "note", "to": audience,
                                "at": f"{5 * n}m"}
        if "public" in audience or "media" in audience:
            if draw(st.booleans()):
                step["approval"] = ["lead", "speaker"]
            else:
                step["preapproved"] = True
        elif "intermediaries" in audience and draw(st.booleans()):
            step["ack_within"] = "30m"
        steps.append(step)
    playbook = Playbook.model_validate({
        "id": "gen", "title": "Generated", "kind": "protest", "languages": list(LANGS),
        "roles": {r: {"title": r, "duties": ["Act"], "approves": r != "liaison"}
                  for r in ROLES}, "steps": steps})
    ids = [s["id"] for s in staff] + [p["id"] for p in people]
    return directory, playbook, draw(st.lists(st.sampled_from(ids), unique=True, max_size=4))


TEMPLATES = TemplateLibrary({("note", lang): TemplateSource("note", lang, f"note/{lang}.j2",
                                                            f"{lang}: {{{{ city.name }}}}")
                             for lang in LANGS})


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    """One SQLite store for every generated city (each is its own incident)."""
    url = next(iter(fresh_url("sqlite", tmp_path_factory.mktemp("iso"))))
    store = open_store(url)
    yield store
    store.dispose()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(city=cities())
def test_an_exercise_reaches_only_participants_and_the_sandbox(
        shared_store: SqlStore, city: tuple[Directory, Playbook, list[str]]) -> None:
    """Every exercise row goes to a participant's own chat or the sandbox, banner first."""
    directory, playbook, participants = city
    engine = Engine(shared_store, directory)
    incident = engine.activate(playbook, TEMPLATES, city=CITY, timezone="UTC", params={},
                               actor="s0", now=START, mode="exercise",
                               participants=participants)
    now = START
    while (wake := engine.next_wake(incident.id)) is not None and wake < START + timedelta(
            hours=3):
        now = max(now, wake)
        engine.tick(now, only=incident.id)
        for step in {d.step_id for d in _drafts(engine, incident.id)}:
            try:
                Approvals(engine).approve(incident.id, step, actor="s1", now=now)
            except BadInput:
                Approvals(engine).approve(incident.id, step, actor="s0", now=now)
    engine.event(incident.id, "stand_down", actor="s0", now=now)
    with shared_store.begin() as tx:
        rows = tx.outbox(incident.id)
    allowed = _own_private(directory, participants)
    assert rows, "an exercise always briefs someone"
    for row in rows:
        d = row.delivery
        assert d.exercise
        assert d.text.startswith(exercise_banner(d.lang)), d.text[:60]
        if (d.channel, d.address) != (SANDBOX_CHANNEL, sandbox(incident.id)):
            assert d.recipient_id.startswith("staff:"), d
            assert (d.recipient_id[6:], d.channel, d.address) in allowed, d
        if "cap_identifier" in d.meta:
            alert = alert_for(d, "cap@testville.example")
            assert alert.status == "Exercise"
            assert incident.id in alert.note


def _drafts(engine: Engine, incident_id: str) -> list[Any]:
    with engine.store.begin() as tx:
        return tx.drafts(incident_id, "pending")


def _own_private(directory: Directory, participants: list[str]) -> set[tuple[str, str, str]]:
    """(person, channel, address) of private addresses nobody else uses, written apart."""
    uses: dict[tuple[str, str], int] = {}
    for person in (*directory.staff, *directory.intermediaries, *directory.media):
        for address in person.addresses():
            uses[address] = uses.get(address, 0) + 1
    for public in directory.public:
        for where in public.addresses.values():
            uses[(public.channel, where)] = uses.get((public.channel, where), 0) + 1
    return {(s.id, c, a) for s in directory.staff if s.id in participants
            for c, a in s.addresses() if uses[(c, a)] == 1
            and (a.isdigit() if c == "telegram" else "@" in a and not a.startswith("@"))}


def test_a_playbook_and_directory_that_try_cannot_reach_a_real_recipient(
        tmp_path: Path) -> None:
    """A playbook messaging everyone and a directory lending real chats still reach nobody."""
    url = next(iter(fresh_url("sqlite", tmp_path)))
    store = open_store(url)
    directory = _directory(
        staff=[{"id": "ann", "name": "Ann", "roles": ["lead", "speaker", "liaison"],
                "languages": ["en"], "telegram_chat_id": "21", "email": "ann@city.example"},
               {"id": "bob", "name": "Bob", "backup_for": ["lead", "speaker"],
                "languages": ["en"], "telegram_chat_id": "@news"}],
        intermediaries=[{"id": "imam", "name": "Imam", "languages": ["ar"],
                         "communities": ["c1"], "telegram_chat_id": "21"}],
        public=[{"id": "tg", "channel": "telegram", "addresses": {"*": "@news"}},
                {"id": "feed", "channel": "cap", "addresses": {"*": "cap"}}])
    playbook = Playbook.model_validate({
        "id": "gen", "title": "Everyone", "kind": "protest", "languages": list(LANGS),
        "roles": {r: {"title": r, "duties": ["Act"], "approves": True} for r in ROLES},
        "steps": [{"id": "all", "message": "note", "at": "0m", "preapproved": True,
                   "to": {"roles": list(ROLES), "intermediaries": {}, "media": True,
                          "public": ["tg", "feed"]}}]})
    engine = Engine(store, directory)
    incident = engine.activate(playbook, TEMPLATES, city=CITY, timezone="UTC", params={},
                               actor="ann", now=START, mode="exercise",
                               participants=["ann", "bob", "imam"])
    with store.begin() as tx:
        rows = [r.delivery for r in tx.outbox(incident.id)]
    real = {(d.channel, d.address) for d in rows} - {(SANDBOX_CHANNEL, sandbox(incident.id))}
    assert real <= {("email", "ann@city.example")}
    assert not {("telegram", "21"), ("telegram", "@news")} & {
        (d.channel, d.address) for d in rows}
    assert "intermediary:imam" in {d.recipient_id for d in rows}
    assert {d.recipient_id.split(":")[1] for d in rows if d.recipient_id.startswith("public:")
            } == {"tg", "feed"}
    store.dispose()
