"""Alembic migrations: the database schema, version by version, from an empty database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from playbook.store import SqlStore

HERE = Path(__file__).resolve().parent
# PostgreSQL: one process migrates at a time, whichever starts first.
_LOCK = 0x706C6179


def config() -> Config:
    """Alembic's configuration, pointing at this package; no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def migrate(store: SqlStore) -> None:
    """Bring the database to the newest schema (idempotent; safe from several processes)."""
    cfg = config()
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def is_current(store: SqlStore) -> bool:
    """Whether the database is at the newest schema."""
    head = ScriptDirectory.from_config(config()).get_current_head()
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head
