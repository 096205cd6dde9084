"""240 intermediaries in twelve language profiles: language, confirmations, concerns.

Each gets the right language; confirmations are chased on the virtual clock; concerns reach the
community liaison.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from drive import HATE_PARAMS, SETTINGS, START, ZONE, Drive, checked, example_directory
from playbook import listening
from playbook.approvals import Approvals
from playbook.audience import person
from playbook.checks import message_context
from playbook.delivery import Delivery
from playbook.directory import Directory, Intermediary
from playbook.errors import BadInput
from playbook.listening import acknowledge, concern, new_tokens
from playbook.model import MessageStep
from playbook.phrases import CODE_ALPHABET, PHRASES, read_code, show_code, with_ack_request
from playbook.ports import AckRow
from playbook.render import FSI, LRI, PDI, RLM, Renderer
from playbook.store import SqlStore

M = timedelta(minutes=1)
STEP = "brief-intermediaries"
# (languages in order of preference, the locale they must get, the template it is written from)
PROFILES: list[tuple[tuple[str, ...], str, str]] = [
    (("ar",), "ar", "ar"),
    (("ar-EG", "en"), "ar-EG", "ar"),          # a regional tag reads its language's template
    (("fa",), "fa", "fa"),
    (("fa-AF", "fa"), "fa-AF", "fa-AF"),       # the Dari version exists: kept
    (("prs",), "fa-AF", "fa-AF"),              # Dari's ISO 639-3 tag
    (("uk", "ru"), "uk", "uk"),
    (("ru", "uk"), "uk", "uk"),                # no Russian: their second language
    (("es",), "es", "es"),
    (("fr-CA",), "fr-CA", "fr"),
    (("en-GB",), "en-GB", "en"),
    (("de", "fr"), "fr", "fr"),
    (("ti",), "en", "en"),                     # no template: the playbook's fallback, reported
]
PEOPLE = 240


def big_directory() -> Directory:
    """Riverton's staff, and 240 intermediaries of one community plus 20 backups of another."""
    people = []
    for i in range(PEOPLE):
        langs = PROFILES[i % len(PROFILES)][0]
        reach = {"telegram_chat_id": str(70000 + i)} if i % 2 == 0 else {
            "email": f"person{i}@example.org"}
        people.append(Intermediary(
            id=f"p{i:03d}", name=f"Person {i:03d}", organisation=f"Org {i % 17}",
            communities=("affected",), areas=(f"area{i % 5}",), languages=langs,
            backup=f"b{i % 20:02d}" if i % 4 == 1 else None, **reach))
    for j in range(20):
        people.append(Intermediary(id=f"b{j:02d}", name=f"Backup {j:02d}",
                                   communities=("neighbours",), languages=("en", "ar"),
                                   telegram_chat_id=str(80000 + j)))
    people.append(Intermediary(id="gone", name="Inactive", communities=("affected",),
                               languages=("ar",), telegram_chat_id="89999", active=False))
    return Directory(staff=example_directory().staff, intermediaries=tuple(people))


@pytest.fixture
def briefed(store: SqlStore, tmp_path: Path) -> tuple[Drive, str]:
    """The hate-incident protocol for community `affected`, its briefing approved and sent."""
    drive = Drive(store, tmp_path, directory=big_directory())
    incident = drive.activate(params={**HATE_PARAMS, "community": "affected"})
    drive.run_until(START + 20 * M)
    Approvals(drive.engine).approve(incident.id, STEP, actor="miriam", now=drive.clock.now())
    drive.send()
    return drive, incident.id


def _briefings(drive: Drive, incident_id: str) -> list[Delivery]:
    return [r.delivery for r in drive.outbox(incident_id) if r.delivery.step_id == STEP]


def _acks(drive: Drive, incident_id: str) -> dict[str, AckRow]:
    with drive.store.begin() as tx:
        return {a.recipient_id: a for a in tx.acks(incident_id)}


def test_each_intermediary_gets_their_language(briefed: tuple[Drive, str]) -> None:
    """240 people, 12 language profiles: the right locale each, rendered from the right template."""
    drive, incident_id = briefed
    got = {d.recipient_id: d for d in _briefings(drive, incident_id)}
    assert len(got) == PEOPLE  # nobody twice, the inactive and the other community not at all
    for i in range(PEOPLE):
        assert got[f"intermediary:p{i:03d}"].lang == PROFILES[i % len(PROFILES)][1], i
    assert len({d.lang for d in got.values()}) >= 6
    pb = checked()
    context = message_context(pb.playbook, {**HATE_PARAMS, "community": "affected"},
                              SETTINGS.city_values(), START, incident_id,
                              pb.playbook.message_steps()[0], 1)
    renderer = Renderer(ZONE)
    for _, locale, template in PROFILES:
        sample = next(d for d in got.values() if d.lang == locale)
        source = pb.templates.get("hate_incident_briefing", template)
        assert source is not None
        assert sample.text == renderer.render(source, context, locale=locale).text


