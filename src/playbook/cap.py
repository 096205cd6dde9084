"""Common Alerting Protocol 1.2 documents: the alert model, its XML, and the Atom index of a feed.

Pure: no clock, no files; `playbook.channels.cap` decides where documents live. Only what our
messages need is modelled (one `<info>` per language, one area by its description), and
`parse_alert` reads back exactly what `alert_xml` writes. Impossible alerts are refused when they
are built, so every `CapAlert` that exists can be written as a valid CAP 1.2 document.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
              "Infra", "CBRNE", "Other")
RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess",
                  "AllClear", "None")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

Reference = tuple[str, str, datetime]
"""One earlier message this one refers to: (sender, identifier, sent)."""

_TOKEN = re.compile(r"[^\s,<&]+")  # CAP 1.2 §3.2.1: no spaces, commas, < or & in ids and sender
_LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")  # xs:language
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT_FIELDS = ("event", "sender_name", "headline", "description", "instruction", "web",
                "contact", "area_desc")


@dataclass(frozen=True, kw_only=True)
class CapInfo:
    """One language's `<info>`: what happened, how urgent, and what to do."""

    language: str
    event: str
    urgency: str
    severity: str
    certainty: str
    category: str = "Safety"
    response_type: str | None = None
    sender_name: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    web: str = ""
    contact: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    area_desc: str = ""
    """Empty means no `<area>`."""

    def __post_init__(self) -> None:
        if not _LANGUAGE.fullmatch(self.language):
            raise ValueError(f"language {self.language!r} is not a language tag like en or fa-AF")
        _one_of("category", self.category, CATEGORIES)
        _one_of("urgency", self.urgency, URGENCIES)
        _one_of("severity", self.severity, SEVERITIES)
        _one_of("certainty", self.certainty, CERTAINTIES)
        if self.response_type is not None:
            _one_of("response_type", self.response_type, RESPONSE_TYPES)
        if not self.event.strip():
            raise ValueError("an info needs an event (the kind of incident, e.g. 'Hate incident')")
        for name in _TEXT_FIELDS:
            _xml_text(name, getattr(self, name))
        for name, value in self.parameters:
            _xml_text("parameter", name + value)


@dataclass(frozen=True, kw_only=True)
class CapAlert:
    """One CAP message: who sent it when, its status and type, and one info per language."""

    identifier: str
    sender: str
    sent: datetime
    """Aware; written to the second (fractions are dropped)."""
    infos: tuple[CapInfo, ...]
    status: str = "Actual"
    msg_type: str = "Alert"
    scope: str = "Public"
    note: str = ""
    references: tuple[Reference, ...] = ()

    def __post_init__(self) -> None:
        check_token("identifier", self.identifier)
        check_token("sender", self.sender)
        cap_time(self.sent)
        _one_of("status", self.status, STATUSES)
        _one_of("msg_type", self.msg_type, MSG_TYPES)
        if self.scope != "Public":
            raise ValueError(f"scope {self.scope!r} is not supported: only Public alerts are")
        _xml_text("note", self.note)
        if self.status == "Exercise" and not self.note.strip():
            raise ValueError("an Exercise alert needs a note naming the exercise or incident")
        if self.msg_type != "Alert" and not self.references:
            raise ValueError(f"a {self.msg_type} needs references to the alert(s) it replaces")
        for sender, identifier, sent in self.references:
            check_token("reference sender", sender)
            check_token("reference identifier", identifier)
            cap_time(sent)
        if not self.infos:
            raise ValueError("an alert needs at least one info (one per language)")
        languages = [info.language.lower() for info in self.infos]
        if len(set(languages)) != len(languages):
            raise ValueError(f"one info per language, got languages {languages}")


