"""Audiences: who a step reaches, in which language and over which channels, from a directory."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from playbook.audience import (
    Fallback,
    available,
    channels_for,
    choice_for,
    person,
    reach,
    select,
    variants,
)
from playbook.directory import (
    Directory,
    Intermediary,
    MediaContact,
    PublicChannel,
    Recipient,
    Staff,
)
from playbook.language import Choice
from playbook.model import Audience, MessageStep, Playbook
from playbook.render import Renderer, TemplateLibrary, TemplateSource

HOLDERS = {"lead": "anna", "liaison": "bilal", "spokesperson": "anna", "monitor": None}


def _intermediary(id: str, languages: list[str], **fields: Any) -> Intermediary:
    data: dict[str, Any] = {"id": id, "name": id.title(), "languages": languages,
                            "telegram_chat_id": "@" + id.replace("-", "_") + "_chat"}
    data.update(fields)
    return Intermediary.model_validate(data)


DIRECTORY = Directory(
    staff=(
        Staff.model_validate({"id": "anna", "name": "Anna", "languages": ["en"],
                              "telegram_chat_id": "1", "email": "anna@city.example",
                              "roles": ["lead"]}),
        Staff.model_validate({"id": "bilal", "name": "Bilal", "languages": ["ar", "en"],
                              "email": "bilal@city.example", "roles": ["liaison"]}),
    ),
    intermediaries=(
        _intermediary("imam-a", ["ar-EG", "en"], kind="religious_leader",
                      communities=["muslim_community"], areas=["north"], tags=["faith"]),
        _intermediary("olena", ["uk", "en"], communities=["ukrainian_community"],
                      areas=["east"], tags=["youth"], email="olena@ngo.example"),
        _intermediary("hassan", ["prs"], communities=["muslim_community", "afghan_community"],
                      areas=["east"]),
        _intermediary("maryam", ["fa-AF", "fa"], kind="organisation",
                      communities=["afghan_community"], areas=["south"],
                      telegram_chat_id=None, email="maryam@afghan.example"),
        _intermediary("farah", ["so"], kind="organisation", communities=["somali_community"],
                      areas=["north"]),
        _intermediary("ivan", ["uk"], communities=["ukrainian_community"], areas=["east"],
                      tags=["youth", "faith"], kind="religious_leader", active=False),
        _intermediary("samir", ["ar"], kind="religious_leader",
                      communities=["syrian_community"], areas=["west"], tags=["faith", "youth"],
                      telegram_chat_id=None, email="samir@mosque.example"),
    ),
    media=(
        MediaContact.model_validate({"id": "newsdesk", "name": "Newsdesk", "languages": ["en"],
                                     "email": "news@paper.example"}),
        MediaContact.model_validate({"id": "radio-fa", "name": "Radio Farsi",
                                     "languages": ["fa"], "telegram_chat_id": "@radiofarsi"}),
    ),
    public=(
        PublicChannel(id="telegram_channel", name="Riverton", channel="telegram",
                      addresses={"*": "@riverton"}),
        PublicChannel(id="website", channel="file", addresses={"en": "site/en", "ar": "site/ar"}),
    ),
)
ACTIVE = ["imam-a", "olena", "hassan", "maryam", "farah", "samir"]


def _playbook(to: dict[str, Any], channels: list[str] | None = None,
              **changes: Any) -> Playbook:
    step: dict[str, Any] = {"id": "brief", "message": "briefing", "to": to, "at": "0m",
                            "channels": channels or []}
    if "media" in to or "public" in to:
        step["approval"] = ["lead"]
    data: dict[str, Any] = {
        "id": "test", "title": "Test", "kind": "hate_incident",
        "languages": ["en", "ar", "uk", "fa"],
        "roles": {"lead": {"title": "Lead", "duties": ["Lead"], "approves": True},
                  "liaison": {"title": "Liaison", "duties": ["Liaise"]},
                  "spokesperson": {"title": "Spokesperson", "duties": ["Speak"]},
                  "monitor": {"title": "Monitor", "duties": ["Watch"]}},
        "steps": [step],
    }
    data.update(changes)
    return Playbook.model_validate(data)


def _step(pb: Playbook) -> MessageStep:
    return pb.message_steps()[0]


def _chosen(intermediaries: dict[str, Any], values: dict[str, Any] | None = None) -> list[str]:
    """The ids of the intermediaries an `intermediaries:` selector reaches."""
    audience = Audience.model_validate({"intermediaries": intermediaries})
    found = select(audience, DIRECTORY, values or {}, HOLDERS)
    assert all(r.kind == "intermediary" for r in found)
    return [r.id.removeprefix("intermediary:") for r in found]


@pytest.mark.parametrize(("selector", "expected"), [
    ({"community": "muslim_community"}, ["imam-a", "hassan"]),
    ({"community": "afghan_community"}, ["hassan", "maryam"]),
    ({"area": "east"}, ["olena", "hassan"]),
    ({"area": "north"}, ["imam-a", "farah"]),
    ({"tag": "faith"}, ["imam-a", "samir"]),
    ({"tag": "youth"}, ["olena", "samir"]),
    ({"kind": "religious_leader"}, ["imam-a", "samir"]),
    ({"kind": "organisation"}, ["maryam", "farah"]),
    ({"kind": "community_leader"}, ["olena", "hassan"]),
    ({"language": "uk"}, ["olena"]),
    ({"language": "so"}, ["farah"]),
    ({"community": "nobody_here"}, []),
])
def test_each_field_selects_on_its_own(selector: dict[str, Any], expected: list[str]) -> None:
    """Community, area, tag, kind and language each pick the active intermediaries that match."""
    assert _chosen(selector) == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ({"community": ["ukrainian_community", "somali_community"]}, ["olena", "farah"]),
    ({"area": ["west", "south"]}, ["maryam", "samir"]),
    ({"tag": ["faith", "youth"]}, ["imam-a", "olena", "samir"]),
    ({"kind": ["organisation", "religious_leader"]}, ["imam-a", "maryam", "farah", "samir"]),
    ({"language": ["uk", "so"]}, ["olena", "farah"]),
    ({"community": ["nobody_here", "syrian_community"]}, ["samir"]),
])
def test_a_list_means_any_of_it(selector: dict[str, Any], expected: list[str]) -> None:
    """Within one field, a list matches an intermediary who has any of its values."""
    assert _chosen(selector) == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ({"community": "muslim_community", "area": "east"}, ["hassan"]),
    ({"community": "muslim_community", "area": "north"}, ["imam-a"]),
    ({"kind": "religious_leader", "tag": "youth"}, ["samir"]),
    ({"area": ["north", "east"], "language": "ar"}, ["imam-a"]),
    ({"area": ["north", "east"], "kind": ["organisation", "community_leader"]},
     ["olena", "hassan", "farah"]),
    ({"community": "muslim_community", "language": ["uk", "so"]}, []),
    ({"community": "afghan_community", "area": "south", "kind": "organisation",
      "language": "fa"}, ["maryam"]),
    ({"community": "afghan_community", "area": "south", "kind": "organisation",
      "language": "fa", "tag": "faith"}, []),
])
def test_fields_combine_with_and(selector: dict[str, Any], expected: list[str]) -> None:
    """Every field given must match: a wider list in one field cannot widen another."""
    assert _chosen(selector) == expected


def test_an_empty_selector_reaches_every_active_intermediary() -> None:
    """`intermediaries: {}` is everyone active, in directory order."""
    assert _chosen({}) == ACTIVE


def test_inactive_intermediaries_are_never_selected() -> None:
    """Ivan matches community, area, tag, kind and language, and is still left out."""
    assert _chosen({"community": "ukrainian_community", "area": "east", "tag": "youth",
                    "language": "uk"}) == ["olena"]
    assert _chosen({"kind": "religious_leader", "tag": "faith", "area": ["east", "north"]}) \
        == ["imam-a"]
    assert "ivan" not in _chosen({})


@pytest.mark.parametrize(("selector", "values", "expected"), [
    ({"community": "{{ community }}"}, {"community": "ukrainian_community"}, ["olena"]),
    ({"community": "{{community}}"}, {"community": "somali_community"}, ["farah"]),
    ({"community": ["{{ community }}", "somali_community"]},
     {"community": "ukrainian_community"}, ["olena", "farah"]),
    ({"area": ["{{ area }}"], "community": "{{ community }}"},
     {"area": "north", "community": "muslim_community"}, ["imam-a"]),
    ({"language": "{{ lang }}"}, {"lang": "ar"}, ["imam-a", "samir"]),
    # A parameter not given is not a wildcard: nobody has a community named `{{ community }}`.
    ({"community": "{{ community }}"}, {}, []),
])
def test_parameter_references_are_filled_from_activation_values(
        selector: dict[str, Any], values: dict[str, Any], expected: list[str]) -> None:
    """`{{ name }}` takes the activation value, alone or as one item of a list."""
    assert _chosen(selector, values) == expected


@pytest.mark.parametrize(("language", "expected"), [
    ("ar", ["imam-a", "samir"]),
    ("AR", ["imam-a", "samir"]),
    ("ar-EG", ["imam-a"]),
    ("fa", ["hassan", "maryam"]),
    ("fa-AF", ["hassan", "maryam"]),
    ("prs", ["hassan", "maryam"]),
    ("fa-IR", []),
    ("en", ["imam-a", "olena"]),
])
def test_language_selects_readers_of_that_language(language: str, expected: list[str]) -> None:
    """`ar` reaches Egyptian Arabic too; Dari (`prs`) is `fa-AF`, Persian but never Arabic."""
    assert _chosen({"language": language}) == expected


def test_a_dari_reader_is_not_an_arabic_reader() -> None:
    """A `prs` speaker shares a script with Arabic, not a language."""
    assert "hassan" not in _chosen({"language": "ar"})
    assert "hassan" not in _chosen({"language": ["ar", "ar-EG", "uk"]})


def test_roles_intermediaries_media_and_public_combine_each_recipient_once() -> None:
    """Every part adds its people; a person holding two roles, or named twice, comes once."""
    audience = Audience.model_validate({
        "roles": ["lead", "spokesperson", "liaison", "monitor"],
        "intermediaries": {"community": "ukrainian_community"},
        "media": True,
        "public": ["telegram_channel", "website", "telegram_channel"],
    })
    found = select(audience, DIRECTORY, {}, HOLDERS)
    assert [r.id for r in found] == [
        "staff:anna", "staff:bilal", "intermediary:olena", "media:newsdesk", "media:radio-fa",
        "public:telegram_channel:*", "public:website:en", "public:website:ar"]
    assert len({r.id for r in found}) == len(found)
    assert [r.kind for r in found] == ["staff"] * 2 + ["intermediary"] + ["media"] * 2 + [
        "public"] * 3
    bilal = found[1]
    assert (bilal.languages, bilal.addresses) == (("ar", "en"),
                                                  (("email", "bilal@city.example"),))
    assert [(r.languages, r.addresses) for r in found[5:]] == [
        ((), (("telegram", "@riverton"),)),
        (("en",), (("file", "site/en"),)),
        (("ar",), (("file", "site/ar"),)),
    ]


def test_a_role_nobody_holds_reaches_nobody() -> None:
    """An unfilled role, or a holder missing from the directory, adds no recipient."""
    audience = Audience.model_validate({"roles": ["monitor", "liaison"]})
    assert select(audience, DIRECTORY, {}, {"monitor": None, "liaison": "ghost"}) == []
    assert select(audience, DIRECTORY, {}, {}) == []


def test_available_lists_the_playbooks_languages_then_regional_ones() -> None:
    """A language without its template is left out; a regional template is added after."""
    pb = _playbook({"roles": ["lead"]})
    library = TemplateLibrary({(k, lang): TemplateSource(k, lang, f"{k}/{lang}.j2", "x")
                               for k, lang in [("briefing", "en"), ("briefing", "uk"),
                                               ("briefing", "ar"), ("briefing", "fa-AF"),
                                               ("briefing", "ar-EG"), ("other", "fa")]})
    assert available(pb, library, "briefing") == ("en", "ar", "uk", "ar-EG", "fa-AF")


def test_choice_for_a_public_channel_in_every_language_is_none() -> None:
    """A `*` channel posts every language; a channel for one language gets that language."""
    everyone = Recipient("public:tg:*", "Channel", "public", (), (("telegram", "@c"),))
    arabic = Recipient("public:web:ar", "Site", "public", ("ar",), (("file", "ar"),))
    pb = _playbook({"roles": ["lead"]})
    assert choice_for(everyone, ("en", "ar"), pb) is None
    assert choice_for(arabic, ("en", "ar"), pb) == Choice("ar", "ar")
    nobody = Recipient("staff:x", "X", "staff", (), (("email", "x@y.z"),))
    assert choice_for(nobody, ("en", "ar"), pb) == Choice("en", "en", fallback=True)


def _people(*ids: str) -> list[Recipient]:
    return [person(i, "intermediary") for i in DIRECTORY.intermediaries if i.id in ids]


def test_variants_are_one_per_locale_in_template_order() -> None:
    """Two Arabic readers need one text; Egyptian Arabic and Dari each need their own locale."""
    pb = _playbook({"roles": ["lead"]})
    needed = variants(_people(*ACTIVE), ("en", "ar", "uk", "fa"), pb)
    assert list(needed.items()) == [
        ("en", "en"), ("ar", "ar"), ("ar-EG", "ar"), ("uk", "uk"), ("fa-AF", "fa")]


def test_a_public_channel_for_every_language_needs_every_playbook_language() -> None:
    """A `*` channel adds every language of the playbook, beside the readers' own locales."""
    pb = _playbook({"public": ["telegram_channel"]})
    public = select(_step(pb).to, DIRECTORY, {}, HOLDERS)
    offered = ("en", "ar", "uk", "fa")
    assert variants(public, offered, pb) == {"en": "en", "ar": "ar", "uk": "uk", "fa": "fa"}
    mixed = variants([*_people("hassan"), *public], offered, pb)
    assert list(mixed.items()) == [
        ("en", "en"), ("ar", "ar"), ("uk", "uk"), ("fa", "fa"), ("fa-AF", "fa")]


