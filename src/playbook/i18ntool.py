"""Keeping the bot's catalogs: `python -m playbook.i18ntool extract` and `... compile`.

`extract` scans the package for `_()`, `gettext()`, `ngettext()`, `pgettext()` and `N_()`,
writes `locale/playbook.pot`, and merges it into each language's `.po`: translations are kept,
new messages arrive untranslated (English fills in its own), and the header declares the
language's plural rule. `compile` writes each `.mo` from its `.po`, byte for byte the same on
every run and every babel version, and refuses (exit 2, nothing written) while any catalog has
a fuzzy or missing translation or a placeholder that differs from the English.
"""

from __future__ import annotations

import argparse
import copy
import io
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from playbook.atomicfile import replace_file
from playbook.i18n import DOMAIN, LOCALES, SOURCE_LANGUAGE

PACKAGE = Path(__file__).resolve().parent
LOCALE_DIR = PACKAGE / "locale"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
            "N_": None}
COMMENT_TAGS = ("Translators:",)
HEADER = "# The playbook bot's messages. How to translate them: docs/translating.md\n#"
PLURAL_FORMS = {
    # GNU gettext's rules, which agree with CLDR's for whole numbers. Babel's own table is
    # wrong for Arabic (it puts 100-102 in "many"); tests/test_i18n.py checks these against
    # CLDR. French and Spanish "many" (a million) reads as the plural.
    "en": "nplurals=2; plural=(n != 1);",
    "ar": "nplurals=6; plural=(n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 "
          ": n%100>=11 ? 4 : 5);",
    "es": "nplurals=2; plural=(n != 1);",
    "fa": "nplurals=2; plural=(n > 1);",
    "fr": "nplurals=2; plural=(n > 1);",
    "uk": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
          "(n%100<10 || n%100>=20) ? 1 : 2);",
}
COMMAND = re.compile(r"(?<![\w/])/[a-z][a-z_]*\b")
"""A bot command in a message (`/status`): what the user types, so never translated."""
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0+-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    """Where a language's catalog is kept."""
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract(source_dir: Path = PACKAGE) -> Catalog:
    """The messages marked in the Python files under `source_dir`, in file and line order."""
    template = Catalog(project="playbook", version="bot", domain=DOMAIN, fuzzy=False,
                       header_comment=HEADER, msgid_bugs_address="", charset="utf-8")
    for path in sorted(source_dir.rglob("*.py")):
        where = path.relative_to(source_dir.parent).as_posix()
        for lineno, message, comments, context in extract_from_file(
                "python", path, keywords=KEYWORDS, comment_tags=COMMENT_TAGS,
                strip_comment_tags=True):
            template.add(message, None, [(where, lineno)], auto_comments=comments,
                         context=context)
    return template


def update(source_dir: Path = PACKAGE, locale_dir: Path = LOCALE_DIR,
           now: datetime | None = None) -> list[Path]:
    """Write the template and merge it into every language's catalog; the files written."""
    template = extract(source_dir)
    pot = locale_dir / f"{DOMAIN}.pot"
    template.creation_date = _creation_date(pot, template, now or datetime.now(UTC))
    written = [pot] if _write(pot, template) else []
    for lang in LOCALES:
        path = po_path(lang, locale_dir)
        catalog = _read(path, lang) if path.exists() else Catalog(
            locale=lang, domain=DOMAIN, project="playbook", version="bot", fuzzy=False,
            header_comment=HEADER, msgid_bugs_address="", charset="utf-8")
        # Before merging: new plural messages get as many forms as the language has.
        catalog.mime_headers = [("Plural-Forms", PLURAL_FORMS[lang])]
        # A copy: babel adds the template's own new messages, which English then fills in.
        catalog.update(copy.deepcopy(template), no_fuzzy_matching=True)
        _restore(catalog)
        if lang == SOURCE_LANGUAGE:  # the code's words are the English catalog's defaults
            for message in _messages(catalog):
                if not _strings(message)[0]:
                    message.string = message.id
        if _write(path, catalog):
            written.append(path)
    return written


def _restore(catalog: Catalog) -> None:
    """A message back in the code gets its old translation back from the `#~` entries.

    Only for the very same msgid and context; anything merely similar stays untranslated.
    """
    for key, old in list(catalog.obsolete.items()):
        current = catalog.get(old.id, old.context)
        if current is not None and not any(_strings(current)) and all(_strings(old)):
            current.string = old.string
            current.flags = set(old.flags)
            del catalog.obsolete[key]


def problems(catalog: Catalog, path: Path, lang: str) -> list[str]:
    """What stops a catalog from being compiled, one `file:line: what — what to do` each."""
    found: list[str] = []
    plural_forms = dict(catalog.mime_headers).get("Plural-Forms")
    if plural_forms != PLURAL_FORMS[lang]:
        found.append(f"{path}:1: Plural-Forms is {plural_forms!r} — run extract to set the "
                     f"rule of {lang!r}")
    for message in _messages(catalog):
        where = f"{path}:{message.lineno}: msgid {_ids(message)[0]!r}"
        strings = _strings(message)
        if message.fuzzy:
            found.append(f"{where} is fuzzy — check the translation, then remove the fuzzy flag")
        if not all(strings):
            found.append(f"{where} is not translated — translate every form")
            continue
        found.extend(f"{where}: {text}" for text in _placeholder_problems(message))
        if message.pluralizable and len(strings) != catalog.num_plurals:
            found.append(f"{where} has {len(strings)} forms, {lang} has "
                         f"{catalog.num_plurals} — give one per plural form")
    return found


