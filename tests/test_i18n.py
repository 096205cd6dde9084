"""The bot's gettext catalogs: negotiation, plural rules, placeholders, and compiled in step."""

from __future__ import annotations

import fnmatch
import gettext
import re
import tomllib
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po, write_po

from conftest import ROOT
from playbook import i18ntool
from playbook.i18n import LOCALES, N_, autonym, load, negotiate, translator
from playbook.i18ntool import PLURAL_FORMS, compile_all, compile_catalog, extract, main, po_path

LOCALE_DIR = ROOT / "src" / "playbook" / "locale"
REQUIRED = ("en", "ar", "uk", "fr")
CLDR_TO_FORM = {
    # Which gettext form each CLDR plural category of whole numbers reads. French and Spanish
    # "many" (exact millions: "un million de messages") is written with the plural form.
    "en": {"one": 0, "other": 1},
    "es": {"one": 0, "many": 1, "other": 1},
    "fr": {"one": 0, "many": 1, "other": 1},
    "fa": {"one": 0, "other": 1},
    "ar": {"zero": 0, "one": 1, "two": 2, "few": 3, "many": 4, "other": 5},
    "uk": {"one": 0, "few": 1, "many": 2},
}
NUMBERS = [*range(0, 1201), 1_000_000, 1_000_001, 2_000_000, 1_000_000_000]


def read(path: Path, lang: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def ids(catalog: Catalog) -> set[object]:
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id))
            for m in catalog if m.id}


@pytest.mark.parametrize("lang", LOCALES)
def test_committed_mo_is_a_fresh_compile_of_its_po(lang: str) -> None:
    """Every committed .mo is byte for byte what `compile` makes of its .po."""
    path = po_path(lang, LOCALE_DIR)
    assert path.with_suffix(".mo").read_bytes() == compile_catalog(read(path, lang)), (
        f"{path.with_suffix('.mo')} is stale: run `python -m playbook.i18ntool compile`")


def test_extraction_finds_no_message_missing_from_the_template_or_a_catalog() -> None:
    """Every marked string in the sources is in playbook.pot and in every language's .po."""
    wanted = ids(extract())
    assert wanted - ids(read(LOCALE_DIR / "playbook.pot")) == set(), (
        "run `python -m playbook.i18ntool extract`")
    for lang in LOCALES:
        assert wanted - ids(read(po_path(lang, LOCALE_DIR), lang)) == set(), lang


@pytest.mark.parametrize("lang", LOCALES)
def test_catalog_has_no_fuzzy_or_missing_translation_or_placeholder_mismatch(lang: str) -> None:
    """A shipped catalog compiles: complete, not fuzzy, placeholders as in the English."""
    path = po_path(lang, LOCALE_DIR)
    assert i18ntool.problems(read(path, lang), path, lang) == []


def test_the_required_languages_are_shipped() -> None:
    """Issue 6: the bot speaks at least English, Arabic, Ukrainian and French."""
    assert set(REQUIRED) <= set(LOCALES)
    for lang in LOCALES:
        assert po_path(lang, LOCALE_DIR).with_suffix(".mo").is_file(), lang


@pytest.mark.parametrize(("tag", "lang"), [
    ("ar-EG", "ar"), ("uk_UA", "uk"), ("fr-CA", "fr"), ("fr_CA.UTF-8", "fr"), ("pt", "en"),
    (None, "en"), ("", "en"), ("prs", "fa"), ("fa-AF", "fa"), ("AR", "ar"), ("es-419", "es"),
    ("en-GB", "en"), ("zh-Hant-TW", "en"), ("not a tag!", "en"), ("--", "en"),
])
def test_a_tag_negotiates_to_the_nearest_catalog(tag: str | None, lang: str) -> None:
    """A regional, POSIX or alias tag reads its language's catalog; anything else English."""
    assert negotiate(tag) == lang
    assert translator(tag).locale == lang


def test_translator_is_cached_and_knows_its_direction() -> None:
    """One translator per tag; Arabic and Persian are right to left, the others not."""
    assert translator("ar-EG") is translator("ar-EG")
    assert {lang for lang in LOCALES if translator(lang).rtl} == {"ar", "fa"}


@pytest.mark.parametrize("lang", ["ar", "uk", "fa"])
def test_translations_in_another_script_are_not_the_english(lang: str) -> None:
    """A shipped translation in Arabic script or Cyrillic never repeats the English words."""
    t = translator(lang)
    for message in read(po_path(lang, LOCALE_DIR), lang):
        if not message.id:
            continue
        english = message.id if isinstance(message.id, str) else message.id[-1]
        words = re.sub(r"%\([^)]*\)\w|<[^>]*>|https?://\S+", "", english)
        if re.search(r"[A-Za-z]{3}", words):
            shown = (t.gettext(english) if isinstance(message.id, str)
                     else t.ngettext(message.id[0], english, 5))
            assert shown != english, f"{lang}: {english!r} is not translated"


