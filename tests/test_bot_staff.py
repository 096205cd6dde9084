"""The comms team's console and the intermediaries' line, through the real PTB client.

Scripted conversations: staff in their private chats (anna 5001 incident lead, miriam 5002
spokesperson and backup lead, yusuf 5003 liaison), intermediaries (karim 6001), strangers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drive import SETTINGS, START, Drive, checked
from playbook import links
from playbook.bot import REFUSAL, TelegramBot
from playbook.channels.telegram import TelegramChannel
from playbook.desk import Desk
from playbook.directory import Contact, Directory
from playbook.events import Event
from playbook.fake_telegram import FakeBotApi, Sent
from playbook.i18n import translator
from playbook.phrases import PHRASES
from playbook.store import SqlStore

ANNA, MIRIAM, YUSUF, KARIM = 5001, 5002, 5003, 6001


class Room:
    """The fake Bot API, an engine on a virtual clock, and the bot answering, in one loop."""

    def __init__(self, drive: Drive, api: FakeBotApi, bot: TelegramBot,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.drive, self.api, self.bot, self.loop = drive, api, bot, loop

    def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Let the bot run until `condition` holds (or time runs out)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.loop.run_until_complete(asyncio.sleep(0.02))
        return True

    def chat(self, chat_id: int) -> list[Sent]:
        """Everything the bot sent to one chat, in order."""
        return [m for m in self.api.sent if m.chat_id == chat_id]

    def say(self, chat_id: int, text: str, expect: str = "", **kwargs: Any) -> list[Sent]:
        """Write in a chat and wait for the bot's answer (one containing `expect`)."""
        before = len(self.chat(chat_id))
        self.api.push_message(chat_id, text, **kwargs)
        assert self.until(lambda: any(expect in m.text for m in self.chat(chat_id)[before:])), (
            f"no answer containing {expect!r} to {text!r}: "
            f"{[m.text for m in self.chat(chat_id)[before:]]}")
        self.loop.run_until_complete(asyncio.sleep(0.1))  # the rest of a multi-part answer
        return self.chat(chat_id)[before:]

    def button(self, chat_id: int, label: str) -> tuple[Sent, str]:
        """The newest message in the chat with a button labelled `label`, and its data."""
        for message in reversed(self.chat(chat_id)):
            for row in (message.reply_markup or {}).get("inline_keyboard", []):
                for b in row:
                    if label in b["text"]:
                        return message, str(b["callback_data"])
        raise AssertionError(f"no button {label!r} in chat {chat_id}")

    def tap(self, chat_id: int, label: str, expect: str = "") -> list[Sent]:
        """Press a button and wait for the bot's answer."""
        message, data = self.button(chat_id, label)
        before, answered = len(self.chat(chat_id)), len(self.api.answers)
        self.api.push_callback_query(chat_id, data, message_id=message.message_id)
        if not expect:
            assert self.until(lambda: len(self.api.answers) > answered)
        else:
            assert self.until(lambda: any(expect in m.text
                                          for m in self.chat(chat_id)[before:])), (
                f"no answer containing {expect!r}: "
                f"{[m.text for m in self.chat(chat_id)[before:]]}")
        self.loop.run_until_complete(asyncio.sleep(0.1))
        return self.chat(chat_id)[before:]

    def events(self, kind: str) -> list[Event]:
        """Every incident's log entries of one kind."""
        with self.drive.store.begin() as tx:
            return [e for i in tx.incidents() for e in tx.events(i.id) if e.kind == kind]

    def changes(self) -> tuple[int, int, int]:
        """(incidents, log entries, outbox rows): what a refused update must leave alone."""
        with self.drive.store.begin() as tx:
            found = tx.incidents()
            return (len(found), sum(len(tx.events(i.id)) for i in found),
                    sum(len(tx.outbox(i.id)) for i in found))


