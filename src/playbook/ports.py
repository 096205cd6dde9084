"""What the engine and the dispatcher need from the database, as plain records and a protocol.

The store (`store.py`, SQLAlchemy) implements `Tx`; the orchestration layer sees only this, so it
never imports a database library and tests of the flow run on the real store all the same.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from playbook.delivery import Delivery
from playbook.directory import Assignment
from playbook.events import Event

Mode = Literal["actual", "exercise"]


@dataclass(frozen=True)
class IncidentRow:
    """One activation of a playbook, with the exact version it started with."""

    id: str
    playbook_id: str
    title: str
    kind: str
    version: str
    frozen: Mapping[str, Any]
    """{"playbook": model JSON, "templates": {key: {lang: text}}, "city": {...}, "timezone": ...}"""
    mode: Mode
    params: Mapping[str, Any]
    started_at: datetime
    activated_by: str
    state: str = "open"
    participants: tuple[str, ...] = ()
    head_seq: int = 0
    head_hash: str = ""

    @property
    def exercise(self) -> bool:
        """Whether this incident is a drill."""
        return self.mode == "exercise"


@dataclass(frozen=True)
class ScheduleRow:
    """One occurrence of a step the database says is, or will be, due."""

    id: int
    incident_id: str
    step_id: str
    number: int
    due_at: datetime
    state: str = "pending"
    fired_at: datetime | None = None


@dataclass(frozen=True)
class TaskRow:
    """A task handed to a role holder, with its deadline."""

    incident_id: str
    step_id: str
    number: int
    role: str
    holder: str | None
    due_by: datetime | None
    done_at: datetime | None = None
    done_by: str = ""
    note: str = ""
    overdue: bool = False


@dataclass(frozen=True)
class DraftRow:
    """One language of a message waiting for a second person's approval."""

    id: int
    incident_id: str
    step_id: str
    number: int
    lang: str
    revision: int
    subject: str
    text: str
    fingerprint: str
    requested_by: str
    requested_at: datetime
    escalate_at: datetime | None
    state: str = "pending"
    escalated: bool = False
    decided_by: str = ""
    decided_at: datetime | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewEvent:
    """One log entry to append, for `Tx.append_many`."""

    kind: str
    at: datetime
    step_id: str = ""
    actor: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxRow:
    """A delivery in the outbox, with its sending state."""

    id: int
    delivery: Delivery
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str = ""
    reclaimed: int = 0
    unknown_outcomes: int = 0


@dataclass(frozen=True)
class AckRow:
    """A briefing a recipient was asked to confirm, and how far the chase has gone."""

    incident_id: str
    step_id: str
    number: int
    recipient_id: str
    recipient_name: str
    lang: str
    token: str
    """The unguessable code in the buttons and the e-mail that confirms this one briefing."""
    asked_at: datetime
    due_at: datetime
    stage: int = 0
    """0 waiting; 1 reminded; 2 escalated to the backup contact and the liaison (chase over)."""
    backup_for: str = ""
    """Set when this person was asked because `backup_for` stayed silent."""
    acked_at: datetime | None = None
    relayed_at: datetime | None = None
    via: str = ""

    @property
    def silent(self) -> bool:
        """Past the last deadline with no confirmation."""
        return self.acked_at is None and self.stage >= 2


@dataclass(frozen=True)
class InviteRow:
    """A single-use code that links one intermediary's Telegram chat to their directory entry."""

    code: str
    person_id: str
    """`intermediary:<id>`."""
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    chat_id: str = ""


@dataclass(frozen=True)
class LinkRow:
    """What the bot learnt about a person's Telegram: their chat, chosen language, if it works."""

    person_id: str
    chat_id: str
    language: str
    active: bool
    updated_at: datetime
    note: str = ""
    """Why it is inactive (the person blocked the bot), for the liaison and status."""