def test_the_fallback_is_logged_not_silent(briefed: tuple[Drive, str]) -> None:
    """Tigrinya readers get English, and the log names every one of them."""
    drive, incident_id = briefed
    enqueued = next(e for e in drive.events(incident_id, "enqueued") if e.step_id == STEP)
    tigrinya = {f"intermediary:p{i:03d}" for i in range(PEOPLE)
                if PROFILES[i % len(PROFILES)][0] == ("ti",)}
    assert set(enqueued.data["fallback"]) == tigrinya
    assert enqueued.data["asked_to_confirm"] == PEOPLE


def test_confirmations_are_chased_then_escalated(briefed: tuple[Drive, str]) -> None:
    """Silent people are reminded, then their backup and the liaison told; others left alone."""
    drive, incident_id = briefed
    acks = _acks(drive, incident_id)
    assert len(acks) == PEOPLE
    drive.run_until(START + 40 * M)
    confirmed = {f"intermediary:p{i:03d}" for i in range(0, PEOPLE, 2)}
    for rid in sorted(confirmed):
        acknowledge(drive.engine, show_code(acks[rid].token), relayed=rid.endswith(("0", "4")),
                    via="telegram", actor=rid, now=drive.clock.now())
    silent = set(acks) - confirmed

    drive.run_until(START + 50 * M)  # approved at +20m, ack_within 30m
    reminders = [d for d in drive.outbox(incident_id)
                 if d.delivery.key.endswith("/reminder")]
    assert {d.delivery.recipient_id for d in reminders} == silent
    assert len(drive.events(incident_id, "reminded")) == len(silent)
    arabic = next(d.delivery for d in reminders if d.delivery.lang == "ar-EG")
    assert PHRASES["reminder"]["ar"] in arabic.text
    assert arabic.meta["ack_token"] == acks[arabic.recipient_id].token  # the same code again

    late = sorted(silent)[0]
    acknowledge(drive.engine, acks[late].token, relayed=False, via="cli", actor="yusuf",
                now=drive.clock.now())
    drive.run_until(START + 80 * M)
    overdue = drive.events(incident_id, "ack_overdue")
    assert {e.data["recipient"] for e in overdue} == silent - {late}
    assert all(e.data["notified"] == ["yusuf"] for e in overdue)  # the community liaison
    liaison = [d.delivery for d in drive.outbox(incident_id)
               if d.delivery.recipient_id == "staff:yusuf" and d.delivery.key.endswith("/silent")]
    assert len(liaison) == len(silent) - 1
    backups_told = {e.data["backup"] for e in overdue if e.data["backup"]}
    with_backup = {f"intermediary:b{int(r[-3:]) % 20:02d}" for r in silent - {late}
                   if int(r[-3:]) % 4 == 1}
    assert backups_told == with_backup
    assert with_backup  # the directory gives every fourth person a backup
    to_backups = [d.delivery for d in drive.outbox(incident_id)
                  if d.delivery.key.endswith("/backup")]
    assert {d.recipient_id for d in to_backups} == with_backup
    assert all(d.lang == "en" and "could not reach" in d.text for d in to_backups)
    final = _acks(drive, incident_id)
    assert {r for r, a in final.items() if a.silent} == silent - {late}
    assert final[late].acked_at is not None
    assert not final[late].silent

    drive.run_until(START + 111 * M)  # the backups' own deadline: only the liaison is told
    again = [e for e in drive.events(incident_id, "ack_overdue")
             if e.data["recipient"] in with_backup]
    assert len(again) == len(with_backup)
    assert all(e.data["backup"] is None for e in again)


def test_a_confirmation_counts_once_and_a_forged_code_changes_nothing(
        briefed: tuple[Drive, str]) -> None:
    """Tapping twice logs one confirmation; a made-up code is refused and logs nothing."""
    drive, incident_id = briefed
    ack = _acks(drive, incident_id)["intermediary:p000"]
    now = drive.clock.now()
    first = acknowledge(drive.engine, ack.token, relayed=False, via="telegram", actor="p",
                        now=now)
    acknowledge(drive.engine, ack.token, relayed=False, via="telegram", actor="p", now=now)
    shared = acknowledge(drive.engine, ack.token.lower(), relayed=True, via="telegram",
                         actor="p", now=now + M)
    assert first.acked_at == now
    assert shared.relayed_at == now + M
    assert [e.data["relayed"] for e in drive.events(incident_id, "acked")] == [False, True]
    before = len(drive.events(incident_id))
    with pytest.raises(BadInput, match="no briefing has this confirmation code"):
        acknowledge(drive.engine, "ZZZZ-ZZZZ", relayed=True, via="telegram", actor="x", now=now)
    with pytest.raises(BadInput):  # someone else's code from another chat
        acknowledge(drive.engine, ack.token, relayed=True, via="telegram", actor="x", now=now,
                    only_for="intermediary:p001")
    assert len(drive.events(incident_id)) == before


