"""The database: SQLite by default (WAL, one writer at a time), PostgreSQL for a city's service.

SQLAlchemy Core, no ORM: the engine asks for a handful of precise queries, each easy to read next
to its table. Schema changes go through Alembic migrations (`playbook/migrations/`); this module's
tables are what those migrations build, and a test compares the two.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from playbook.chatstore import ChatRecords
from playbook.delivery import Delivery
from playbook.directory import Assignment
from playbook.errors import RuntimeFailure
from playbook.events import GENESIS, Event, chain
from playbook.ports import (
    AckRow,
    DraftRow,
    IncidentRow,
    NewEvent,
    OutboxRow,
    ScheduleRow,
    TaskRow,
)
from playbook.tables import acks, assignments, drafts, events, incidents, outbox, schedule, tasks

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit off in the driver so `begin` below can say BEGIN IMMEDIATE: one writer at a
    # time, waiting instead of failing ("database is locked") when the dispatcher is writing.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # The wait first: switching to WAL needs the lock too, and would fail at once otherwise.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore:
    """The database behind one `playbook` installation."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise RuntimeFailure(f"cannot use database {redact(url)}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[StoreTx]:
        """A transaction; commits on success, rolls back on any exception."""
        try:
            with self.engine.begin() as conn:
                yield StoreTx(conn)
        except sa.exc.OperationalError as exc:
            raise RuntimeFailure(f"database {redact(self.url)} failed: "
                                 f"{exc.orig or exc}") from exc

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable database url>"


_FROZEN: dict[str, Mapping[str, Any]] = {}
"""Frozen playbook documents by their SHA-256, the few most recently read."""


def _remember(version: str, frozen: Mapping[str, Any]) -> None:
    if len(_FROZEN) >= 8:
        del _FROZEN[next(iter(_FROZEN))]
    _FROZEN[version] = frozen


def _row(cls: Any, row: Any, **extra: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in row._mapping.items() if k in names}
    return cls(**{**values, **extra})