@pytest.fixture
def room(store: SqlStore, tmp_path: Path) -> Iterator[Room]:
    """Riverton's engine with Telegram through the fake Bot API, and the bot polling it."""
    loop = asyncio.new_event_loop()
    with FakeBotApi(enforce_limits=False) as api:
        telegram = TelegramChannel(api.token, base_url=api.base_url, timeout=5)
        drive = Drive(store, tmp_path)
        drive.loop = loop
        drive.channels["telegram"] = telegram
        pb = checked()
        desk = Desk(drive.engine, {pb.playbook.id: (pb.playbook, pb.templates)},
                    city=SETTINGS.city_values(), timezone=SETTINGS.city.timezone,
                    now=drive.clock.now)
        bot = TelegramBot(drive.engine, api.token, drive.clock, hotline="+43 1 555 0100",
                          desk=desk, base_url=api.base_url, timeout=5,
                          languages=pb.playbook.languages)
        for chat in (ANNA, MIRIAM, YUSUF, 5004, 5006, 5007, 5008, 7001, 424242):
            api.add_chat(chat)
        try:
            loop.run_until_complete(bot.start())
            yield Room(drive, api, bot, loop)
        finally:
            loop.run_until_complete(bot.stop())
            loop.run_until_complete(telegram.aclose())
            loop.close()


def _words(lang: str, message: str) -> str:
    """The start of a message's translation, up to its first placeholder."""
    return translator(lang).gettext(message).split("%(")[0][:40]


def _contact(directory: Directory, recipient_id: str) -> Contact:
    found = directory.contact(recipient_id)
    assert found is not None
    return found


def _activate(room: Room, mode: str = "ACTUAL") -> str:
    """Anna opens the hate-incident playbook through the guided /activate."""
    room.say(ANNA, "/activate", "Which playbook?")
    room.tap(ANNA, "Hate incident", "A drill, or a real incident?")
    room.tap(ANNA, "ACTUAL INCIDENT" if mode == "ACTUAL" else "Exercise", "what")
    room.tap(ANNA, "vandalism", "location")
    room.say(ANNA, "Market Square", "community")
    room.tap(ANNA, "muslim_community", "support_point")
    summary = room.say(ANNA, "Riverside Community Centre, 12 Rose Street",
                       "real people" if mode == "ACTUAL" else "Nothing reaches")
    assert "Market Square" in summary[-1].text
    label = "OPEN THE ACTUAL INCIDENT" if mode == "ACTUAL" else "Start the exercise"
    opened = room.tap(ANNA, label, "Opened")
    with room.drive.store.begin() as tx:
        [incident] = tx.incidents()
    assert any(incident.id in m.text for m in opened)
    return incident.id


def test_activate_to_stand_down_with_approval_buttons_and_an_acknowledgement(room: Room) -> None:
    """/activate → approvals by button → an intermediary confirms → /standdown, all logged."""
    incident_id = _activate(room)
    [activated] = room.events("activated")
    assert activated.actor == "anna"
    assert activated.data["mode"] == "actual"
    assert activated.data["params"]["location"] == "Market Square"
    assert any("🟥" in m.text and "ACTUAL INCIDENT" in m.text for m in room.chat(ANNA))

    room.drive.run_until(START + timedelta(minutes=20))       # brief-intermediaries drafted
    cards = room.say(MIRIAM, "/approvals", "Or decide every language at once")
    langs = [m for m in cards if m.reply_markup and "Reject" in str(m.reply_markup)]
    with room.drive.store.begin() as tx:
        drafts = tx.drafts(incident_id, "pending")
    assert len(drafts) >= 3
    assert len(langs) == len(drafts)  # each language its own card
    assert all(len(b["callback_data"].encode()) <= 64 for m in langs
               for row in m.reply_markup["inline_keyboard"] for b in row)  # type: ignore[index]
    room.tap(MIRIAM, "Approve all", "Approved")
    assert {e.data["lang"] for e in room.events("approved")} == {d.lang for d in drafts}
    room.drive.send()

    briefing = next(m for m in room.chat(KARIM) if m.reply_markup)
    data = briefing.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    room.api.push_callback_query(KARIM, data, message_id=briefing.message_id)
    assert room.until(lambda: len(room.events("acked")) == 1)
    assert room.events("acked")[0].actor == "intermediary:imam-karim"

    room.drive.run_until(START + timedelta(minutes=45))       # media-holding: miriam notified
    notice = next(m for m in room.chat(MIRIAM) if "Approval needed" in m.text)
    assert "Review the drafts" in str(notice.reply_markup)
    room.tap(MIRIAM, "Review the drafts", "Or decide every language at once")
    room.tap(MIRIAM, "Approve all", "Approved")
    assert any(e.step_id == "media-holding" for e in room.events("approved"))

    room.say(ANNA, "/log Police confirm two suspects were seen on camera", "Logged")
    [logged] = room.events("logged")
    assert logged.actor == "anna"
    assert logged.data["text"].startswith("Police confirm")

    room.say(ANNA, "/standdown", "Stand down")
    room.tap(ANNA, "Stand down", "stood down")
    [stood] = room.events("stood_down")
    assert stood.actor == "anna"
    with room.drive.store.begin() as tx:
        assert room.drive.engine.incident(tx, incident_id).state == "stood_down"
    before = len(room.api.documents)
    room.api.push_message(ANNA, f"/report {incident_id}")
    assert room.until(lambda: len(room.api.documents) > before)
    page = room.api.documents[-1].data.decode("utf-8")
    assert "After-action report" in page
    assert incident_id in page
    assert "stood down" in page.lower()


