"""The incident commands end to end on the example city, on SQLite in a temporary folder."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import ROOT, Cli
from playbook.config import load_settings
from playbook.service import build

PARAMS = ["-p", "what=vandalism", "-p", "location=Market Square", "-p",
          "community=muslim_community", "-p", "support_point=Riverside Centre"]


def _incident_id(out: str) -> str:
    found = re.search(r"incident (\d{4}-\d{4}) opened", out)
    assert found is not None, out
    return found.group(1)


@pytest.fixture
def city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/ in a temporary folder, run from there."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    config = tmp_path / "examples" / "playbook.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        '"../protocols"', f'"{ROOT / "protocols"}"'), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAYBOOK_DATABASE_URL", raising=False)
    monkeypatch.delenv("PLAYBOOK_TELEGRAM_TOKEN", raising=False)
    monkeypatch.setenv("PLAYBOOK_USER", "anna")
    return config


def test_activate_status_standdown(cli: Cli, city: Path) -> None:
    """Activate opens the incident and briefs the holders; status shows it; stand-down ends it."""
    opened = cli("activate", "hate-incident", "--config", str(city), *PARAMS)
    assert opened.code == 0, opened.err
    iid = _incident_id(opened.out)
    assert "ACTUAL" in opened.out
    assert "incident_lead" in opened.out
    assert "You are Incident lead" in opened.out  # the briefing, on the console channel
    status = cli("status", iid, "--config", str(city))
    assert status.code == 0, status.err
    assert "brief-intermediaries" in status.out
    listing = cli("status", "--config", str(city))
    assert iid in listing.out
    ended = cli("standdown", iid, "--config", str(city))
    assert ended.code == 0, ended.err
    assert "4 follow-up step(s) scheduled" in ended.out
    again = cli("standdown", iid, "--config", str(city))
    assert again.code == 2
    assert "already stood_down" in again.err
    verified = cli("log", "verify", "--config", str(city))
    assert verified.code == 0


def test_missing_parameters_are_refused(cli: Cli, city: Path) -> None:
    """An activation without its required values exits 2 naming each one, and opens nothing."""
    result = cli("activate", "hate-incident", "--config", str(city), "-p", "what=arson")
    assert result.code == 2
    assert "--param: what: 'arson' is not one of vandalism, assault, threats" in result.err
    assert "--param: location: missing required parameter" in result.err
    assert "No incidents yet." in cli("status", "--config", str(city)).out


def test_approve_requires_someone_else(cli: Cli, city: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The requester's own approval is refused with exit 2; the second person's goes through."""
    opened = cli("activate", "hate-incident", "--config", str(city), *PARAMS)
    iid = _incident_id(opened.out)
    parts = build(load_settings(city))
    parts.engine.tick(datetime.now(UTC) + timedelta(minutes=21))
    own = cli("approve", iid, "brief-intermediaries", "--config", str(city))
    assert own.code == 2
    assert "a second person must approve" in own.err
    other = cli("approve", iid, "brief-intermediaries", "--as", "miriam", "--config", str(city))
    assert other.code == 0, other.err
    assert "Approved brief-intermediaries in ar, ar-EG, fr, fa, fa-AF; sent." in other.out
    nothing = cli("approve", iid, "brief-intermediaries", "--as", "miriam", "--config",
                  str(city))
    assert nothing.code == 2
    assert "nothing is waiting for approval here" in nothing.err


def test_an_unknown_incident_is_bad_input(cli: Cli, city: Path) -> None:
    """Naming an incident that does not exist exits 2 with a hint."""
    result = cli("status", "1999-0001", "--config", str(city))
    assert result.code == 2
    assert "no incident '1999-0001'" in result.err