def test_each_variant_renders_in_its_own_locale() -> None:
    """The variants of one template differ where their locales format differently."""
    pb = _playbook({"roles": ["lead"]})
    needed = variants(_people("imam-a", "samir", "hassan", "maryam"), ("en", "ar", "fa"), pb)
    assert needed == {"ar": "ar", "ar-EG": "ar", "fa-AF": "fa"}
    renderer = Renderer(ZoneInfo("Europe/Vienna"))
    when = datetime(2026, 5, 1, 12, 0, tzinfo=ZoneInfo("UTC"))
    texts = {locale: renderer.render(TemplateSource("briefing", lang, f"{lang}.j2",
                                                    "{{ when|date }}"),
                                     {"when": when}, locale=locale).text
             for locale, lang in needed.items()}
    assert len(set(texts.values())) == 3
    assert "٢٠٢٦" in texts["ar-EG"]
    assert "۲۰۲۶" in texts["fa-AF"]
    assert "2026" in texts["ar"]


def test_channels_for_uses_the_allowed_channels_the_recipient_has() -> None:
    """Allowed channels filter a person's addresses; none allowed means the first address."""
    olena = _people("olena")[0]
    assert channels_for(olena, ()) == [("telegram", "@olena_chat")]
    assert channels_for(olena, ("email",)) == [("email", "olena@ngo.example")]
    assert channels_for(olena, ("telegram", "email")) == list(olena.addresses)
    assert channels_for(_people("farah")[0], ("email",)) == []
    public = Recipient("public:w:en", "Site", "public", ("en",),
                       (("file", "site/en"),))
    assert channels_for(public, ("email",)) == [("file", "site/en")]


