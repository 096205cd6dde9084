"""Acknowledgements: who was asked to confirm a briefing, and who did.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this version."""
    op.create_table(
        "acks",
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recipient_id", sa.String(length=100), nullable=False),
        sa.Column("recipient_name", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("backup_for", sa.String(length=100), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("incident_id", "step_id", "number", "recipient_id"),
        sa.UniqueConstraint("token", name="uq_ack_token"),
    )
    with op.batch_alter_table("acks", schema=None) as batch_op:
        batch_op.create_index("ix_acks_due", ["stage", "due_at"], unique=False)


def downgrade() -> None:
    """Undo this version."""
    with op.batch_alter_table("acks", schema=None) as batch_op:
        batch_op.drop_index("ix_acks_due")
    op.drop_table("acks")