@pytest.mark.parametrize("lang", ["fr", "es"])
def test_translations_in_latin_script_are_mostly_not_the_english(lang: str) -> None:
    """French and Spanish may share a word with English ("Code"), but not most sentences."""
    t = translator(lang)
    messages = [m.id for m in read(po_path(lang, LOCALE_DIR), lang)
                if isinstance(m.id, str) and len(m.id.split()) >= 3]
    same = [msgid for msgid in messages if t.gettext(msgid) == msgid]
    assert len(same) <= len(messages) // 4, same


@pytest.mark.parametrize("lang", LOCALES)
def test_plural_rule_follows_cldr(lang: str) -> None:
    """The Plural-Forms of each catalog picks the CLDR form for whole numbers (ar 6, uk 3)."""
    header = translator(lang).translations.info()["plural-forms"]
    assert header == PLURAL_FORMS[lang]
    declared = re.fullmatch(r"nplurals=(\d+); plural=(.*);", header)
    assert declared is not None
    assert int(declared[1]) == len(set(CLDR_TO_FORM[lang].values()))
    plural = gettext.c2py(declared[2])
    rule = Locale.parse(lang).plural_form
    wrong = [n for n in NUMBERS if plural(n) != CLDR_TO_FORM[lang][rule(n)]]
    assert wrong == []


def test_arabic_and_ukrainian_have_six_and_three_forms() -> None:
    """Arabic declares six plural forms and Ukrainian three, as GNU gettext writes them."""
    assert PLURAL_FORMS["ar"].startswith("nplurals=6;")
    assert PLURAL_FORMS["uk"].startswith("nplurals=3;")


SOURCE = '''\
from playbook.i18n import N_, translator

WELCOME = N_("Welcome to the city's crisis desk.")


def reply(locale: str, incident_id: str, n: int) -> list[str]:
    t = translator(locale)
    # Translators: an incident id such as 2026-0042
    opened = t.gettext("Incident %(id)s is open.") % {"id": incident_id}
    count = t.ngettext("%(n)d message waits", "%(n)d messages wait", n) % {"n": n}
    return [opened, count, t.pgettext("button", "Open"), t.gettext(WELCOME)]
'''
AR_FORMS = ["لا رسائل (%(n)d)", "رسالة واحدة (%(n)d)", "رسالتان (%(n)d)", "%(n)d رسائل",
            "%(n)d رسالة", "%(n)d رسالةٍ"]