@dataclass(frozen=True)
class ButtonRow:
    """What one inline button does, kept on the server: the button carries only `token`."""

    token: str
    owner: str
    """The directory id (`staff:anna`) allowed to press it; anyone else changes nothing."""
    action: str
    payload: Mapping[str, Any]
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class Tx(Protocol):
    """One database transaction; everything in it commits together or not at all."""

    def next_incident_id(self, year: int) -> str: ...
    def insert_incident(self, incident: IncidentRow) -> None: ...
    def incident(self, incident_id: str) -> IncidentRow | None: ...
    def incidents(self, *, open_only: bool = False) -> list[IncidentRow]: ...
    def set_state(self, incident_id: str, state: str) -> None: ...
    def append(self, incident_id: str, kind: str, at: datetime, *, step_id: str = "",
               actor: str = "", data: Mapping[str, Any] | None = None) -> Event: ...
    def append_many(self, incident_id: str, entries: Sequence[NewEvent]) -> list[Event]: ...
    def events(self, incident_id: str, after: int = 0) -> list[Event]: ...
    def has_event(self, incident_id: str, kind: str) -> bool: ...
    def insert_assignments(self, incident_id: str,
                           assignments: Iterable[Assignment]) -> None: ...
    def assignments(self, incident_id: str) -> list[Assignment]: ...
    def add_schedule(self, incident_id: str, step_id: str, due_at: datetime,
                     number: int | None = None) -> None: ...
    def due(self, now: datetime, limit: int = 100, only: str | None = None,
            ) -> list[ScheduleRow]: ...
    def claim_schedule(self, row_id: int, state: str, at: datetime) -> bool: ...
    def cancel_pending(self, incident_id: str, step_ids: Sequence[str]) -> int: ...
    def stop_all(self, incident_id: str) -> tuple[int, int]: ...
    def schedule(self, incident_id: str) -> list[ScheduleRow]: ...
    def add_task(self, task: TaskRow) -> None: ...
    def tasks(self, incident_id: str, *, open_only: bool = False) -> list[TaskRow]: ...
    def overdue_tasks(self, now: datetime, only: str | None = None) -> list[TaskRow]: ...
    def update_task(self, incident_id: str, step_id: str, number: int,
                    **changes: Any) -> None: ...
    def add_draft(self, draft: DraftRow) -> int: ...
    def drafts(self, incident_id: str, state: str | None = None) -> list[DraftRow]: ...
    def drafts_to_escalate(self, now: datetime, only: str | None = None,
                           ) -> list[DraftRow]: ...
    def update_draft(self, draft_id: int, **changes: Any) -> None: ...
    def enqueue(self, deliveries: Iterable[Delivery], now: datetime) -> int: ...
    def claim(self, now: datetime, worker: str, lease_until: datetime,
              limit: int, only: str | None = None,
              one_per_chat: Collection[str] = ()) -> list[OutboxRow]: ...
    def renew(self, ids: Sequence[int], worker: str, lease_until: datetime) -> int: ...
    def finish(self, row_id: int, state: str, *, at: datetime, error: str = "",
               receipt: str = "", next_attempt_at: datetime | None = None,
               unknown: bool = False) -> None: ...
    def finish_sent(self, receipts: Sequence[tuple[int, str]], at: datetime) -> None: ...
    def outbox(self, incident_id: str, *, step_id: str | None = None, number: int | None = None,
               recipient_id: str | None = None) -> list[OutboxRow]: ...
    def cap_alerts(self, incident_id: str, exclude: str) -> list[tuple[str, str]]: ...
    def outbox_counts(self, incident_id: str | None = None) -> dict[str, int]: ...
    def add_acks(self, acks: Iterable[AckRow]) -> int: ...
    def acks(self, incident_id: str, *, open_only: bool = False) -> list[AckRow]: ...
    def acks_due(self, now: datetime, limit: int = 100, only: str | None = None,
                 ) -> list[AckRow]: ...
    def ack_by_token(self, token: str) -> AckRow | None: ...
    def update_ack(self, ack: AckRow, **changes: Any) -> None: ...
    def replied_to(self, channel: str, address: str, receipt: str) -> Delivery | None: ...
    def recipient_incidents(self, recipient_id: str) -> list[str]: ...
    def next_wake(self, only: str | None = None) -> datetime | None: ...
    # the Telegram bot's records
    def add_invite(self, invite: InviteRow) -> None: ...
    def invite(self, code: str) -> InviteRow | None: ...
    def use_invite(self, code: str, chat_id: str, at: datetime) -> bool: ...
    def set_link(self, link: LinkRow) -> None: ...
    def links(self) -> list[LinkRow]: ...
    def add_buttons(self, buttons: Iterable[ButtonRow]) -> None: ...
    def button(self, token: str) -> ButtonRow | None: ...
    def use_button(self, token: str, at: datetime) -> bool: ...
    def first_sight(self, update_id: int, at: datetime) -> bool: ...


class Store(Protocol):
    """A database: transactions, and its URL for messages."""

    url: str

    def begin(self) -> AbstractContextManager[Tx]:
        """A transaction; commits on success, rolls back on any exception."""
        ...