def test_concerns_are_logged_and_forwarded(briefed: tuple[Drive, str]) -> None:
    """A concern lands in the incident log and, escaped, with the community liaison."""
    drive, incident_id = briefed
    text = "Families are afraid to go to Friday prayers <b>tomorrow</b>"
    logged = concern(drive.engine, text, sender="intermediary:p001", name="Person 001",
                     via="telegram", now=drive.clock.now(), ref="telegram:17")
    again = concern(drive.engine, text, sender="intermediary:p001", name="Person 001",
                    via="telegram", now=drive.clock.now(), ref="telegram:17")
    assert logged == again == incident_id  # the incident they were briefed in
    [event] = drive.events(incident_id, "concern")  # a re-delivered update is logged once
    assert (event.data["text"], event.data["from"]) == (text, "intermediary:p001")
    drive.send()
    [forwarded] = [r.delivery for r in drive.outbox(incident_id)
                   if r.delivery.recipient_id == "staff:yusuf" and "/concern/" in r.delivery.key]
    assert "&lt;b&gt;tomorrow&lt;/b&gt;" in forwarded.text
    assert forwarded.address == "5003"
    with pytest.raises(BadInput, match="empty"):
        concern(drive.engine, "  ", sender="x", name="x", via="cli", now=drive.clock.now())


def test_a_concern_with_no_open_incident_is_not_lost_silently(store: SqlStore,
                                                             tmp_path: Path) -> None:
    """With nothing open, `concern` says so (None) so the bot can give the hotline instead."""
    drive = Drive(store, tmp_path, directory=big_directory())
    assert concern(drive.engine, "hello", sender="resident:telegram:9", name="R", via="telegram",
                   now=drive.clock.now()) is None


def test_right_to_left_requests_read_right_character_by_character() -> None:
    """The Arabic and Persian confirmation lines start right to left and isolate the code."""
    for lang in ("ar", "ar-EG", "fa", "fa-AF"):
        delivery = Delivery("k", "2026-0001", False, STEP, 1, "intermediary:x", "X", lang,
                            "email", "x@example.org", "", "\u200fنص", START,
                            {"ack_token": "K7F3Q2MX"})
        line = with_ack_request(delivery, buttons=False).split("\n")[-1]
        assert line.startswith("<i>" + RLM), lang
        at = line.index("K7F3-Q2MX")
        assert line[at - 1] == LRI, lang
        assert line[at + len("K7F3-Q2MX")] == PDI, lang
        outside = line.replace(f"{LRI}K7F3-Q2MX{PDI}", "")
        for ch in outside.removeprefix("<i>").removesuffix("</i>"):
            assert not (ch.isascii() and ch.isalnum()), (lang, ch)
        assert FSI not in outside
        assert PDI not in outside
    english = Delivery("k", "2026-0001", False, STEP, 1, "intermediary:x", "X", "en",
                       "email", "x@example.org", "", "Text", START, {"ack_token": "K7F3Q2MX"})
    assert RLM not in with_ack_request(english, buttons=False)
    assert Counter(with_ack_request(english, buttons=True))[LRI] == 0


def test_codes_drawn_at_once_are_distinct_and_typeable() -> None:
    """A city-wide batch of codes: 8 characters each from the typeable alphabet, none twice."""
    codes = new_tokens(5000)
    assert len(set(codes)) == 5000
    assert all(len(c) == 8 and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert all(read_code(show_code(c).lower()) == c for c in codes[:50])
    assert len({c[0] for c in codes}) == len(CODE_ALPHABET)  # every first character occurs


def test_a_code_another_briefing_holds_is_drawn_again(briefed: tuple[Drive, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A new code that happens to equal a stored one is replaced, not a failed step."""
    drive, incident_id = briefed
    taken = _acks(drive, incident_id)["intermediary:p000"].token
    draws = iter([[taken], ["FRESH234"]])
    monkeypatch.setattr(listening, "new_tokens", lambda count: next(draws))
    with drive.store.begin() as tx:
        incident = tx.incident(incident_id)
        assert incident is not None
        step = drive.engine.version(incident).step(STEP)
        assert isinstance(step, MessageStep)
        someone = person(big_directory().intermediaries[1], "intermediary")
        got = listening.ask(tx, incident, step, 2, [someone], {}, drive.clock.now())
    assert got == {someone.id: "FRESH234"}
    assert {a.token for a in _acks(drive, incident_id).values()} >= {taken, "FRESH234"}
