"""CAP 1.2: documents validate against the OASIS schema, and the feed folder stays consistent."""

from __future__ import annotations

import asyncio
import resource
import signal
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook.cap import (
    CapAlert,
    CapInfo,
    alert_xml,
    cap_time,
    clean_text,
    merge_alert,
    merge_info,
    parse_alert,
)
from playbook.channels.cap import INDEX, CapChannel, file_name
from playbook.delivery import Delivery, plain_text
from playbook.errors import SendFailed
from playbook.render import EXERCISE_BANNER

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "CAP-v1.2.xsd")
ATOM = "{http://www.w3.org/2005/Atom}"
SENDER = "comms@city.example"
SENT = datetime(2025, 5, 17, 14, 30, tzinfo=UTC)
TEXTS = {
    "en": "Police are at <b>Market Square</b> after hateful graffiti. "
          '<a href="https://city.example/alerts">Updates</a>',
    "ar": "\u200fالشرطة في \u2068ساحة السوق\u2069 بعد كتابات مسيئة. تجنبوا المنطقة.",
    "es": "La policía está en la <b>Plaza del Mercado</b>. Eviten la zona.",
    "fr": "La police est place du Marché. Évitez le secteur.",
    "uk": "Поліція на Ринковій площі. Уникайте району.",
    "fa": "\u200fپلیس در \u2068میدان بازار\u2069 است. ساعت ۱۴:۰۰ از منطقه دوری کنید.",
}


def delivery(lang: str = "en", *, exercise: bool = False, address: str = "",
             created_at: datetime = SENT, **meta: str) -> Delivery:
    """A public-feed delivery of the first statement in `lang`."""
    text = TEXTS[lang]
    if exercise:
        text = f"{EXERCISE_BANNER[lang]}\n\n{text}"
    return Delivery(
        key=f"inc-7/first-statement/1/feed/{lang}/cap", incident_id="inc-7", exercise=exercise,
        step_id="first-statement", number=1, recipient_id="public-feed",
        recipient_name="Public CAP feed", lang=lang, channel="cap", address=address,
        subject=f"Market Square ({lang})", text=text, created_at=created_at,
        meta={"cap_identifier": "inc-7-first-statement", "event": "Hate incident",
              "urgency": "Expected", "severity": "Moderate", "certainty": "Observed",
              "response_type": "Avoid", "area": "Market Square", **meta},
    )


def info(language: str = "en", **changes: Any) -> CapInfo:
    """A complete info in `language`."""
    fields: dict[str, Any] = {
        "language": language, "event": "Hate incident", "urgency": "Immediate",
        "severity": "Severe", "certainty": "Observed", "category": "Security",
        "response_type": "Shelter", "sender_name": "City of Example",
        "headline": "Stay away from Market Square", "description": TEXTS.get(language, "Text"),
        "instruction": "Follow police directions.", "web": "https://city.example/alerts",
        "contact": "+1 555 0100", "parameters": (("incident", "inc-7"),),
        "area_desc": "Market Square",
    }
    return CapInfo(**{**fields, **changes})


def alert(**changes: Any) -> CapAlert:
    """A valid English alert, changed as asked."""
    return CapAlert(**{"identifier": "inc-7-1", "sender": SENDER, "sent": SENT,
                       "infos": (info(),), **changes})


def send(channel: CapChannel, *deliveries: Delivery) -> list[str]:
    """Send each delivery in turn and return the receipts."""
    async def run() -> list[str]:
        return [await channel.send(d) for d in deliveries]
    return asyncio.run(run())


def test_alert_validates_against_the_official_schema() -> None:
    """A full alert with every modelled element is valid CAP 1.2 and declares UTF-8."""
    document = alert_xml(alert())
    SCHEMA.validate(document)
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns=')


