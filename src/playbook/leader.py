"""Which `playbook run` process runs the schedule: a PostgreSQL advisory lock.

Every process sends (dispatchers share the outbox with `SKIP LOCKED`), but only one ticks the
engine: two schedulers would each escalate the same late approval and chase the same silent
intermediary. The lock is a session lock on a connection kept open for it, so PostgreSQL
itself releases it when the process dies or its connection drops, and a follower that asks
every few seconds takes over. On SQLite, a file on one machine, the process simply leads.
"""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from playbook.store import SqlStore

LOCK_KEY = 0x706C6179_7363686E
"""'playschn'. Advisory locks belong to a database: installations on one server, each with
its own database, do not compete."""


class Leadership:
    """Asks for, keeps and gives up the schedule's lock."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._conn: Connection | None = None

    @property
    def shared(self) -> bool:
        """Whether other processes may share this database (PostgreSQL)."""
        return self.store.dialect == "postgresql"

    def hold(self) -> bool:
        """Whether this process leads now: takes the lock when free, checks a held one.

        A held lock is only as good as its connection: if that broke (the server restarted,
        the network dropped), the lock is gone and somebody else may have it.
        """
        if not self.shared:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT 1"))
                return True
            except sa.exc.DBAPIError:
                self._drop()
        conn: Connection | None = None
        try:
            conn = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(LOCK_KEY))).scalar()
        except sa.exc.DBAPIError:
            if conn is not None:
                conn.close()
            return False
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def release(self) -> None:
        """Give the lock up (at shutdown), so a follower takes over at once."""
        if self._conn is None:
            return
        # If the connection is gone, the lock went with it.
        with contextlib.suppress(sa.exc.DBAPIError):
            self._conn.execute(sa.select(sa.func.pg_advisory_unlock(LOCK_KEY)))
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                conn.invalidate()
                conn.close()
