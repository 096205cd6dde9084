"""Approvals: a second person, edits that need approval again, timeouts that reach the backup."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from conftest import ROOT
from drive import CAP_SENDER, START, Drive, variant
from playbook.approvals import Approvals
from playbook.engine import EngineSettings
from playbook.errors import BadInput
from playbook.events import fingerprint
from playbook.model import MessageStep
from playbook.store import SqlStore

M = timedelta(minutes=1)
CAP_SCHEMA = xmlschema.XMLSchema(ROOT / "tests" / "data" / "CAP-v1.2.xsd")


def _doc(path: Path) -> dict[str, Any]:
    decoded = CAP_SCHEMA.to_dict(str(path))
    assert isinstance(decoded, dict)
    return decoded


def test_an_edit_rerenders_every_language_and_needs_approval_again(store: SqlStore,
                                                                   tmp_path: Path) -> None:
    """Correcting the location re-renders all languages; the editor cannot approve the edit."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 60 * M)
    approvals = Approvals(drive.engine)
    approvals.reject(incident.id, "first-statement", actor="miriam", now=drive.clock.now(),
                     reason="wrong square")
    revision = approvals.edit(incident.id, "first-statement", actor="miriam",
                              raw={"location": "Station Square"}, now=drive.clock.now())
    assert revision == 2
    with store.begin() as tx:
        pending = [d for d in tx.drafts(incident.id, "pending") if d.step_id == "first-statement"]
    assert {d.lang for d in pending} == {"en", "ar", "es", "fr", "uk", "fa"}
    assert all("Station Square" in d.text for d in pending)
    assert all(d.revision == 2 for d in pending)
    with pytest.raises(BadInput, match="a second person"):
        approvals.approve(incident.id, "first-statement", actor="miriam", now=drive.clock.now())
    approvals.approve(incident.id, "first-statement", actor="jonas", now=drive.clock.now())
    drive.send()
    sent = [r for r in drive.outbox(incident.id) if r.delivery.recipient_id.startswith("public:")
            and r.delivery.step_id == "first-statement"]
    assert sent
    assert all("Station Square" in r.delivery.text for r in sent)
    assert all("Market Square" not in r.delivery.text for r in sent)


def test_a_rejection_needs_a_reason(store: SqlStore, tmp_path: Path) -> None:
    """Rejecting without saying what must change is refused."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    drive.run_until(START + 60 * M)
    with pytest.raises(BadInput, match="needs a reason"):
        Approvals(drive.engine).reject(incident.id, "first-statement", actor="miriam",
                                       reason=" ", now=drive.clock.now())


def test_an_unanswered_draft_goes_to_the_backup_approvers(store: SqlStore,
                                                          tmp_path: Path) -> None:
    """After the approval timeout the backups of the approving roles are asked too."""
    drive = Drive(store, tmp_path, settings=EngineSettings(approval_timeout=10 * M,
                                                           cap_sender=CAP_SENDER))
    incident = drive.activate(actor="yusuf")
    drive.run_until(START + 20 * M)
    asked = [e for e in drive.events(incident.id, "approval_requested")
             if e.step_id == "brief-intermediaries"]
    assert asked[0].data["notified"] == ["anna"]
    drive.run_until(START + 31 * M)
    escalated = [e for e in drive.events(incident.id, "approval_escalated")
                 if e.step_id == "brief-intermediaries"]
    assert len(escalated) == 1
    assert escalated[0].at == START + 30 * M
    assert escalated[0].data["notified"] == ["miriam"]
    notices = [r for r in drive.outbox(incident.id) if r.delivery.key.endswith("/escalated")
               and r.delivery.step_id == "brief-intermediaries"]
    assert [r.delivery.recipient_id for r in notices] == ["staff:miriam"]


def test_preapproved_alerts_skip_approval(store: SqlStore, tmp_path: Path) -> None:
    """A life-safety message marked pre-approved goes out at once, fingerprinted in the log."""
    pb = variant(tmp_path, ("    approval: [spokesperson, incident_lead]\n    at: 1h",
                            "    preapproved: true\n    at: 1h"))
    step = next(s for s in pb.playbook.steps if s.id == "first-statement")
    assert isinstance(step, MessageStep)
    assert step.preapproved
    drive = Drive(store, tmp_path)
    incident = drive.activate(pb)
    drive.run_until(START + 60 * M)
    sent = [r for r in drive.outbox(incident.id) if r.delivery.step_id == "first-statement"
            and r.delivery.recipient_id.startswith("public:")]
    assert sent
    assert {r.state for r in sent} == {"sent"}
    stamps = [e for e in drive.events(incident.id, "approved") if e.step_id == "first-statement"]
    assert {e.actor for e in stamps} == {"preapproved"}
    assert {e.data["fingerprint"] for e in stamps} == {fingerprint(r.delivery.text)
                                                       for r in sent}


def test_the_cap_feed_validates_against_the_cap_schema(store: SqlStore, tmp_path: Path) -> None:
    """The engine's public messages become CAP 1.2 alerts: Alert, then Update with references."""
    pb = variant(tmp_path, ("public: [telegram_channel, website]",
                            "public: [telegram_channel, website, cap_feed]"))
    drive = Drive(store, tmp_path)
    incident = drive.activate(pb)
    drive.run_until(START + 60 * M)
    Approvals(drive.engine).approve(incident.id, "first-statement", actor="miriam",
                                    now=drive.clock.now())
    drive.run_until(START + 4 * 60 * M)
    Approvals(drive.engine).approve(incident.id, "update", actor="miriam", now=drive.clock.now())
    drive.send()
    files = sorted((tmp_path / "cap").glob("*.cap.xml"))
    assert [f.name for f in files] == [f"{incident.id}.first-statement.1.cap.xml",
                                       f"{incident.id}.update.1.cap.xml"]
    for f in files:
        CAP_SCHEMA.validate(str(f))  # raises on the first violation
    first, update = (_doc(f) for f in files)
    for doc in (first, update):
        assert len(doc["info"]) == 6
        assert doc["sent"].endswith("-00:00")
    assert first["msgType"] == "Alert"
    assert update["msgType"] == "Update"
    assert update["references"] == (f"alerts@riverton.example,{incident.id}.first-statement.1,"
                                    f"{first['sent']}")
