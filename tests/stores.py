"""Real databases for the store and engine suites: SQLite always, PostgreSQL when reachable.

PostgreSQL runs on 127.0.0.1:5432 on these machines (trust auth, database `test`). Each test
gets a fresh database of its own, created from `test` and dropped afterwards; when the server is
not reachable the PostgreSQL half of the suite is skipped with a message that says so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from playbook.migrations import migrate
from playbook.store import SqlStore

PG_ADMIN = os.environ.get("PLAYBOOK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_reachable: bool | None = None


def pg_reachable() -> bool:
    """Whether the test PostgreSQL answers (asked once per run)."""
    global _reachable
    if _reachable is None:
        try:
            engine = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
            _reachable = True
        except sa.exc.OperationalError:
            _reachable = False
    return _reachable


def fresh_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of `kind`; PostgreSQL databases are dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'playbook.db'}"
        return
    if not pg_reachable():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: the PostgreSQL half of the store "
                    "and engine suites is skipped (SQLite still runs)")
    name = f"pb_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def open_store(url: str) -> SqlStore:
    """A migrated store."""
    store = SqlStore(url)
    migrate(store)
    return store