def test_an_exercise_is_yellow_and_marked_at_every_step(room: Room) -> None:
    """The guided exercise says EXERCISE in every question and opens an exercise incident."""
    _activate(room, mode="EXERCISE")
    [activated] = room.events("activated")
    assert activated.data["mode"] == "exercise"
    asked = [m.text for m in room.chat(ANNA)[2:]]  # from the mode choice on
    questions = [t for t in asked if "Choose" in t or "Send the value" in t]
    assert questions
    assert all("🟨🟨 EXERCISE 🟨🟨" in t for t in questions)
    assert not any("ACTUAL" in t for t in questions)


def test_a_wrong_value_is_asked_again_and_nothing_opens(room: Room) -> None:
    """A value too long for the parameter gets a located reason and the same question."""
    room.say(ANNA, "/activate", "Which playbook?")
    room.tap(ANNA, "Hate incident", "A drill")
    room.tap(ANNA, "Exercise", "what")
    room.tap(ANNA, "assault", "location")
    answer = room.say(ANNA, "x" * 200, "Send it again")
    assert "longer than 80 characters" in answer[-1].text
    room.tap(ANNA, "Cancel", "nothing was opened")
    assert room.changes() == (0, 0, 0)


def test_tasks_are_listed_and_closed_with_a_note(room: Room) -> None:
    """/tasks lists the holder's tasks; Mark done and a typed note close one in the log."""
    _activate(room)
    tasks = room.say(ANNA, "/tasks", "confirm-facts")
    assert any("confirm-facts" in m.text for m in tasks)
    room.tap(ANNA, "Mark done", "What did you do?")
    room.say(ANNA, "Police liaison confirmed: graffiti on the mosque wall", "Done")
    [done] = room.events("task_done")
    assert done.actor == "anna"
    assert done.data["note"].startswith("Police liaison")
    room.say(ANNA, "/tasks", "")
    assert not any("confirm-facts" in m.text for m in room.chat(ANNA)[-1:])


def test_only_leads_may_activate_or_stand_down(room: Room) -> None:
    """Peter (shelter coordinator) is on the roster but may not open or stand down incidents."""
    room.say(5008, "/activate", "You hold no role that may open an incident")
    incident_id = _activate(room)
    before = room.changes()
    room.say(5008, f"/standdown {incident_id}", "Only the holders of roles that approve")
    assert room.changes() == before


def test_a_requester_cannot_approve_their_own_draft(room: Room) -> None:
    """Anna requested the drafts (she activated), so her /approvals shows why she cannot."""
    _activate(room)
    room.drive.run_until(START + timedelta(minutes=20))
    answer = room.say(ANNA, "/approvals", "You cannot approve this")
    assert "second person" in answer[-1].text
    assert not any(m.reply_markup and "Approve" in str(m.reply_markup) for m in answer)


def test_rejecting_asks_why_and_edit_rerenders_for_a_new_approval(room: Room) -> None:
    """Reject asks for a reason and logs it; Edit re-renders with the corrected value."""
    _activate(room)
    room.drive.run_until(START + timedelta(minutes=20))
    room.say(MIRIAM, "/approvals", "Or decide")
    room.tap(MIRIAM, "Reject", "Why do you reject it?")
    room.say(MIRIAM, "The location is wrong", "Rejected 1 draft")
    [rejected] = room.events("rejected")
    assert rejected.data["reason"] == "The location is wrong"
    room.tap(MIRIAM, "Edit", "Which value is wrong?")
    room.tap(MIRIAM, "location", "Send the corrected value")
    room.say(MIRIAM, "Station Square", "revision 2")
    with room.drive.store.begin() as tx:
        pending = tx.drafts(tx.incidents()[0].id, "pending")
    assert pending
    assert {d.revision for d in pending} == {2}
    assert all(d.requested_by == "miriam" for d in pending)
    assert all("Station Square" in d.text for d in pending)


