"""Alembic's entry point: run the migrations on the connection `playbook.store` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from playbook.tables import metadata


def run() -> None:
    """Migrate the connection given in the config's attributes (no URL is read from files)."""
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through playbook.store.migrate()")
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