def _placeholder_problems(message: Message) -> Iterator[str]:
    ids = _ids(message)
    for text in ids:
        if any(p != "%%" and not p.startswith("%(") for p in PLACEHOLDER.findall(text)):
            yield "the English has a positional placeholder — name it in the code: %(name)s"
    required = _placeholders(ids[0])  # a plural form may leave out what the singular does
    allowed = _placeholders(ids[-1]) | required
    for index, string in enumerate(_strings(message)):
        used = _placeholders(string)
        label = f"form {index}" if message.pluralizable else "the translation"
        if used - allowed:
            yield (f"{label} has {', '.join(sorted(used - allowed))}, which the English has not"
                   " — use the English placeholders exactly as written")
        missing = (required if message.pluralizable else allowed) - used
        if missing:
            yield (f"{label} lacks {', '.join(sorted(missing))} — keep every placeholder of "
                   "the English exactly as written")
        commands = set(COMMAND.findall(" ".join(ids))) - set(COMMAND.findall(string))
        if commands:
            yield (f"{label} lacks {', '.join(sorted(commands))} — bot commands stay as "
                   "written, in Latin letters")


def _placeholders(text: str) -> set[str]:
    return {p for p in PLACEHOLDER.findall(text) if p != "%%"}


def compile_catalog(catalog: Catalog) -> bytes:
    """A catalog's `.mo`: messages sorted, and no babel version or date of compiling in it."""
    buffer = io.BytesIO()
    write_mo(buffer, _Reproducible(catalog))  # type: ignore[arg-type]  # what write_mo reads
    return buffer.getvalue()


class _Reproducible:
    """A catalog without its `Generated-By` header, which would tie the `.mo` to babel's version.

    `write_mo` only iterates the catalog and reads its charset.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.charset = catalog.charset

    def __iter__(self) -> Iterator[Message]:
        header, *messages = self.catalog
        lines = [line for line in str(header.string).split("\n")
                 if not line.startswith("Generated-By:")]
        yield Message("", "\n".join(lines), flags=header.flags)
        yield from messages


def compile_all(locale_dir: Path = LOCALE_DIR) -> tuple[list[Path], list[str]]:
    """Write every language's `.mo` if no catalog has a problem: (files written, problems)."""
    compiled: dict[Path, bytes] = {}
    found: list[str] = []
    for lang in LOCALES:
        path = po_path(lang, locale_dir)
        if not path.exists():
            found.append(f"{path}: missing — run `python -m playbook.i18ntool extract`")
            continue
        catalog = _read(path, lang)
        found.extend(problems(catalog, path, lang))
        compiled[path.with_suffix(".mo")] = compile_catalog(catalog)
    if found:
        return [], found
    written = []
    for mo, data in compiled.items():
        if not mo.exists() or mo.read_bytes() != data:
            replace_file(mo, data)
            written.append(mo)
    return written, []


def main(argv: Sequence[str] | None = None) -> int:
    """`extract` or `compile` the bot's catalogs; 0 done, 2 a catalog needs a translator."""
    parser = argparse.ArgumentParser(prog="python -m playbook.i18ntool",
                                     description="Extract and compile the bot's catalogs.")
    parser.add_argument("command", choices=["extract", "compile"])
    parser.add_argument("--source-dir", type=Path, default=PACKAGE, help=argparse.SUPPRESS)
    parser.add_argument("--locale-dir", type=Path, default=LOCALE_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "extract":
        written = update(args.source_dir, args.locale_dir)
        count = len(extract(args.source_dir))
        print(f"{count} messages; updated: {', '.join(map(str, written)) or 'nothing'}")
        return 0
    written, found = compile_all(args.locale_dir)
    if found:
        print("\n".join(found), file=sys.stderr)
        print(f"not compiled: {len(found)} problems (see docs/translating.md)", file=sys.stderr)
        return 2
    print(f"compiled: {', '.join(map(str, written)) or 'nothing changed'}")
    return 0


def _read(path: Path, lang: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=lang, domain=DOMAIN)


def _write(path: Path, catalog: Catalog) -> bool:
    """Write a catalog as PO; whether the file changed. No line numbers: they churn."""
    buffer = io.BytesIO()
    write_po(buffer, catalog, include_lineno=False)
    data = buffer.getvalue()
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, data)
    return True


def _creation_date(pot: Path, template: Catalog, now: datetime) -> datetime:
    """The old template's date while its messages are unchanged, so a re-run changes no file."""
    if pot.exists():
        with pot.open("rb") as handle:
            old = read_po(handle)
        if _same(old, template) and isinstance(old.creation_date, datetime):
            return old.creation_date
    return now.replace(second=0, microsecond=0)


def _same(a: Catalog, b: Catalog) -> bool:
    def key(catalog: Catalog) -> list[tuple[object, ...]]:
        return [(m.id, m.context, m.auto_comments, sorted({loc[0] for loc in m.locations}))
                for m in _messages(catalog)]
    return key(a) == key(b)


def _messages(catalog: Catalog) -> list[Message]:
    return [message for message in catalog if message.id]


def _ids(message: Message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, (list, tuple)) else (str(message.id),)


def _strings(message: Message) -> tuple[str, ...]:
    string = message.string
    if isinstance(string, (list, tuple)):
        return tuple(str(s or "") for s in string)
    return (str(string or ""),)


if __name__ == "__main__":
    sys.exit(main())
