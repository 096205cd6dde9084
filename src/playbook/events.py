"""The incident log: its record, its event kinds, and the hash chain that makes tampering show.

Each entry's hash covers its content and the previous entry's hash, so editing, inserting or
deleting any entry breaks every hash after it. The incident keeps the head of its chain, so even
cutting entries off the end shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

KINDS = frozenset({
    "activated", "assigned", "notified", "due", "late", "skipped", "drafted", "approval_requested",
    "approval_escalated", "approved", "rejected", "edited", "enqueued", "sent", "failed",
    "dead", "unknown_outcome", "acked", "concern", "inject", "task_done", "overdue", "logged",
    "escalated", "de_escalated", "stood_down", "closed", "channel_inactive", "reminded",
    "ack_overdue", "scenario", "answered", "paused", "resumed", "rated",
})


@dataclass(frozen=True)
class Event:
    """One entry of an incident's log."""

    incident_id: str
    seq: int
    at: datetime
    kind: str
    step_id: str = ""
    actor: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""


def entry_hash(incident_id: str, seq: int, at: datetime, kind: str, step_id: str, actor: str,
               data: Mapping[str, Any], prev_hash: str) -> str:
    """The SHA-256 of an entry's canonical JSON form, chained to the previous entry."""
    body = json.dumps([incident_id, seq, at.isoformat(), kind, step_id, actor, data, prev_hash],
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def chain(incident_id: str, seq: int, at: datetime, kind: str, *, prev_hash: str,
          step_id: str = "", actor: str = "", data: Mapping[str, Any] | None = None) -> Event:
    """A new entry linked to `prev_hash`."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    payload = dict(data or {})
    at = at.astimezone(UTC)  # one spelling of each instant, whatever zone the caller used
    digest = entry_hash(incident_id, seq, at, kind, step_id, actor, payload, prev_hash)
    return Event(incident_id, seq, at, kind, step_id, actor, payload, prev_hash, digest)


@dataclass(frozen=True)
class Break:
    """Where a log stops being trustworthy, and why."""

    incident_id: str
    seq: int
    reason: str


def verify(incident_id: str, events: Iterable[Event], head: tuple[int, str]) -> Break | None:
    """The first break in an incident's chain, or None if every entry is as written.

    `head` is the (seq, hash) the incident recorded for its last entry.
    """
    prev, expected_seq = GENESIS, 1
    for event in events:
        if event.seq != expected_seq:
            return Break(incident_id, expected_seq, f"entry {expected_seq} is missing "
                         f"(found {event.seq} next)")
        if event.prev_hash != prev:
            return Break(incident_id, event.seq, "does not link to the entry before it")
        again = entry_hash(incident_id, event.seq, event.at, event.kind, event.step_id,
                           event.actor, event.data, event.prev_hash)
        if again != event.hash:
            return Break(incident_id, event.seq, "its content was changed after it was written")
        prev, expected_seq = event.hash, expected_seq + 1
    if (expected_seq - 1, prev) != head:
        return Break(incident_id, head[0], f"the log ends at entry {expected_seq - 1}, but the "
                     f"incident recorded entry {head[0]} as its last")
    return None


def fingerprint(text: str) -> str:
    """What the log records of an approved text: enough to prove exactly what went out."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
