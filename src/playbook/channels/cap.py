"""The CAP feed channel: each delivery becomes one language's `<info>` in an alert file.

A folder is the feed: one `<identifier>.cap.xml` per alert and an Atom `index.xml` listing them,
newest first, for whoever publishes the folder (a web server, a sync job). All deliveries that
share `meta["cap_identifier"]` (the languages of one message) merge into one alert. Every file
is replaced atomically (temporary file in the same folder, fsync, `os.replace`), so a reader or a
crash never sees half an alert, and re-sending a delivery rewrites the same bytes.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from urllib.parse import quote

from playbook.atomicfile import replace_file
from playbook.cap import (
    CapAlert,
    CapInfo,
    alert_xml,
    check_token,
    clean_text,
    feed_xml,
    merge_alert,
    parse_alert,
    parse_references,
    parse_time,
)
from playbook.delivery import Delivery, Limits, plain_text
from playbook.errors import SendFailed

INDEX = "index.xml"
SUFFIX = ".cap.xml"


class CapChannel:
    """Writes CAP 1.2 alerts into `feed_dir` (or the folder a delivery's address names)."""

    name = "cap"
    limits = Limits()

    def __init__(self, feed_dir: Path, sender: str) -> None:
        self.feed_dir = Path(feed_dir)
        self.sender = check_token("CAP sender", sender)
        # Languages of one alert arrive as separate deliveries, possibly at once: the
        # read-merge-write of one folder must not interleave (threads, since I/O runs off-loop).
        self._lock = threading.Lock()

    async def send(self, delivery: Delivery) -> str:
        """Merge this delivery's info into its alert file; the receipt is the alert identifier."""
        return await asyncio.to_thread(self._publish, delivery)

    async def aclose(self) -> None:
        """Nothing to release: every send opens and closes its own files."""

    def folder_for(self, delivery: Delivery) -> Path:
        """The delivery's address when it names a folder (absolute or existing), else the feed."""
        address = delivery.address.strip()
        if address:
            folder = Path(address).expanduser()
            if folder.is_absolute() or folder.is_dir():
                return folder
        return self.feed_dir

    def _publish(self, delivery: Delivery) -> str:
        try:
            fresh = alert_for(delivery, self.sender)
        except ValueError as err:
            raise SendFailed(f"cap: cannot build the alert: {err}", retryable=False) from err
        folder = self.folder_for(delivery)
        path = folder / file_name(fresh.identifier)
        with self._lock:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                old = path.read_bytes() if path.exists() else None
            except OSError as err:
                raise SendFailed(f"cap: cannot read {path}: {err}", retryable=True) from err
            try:
                alert = fresh if old is None else merge_alert(parse_alert(old), fresh)
            except ValueError as err:
                raise SendFailed(f"cap: {path}: {err}", retryable=False) from err
            try:
                replace_file(path, alert_xml(alert).encode("utf-8"))
                replace_file(folder / INDEX, self._index(folder))
            except OSError as err:
                raise SendFailed(f"cap: cannot write in {folder}: {err}", retryable=True) from err
        return alert.identifier

    def _index(self, folder: Path) -> bytes:
        entries = []
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            try:
                entries.append((path.name, parse_alert(path.read_bytes())))
            except ValueError:
                continue  # not ours (or not CAP): the index lists only alerts it can describe
        return feed_xml(self.sender, entries).encode("utf-8")


def alert_for(delivery: Delivery, sender: str) -> CapAlert:
    """The one-language alert a delivery stands for; a ValueError names what is impossible.

    The rest of the alert comes from `delivery.meta`: msg_type, references, event, category,
    urgency, severity, certainty, response_type, area, web, contact, instruction, sender_name,
    note and sent (ISO 8601, default `created_at`).
    """
    meta = delivery.meta
    info = CapInfo(
        language=delivery.lang.replace("_", "-"),
        category=meta.get("category", "Safety"),
        event=clean_text(meta.get("event") or delivery.subject),
        urgency=meta.get("urgency", "Unknown"),
        severity=meta.get("severity", "Unknown"),
        certainty=meta.get("certainty", "Unknown"),
        response_type=meta.get("response_type") or None,
        sender_name=clean_text(meta.get("sender_name", "")),
        headline=clean_text(delivery.subject),
        description=clean_text(plain_text(delivery.text)),
        instruction=clean_text(meta.get("instruction", "")),
        web=meta.get("web", ""),
        contact=clean_text(meta.get("contact", "")),
        area_desc=clean_text(meta.get("area", "")),
    )
    note = clean_text(meta.get("note", ""))
    if delivery.exercise and not note.strip():
        note = f"Exercise: incident {delivery.incident_id}"
    identifier = (meta.get("cap_identifier")
                  or f"{delivery.incident_id}.{delivery.step_id}.{delivery.number}")
    return CapAlert(
        identifier=identifier,
        sender=sender,
        sent=parse_time(meta["sent"]) if meta.get("sent") else delivery.created_at,
        status="Exercise" if delivery.exercise else "Actual",
        msg_type=meta.get("msg_type", "Alert"),
        note=note,
        references=parse_references(meta.get("references", "")),
        infos=(info,),
    )


def file_name(identifier: str) -> str:
    """A safe file name for an alert: the identifier, percent-quoted, never hidden."""
    name = quote(identifier, safe="-_.@+=")
    return ("%2E" + name[1:] if name.startswith(".") else name) + SUFFIX