def check_token(what: str, value: str) -> str:
    """`value` if CAP allows it as a sender or identifier, else a ValueError saying why."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be non-empty without spaces, commas, < or &")
    return value


def clean_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry, with Unix line ends."""
    return _NOT_XML.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def cap_time(moment: datetime) -> str:
    """`YYYY-MM-DDThh:mm:ss±hh:mm` in the moment's own offset; UTC is `-00:00` as CAP requires."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone; CAP times must be aware")
    if offset % timedelta(minutes=1):  # historic zones with second offsets cannot be written
        moment, offset = moment.astimezone(UTC), timedelta(0)
    minutes = abs(offset) // timedelta(minutes=1)
    sign = "+" if offset > timedelta(0) else "-"
    stamp = moment.replace(tzinfo=None, microsecond=0).isoformat()
    return f"{stamp}{sign}{minutes // 60:02}:{minutes % 60:02}"


def parse_time(text: str) -> datetime:
    """A CAP (or ISO 8601) time with its offset; a time without one is refused."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise ValueError(f"time {text!r} is not like 2025-01-31T14:00:00+01:00") from err
    if moment.utcoffset() is None:
        raise ValueError(f"time {text!r} has no offset; write it like 2025-01-31T14:00:00+01:00")
    return moment


def format_references(references: Iterable[Reference]) -> str:
    """The `<references>` text: space-separated `sender,identifier,sent` triples."""
    return " ".join(f"{s},{i},{cap_time(t)}" for s, i, t in references)


def parse_references(text: str) -> tuple[Reference, ...]:
    """The triples of a `<references>` text (empty text: none)."""
    triples: list[Reference] = []
    for item in text.split():
        parts = item.split(",")
        if len(parts) != 3:
            raise ValueError(f"reference {item!r} is not sender,identifier,sent")
        triples.append((parts[0], parts[1], parse_time(parts[2])))
    return tuple(triples)


def merge_info(alert: CapAlert, info: CapInfo) -> CapAlert:
    """`alert` with `info` replacing the info in its language, or added after the others."""
    key = info.language.lower()
    infos = [info if old.language.lower() == key else old for old in alert.infos]
    if all(old.language.lower() != key for old in alert.infos):
        infos.append(info)
    return replace(alert, infos=tuple(infos))


def merge_alert(existing: CapAlert, fresh: CapAlert) -> CapAlert:
    """`fresh`'s infos merged into `existing`, whose header stands (a published id is fixed).

    A header that disagrees on what the message is (an exercise into an actual alert, an update
    into an alert) is refused: the two cannot be one message.
    """
    for name in ("identifier", "sender", "status", "msg_type", "scope", "references"):
        old, new = getattr(existing, name), getattr(fresh, name)
        if old != new:
            raise ValueError(f"alert {existing.identifier} has {name} {_shown(old)}, "
                             f"this message has {_shown(new)}; they cannot be merged")
    merged = existing
    for info in fresh.infos:
        merged = merge_info(merged, info)
    return merged


def alert_xml(alert: CapAlert) -> str:
    """The CAP 1.2 document of `alert`, elements in schema order, with a UTF-8 declaration."""
    root = ET.Element(_cap("alert"))
    for name, value in (("identifier", alert.identifier), ("sender", alert.sender),
                        ("sent", cap_time(alert.sent)), ("status", alert.status),
                        ("msgType", alert.msg_type), ("scope", alert.scope), ("note", alert.note),
                        ("references", format_references(alert.references))):
        _add(root, name, value)
    for info in alert.infos:
        element = ET.SubElement(root, _cap("info"))
        for name, value in (("language", info.language), ("category", info.category),
                            ("event", info.event), ("responseType", info.response_type or ""),
                            ("urgency", info.urgency), ("severity", info.severity),
                            ("certainty", info.certainty), ("senderName", info.sender_name),
                            ("headline", info.headline), ("description", info.description),
                            ("instruction", info.instruction), ("web", info.web),
                            ("contact", info.contact)):
            _add(element, name, value)
        for value_name, value in info.parameters:
            parameter = ET.SubElement(element, _cap("parameter"))
            ET.SubElement(parameter, _cap("valueName")).text = value_name
            ET.SubElement(parameter, _cap("value")).text = value
        if info.area_desc:
            area = ET.SubElement(element, _cap("area"))
            ET.SubElement(area, _cap("areaDesc")).text = info.area_desc
    return _document(root, NS)


