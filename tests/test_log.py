"""The incident log is append-only in the database and hash-chained so any change shows."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Cli
from drive import Drive
from playbook.events import verify
from playbook.store import SqlStore
from stores import open_store


def _verify(store: SqlStore, incident_id: str) -> str | None:
    with store.begin() as tx:
        row = tx.incident(incident_id)
        assert row is not None
        found = verify(incident_id, tx.events(incident_id), (row.head_seq, row.head_hash))
    return None if found is None else f"{found.seq}: {found.reason}"


def _drop_triggers(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("DROP TRIGGER events_append_only ON events")
        else:
            conn.exec_driver_sql("DROP TRIGGER events_no_update")
            conn.exec_driver_sql("DROP TRIGGER events_no_delete")


@pytest.fixture
def logged(store: SqlStore, tmp_path: Path) -> str:
    """An incident with a few dozen log entries."""
    drive = Drive(store, tmp_path)
    return drive.activate().id


def test_an_untouched_log_verifies(store: SqlStore, logged: str) -> None:
    """Every entry links to the one before and the head matches."""
    assert _verify(store, logged) is None


@pytest.mark.parametrize("statement", [
    "UPDATE events SET actor = 'mallory' WHERE seq = 3",
    "DELETE FROM events WHERE seq = 3",
])
def test_the_database_refuses_changes(store: SqlStore, logged: str, statement: str) -> None:
    """UPDATE and DELETE on the log fail in the database itself."""
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), store.engine.begin() as conn:
        conn.exec_driver_sql(statement)


def test_an_edit_shows_even_without_triggers(store: SqlStore, logged: str) -> None:
    """Someone who drops the triggers and edits an entry is caught by its hash."""
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET actor = 'mallory' WHERE seq = 3 AND "
                             "incident_id = :i"), {"i": logged})
    assert _verify(store, logged) == "3: its content was changed after it was written"


def test_a_deletion_shows(store: SqlStore, logged: str) -> None:
    """A deleted entry in the middle breaks the chain."""
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE seq = 4 AND incident_id = :i"),
                     {"i": logged})
    assert _verify(store, logged) == "4: entry 4 is missing (found 5 next)"


def test_cutting_off_the_end_shows(store: SqlStore, logged: str) -> None:
    """Deleting the last entries shows against the head the incident recorded."""
    _drop_triggers(store)
    with store.engine.begin() as conn:
        last: int = conn.execute(sa.text("SELECT max(seq) FROM events WHERE incident_id = :i"),
                            {"i": logged}).scalar_one()
        conn.execute(sa.text("DELETE FROM events WHERE seq = :s AND incident_id = :i"),
                     {"s": last, "i": logged})
    found = _verify(store, logged)
    assert found is not None
    assert "the log ends at entry" in found


def test_an_insertion_shows(store: SqlStore, logged: str) -> None:
    """A forged entry slipped in with a renumbered tail does not link."""
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET seq = seq + 1000 WHERE seq >= 5 AND "
                             "incident_id = :i"), {"i": logged})
        conn.execute(sa.text("INSERT INTO events SELECT incident_id, 5, at, 'approved', "
                             "step_id, 'mallory', data, prev_hash, hash FROM events WHERE "
                             "seq = 4 AND incident_id = :i"), {"i": logged})
    assert _verify(store, logged) == "5: does not link to the entry before it"


def test_log_verify_command(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`playbook log verify` exits 0 on a clean log and 1 after tampering."""
    db = tmp_path / "v.db"
    store = open_store(f"sqlite:///{db}")
    incident = Drive(store, tmp_path).activate().id
    monkeypatch.setenv("PLAYBOOK_DATABASE_URL", f"sqlite:///{db}")
    ok = cli("log", "verify")
    assert ok.code == 0, ok.err
    assert "every hash matches" in ok.out
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET data = '{}' WHERE seq = 2"))
    bad = cli("log", "verify", incident)
    assert bad.code == 1
    assert "entry 2: its content was changed" in bad.out