UK_FORMS = ["%(n)d повідомлення (one)", "%(n)d повідомлення (few)",
            "%(n)d повідомлень (many)"]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A package with marked strings, and where its catalogs go."""
    source = tmp_path / "pkg"
    source.mkdir()
    (source / "desk.py").write_text(SOURCE, encoding="utf-8")
    return source, tmp_path / "locale"


def run(command: str, source: Path, locale_dir: Path) -> int:
    return main([command, "--source-dir", str(source), "--locale-dir", str(locale_dir)])


def translate(locale_dir: Path, lang: str, mark: str = "") -> None:
    """Fill every untranslated message of a catalog, keeping its placeholders."""
    path = po_path(lang, locale_dir)
    catalog = read(path, lang)
    for message in catalog:
        if not message.id or (message.string and all(message.string)):
            continue
        if isinstance(message.id, str):
            message.string = f"[{lang}{mark}] {message.id}"
        else:
            forms = {"ar": AR_FORMS, "uk": UK_FORMS}.get(
                lang, [f"[{lang}] {message.id[0]}", f"[{lang}] {message.id[1]}"])
            message.string = tuple(forms)
    with path.open("wb") as handle:
        write_po(handle, catalog)


def test_extract_writes_the_template_and_a_catalog_per_language(
        tree: tuple[Path, Path]) -> None:
    """`extract` finds _, gettext, ngettext, pgettext and N_ calls, with translator comments."""
    source, locale_dir = tree
    assert run("extract", source, locale_dir) == 0
    pot = read(locale_dir / "playbook.pot")
    assert ids(pot) == {(None, "Welcome to the city's crisis desk."),
                        (None, "Incident %(id)s is open."),
                        (None, ("%(n)d message waits", "%(n)d messages wait")),
                        ("button", "Open")}
    assert pot["Incident %(id)s is open."].auto_comments == ["an incident id such as 2026-0042"]
    assert [where for where, _ in pot["Incident %(id)s is open."].locations] == ["pkg/desk.py"]
    english = read(po_path("en", locale_dir), "en")
    assert english["Incident %(id)s is open."].string == "Incident %(id)s is open."
    arabic = read(po_path("ar", locale_dir), "ar")
    assert arabic.num_plurals == 6
    assert all(not m.string or not any(m.string) for m in arabic if m.id)


def test_extract_again_keeps_translations_and_adds_new_messages_untranslated(
        tree: tuple[Path, Path]) -> None:
    """A re-run keeps every translation; a new message arrives empty, not fuzzy; no churn."""
    source, locale_dir = tree
    run("extract", source, locale_dir)
    for lang in LOCALES:
        translate(locale_dir, lang)
    before = {p: p.read_bytes() for p in locale_dir.rglob("*.po*")}
    assert run("extract", source, locale_dir) == 0
    assert {p: p.read_bytes() for p in locale_dir.rglob("*.po*")} == before
    (source / "desk.py").write_text(
        SOURCE + '\nNEW = N_("Incident %(id)s is closed.")\n', encoding="utf-8")
    run("extract", source, locale_dir)
    french = read(po_path("fr", locale_dir), "fr")
    assert french["Incident %(id)s is open."].string == "[fr] Incident %(id)s is open."
    assert french["Incident %(id)s is closed."].string == ""
    assert not french["Incident %(id)s is closed."].fuzzy


def test_a_message_back_in_the_code_gets_its_translation_back(tree: tuple[Path, Path]) -> None:
    """A removed message is kept as #~ and, when the code uses it again, comes back translated."""
    source, locale_dir = tree
    run("extract", source, locale_dir)
    for lang in LOCALES:
        translate(locale_dir, lang)
    (source / "desk.py").write_text(SOURCE.replace('t.pgettext("button", "Open")', '"-"'),
                                    encoding="utf-8")
    run("extract", source, locale_dir)
    french = read(po_path("fr", locale_dir), "fr")
    assert french.get("Open", "button") is None
    assert [m.string for m in french.obsolete.values()] == ["[fr] Open"]
    (source / "desk.py").write_text(SOURCE, encoding="utf-8")
    run("extract", source, locale_dir)
    french = read(po_path("fr", locale_dir), "fr")
    restored = french.get("Open", "button")
    assert restored is not None
    assert restored.string == "[fr] Open"
    assert not french.obsolete