class StoreTx(ChatRecords):
    """The queries of one transaction (see `playbook.ports.Tx` for what each promises)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert(table) if self.pg else sqlite.insert(table))

    # incidents and the log

    def next_incident_id(self, year: int) -> str:
        prefix = f"{year}-"
        last = self.conn.scalar(sa.select(sa.func.max(incidents.c.id)).where(
            incidents.c.id.like(prefix + "%")))
        number = int(last.split("-")[1]) + 1 if last else 1
        return f"{prefix}{number:04d}"

    def insert_incident(self, incident: IncidentRow) -> None:
        values = dataclasses.asdict(incident)
        values.update(participants=list(incident.participants), head_seq=0, head_hash=GENESIS)
        self.conn.execute(incidents.insert().values(**values))

    def incident(self, incident_id: str) -> IncidentRow | None:
        # The frozen document is written once and named by its SHA-256 (`version`): it is read
        # and decoded once per version, not on every look at the incident's state.
        columns = [c for c in incidents.c if c.name != "frozen"]
        row = self.conn.execute(sa.select(*columns).where(incidents.c.id == incident_id)).first()
        if row is None:
            return None
        frozen = _FROZEN.get(row.version)
        if frozen is None:
            frozen = self.conn.execute(sa.select(incidents.c.frozen).where(
                incidents.c.id == incident_id)).scalar_one()
            _remember(row.version, frozen)
        found: IncidentRow = _row(IncidentRow, row, frozen=frozen,
                                  participants=tuple(row.participants))
        return found

    def incidents(self, *, open_only: bool = False) -> list[IncidentRow]:
        query = incidents.select().order_by(incidents.c.started_at, incidents.c.id)
        if open_only:
            query = query.where(incidents.c.state != "closed")
        return [_row(IncidentRow, r, participants=tuple(r.participants))
                for r in self.conn.execute(query)]

    def set_state(self, incident_id: str, state: str) -> None:
        self.conn.execute(incidents.update().where(incidents.c.id == incident_id)
                          .values(state=state))

    def append(self, incident_id: str, kind: str, at: datetime, *, step_id: str = "",
               actor: str = "", data: Mapping[str, Any] | None = None) -> Event:
        head = sa.select(incidents.c.head_seq, incidents.c.head_hash).where(
            incidents.c.id == incident_id)
        if self.pg:
            head = head.with_for_update()  # one writer per incident chain at a time
        found = self.conn.execute(head).first()
        if found is None:
            raise RuntimeFailure(f"no incident {incident_id}")
        event = chain(incident_id, found.head_seq + 1, at, kind, prev_hash=found.head_hash,
                      step_id=step_id, actor=actor, data=data)
        self.conn.execute(events.insert().values(**{
            f.name: getattr(event, f.name) for f in dataclasses.fields(event)}))
        self.conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
            head_seq=event.seq, head_hash=event.hash))
        return event

    def append_many(self, incident_id: str, entries: Sequence[NewEvent]) -> list[Event]:
        """`append` for each entry in order: the head read once, one insert for all."""
        if not entries:
            return []
        head = sa.select(incidents.c.head_seq, incidents.c.head_hash).where(
            incidents.c.id == incident_id)
        if self.pg:
            head = head.with_for_update()
        found = self.conn.execute(head).first()
        if found is None:
            raise RuntimeFailure(f"no incident {incident_id}")
        made: list[Event] = []
        seq, prev = found.head_seq, found.head_hash
        for entry in entries:
            seq += 1
            event = chain(incident_id, seq, entry.at, entry.kind, prev_hash=prev,
                          step_id=entry.step_id, actor=entry.actor, data=entry.data)
            made.append(event)
            prev = event.hash
        names = [f.name for f in dataclasses.fields(Event)]
        self.conn.execute(events.insert(), [{n: getattr(e, n) for n in names} for e in made])
        self.conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
            head_seq=seq, head_hash=prev))
        return made

    def events(self, incident_id: str, after: int = 0) -> list[Event]:
        query = events.select().where(events.c.incident_id == incident_id,
                                      events.c.seq > after).order_by(events.c.seq)
        return [_row(Event, r) for r in self.conn.execute(query)]

    def has_event(self, incident_id: str, kind: str) -> bool:
        found = self.conn.scalar(sa.select(events.c.seq).where(
            events.c.incident_id == incident_id, events.c.kind == kind).limit(1))
        return found is not None

    # roles, schedule, tasks

    def insert_assignments(self, incident_id: str, assigned: Iterable[Assignment]) -> None:
        rows = [{"incident_id": incident_id, **dataclasses.asdict(a)} for a in assigned]
        if rows:
            self.conn.execute(assignments.insert(), rows)

    def assignments(self, incident_id: str) -> list[Assignment]:
        query = assignments.select().where(assignments.c.incident_id == incident_id)
        return [_row(Assignment, r) for r in self.conn.execute(query)]

    def add_schedule(self, incident_id: str, step_id: str, due_at: datetime,
                     number: int | None = None) -> None:
        if number is None:
            last = self.conn.scalar(sa.select(sa.func.max(schedule.c.number)).where(
                schedule.c.incident_id == incident_id, schedule.c.step_id == step_id))
            number = (last or 0) + 1
        self.conn.execute(self._insert(schedule).values(
            incident_id=incident_id, step_id=step_id, number=number, due_at=due_at,
            state="pending").on_conflict_do_nothing())

    def due(self, now: datetime, limit: int = 100, only: str | None = None,
            ) -> list[ScheduleRow]:
        query = (_live(schedule.select().where(schedule.c.state == "pending",
                                               schedule.c.due_at <= now), schedule, only)
                 .order_by(schedule.c.due_at, schedule.c.id).limit(limit))
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        return [_row(ScheduleRow, r) for r in self.conn.execute(query)]

    def claim_schedule(self, row_id: int, state: str, at: datetime) -> bool:
        done = self.conn.execute(schedule.update().where(
            schedule.c.id == row_id, schedule.c.state == "pending").values(
                state=state, fired_at=at))
        return done.rowcount == 1

    def cancel_pending(self, incident_id: str, step_ids: Sequence[str]) -> int:
        done = self.conn.execute(schedule.update().where(
            schedule.c.incident_id == incident_id, schedule.c.state == "pending",
            schedule.c.step_id.in_(list(step_ids))).values(state="cancelled"))
        return int(done.rowcount)

    def stop_all(self, incident_id: str) -> tuple[int, int]:
        """Cancel every pending step and every unsent delivery of an incident: a "no play" stop."""
        steps = self.conn.execute(schedule.update().where(
            schedule.c.incident_id == incident_id, schedule.c.state == "pending").values(
                state="cancelled"))
        unsent = self.conn.execute(outbox.update().where(
            outbox.c.incident_id == incident_id, outbox.c.state == "queued").values(
                state="cancelled", last_error="the exercise was ended"))
        return int(steps.rowcount), int(unsent.rowcount)

    def schedule(self, incident_id: str) -> list[ScheduleRow]:
        query = schedule.select().where(schedule.c.incident_id == incident_id).order_by(
            schedule.c.due_at, schedule.c.id)
        return [_row(ScheduleRow, r) for r in self.conn.execute(query)]

    def add_task(self, task: TaskRow) -> None:
        self.conn.execute(self._insert(tasks).values(**dataclasses.asdict(task))
                          .on_conflict_do_nothing())

    def tasks(self, incident_id: str, *, open_only: bool = False) -> list[TaskRow]:
        query = tasks.select().where(tasks.c.incident_id == incident_id).order_by(
            tasks.c.due_by, tasks.c.step_id)
        if open_only:
            query = query.where(tasks.c.done_at.is_(None))
        return [_row(TaskRow, r) for r in self.conn.execute(query)]

    def overdue_tasks(self, now: datetime, only: str | None = None) -> list[TaskRow]:
        query = _live(tasks.select().where(tasks.c.done_at.is_(None), tasks.c.overdue.is_(False),
                                           tasks.c.due_by <= now), tasks, only)
        return [_row(TaskRow, r) for r in self.conn.execute(query)]

    def update_task(self, incident_id: str, step_id: str, number: int, **changes: Any) -> None:
        self.conn.execute(tasks.update().where(
            tasks.c.incident_id == incident_id, tasks.c.step_id == step_id,
            tasks.c.number == number).values(**changes))

    # approvals

    def add_draft(self, draft: DraftRow) -> int:
        values = dataclasses.asdict(draft)
        del values["id"]
        key = self.conn.execute(drafts.insert().values(**values)).inserted_primary_key
        return int(key[0]) if key else 0

    def drafts(self, incident_id: str, state: str | None = None) -> list[DraftRow]:
        query = drafts.select().where(drafts.c.incident_id == incident_id).order_by(drafts.c.id)
        if state is not None:
            query = query.where(drafts.c.state == state)
        return [_row(DraftRow, r) for r in self.conn.execute(query)]

    def drafts_to_escalate(self, now: datetime, only: str | None = None) -> list[DraftRow]:
        query = _live(drafts.select().where(drafts.c.state == "pending",
                                            drafts.c.escalated.is_(False),
                                            drafts.c.escalate_at <= now), drafts, only)
        return [_row(DraftRow, r) for r in self.conn.execute(query.order_by(drafts.c.id))]

    def update_draft(self, draft_id: int, **changes: Any) -> None:
        self.conn.execute(drafts.update().where(drafts.c.id == draft_id).values(**changes))

    # the outbox

    def enqueue(self, deliveries: Iterable[Delivery], now: datetime) -> int:
        names = _FIELDS[Delivery]
        fixed = {"state": "queued", "attempts": 0, "next_attempt_at": now, "claimed_by": "",
                 "last_error": "", "receipt": "", "reclaimed": 0, "unknown_outcomes": 0}
        statement = self._insert(outbox).on_conflict_do_nothing(index_elements=["key"])
        inserted = 0
        # A batch of rows at a time: a city-wide briefing's 200,000 rows as dicts at once
        # took more memory than the deliveries themselves.
        for batch in _batches(deliveries, 500):
            rows = [{**{n: getattr(d, n) for n in names}, "meta": dict(d.meta), **fixed}
                    for d in batch]
            inserted += self._insert_many(statement, rows)
        return inserted

    def _insert_many(self, statement: Any, rows: list[dict[str, Any]]) -> int:
        """Insert rows with the driver's `executemany`; how many were new (not skipped).

        Not RETURNING: SQLAlchemy then renders one statement with a parameter per cell, which
        psycopg parses anew each time (it caches only short statements), 6 µs a parameter, so a
        10,000-person briefing spent 3 of its 4 seconds on PostgreSQL there. Both drivers sum
        the row count over `executemany` (sqlite3 always, psycopg since 3.1); SQLAlchemy keeps
        it when asked to.
        """
        if not rows:
            return 0
        done = self.conn.execute(statement.execution_options(preserve_rowcount=True), rows)
        if done.rowcount < 0:
            raise RuntimeFailure("the database driver did not say how many rows it inserted")
        return int(done.rowcount)

    def claim(self, now: datetime, worker: str, lease_until: datetime,
              limit: int, only: str | None = None,
              one_per_chat: Collection[str] = ()) -> list[OutboxRow]:
        ready = sa.or_(sa.and_(outbox.c.state == "queued", outbox.c.next_attempt_at <= now),
                       sa.and_(outbox.c.state == "sending", outbox.c.lease_until < now))
        if only is not None:
            ready = sa.and_(ready, outbox.c.incident_id == only)
        # One row per chat in a batch, on channels that pace each chat: a chat's second
        # message must wait its interval after the first, and a batch that ends waiting for it
        # alone leaves the channel idle. That chat's other rows go in the next batches.
        query = sa.select(outbox.c.id, outbox.c.state, outbox.c.channel, outbox.c.address
                          ).where(ready).order_by(outbox.c.next_attempt_at, outbox.c.id
                                                  ).limit(limit * 3)
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        chats: set[tuple[str, str]] = set()
        picked: list[Any] = []
        for r in self.conn.execute(query):
            if len(picked) == limit:
                break
            if r.channel in one_per_chat:
                if (r.channel, r.address) in chats:
                    continue
                chats.add((r.channel, r.address))
            picked.append(r)
        if not picked:
            return []
        expired = [r.id for r in picked if r.state == "sending"]
        ids = [r.id for r in picked]
        self.conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(
            state="sending", lease_until=lease_until, claimed_by=worker,
            attempts=outbox.c.attempts + 1))
        if expired:  # a worker died mid-send: the recipient may already have it
            self.conn.execute(outbox.update().where(outbox.c.id.in_(expired)).values(
                reclaimed=outbox.c.reclaimed + 1))
        rows = self.conn.execute(outbox.select().where(outbox.c.id.in_(ids)).order_by(
            outbox.c.next_attempt_at, outbox.c.id))
        return [self._outbox_row(r) for r in rows]

    def renew(self, ids: Sequence[int], worker: str, lease_until: datetime) -> int:
        done = self.conn.execute(outbox.update().where(
            outbox.c.id.in_(list(ids)), outbox.c.state == "sending",
            outbox.c.claimed_by == worker).values(lease_until=lease_until))
        return int(done.rowcount)

    def finish(self, row_id: int, state: str, *, at: datetime, error: str = "",
               receipt: str = "", next_attempt_at: datetime | None = None,
               unknown: bool = False) -> None:
        values: dict[str, Any] = {"state": state, "last_error": error, "lease_until": None}
        if state == "sent":
            values.update(sent_at=at, receipt=receipt)
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if unknown:
            values["unknown_outcomes"] = outbox.c.unknown_outcomes + 1
        self.conn.execute(outbox.update().where(outbox.c.id == row_id).values(**values))

    def finish_sent(self, receipts: Sequence[tuple[int, str]], at: datetime) -> None:
        """`finish(row_id, "sent", at=at, receipt=receipt)` for each pair, in one statement."""
        if not receipts:
            return
        query = outbox.update().where(outbox.c.id == sa.bindparam("row_id")).values(
            state="sent", last_error="", lease_until=None, sent_at=at,
            receipt=sa.bindparam("row_receipt"))
        self.conn.execute(query, [{"row_id": row_id, "row_receipt": receipt}
                                  for row_id, receipt in receipts])

    def outbox(self, incident_id: str, *, step_id: str | None = None, number: int | None = None,
               recipient_id: str | None = None) -> list[OutboxRow]:
        query = outbox.select().where(outbox.c.incident_id == incident_id).order_by(outbox.c.id)
        for column, value in (("step_id", step_id), ("number", number),
                              ("recipient_id", recipient_id)):
            if value is not None:
                query = query.where(outbox.c[column] == value)
        return [self._outbox_row(r) for r in self.conn.execute(query)]

    def cap_alerts(self, incident_id: str, exclude: str) -> list[tuple[str, str]]:
        """(identifier, sent) of the CAP alerts already queued for an incident, oldest first."""
        query = sa.select(outbox.c.meta, outbox.c.created_at).where(
            outbox.c.incident_id == incident_id, outbox.c.recipient_id.like("public:%")
        ).order_by(outbox.c.id)
        found: dict[str, str] = {}
        for row in self.conn.execute(query):
            meta: dict[str, str] = row.meta
            ident = meta.get("cap_identifier", "")
            if ident and ident != exclude:
                found.setdefault(ident, meta.get("sent") or row.created_at.isoformat())
        return list(found.items())

    def outbox_counts(self, incident_id: str | None = None) -> dict[str, int]:
        query = sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state)
        if incident_id is not None:
            query = query.where(outbox.c.incident_id == incident_id)
        return {str(row[0]): int(row[1]) for row in self.conn.execute(query)}

    # acknowledgements

    def add_acks(self, rows: Iterable[AckRow]) -> int:
        # No conflict target: a row for the same occurrence and recipient and a row whose token
        # another briefing already has are both skipped, not an error (`listening.ask` reads
        # back who has a code and draws new ones for the rest).
        statement = self._insert(acks).on_conflict_do_nothing()
        names = _FIELDS[AckRow]  # not `dataclasses.asdict`: it deep-copies every value
        return sum(self._insert_many(statement, [{n: getattr(a, n) for n in names}
                                                 for a in batch])
                   for batch in _batches(rows, 1000))

    def acks(self, incident_id: str, *, open_only: bool = False) -> list[AckRow]:
        query = acks.select().where(acks.c.incident_id == incident_id).order_by(
            acks.c.asked_at, acks.c.step_id, acks.c.number, acks.c.recipient_id)
        if open_only:
            query = query.where(acks.c.acked_at.is_(None))
        return [_row(AckRow, r) for r in self.conn.execute(query)]

    def acks_due(self, now: datetime, limit: int = 100, only: str | None = None,
                 ) -> list[AckRow]:
        query = (_live(acks.select().where(acks.c.acked_at.is_(None), acks.c.stage < 2,
                                           acks.c.due_at <= now), acks, only)
                 .order_by(acks.c.due_at).limit(limit))
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        return [_row(AckRow, r) for r in self.conn.execute(query)]

    def ack_by_token(self, token: str) -> AckRow | None:
        found = self.conn.execute(acks.select().where(acks.c.token == token)).first()
        return _row(AckRow, found) if found is not None else None

    def update_ack(self, ack: AckRow, **changes: Any) -> None:
        self.conn.execute(acks.update().where(
            acks.c.incident_id == ack.incident_id, acks.c.step_id == ack.step_id,
            acks.c.number == ack.number, acks.c.recipient_id == ack.recipient_id).values(
                **changes))

    def replied_to(self, channel: str, address: str, receipt: str) -> Delivery | None:
        # A long message is sent in parts; the receipt lists every part's message id.
        query = outbox.select().where(
            outbox.c.channel == channel, outbox.c.address == address, sa.or_(
                outbox.c.receipt == receipt, outbox.c.receipt.like(f"{receipt},%"),
                outbox.c.receipt.like(f"%,{receipt}"), outbox.c.receipt.like(f"%,{receipt},%"),
            )).order_by(outbox.c.id.desc()).limit(1)
        found = self.conn.execute(query).first()
        return self._outbox_row(found).delivery if found is not None else None

    def recipient_incidents(self, recipient_id: str) -> list[str]:
        query = (sa.select(outbox.c.incident_id).join(
            incidents, incidents.c.id == outbox.c.incident_id).where(
                outbox.c.recipient_id == recipient_id, incidents.c.state == "open")
            .group_by(outbox.c.incident_id).order_by(sa.func.max(outbox.c.id).desc()))
        return [str(r[0]) for r in self.conn.execute(query)]

    def next_wake(self, only: str | None = None) -> datetime | None:
        candidates = [
            _live(sa.select(sa.func.min(acks.c.due_at)).where(
                acks.c.acked_at.is_(None), acks.c.stage < 2), acks, only),
            _live(sa.select(sa.func.min(schedule.c.due_at)).where(
                schedule.c.state == "pending"), schedule, only),
            _live(sa.select(sa.func.min(drafts.c.escalate_at)).where(
                drafts.c.state == "pending", drafts.c.escalated.is_(False)), drafts, only),
            _live(sa.select(sa.func.min(tasks.c.due_by)).where(
                tasks.c.done_at.is_(None), tasks.c.overdue.is_(False)), tasks, only),
        ]
        found = [self.conn.scalar(q) for q in candidates]
        return min((t for t in found if t is not None), default=None)

    @staticmethod
    def _outbox_row(r: Any) -> OutboxRow:
        delivery = Delivery(**{f.name: r._mapping[f.name] for f in dataclasses.fields(Delivery)})
        return OutboxRow(r.id, delivery, r.state, r.attempts, r.next_attempt_at, r.last_error,
                         r.reclaimed, r.unknown_outcomes)


_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in (Delivery, AckRow)}


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, built one at a time."""
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _live(query: Any, table: sa.Table, only: str | None) -> Any:
    """Leave paused drills alone; `only` keeps a drill's own clock to its own incident.

    A drill's virtual or scaled clock runs ahead of the wall clock, so ticking every incident
    with it would fire real incidents' steps early.
    """
    paused = sa.select(incidents.c.id).where(incidents.c.state == "paused")
    query = query.where(table.c.incident_id.not_in(paused))
    return query if only is None else query.where(table.c.incident_id == only)

