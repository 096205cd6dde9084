"""`playbook ack`, `playbook concern`, and what `status` and `plan` say about outreach."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import Cli
from playbook.config import load_settings
from playbook.service import build
from test_commands import PARAMS, _incident_id, city

__all__ = ["city"]


def _briefed(cli: Cli, city: Path) -> tuple[str, dict[str, str]]:
    """An incident whose briefing was approved and sent; {intermediary id: its code}."""
    iid = _incident_id(cli("activate", "hate-incident", "--config", str(city), *PARAMS).out)
    build(load_settings(city)).engine.tick(datetime.now(UTC) + timedelta(minutes=21))
    approved = cli("approve", iid, "brief-intermediaries", "--as", "miriam", "--config",
                   str(city))
    assert approved.code == 0, approved.err
    with build(load_settings(city)).store.begin() as tx:
        return iid, {a.recipient_id.split(":")[1]: a.token for a in tx.acks(iid)}


def test_ack_and_concern_show_in_status(cli: Cli, city: Path) -> None:
    """A code confirmed by hand and a concern heard by phone both show in `status`."""
    iid, codes = _briefed(cli, city)
    assert set(codes) == {"imam-karim", "amina-s", "hassan-r", "nasrin-k", "awa-d", "fatima-z"}
    code = codes["nasrin-k"]
    done = cli("ack", f"{code[:4].lower()}-{code[4:]}", "--relayed", "--config", str(city))
    assert done.code == 0, done.err
    assert "Confirmed: Nasrin Karimi received brief-intermediaries" in done.out
    assert "and shared it" in done.out
    heard = cli("concern", iid, "Parents ask whether the school trip goes ahead", "--from",
                "intermediary:awa-d", "--config", str(city))
    assert heard.code == 0, heard.err
    assert "Logged the concern from Awa Diallo" in heard.out
    status = cli("status", iid, "--config", str(city)).out
    row = next(line for line in status.splitlines() if line.strip().startswith(
        "brief-intermediaries"))
    # asked 6, received 6 (console channels), confirmed 1, relayed 1, waiting 5, silent 0
    assert re.findall(r"\d+", row) == ["1", "6", "6", "1", "1", "5", "0"]
    assert "Parents ask whether the school trip goes ahead" in status
    assert "Awa Diallo" in status


def test_bad_codes_and_strangers_are_bad_input(cli: Cli, city: Path) -> None:
    """An unknown code and an unknown directory id exit 2 with a hint and change nothing."""
    iid, _ = _briefed(cli, city)
    wrong = cli("ack", "ABCD-EFGH", "--config", str(city))
    assert wrong.code == 2
    assert "no briefing has this confirmation code" in wrong.err
    stranger = cli("concern", iid, "text", "--from", "intermediary:nobody", "--config", str(city))
    assert stranger.code == 2
    assert "no intermediary `nobody` in the directory" in stranger.err
    assert "Concerns" not in cli("status", iid, "--config", str(city)).out


def test_plan_shows_reach_and_warns_about_languages(cli: Cli, city: Path) -> None:
    """`plan` counts recipients per language and channel and names who gets a fallback."""
    out = cli("plan", "hate-incident", "--config", str(city), *PARAMS).out
    row = next(line for line in out.splitlines() if line.strip().startswith("brief-intermed"))
    assert "ar-EG 1" in row
    assert "telegram 4" in row
    plan = cli("plan", "hate-incident", "--config", str(city), "-p",
               "community=eritrean_community", *PARAMS[:4], *PARAMS[6:]).out
    assert "Tesfay Gebremariam <intermediary:tesfay-g> reads ti" in plan
    assert "they get en" in plan
    validated = cli("validate", "--config", str(city))
    assert validated.code == 0
    assert validated.out.count("Tesfay Gebremariam") == 6  # once per protocol
