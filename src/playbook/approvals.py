"""The second pair of eyes: who may approve a draft, and approving, rejecting or editing one.

A draft is one language of one occurrence of a message. Approving a language queues exactly the
approved text for the recipients of that language, and the log keeps its fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from playbook.directory import Directory
from playbook.engine import Engine, json_params
from playbook.errors import BadInput, Problem
from playbook.events import fingerprint
from playbook.model import MessageStep
from playbook.plan import bind_parameters
from playbook.ports import DraftRow, IncidentRow, Tx


def refusal(actor: str, step: MessageStep, draft: DraftRow, directory: Directory) -> str | None:
    """Why `actor` may not decide on `draft`, or None if they may."""
    member = directory.staff_member(actor)
    if member is None:
        return f"{actor!r} is not in the staff directory"
    if actor == draft.requested_by:
        return (f"{actor} requested this draft; a second person must approve it "
                "(ask one of: " + ", ".join(step.approval) + ")")
    if not set(step.approval) & (set(member.roles) | set(member.backup_for)):
        return (f"{actor} does not fill any role that approves `{step.id}` "
                f"(" + ", ".join(step.approval) + ")")
    return None


class Approvals:
    """Decisions on drafts, recorded in the incident log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def pending(self, incident_id: str) -> list[DraftRow]:
        """Drafts waiting for a decision."""
        with self.engine.store.begin() as tx:
            self.engine.incident(tx, incident_id)
            return tx.drafts(incident_id, "pending")

    def approve(self, incident_id: str, step_id: str, *, actor: str, now: datetime,
                lang: str | None = None) -> list[DraftRow]:
        """Approve the pending drafts of a step (one language, or all) and queue them."""
        with self.engine.store.begin() as tx:
            incident, step, drafts = self._pending(tx, incident_id, step_id, actor, lang)
            for draft in drafts:
                tx.update_draft(draft.id, state="approved", decided_by=actor, decided_at=now)
                tx.append(incident_id, "approved", now, step_id=step_id, actor=actor, data={
                    "draft": draft.id, "number": draft.number, "lang": draft.lang,
                    "revision": draft.revision, "fingerprint": fingerprint(draft.text)})
            for number in sorted({d.number for d in drafts}):
                texts = {d.lang: d.text for d in drafts if d.number == number}
                self.engine.enqueue(tx, incident, step, number, texts, now)
        return drafts

    def reject(self, incident_id: str, step_id: str, *, actor: str, reason: str, now: datetime,
               lang: str | None = None) -> list[DraftRow]:
        """Reject the pending drafts of a step; nothing is sent until an edit is approved."""
        if not reason.strip():
            raise BadInput.one("--reason", "a rejection needs a reason",
                               'say what must change: --reason "the location is wrong"')
        with self.engine.store.begin() as tx:
            _, _, drafts = self._pending(tx, incident_id, step_id, actor, lang)
            for draft in drafts:
                tx.update_draft(draft.id, state="rejected", decided_by=actor, decided_at=now)
                tx.append(incident_id, "rejected", now, step_id=step_id, actor=actor, data={
                    "draft": draft.id, "number": draft.number, "lang": draft.lang,
                    "reason": reason})
        return drafts

    def edit(self, incident_id: str, step_id: str, *, actor: str, raw: Mapping[str, str],
             now: datetime) -> int:
        """Re-render the latest occurrence with corrected parameters; it needs approval again.

        The editor becomes the requester, so someone else must approve the edited text.
        """
        with self.engine.store.begin() as tx:
            incident = self.engine.incident(tx, incident_id)
            version = self.engine.version(incident)
            step = _message_step(version.playbook.steps, step_id)
            open_drafts = [d for d in tx.drafts(incident_id) if d.step_id == step_id
                           and d.state in ("pending", "rejected")]
            if not open_drafts:
                raise BadInput.one(step_id, "no pending or rejected draft to edit",
                                   "see `playbook status` for drafts")
            number = max(d.number for d in open_drafts)
            latest = [d for d in open_drafts if d.number == number]
            merged = {**{k: str(v) for k, v in incident.params.items()},
                      **{k: str(v) for k, v in latest[0].params.items()}, **raw}
            params = bind_parameters(version.playbook, merged, "--param", version.zone)
            for draft in latest:
                tx.update_draft(draft.id, state="superseded", decided_by=actor, decided_at=now)
            revision = max(d.revision for d in latest) + 1
            tx.append(incident_id, "edited", now, step_id=step_id, actor=actor, data={
                "number": number, "revision": revision, "changed": sorted(raw)})
            self.engine.message(tx, incident, step, number, now, requested_by=actor,
                                params=json_params(params), revision=revision)
            return revision

    def _pending(self, tx: Tx, incident_id: str, step_id: str, actor: str,
                 lang: str | None) -> tuple[IncidentRow, MessageStep, list[DraftRow]]:
        incident = self.engine.incident(tx, incident_id)
        step = _message_step(self.engine.version(incident).playbook.steps, step_id)
        drafts = [d for d in tx.drafts(incident_id, "pending")
                  if d.step_id == step_id and (lang is None or d.lang == lang)]
        if not drafts:
            waiting = sorted({d.step_id for d in tx.drafts(incident_id, "pending")})
            raise BadInput.one(step_id, "nothing is waiting for approval here" +
                               (f" in {lang}" if lang else ""),
                               "waiting: " + (", ".join(waiting) or "nothing"))
        problems = [Problem("--as", None, None, "", why, "approvals need a second person "
                            "from the roles the playbook names") for why in
                    {refusal(actor, step, d, self.engine.directory) for d in drafts} if why]
        if problems:
            raise BadInput(problems)
        return incident, step, drafts


def _message_step(steps: Any, step_id: str) -> MessageStep:
    for step in steps:
        if step.id == step_id and isinstance(step, MessageStep):
            return step
    ids = ", ".join(s.id for s in steps if isinstance(s, MessageStep))
    raise BadInput.one(step_id, "not a message step of this playbook", f"one of: {ids}")