def test_compile_refuses_untranslated_catalogs_and_writes_nothing(
        tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """`compile` exits 2 naming file and line of each untranslated message; no .mo appears."""
    source, locale_dir = tree
    run("extract", source, locale_dir)
    assert run("compile", source, locale_dir) == 2
    err = capsys.readouterr().err
    assert re.search(r"ar/LC_MESSAGES/playbook\.po:\d+: msgid 'Incident %\(id\)s is open\.' "
                     r"is not translated", err)
    assert "en/LC_MESSAGES" not in err  # English fills in its own words
    assert list(locale_dir.rglob("*.mo")) == []


def test_compiled_catalogs_translate_with_each_languages_plural_rule(
        tree: tuple[Path, Path]) -> None:
    """Compiled: Arabic picks among six forms, Ukrainian among three, by the number."""
    source, locale_dir = tree
    run("extract", source, locale_dir)
    for lang in LOCALES:
        translate(locale_dir, lang)
    assert run("compile", source, locale_dir) == 0
    arabic = load("ar", locale_dir)
    singular, plural = "%(n)d message waits", "%(n)d messages wait"
    assert [arabic.ngettext(singular, plural, n) for n in (0, 1, 2, 3, 11, 100)] == AR_FORMS
    assert arabic.ngettext(singular, plural, 102) == AR_FORMS[5]
    ukrainian = load("uk", locale_dir)
    assert [UK_FORMS.index(ukrainian.ngettext(singular, plural, n))
            for n in (1, 2, 5, 11, 21, 22, 25, 111, 104)] == [0, 1, 2, 2, 0, 1, 2, 2, 1]
    french = load("fr", locale_dir)
    assert french.gettext("Incident %(id)s is open.") == "[fr] Incident %(id)s is open."
    assert french.pgettext("button", "Open") == "[fr] Open"
    assert french.ngettext(singular, plural, 0) == "[fr] %(n)d message waits"  # 0 is singular
    assert load("en", locale_dir).ngettext(singular, plural, 1) == singular
    assert run("compile", source, locale_dir) == 0  # idempotent
    assert compile_all(locale_dir) == ([], [])


def message(msgid: str | tuple[str, str], string: str | tuple[str, ...],
            flags: tuple[str, ...] = ()) -> Catalog:
    catalog = Catalog(locale="fr")
    catalog.mime_headers = [("Plural-Forms", PLURAL_FORMS["fr"])]
    catalog[msgid] = Message(msgid, string, flags=flags)
    return catalog


@pytest.mark.parametrize(("msgid", "string", "flags", "problem"), [
    ("Incident %(id)s is open.", "Incident ouvert.", (), "lacks %(id)s"),
    ("Incident %(id)s is open.", "Incident %(code)s ouvert.", (), "has %(code)s"),
    ("Incident %(id)s is open.", "Incident %(id)d ouvert.", (), "has %(id)d"),
    ("Incident %(id)s is open.", "L’incident %(id)s est ouvert.", ("fuzzy",), "is fuzzy"),
    ("Incident %(id)s is open.", "", (), "is not translated"),
    ("Incident %s is open.", "Incident %s ouvert.", (), "positional placeholder"),
    (("%(n)d message", "%(n)d messages"), ("%(n)d message", "messages"), (), "form 1 lacks"),
    (("%(n)d message", "%(n)d messages"), ("%(n)d message", ""), (), "is not translated"),
    ("/status — open incidents", "/statut — incidents ouverts", (), "lacks /status"),
])
def test_a_catalog_problem_is_reported_with_what_to_do(
        msgid: str | tuple[str, str], string: str | tuple[str, ...], flags: tuple[str, ...],
        problem: str) -> None:
    """Fuzzy, missing, and changed or positional placeholders each stop the compile."""
    found = i18ntool.problems(message(msgid, string, flags), Path("fr.po"), "fr")
    assert [text for text in found if problem in text]
    assert all(" — " in text for text in found)


def test_a_plural_form_may_leave_out_what_the_english_singular_does() -> None:
    """"One message" / "%(n)d messages": a form may omit the count, never add a name."""
    msgid = ("One message waits", "%(n)d messages wait")
    ok = message(msgid, ("Un message attend", "%(n)d messages attendent"))
    assert i18ntool.problems(ok, Path("fr.po"), "fr") == []
    bad = message(msgid, ("Un message attend %(who)s", "%(n)d messages attendent"))
    assert "has %(who)s" in i18ntool.problems(bad, Path("fr.po"), "fr")[0]


def test_a_wrong_plural_rule_is_reported() -> None:
    """A catalog declaring babel's faulty Arabic rule (100 as "many") cannot be compiled."""
    catalog = Catalog(locale="ar")
    found = i18ntool.problems(catalog, Path("ar.po"), "ar")
    assert len(found) == 1
    assert "Plural-Forms" in found[0]


def test_isolate_keeps_values_in_their_own_direction_in_rtl_languages() -> None:
    """Arabic isolates text values (LTR for Latin, first-strong otherwise); numbers stay."""
    values = {"id": "2026-0042", "name": "كريم", "n": 3}
    assert translator("ar").isolate(values) == {
        "id": "\u20662026-0042\u2069", "name": "\u2068كريم\u2069", "n": 3}
    assert translator("fr").isolate(values) == values
    assert "%(n)d" % translator("ar").isolate(values) == "3"  # noqa: UP031 (as the bot formats)


def test_load_refuses_a_missing_catalog_but_english_reads_the_code(tmp_path: Path) -> None:
    """No compiled Arabic is a packaging error; no compiled English is the code's own words."""
    with pytest.raises(FileNotFoundError, match="i18ntool compile"):
        load("ar", tmp_path)
    assert load("en", tmp_path).ngettext("a file", "files", 2) == "files"


def test_n_marks_without_translating_and_languages_are_named_in_themselves() -> None:
    """N_ returns its argument; a picker shows each language by its CLDR autonym."""
    assert N_("Welcome.") == "Welcome."
    assert [autonym(lang) for lang in ("ar", "uk", "fr", "fa")] == [
        "العربية", "Українська", "Français", "فارسی"]


def test_an_installed_package_ships_every_catalog_file() -> None:
    """pyproject's package-data covers the .pot, every .po and every .mo."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["playbook"]
    package = ROOT / "src" / "playbook"
    files = [p.relative_to(package).as_posix() for p in LOCALE_DIR.rglob("*") if p.is_file()]
    assert files
    assert [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []


def test_commands_keep_their_direction_in_right_to_left_answers() -> None:
    """In Arabic and Persian every /command is an isolated left-to-right run; not in French."""
    from playbook.render import LRI, PDI

    message = "I do not know this command. /help lists what I can do."
    for lang in ("ar", "fa"):
        text = translator(lang).gettext(message)
        assert f"{LRI}/help{PDI}" in text
        assert text.count("/help") == 1
    assert "\u2066" not in translator("fr").gettext(message)