def test_a_stranger_gets_a_polite_refusal_and_changes_nothing(room: Room) -> None:
    """Every staff command from an unknown chat is refused kindly, in their language."""
    incident_id = _activate(room)
    before = room.changes()
    for command in ("/activate", "/status", "/tasks", "/approvals", "/log hello",
                    f"/standdown {incident_id}", "/escalate", "/report", "/playbooks"):
        answer = room.say(424242, command, "/concern", language_code="fr")
        assert "/concern" in answer[-1].text
    assert room.changes() == before
    french = translator("fr").gettext(REFUSAL) % {"hotline": "+43 1 555 0100"}
    assert french != REFUSAL % {"hotline": "+43 1 555 0100"}
    assert all(m.text == french for m in room.chat(424242))


def test_a_forged_or_borrowed_button_does_nothing(room: Room) -> None:
    """A made-up token, and a real one pressed from another chat, change nothing."""
    _activate(room)
    room.drive.run_until(START + timedelta(minutes=20))
    room.say(MIRIAM, "/approvals", "Or decide")
    _, real = room.button(MIRIAM, "Approve all")
    before = room.changes()
    answers = len(room.api.answers)
    room.api.push_callback_query(MIRIAM, "b:ABCDEFGHJKLM")           # forged
    room.api.push_callback_query(ANNA, real)                         # anna borrows miriam's
    room.api.push_callback_query(424242, real)                       # a stranger too
    room.api.push_callback_query(MIRIAM, "b:" + "Z" * 62)            # nonsense, 64 bytes
    assert room.until(lambda: len(room.api.answers) == answers + 4)
    assert all(a.get("text") == "This button no longer works."
               for a in room.api.answers[answers:])
    assert room.changes() == before
    assert not room.events("approved")


def test_a_replayed_update_changes_nothing(room: Room) -> None:
    """Telegram delivering the same update_id again (a retry) is ignored, whatever it holds."""
    _activate(room)
    first = room.api.push_message(ANNA, "/log One entry only")
    assert room.until(lambda: len(room.events("logged")) == 1)
    room.drive.run_until(START + timedelta(minutes=20))
    room.say(MIRIAM, "/approvals", "Or decide")
    message, data = room.button(MIRIAM, "Approve all")
    with room.drive.store.begin() as tx:
        languages = len(tx.drafts(tx.incidents()[0].id, "pending"))
    approvals_tap = room.api.push_callback_query(MIRIAM, data, message_id=message.message_id)
    assert room.until(lambda: len(room.events("approved")) == languages)
    before = room.changes()
    room.api.push_update(dict(first))
    room.api.push_update(dict(approvals_tap))
    room.api.push_message(ANNA, "/status", )
    assert room.until(lambda: any("Opened" in m.text for m in room.chat(ANNA)[-3:]))
    room.loop.run_until_complete(asyncio.sleep(0.3))
    assert room.changes()[0:2] == before[0:2]
    assert len(room.events("logged")) == 1
    assert len(room.events("approved")) == languages


def test_an_intermediary_joins_with_an_invite_and_chooses_a_language(room: Room) -> None:
    """An invite links a new chat once; the chosen language leads their briefings."""
    engine = room.drive.engine
    invite = links.invite(engine, "olena-k", by="yusuf", now=room.drive.clock.now())
    room.api.add_chat(7002)
    room.say(7002, f"/start {invite.code.lower()}",  # Olena reads Ukrainian first
             _words("uk", "In which language do you want to receive briefings?"))
    assert _contact(engine.directory, "intermediary:olena-k").telegram_chat_id == "7002"
    room.tap(7002, "Français", _words(
        "fr", "From now on you receive briefings in %(language)s, when the city has them in it."))
    assert _contact(engine.directory, "intermediary:olena-k").languages[0] == "fr"
    room.say(7001, f"/start {invite.code}", "unknown, used or expired")  # used once only
    expired = links.invite(engine, "taras-b", by="yusuf", now=room.drive.clock.now(),
                           ttl=timedelta(hours=1))
    room.drive.clock.set(room.drive.clock.now() + timedelta(hours=2))
    room.say(7001, f"/start {expired.code}", "unknown, used or expired")
    assert _contact(engine.directory, "intermediary:taras-b").telegram_chat_id != "7001"


