"""Shared fixtures: the repository root, and the command line run in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from playbook.cli import run
from playbook.store import SqlStore
from stores import fresh_url, open_store

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    """What one command-line run did."""

    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, as the README does."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run `playbook ARGS...` in-process and capture its exit code and output."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: every store and engine test runs on SQLite and on PostgreSQL."""
    yield from fresh_url(request.param, tmp_path)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    """A migrated store on an empty database."""
    opened = open_store(db_url)
    yield opened
    opened.dispose()
