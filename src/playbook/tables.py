"""The database tables: what the migrations build, and what the store's queries read and write.

A test compares these with the schema the Alembic migrations create, so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which has no zones) too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None,
                             dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()
Text, Int, Time, Json = sa.Text, sa.Integer, UTCDateTime, sa.JSON

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("playbook_id", sa.String(64), nullable=False),
    sa.Column("title", Text, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("frozen", Json, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("params", Json, nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("activated_by", Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("participants", Json, nullable=False),
    sa.Column("head_seq", Int, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
)
events = sa.Table(
    "events", metadata,
    sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("seq", Int, primary_key=True, autoincrement=False),
    sa.Column("at", Time, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("actor", Text, nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
assignments = sa.Table(
    "assignments", metadata,
    sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("role", sa.String(64), primary_key=True),
    sa.Column("holder", Text),
    sa.Column("backup", Text),
    sa.Column("note", Text, nullable=False),
)
schedule = sa.Table(
    "schedule", metadata,
    sa.Column("id", Int, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("number", Int, nullable=False),
    sa.Column("due_at", Time, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("fired_at", Time),
    sa.UniqueConstraint("incident_id", "step_id", "number", name="uq_schedule_occurrence"),
    sa.Index("ix_schedule_due", "state", "due_at"),
)
tasks = sa.Table(
    "tasks", metadata,
    sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("step_id", sa.String(64), primary_key=True),
    sa.Column("number", Int, primary_key=True, autoincrement=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("holder", Text),
    sa.Column("due_by", Time),
    sa.Column("done_at", Time),
    sa.Column("done_by", Text, nullable=False),
    sa.Column("note", Text, nullable=False),
    sa.Column("overdue", sa.Boolean, nullable=False),
)
drafts = sa.Table(
    "drafts", metadata,
    sa.Column("id", Int, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("number", Int, nullable=False),
    sa.Column("lang", sa.String(16), nullable=False),
    sa.Column("revision", Int, nullable=False),
    sa.Column("subject", Text, nullable=False),
    sa.Column("text", Text, nullable=False),
    sa.Column("fingerprint", sa.String(80), nullable=False),
    sa.Column("requested_by", Text, nullable=False),
    sa.Column("requested_at", Time, nullable=False),
    sa.Column("escalate_at", Time),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("escalated", sa.Boolean, nullable=False),
    sa.Column("decided_by", Text, nullable=False),
    sa.Column("decided_at", Time),
    sa.Column("params", Json, nullable=False),
    sa.UniqueConstraint("incident_id", "step_id", "number", "lang", "revision",
                        name="uq_draft_revision"),
)
acks = sa.Table(
    "acks", metadata,
    sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("step_id", sa.String(64), primary_key=True),
    sa.Column("number", Int, primary_key=True, autoincrement=False),
    sa.Column("recipient_id", sa.String(100), primary_key=True),
    sa.Column("recipient_name", Text, nullable=False),
    sa.Column("lang", sa.String(16), nullable=False),
    sa.Column("token", sa.String(16), nullable=False),
    sa.Column("backup_for", sa.String(100), nullable=False),
    sa.Column("asked_at", Time, nullable=False),
    sa.Column("due_at", Time, nullable=False),
    sa.Column("stage", Int, nullable=False),
    sa.Column("acked_at", Time),
    sa.Column("relayed_at", Time),
    sa.Column("via", sa.String(16), nullable=False),
    sa.UniqueConstraint("token", name="uq_ack_token"),
    sa.Index("ix_acks_due", "stage", "due_at"),
)
outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", Int, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False, unique=True),
    sa.Column("incident_id", sa.String(32), sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("exercise", sa.Boolean, nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("number", Int, nullable=False),
    sa.Column("recipient_id", Text, nullable=False),
    sa.Column("recipient_name", Text, nullable=False),
    sa.Column("lang", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", Text, nullable=False),
    sa.Column("subject", Text, nullable=False),
    sa.Column("text", Text, nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", Int, nullable=False),
    sa.Column("next_attempt_at", Time, nullable=False),
    sa.Column("lease_until", Time),
    sa.Column("claimed_by", Text, nullable=False),
    sa.Column("last_error", Text, nullable=False),
    sa.Column("receipt", Text, nullable=False),
    sa.Column("sent_at", Time),
    sa.Column("reclaimed", Int, nullable=False),
    sa.Column("unknown_outcomes", Int, nullable=False),
    sa.Index("ix_outbox_ready", "state", "next_attempt_at"),
    sa.Index("ix_outbox_incident", "incident_id", "state"),
)
# The Telegram bot's own records (migration 0003).
invites = sa.Table(
    "invites", metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("person_id", sa.String(100), nullable=False),
    sa.Column("created_by", Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Column("used_at", Time),
    sa.Column("chat_id", sa.String(32), nullable=False),
)
links = sa.Table(
    "links", metadata,
    sa.Column("person_id", sa.String(100), primary_key=True),
    sa.Column("chat_id", sa.String(32), nullable=False),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("note", Text, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_links_chat", "chat_id"),
)
buttons = sa.Table(
    "buttons", metadata,
    sa.Column("token", sa.String(16), primary_key=True),
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Column("used_at", Time),
)
updates = sa.Table(
    "updates", metadata,
    sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("seen_at", Time, nullable=False),
)
