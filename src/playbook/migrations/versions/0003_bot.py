"""The Telegram bot's records: invite codes, linked chats, server-side buttons, seen updates.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this version."""
    op.create_table(
        "invites",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chat_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "links",
        sa.Column("person_id", sa.String(length=100), nullable=False),
        sa.Column("chat_id", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("person_id"),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index("ix_links_chat", ["chat_id"], unique=False)
    op.create_table(
        "buttons",
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_table(
        "updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id"),
    )


def downgrade() -> None:
    """Undo this version."""
    op.drop_table("updates")
    op.drop_table("buttons")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index("ix_links_chat")
    op.drop_table("links")
    op.drop_table("invites")