def parse_alert(document: str | bytes) -> CapAlert:
    """The alert in a CAP 1.2 document; a ValueError says what is missing or wrong."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as err:
        raise ValueError(f"not well-formed XML: {err}") from err
    if root.tag != _cap("alert"):
        raise ValueError(f"not a CAP 1.2 alert: the root is {root.tag}")
    infos = []
    for element in root.iterfind(_cap("info")):
        infos.append(CapInfo(
            language=_text(element, "language"), category=_text(element, "category"),
            event=_text(element, "event"),
            response_type=_text(element, "responseType") or None,
            urgency=_text(element, "urgency"), severity=_text(element, "severity"),
            certainty=_text(element, "certainty"), sender_name=_text(element, "senderName"),
            headline=_text(element, "headline"), description=_text(element, "description"),
            instruction=_text(element, "instruction"), web=_text(element, "web"),
            contact=_text(element, "contact"),
            parameters=tuple((_text(p, "valueName"), _text(p, "value"))
                             for p in element.iterfind(_cap("parameter"))),
            area_desc=_text(element, "area", "areaDesc"),
        ))
    return CapAlert(
        identifier=_text(root, "identifier"), sender=_text(root, "sender"),
        sent=parse_time(_text(root, "sent")), status=_text(root, "status"),
        msg_type=_text(root, "msgType"), scope=_text(root, "scope"), note=_text(root, "note"),
        references=parse_references(_text(root, "references")), infos=tuple(infos),
    )


def feed_xml(sender: str, entries: Iterable[tuple[str, CapAlert]]) -> str:
    """An Atom index of a folder's alerts, newest first; each entry is (file name, alert)."""
    ordered = sorted(entries, key=lambda entry: (entry[1].sent, entry[1].identifier),
                     reverse=True)
    feed_id = "urn:playbook:cap:" + quote(sender, safe="@.-_")
    # Plain names under an xmlns attribute: ElementTree cannot combine a default namespace
    # with the unqualified attributes (href, type) Atom uses.
    root = ET.Element("feed", xmlns=ATOM_NS)
    ET.SubElement(root, "id").text = feed_id
    ET.SubElement(root, "title").text = f"CAP alerts from {sender}"
    newest = ordered[0][1].sent if ordered else datetime(1970, 1, 1, tzinfo=UTC)
    ET.SubElement(root, "updated").text = _atom_time(newest)
    ET.SubElement(ET.SubElement(root, "author"), "name").text = sender
    for name, alert in ordered:
        entry = ET.SubElement(root, "entry")
        ET.SubElement(entry, "id").text = f"{feed_id}:{quote(alert.identifier, safe='')}"
        first = alert.infos[0]
        ET.SubElement(entry, "title").text = first.headline or first.event
        ET.SubElement(entry, "updated").text = _atom_time(alert.sent)
        ET.SubElement(entry, "link", href=quote(name), type="application/cap+xml")
        languages = " ".join(info.language for info in alert.infos)
        ET.SubElement(entry, "summary").text = (
            f"{alert.status} {alert.msg_type}: {first.event} ({languages})")
    return _document(root)


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def _xml_text(what: str, value: str) -> None:
    if _NOT_XML.search(value):
        raise ValueError(f"{what} holds a control character XML cannot carry; use clean_text()")


def _shown(value: object) -> str:
    return repr(format_references(value)) if isinstance(value, tuple) else repr(value)


def _cap(name: str) -> str:
    return f"{{{NS}}}{name}"


def _atom_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _add(parent: ET.Element, name: str, value: str) -> None:
    if value:  # every optional CAP element is left out rather than written empty
        ET.SubElement(parent, _cap(name)).text = value


def _text(parent: ET.Element, *path: str) -> str:
    element = parent.find("/".join(_cap(name) for name in path))
    return "" if element is None or element.text is None else element.text


def _document(root: ET.Element, namespace: str | None = None) -> str:
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode", default_namespace=namespace)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