def test_a_blocked_chat_turns_inactive_and_the_liaison_is_told(room: Room) -> None:
    """Forbidden marks Karim's Telegram inactive (kept across restarts) and tells Yusuf."""
    from playbook.dispatch import Dispatcher

    drive = room.drive
    drive.dispatcher = Dispatcher(drive.store, drive.channels, drive.clock, on_gone=lambda tx, d,
                                  reason, now: links.gone(drive.engine, tx, d.recipient_id,
                                                          d.address, d.incident_id, reason, now))
    room.api.block(KARIM)
    _activate(room)
    drive.run_until(START + timedelta(minutes=20))
    room.say(MIRIAM, "/approvals", "Or decide")
    room.tap(MIRIAM, "Approve all", "Approved")
    drive.send()
    [inactive] = [e for e in room.events("channel_inactive")
                  if e.data["recipient"] == "intermediary:imam-karim"]
    assert "blocked" in inactive.data["reason"]
    assert _contact(drive.engine.directory, "intermediary:imam-karim").telegram_chat_id is None
    drive.send()
    assert any("Telegram no longer reaches Karim" in m.text for m in room.chat(YUSUF))
    with drive.store.begin() as tx:
        rows = tx.links()
    fresh = links.overlay(drive.engine.files, rows)  # what a restarted service would see
    assert _contact(fresh, "intermediary:imam-karim").telegram_chat_id is None


def test_the_bot_answers_in_the_users_language(room: Room) -> None:
    """Staff who read Arabic first, and strangers writing in Ukrainian, get their catalogs."""
    answer = room.say(424242, "/status", "/concern", language_code="uk")
    assert answer[-1].text == translator("uk").gettext(REFUSAL) % {"hotline": "+43 1 555 0100"}
    room.say(424242, "/concern", "/concern", language_code="uk")
    assert room.chat(424242)[-1].text == PHRASES["concern_empty"]["uk"].format(
        command="/concern")
    leila = room.say(5004, "/start", "/activate")  # Leila reads Persian first
    assert leila[0].text.startswith(translator("fa").gettext(
        "Hello %(name)s. You are on %(city)s's crisis comms roster.")[:6])
    assert "Hello" not in leila[0].text


def test_every_staff_command_answers(room: Room) -> None:
    """/start /help /playbooks /status /escalate /cancel and unknown commands all answer."""
    room.say(ANNA, "/start", "/activate")
    room.say(ANNA, "/help", "/approvals")
    room.say(ANNA, "/status", "No incident is open")
    room.say(ANNA, "/playbooks", "hate-incident")
    _activate(room)
    room.say(ANNA, "/status", "Waiting for approval")
    room.say(ANNA, "/escalate", "Escalate")
    room.tap(ANNA, "Escalate", "escalated")
    [escalated] = room.events("escalated")
    assert escalated.actor == "anna"
    room.say(ANNA, "/standdown", "Stand down")
    room.tap(ANNA, "Cancel", "nothing changed")
    assert not room.events("stood_down")
    room.say(ANNA, "/whatever", "I do not know this command")
    room.say(ANNA, "just some text", "/log")
    room.say(ANNA, "/language", "staff directory")
    room.say(KARIM, "/start", "/concern")  # in Arabic
    room.say(KARIM, "/language", _words(
        "ar", "In which language do you want to receive briefings?"))
    room.say(KARIM, "/status", _words("ar", REFUSAL))
    assert room.events("escalated")[-1].actor == "anna"


def test_the_bot_rides_out_faults(room: Room) -> None:
    """500s, dropped connections and 429s on polling and answers lose no command."""
    room.api.fail_next("500", method="getUpdates")
    room.api.fail_next("drop", method="getUpdates")
    room.say(ANNA, "/status", "No incident is open", )
    room.api.fail_next("500", method="sendMessage")
    room.say(ANNA, "/playbooks", "hate-incident")
    room.api.fail_next("429", method="sendMessage")
    room.say(ANNA, "/status", "No incident is open")
    room.api.fail_next("500", method="answerCallbackQuery")
    _activate(room)
    assert room.api.stats.faults["500"] >= 2
    assert room.api.stats.faults["429"] == 1
    statuses = [m for m in room.chat(ANNA) if "No incident is open" in m.text]
    assert len(statuses) == 2  # each answered once