def test_reach_counts_languages_channels_fallbacks_and_the_unreachable() -> None:
    """Farah reads only Somali and has only Telegram: a fallback, and unreachable by e-mail."""
    pb = _playbook({"roles": ["lead"], "intermediaries": {
        "community": ["ukrainian_community", "somali_community", "syrian_community"]}},
        channels=["email"])
    found = reach(_step(pb), pb, DIRECTORY, {}, HOLDERS, ("en", "ar", "uk", "fa"))
    farah = _people("farah")[0]
    assert found.recipients == 4
    assert found.by_language == {"en": 2, "uk": 1, "ar": 1}
    assert found.by_channel == {"email": 3}
    assert found.fallbacks == (Fallback(farah, "en"),)
    assert found.unreachable == (farah,)


def test_reach_follows_the_playbooks_fallback_chain() -> None:
    """With `fallback: [ar, en]`, a Somali reader is counted and reported under Arabic."""
    pb = _playbook({"intermediaries": {"area": "north"}}, fallback=["ar", "en"])
    found = reach(_step(pb), pb, DIRECTORY, {}, HOLDERS, ("en", "ar", "uk", "fa"))
    assert found.by_language == {"ar-EG": 1, "ar": 1}
    assert found.by_channel == {"telegram": 2}
    assert found.fallbacks == (Fallback(_people("farah")[0], "ar"),)
    assert found.unreachable == ()


def test_reach_counts_a_public_channel_once_per_language() -> None:
    """A `*` channel posts each playbook language: one recipient, one post per language."""
    pb = _playbook({"public": ["telegram_channel", "website"]})
    found = reach(_step(pb), pb, DIRECTORY, {}, HOLDERS, ("en", "ar", "uk", "fa"))
    assert found.recipients == 3
    assert found.by_language == {"en": 2, "ar": 2, "uk": 1, "fa": 1}
    assert found.by_channel == {"telegram": 4, "file": 2}
    assert (found.fallbacks, found.unreachable) == ((), ())