@pytest.mark.parametrize("msg_type", ["Update", "Cancel"])
def test_update_and_cancel_carry_references(msg_type: str) -> None:
    """Updates and cancels list the alerts they replace as sender,identifier,sent triples."""
    earlier = datetime(2025, 5, 17, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    document = alert_xml(alert(msg_type=msg_type, references=(
        (SENDER, "inc-7-0", earlier), (SENDER, "inc-7-00", SENT))))
    SCHEMA.validate(document)
    refs = ET.fromstring(document).findtext("{urn:oasis:names:tc:emergency:cap:1.2}references")
    assert refs == (f"{SENDER},inc-7-0,2025-05-17T12:00:00+02:00 "
                    f"{SENDER},inc-7-00,2025-05-17T14:30:00-00:00")


def test_exercise_delivery_writes_an_exercise_alert_with_a_note(tmp_path: Path) -> None:
    """An exercise becomes status Exercise with a note naming the incident, banner kept."""
    send(CapChannel(tmp_path, SENDER), delivery("en", exercise=True))
    document = (tmp_path / file_name("inc-7-first-statement")).read_text(encoding="utf-8")
    SCHEMA.validate(document)
    parsed = parse_alert(document)
    assert parsed.status == "Exercise"
    assert "inc-7" in parsed.note
    assert parsed.infos[0].description.startswith(EXERCISE_BANNER["en"])


def test_six_languages_merge_into_one_valid_alert(tmp_path: Path) -> None:
    """en ar es fr uk fa become six infos of one alert; Arabic and Persian text is intact."""
    channel = CapChannel(tmp_path, SENDER)
    receipts = send(channel, *(delivery(lang) for lang in TEXTS))
    assert set(receipts) == {"inc-7-first-statement"}
    path = tmp_path / file_name("inc-7-first-statement")
    SCHEMA.validate(str(path))
    parsed = parse_alert(path.read_bytes())
    assert [i.language for i in parsed.infos] == list(TEXTS)
    for item in parsed.infos:
        assert item.description == plain_text(TEXTS[item.language])
        assert item.headline == f"Market Square ({item.language})"
    assert "ساحة السوق" in parsed.infos[1].description
    assert "\u2068میدان بازار\u2069" in parsed.infos[5].description
    assert "۱۴:۰۰" in path.read_text(encoding="utf-8")


def test_utc_is_written_as_minus_zero() -> None:
    """UTC is `-00:00`, never `Z` or `+00:00`, and fractions of a second are dropped."""
    assert cap_time(SENT.replace(microsecond=123456)) == "2025-05-17T14:30:00-00:00"
    document = alert_xml(alert(sent=SENT.replace(microsecond=5)))
    assert "<sent>2025-05-17T14:30:00-00:00</sent>" in document
    assert "+00:00" not in document
    assert "Z<" not in document


@pytest.mark.parametrize(("moment", "written"), [
    (datetime(2025, 5, 17, 18, 0, tzinfo=ZoneInfo("Asia/Kabul")), "2025-05-17T18:00:00+04:30"),
    (datetime(2025, 3, 9, 3, 15, tzinfo=ZoneInfo("America/New_York")),
     "2025-03-09T03:15:00-04:00"),
    (datetime(2025, 1, 9, 3, 15, tzinfo=ZoneInfo("America/St_Johns")),
     "2025-01-09T03:15:00-03:30"),
    (datetime(1890, 1, 1, 12, 0, tzinfo=ZoneInfo("Europe/Amsterdam")),
     "1890-01-01T11:40:28-00:00"),
])
def test_other_zones_keep_the_instant(moment: datetime, written: str) -> None:
    """Local offsets are written as they are (or UTC if not whole minutes); the instant holds."""
    document = alert_xml(alert(sent=moment))
    SCHEMA.validate(document)
    assert f"<sent>{written}</sent>" in document
    assert parse_alert(document).sent == moment.replace(microsecond=0)


def test_round_trip_through_parse_alert() -> None:
    """Whatever alert_xml writes, parse_alert reads back as an equal alert."""
    original = alert(
        status="Exercise", note="Drill 2025-05 / inc-7", msg_type="Update",
        references=((SENDER, "inc-7-0", SENT - timedelta(hours=1)),),
        infos=(info("en"), info("fa-AF", response_type=None, area_desc="", parameters=())),
    )
    assert parse_alert(alert_xml(original)) == original


@given(st.text(max_size=300), st.text(max_size=80))
@settings(max_examples=100, deadline=None)
def test_any_text_survives_a_round_trip(description: str, headline: str) -> None:
    """Cleaned text of any script, markup characters included, comes back unchanged."""
    original = alert(infos=(info(description=clean_text(description),
                                 headline=clean_text(headline)),))
    assert parse_alert(alert_xml(original)) == original


def test_merging_a_second_language_keeps_the_first(tmp_path: Path) -> None:
    """Sending Arabic after English adds an info; the English one is unchanged."""
    channel = CapChannel(tmp_path, SENDER)
    send(channel, delivery("en"))
    path = tmp_path / file_name("inc-7-first-statement")
    english = parse_alert(path.read_bytes()).infos[0]
    send(channel, delivery("ar", created_at=SENT + timedelta(minutes=3)))
    merged = parse_alert(path.read_bytes())
    assert merged.infos == (english, merged.infos[1])
    assert merged.infos[1].language == "ar"
    assert merged.sent == SENT  # the first delivery's header stands


def test_merge_info_replaces_the_same_language() -> None:
    """A second info in a language present already replaces it, in place."""
    base = alert(infos=(info("en"), info("ar")))
    merged = merge_info(base, info("AR", headline="Corrected"))
    assert [(i.language, i.headline) for i in merged.infos] == [
        ("en", "Stay away from Market Square"), ("AR", "Corrected")]


def test_resending_is_idempotent(tmp_path: Path) -> None:
    """The same delivery twice leaves the same bytes and the same files."""
    channel = CapChannel(tmp_path, SENDER)
    send(channel, delivery("en"), delivery("uk"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert send(channel, delivery("uk")) == ["inc-7-first-statement"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert sorted(before) == [file_name("inc-7-first-statement"), INDEX]


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Make writes past `limit` bytes fail with EFBIG (a full disk, for one process)."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_failing_write_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    """A write that fails half-way is retryable, and the old alert and index stay whole."""
    channel = CapChannel(tmp_path, SENDER)
    send(channel, delivery("en"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    huge = delivery("fr", instruction="Évitez le secteur. " * 2000)
    with file_size_limit(16_384), pytest.raises(SendFailed) as failure:
        send(channel, huge)
    assert failure.value.retryable
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    send(channel, huge)
    assert len(parse_alert((tmp_path / file_name("inc-7-first-statement")).read_bytes()).infos) == 2


@pytest.mark.parametrize(("changes", "message"), [
    ({"msg_type": "Update"}, "needs references"),
    ({"msg_type": "Cancel"}, "needs references"),
    ({"infos": ()}, "at least one info"),
    ({"sent": datetime(2025, 5, 17, 14, 30)}, "no time zone"),
    ({"references": ((SENDER, "x", datetime(2025, 1, 1)),), "msg_type": "Update"}, "no time zone"),
    ({"status": "Exercise"}, "needs a note"),
    ({"identifier": "inc 7"}, "without spaces"),
    ({"identifier": "inc,7"}, "commas"),
    ({"sender": "a<b&c"}, "< or &"),
    ({"infos": (info("en"), info("EN"))}, "one info per language"),
    ({"scope": "Private"}, "only Public"),
    ({"status": "Real"}, "status 'Real'"),
])
def test_impossible_alerts_are_refused(changes: dict[str, Any], message: str) -> None:
    """Alerts CAP forbids, or that our feed cannot mean, fail with a ValueError saying why."""
    with pytest.raises(ValueError, match=message):
        alert(**changes)


@pytest.mark.parametrize(("changes", "message"), [
    ({"urgency": "Soon"}, "urgency 'Soon'"),
    ({"language": "fa_AF"}, "not a language tag"),
    ({"event": " "}, "needs an event"),
    ({"description": "bell \x07"}, "control character"),
])
def test_impossible_infos_are_refused(changes: dict[str, Any], message: str) -> None:
    """Values outside CAP's vocabularies, and text XML cannot carry, are refused."""
    with pytest.raises(ValueError, match=message):
        info(**changes)


def test_an_exercise_never_merges_into_an_actual_alert(tmp_path: Path) -> None:
    """An exercise delivery aimed at an actual alert's identifier fails for good, file untouched."""
    channel = CapChannel(tmp_path, SENDER)
    send(channel, delivery("en"))
    before = (tmp_path / file_name("inc-7-first-statement")).read_bytes()
    with pytest.raises(SendFailed, match="status 'Actual'") as failure:
        send(channel, delivery("ar", exercise=True))
    assert not failure.value.retryable
    assert (tmp_path / file_name("inc-7-first-statement")).read_bytes() == before
    with pytest.raises(ValueError, match="msg_type"):
        merge_alert(alert(), alert(msg_type="Update", references=((SENDER, "a", SENT),)))


@pytest.mark.parametrize("meta", [{"urgency": "Soon"}, {"msg_type": "Update"},
                                  {"sent": "2025-05-17 14:30"}, {"references": "a,b"}])
def test_bad_meta_fails_without_retry(tmp_path: Path, meta: dict[str, str]) -> None:
    """A delivery that cannot become a valid alert is not retried and writes nothing."""
    base = delivery("en")
    with pytest.raises(SendFailed) as failure:
        send(CapChannel(tmp_path, SENDER), replace(base, meta={**base.meta, **meta}))
    assert not failure.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_meta_sets_type_references_and_sent(tmp_path: Path) -> None:
    """msg_type, references, sent and category come from meta, sent converted correctly."""
    refs = f"{SENDER},inc-7-first-statement,2025-05-17T14:30:00-00:00"
    send(CapChannel(tmp_path, SENDER), delivery(
        "es", cap_identifier="inc-7-update-1", msg_type="Update", references=refs,
        sent="2025-05-17T18:00:00+02:00", category="Safety", contact="112"))
    path = tmp_path / file_name("inc-7-update-1")
    SCHEMA.validate(str(path))
    parsed = parse_alert(path.read_bytes())
    assert (parsed.msg_type, parsed.references[0][2]) == ("Update", SENT)
    assert parsed.sent == datetime(2025, 5, 17, 16, 0, tzinfo=UTC)
    assert "<sent>2025-05-17T18:00:00+02:00</sent>" in path.read_text(encoding="utf-8")


def test_index_lists_alerts_newest_first(tmp_path: Path) -> None:
    """index.xml is an Atom feed whose entries link each alert file, the latest first."""
    channel = CapChannel(tmp_path, SENDER)
    send(channel, delivery("en"),
         delivery("en", cap_identifier="inc-7-update", msg_type="Update",
                  references=f"{SENDER},inc-7-first-statement,2025-05-17T14:30:00-00:00",
                  created_at=SENT + timedelta(hours=4)))
    (tmp_path / "stray.cap.xml").write_text("not xml", encoding="utf-8")
    send(channel, delivery("fr"))
    feed = ET.parse(tmp_path / INDEX).getroot()
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}updated") == "2025-05-17T18:30:00Z"
    links = [e.find(f"{ATOM}link").get("href") for e in feed.iter(f"{ATOM}entry")]  # type: ignore[union-attr]
    assert links == [file_name("inc-7-update"), file_name("inc-7-first-statement")]


def test_address_naming_a_folder_overrides_the_feed(tmp_path: Path) -> None:
    """A delivery addressed to a folder path is written there, not in the default feed."""
    other = tmp_path / "sandbox-feed"
    send(CapChannel(tmp_path / "feed", SENDER), delivery("en", address=str(other)))
    assert (other / file_name("inc-7-first-statement")).exists()
    assert not (tmp_path / "feed").exists()


def test_identifiers_cannot_escape_the_folder(tmp_path: Path) -> None:
    """An identifier with slashes or a leading dot still names one visible file in the folder."""
    assert file_name("../etc/passwd") == "%2E.%2Fetc%2Fpasswd.cap.xml"
    send(CapChannel(tmp_path, SENDER), delivery("en", cap_identifier="../x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["%2E.%2Fx.cap.xml", INDEX]


def test_a_bad_sender_is_refused_at_start() -> None:
    """The channel will not start with a sender CAP forbids."""
    with pytest.raises(ValueError, match="sender"):
        CapChannel(Path("feed"), "City comms")
