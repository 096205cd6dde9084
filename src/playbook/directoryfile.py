"""Directory files: staff, intermediaries, media and public channels, from YAML or CSV.

A city keeps its roster in YAML and often its intermediaries in a spreadsheet, so both are read,
and both are checked like playbooks: every problem is reported with its file, line and column,
and a directory with any problem is refused whole. Intermediaries are also imported from a
spreadsheet and exported to one (`playbook directory import/export`), merged by id.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from playbook.directory import Directory, Intermediary, MediaContact, PublicChannel, Staff
from playbook.errors import BadInput, Problem
from playbook.loader import located
from playbook.yamlfile import MAX_BYTES, dump_yaml, load_yaml, read_text

SECTIONS: dict[str, type[BaseModel]] = {
    "staff": Staff, "intermediaries": Intermediary, "media": MediaContact,
    "public": PublicChannel,
}
FIELD_NAMES = frozenset(name for model in SECTIONS.values() for name in model.model_fields)
LIST_COLUMNS = frozenset({"languages", "communities", "areas", "tags", "roles", "backup_for"})
BOOL_COLUMNS = frozenset({"active", "available"})
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})
INTERMEDIARY_COLUMNS = ("id", "name", "organisation", "kind", "communities", "areas",
                        "languages", "telegram_chat_id", "email", "backup")
EXPORT_COLUMNS = (*INTERMEDIARY_COLUMNS, "tags", "active")
SAVE_AS = "in Excel use File › Save As › “CSV UTF-8 (comma delimited)”"
MAX_CSV_BYTES = 50_000_000
"""A spreadsheet is read in linear time (no nesting, no aliases), so it may be far larger than a
YAML file (`yamlfile.MAX_BYTES`, 1 MB, about 10,000 intermediaries): 50 MB is about 500,000."""

M = TypeVar("M", bound=BaseModel)


def load_directory(files: Mapping[str, Path]) -> Directory:
    """Read the directory files named in the config (`{section: path}`); raise `BadInput`."""
    problems: list[Problem] = []
    sections: dict[str, list[BaseModel]] = {}
    for section, path in files.items():
        if section not in SECTIONS:
            problems.append(Problem(str(path), None, None, section, "unknown directory section",
                                    "use staff, intermediaries, media or public"))
            continue
        try:
            sections[section] = _read(section, path)
        except BadInput as exc:
            problems += exc.problems
    if problems:
        raise BadInput(problems)
    directory = Directory.model_validate({k: tuple(v) for k, v in sections.items()})
    cross = list(_cross_checks(directory, files))
    if cross:
        raise BadInput(cross)
    return directory


def _read(section: str, path: Path) -> list[BaseModel]:
    if path.suffix.lower() == ".csv":
        return _read_csv(section, path)
    document = load_yaml(path)
    data = document.data
    if not isinstance(data, dict) or not isinstance(data.get(section), list):
        raise BadInput.one(document.path, f"expected a list under `{section}:`",
                           f"start the file with `{section}:` and one `- id: ...` per entry",
                           line=1, col=1)
    try:
        parsed = Directory.model_validate({section: data[section]})
    except ValidationError as exc:
        raise BadInput(sorted(located(document, exc, FIELD_NAMES))) from None
    return list(getattr(parsed, section))


def _read_csv(section: str, path: Path) -> list[BaseModel]:
    table = parse_csv(read_csv_text(path), str(path), SECTIONS[section])
    if table.problems:
        raise BadInput(table.problems)
    return [row.entry for row in table.rows if row.entry is not None]


@dataclass(frozen=True)
class CsvRow(Generic[M]):
    """One data row: where it starts, its cells by column, and its entry if it is valid."""

    line: int
    cells: dict[str, str]
    entry: M | None
    bad: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CsvTable(Generic[M]):
    """A checked spreadsheet: its columns, its rows and every problem found in them."""

    name: str
    header: tuple[str, ...]
    rows: list[CsvRow[M]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def problem(self, row: CsvRow[M], column: str, message: str, hint: str) -> Problem:
        """A problem in one cell, located by its line and its column number."""
        col = self.header.index(column) + 1 if column in self.header else None
        return Problem(self.name, row.line, col, column, message, hint)


def parse_csv(text: str, name: str, model: type[M],
              required: Sequence[str] = ()) -> CsvTable[M]:
    """Every row of a spreadsheet checked against `model`; a bad header stops at the header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    first = next(reader, None)
    if not first or not any(cell.strip() for cell in first):
        raise BadInput.one(name, "the file is empty", "the first row names the columns",
                           line=1, col=1)
    header = tuple(h.strip() for h in first)
    table: CsvTable[M] = CsvTable(name, header)
    table.problems.extend(_header_problems(name, header, model, required))
    if table.problems:
        return table
    start = reader.line_num + 1
    for cells in reader:
        # A quoted cell may span lines; a row is named by the line it starts on.
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            table.problems.append(Problem(
                name, line, len(header) + 1, "", f"{len(cells)} cells but {len(header)} columns",
                "quote cells that contain commas, or remove the extra cells"))
            continue
        values = {h: c.strip() for h, c in zip(header, cells, strict=False) if h}
        raw = {h: _cell(h, v) for h, v in values.items() if v}
        try:
            table.rows.append(CsvRow(line, values, model.model_validate(raw)))
        except ValidationError as exc:
            row: CsvRow[M] = CsvRow(line, values, None)
            found: dict[str, Problem] = {}
            for error in exc.errors(include_url=False):
                problem = _cell_problem(table, row, error)
                # One per cell: a bad language also makes the list too short, which is noise.
                found.setdefault(problem.field, problem)
            table.rows.append(replace(row, bad=frozenset(found)))
            table.problems.extend(found.values())
    return table


def _header_problems(name: str, header: tuple[str, ...], model: type[BaseModel],
                     required: Sequence[str]) -> Iterator[Problem]:
    known = list(model.model_fields)
    columns = ",".join(required or known)
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        sep = "semicolons" if ";" in header[0] else "tabs"
        yield Problem(name, 1, 1, "", f"the columns are separated by {sep}, not commas", SAVE_AS)
        return
    if not set(header) & set(known):
        yield Problem(name, 1, 1, "", "the first row does not name the columns",
                      f"start the file with the row: {columns}")
        return
    for i, column in enumerate(header):
        if column and column not in known:
            close = difflib.get_close_matches(column, known, n=1)
            yield Problem(name, 1, i + 1, column, "unknown column", f"did you mean `{close[0]}`?"
                          if close else "columns: " + ", ".join(sorted(known)))
        elif column and header.index(column) < i:
            yield Problem(name, 1, i + 1, column, f"the column `{column}` is there twice",
                          "keep one of them")
    missing = [c for c in required if c not in header]
    if missing:
        yield Problem(name, 1, None, "", f"missing column{'s' if len(missing) > 1 else ''}: "
                      + ", ".join(missing), f"the first row needs them all (cells may be empty): "
                      f"{columns}")


def _cell(column: str, value: str) -> Any:
    if column in LIST_COLUMNS:
        return tuple(v.strip() for v in value.split(";") if v.strip())
    if column in BOOL_COLUMNS:
        word = value.lower()
        # Anything else stays text, so the model refuses it instead of reading a typo as false.
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else value
    return value


_PATTERN_WORDS = {
    "id": ("is not an id", "use letters, digits, `.`, `_` or `-`, starting with a letter or digit"),
    "backup": ("is not an id", "give the id of another intermediary"),
    "telegram_chat_id": ("is not a Telegram chat id",
                         "use the number (like 123456789 or -1001234567890) or a public @name"),
    "email": ("is not an e-mail address", "write it like name@example.org"),
    "languages": ("is not a BCP 47 language tag",
                  "use tags such as en, ar-EG or fa-AF (a hyphen, not an underscore)"),
}
_NEEDED = {"id": "every row needs an id", "name": "every row needs a name",
           "languages": "give at least one language, the preferred one first"}


def _cell_problem(table: CsvTable[Any], row: CsvRow[Any], error: Any) -> Problem:
    """A pydantic error in a person's words, placed on its cell."""
    column = str(error["loc"][0]) if error["loc"] else ""
    shown = f"`{error['input']}`" if isinstance(error["input"], str) else ""
    kind = error["type"]
    if not column:  # a rule about the whole row: place it on the first cell that can fix it
        column = "telegram_chat_id" if "no way to reach" in error["msg"] else ""
    if kind == "missing":
        message, hint = "is empty", _NEEDED.get(column, "fill it in")
    elif kind == "string_pattern_mismatch":
        message, hint = _PATTERN_WORDS.get(column, (
            "is not a tag", "use lower_snake_case, such as muslim_community or old_town"))
        message = f"{shown} {message}"
        if "," in shown:
            hint = "put several values in one cell separated by `;`"
    elif kind == "bool_type":
        message, hint = f"{shown} is not true or false", "write true or false (empty is true)"
    else:
        text = str(error["msg"]).removeprefix("Value error, ")
        message, _, hint = text.partition(" — ")
        message = message if hint else message.lower()
        hint = hint or "see docs/directory.md"
    return table.problem(row, column, message, hint)


def _cross_checks(directory: Directory, files: Mapping[str, Path]) -> Iterator[Problem]:
    for section in SECTIONS:
        seen: set[str] = set()
        for entry in getattr(directory, section):
            if entry.id in seen:
                yield Problem(str(files.get(section, section)), None, None, f"{section}.{entry.id}",
                              f"the id `{entry.id}` is used twice", "give each entry its own id")
            seen.add(entry.id)
    ids = {i.id for i in directory.intermediaries}
    for person in directory.intermediaries:
        if person.backup is not None and person.backup not in ids:
            yield Problem(str(files.get("intermediaries", "")), None, None,
                          f"intermediaries.{person.id}.backup",
                          f"unknown backup `{person.backup}`", "use the id of another "
                          "intermediary")


def read_csv_text(path: Path) -> str:
    """A spreadsheet's text; one saved in another encoding is told how to save it from Excel."""
    try:
        return _csv_text(path)
    except BadInput as exc:
        if not _undecodable(path):
            raise
        raise BadInput([replace(p, hint=SAVE_AS) for p in exc.problems]) from None


def _csv_text(path: Path) -> str:
    """`read_text` with the spreadsheet's own size limit (`MAX_CSV_BYTES`)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size <= MAX_BYTES:
        return read_text(path)  # and its errors: missing, a folder, unreadable, not UTF-8
    if size > MAX_CSV_BYTES:
        raise BadInput.one(str(path), f"the file is {size:,} bytes, over the {MAX_CSV_BYTES:,} "
                           "limit", "keep only the people the city would brief; remove old rows")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        raise BadInput.one(str(path), f"invalid UTF-8 (byte 0x{raw[exc.start]:02x})",
                           "save the file as UTF-8", line=before.count(b"\n") + 1,
                           col=len(before) - (before.rfind(b"\n") + 1) + 1) from None


def _undecodable(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return True
    except OSError:
        return False
    return False


@dataclass(frozen=True)
class Import:
    """What importing a spreadsheet does to the configured intermediaries."""

    intermediaries: tuple[Intermediary, ...]
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    languages: tuple[tuple[str, int], ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the configured file needs writing."""
        return bool(self.added or self.updated or self.removed)


def plan_import(path: Path, current: Sequence[Intermediary], *, replace_all: bool) -> Import:
    """Check a spreadsheet of intermediaries whole and merge it by id; raise `BadInput`."""
    table = parse_csv(read_csv_text(path), str(path), Intermediary, INTERMEDIARY_COLUMNS)
    if not table.problems and not table.rows:
        raise BadInput.one(table.name, "no intermediaries in the file",
                           "add one row per intermediary under the first row", line=2)
    kept = () if replace_all else tuple(current)
    problems = sorted([*table.problems, *_import_checks(table, {p.id for p in kept})],
                      key=lambda p: (p.line or 0, p.col or 0))
    if problems:
        raise BadInput(problems)
    return _merge(table, current, replace_all=replace_all)


def _import_checks(table: CsvTable[Intermediary], kept: set[str]) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for row in table.rows:
        person = row.cells.get("id", "")
        if person in first:
            yield table.problem(row, "id", f"the id `{person}` is also on row {first[person]}",
                                "give each intermediary its own id")
        elif person:
            first[person] = row.line
    known = kept | set(first)
    for row in table.rows:
        # pydantic checks reachability only once every field is valid; say it in the same pass.
        if row.entry is None and "telegram_chat_id" not in row.bad and not (
                row.cells.get("telegram_chat_id") or row.cells.get("email")):
            yield table.problem(row, "telegram_chat_id", "no way to reach this person",
                                "add telegram_chat_id or email")
        backup = row.cells.get("backup", "")
        if not backup or "backup" in row.bad:
            continue
        if backup == row.cells.get("id"):
            yield table.problem(row, "backup", "an intermediary cannot be their own backup",
                                "name someone else, or leave it empty")
        elif backup not in known:
            yield table.problem(row, "backup", f"unknown backup `{backup}`",
                                "use the id of another intermediary in this file"
                                + ("" if not kept else " or already in the directory"))


def _merge(table: CsvTable[Intermediary], current: Sequence[Intermediary], *,
           replace_all: bool) -> Import:
    old = {p.id: p for p in current}
    # A column the file leaves out (tags, active) keeps what the directory already says.
    absent = [c for c in EXPORT_COLUMNS if c not in table.header]
    merged = {} if replace_all else dict(old)
    changes: dict[str, list[str]] = {"added": [], "updated": [], "unchanged": []}
    languages: Counter[str] = Counter()
    for row in table.rows:
        assert row.entry is not None  # plan_import refuses a table with any bad row
        entry, before = row.entry, old.get(row.entry.id)
        if before is not None and absent:
            entry = entry.model_copy(update={c: getattr(before, c) for c in absent})
        kind = "added" if before is None else "unchanged" if before == entry else "updated"
        changes[kind].append(entry.id)
        merged[entry.id] = entry  # an update keeps its place; a new person goes at the end
        languages.update(entry.languages)
    removed = tuple(i for i in old if i not in merged)
    return Import(tuple(merged.values()), tuple(changes["added"]), tuple(changes["updated"]),
                  tuple(changes["unchanged"]), removed,
                  tuple(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))))


def intermediaries_csv(people: Sequence[Intermediary]) -> str:
    """The intermediaries as a spreadsheet with `EXPORT_COLUMNS`, lists joined with `;`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for person in people:
        writer.writerow([_export_cell(getattr(person, c)) for c in EXPORT_COLUMNS])
    return buffer.getvalue()


def _export_cell(value: object) -> str:
    if isinstance(value, tuple):
        return ";".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def intermediaries_file(path: Path, people: Sequence[Intermediary]) -> str:
    """The text of the configured intermediaries file, in its format (CSV, else YAML)."""
    if path.suffix.lower() == ".csv":
        return intermediaries_csv(people)
    entries = [{k: v for k, v in p.model_dump(mode="json").items()
                if v not in (None, "", [])} for p in people]
    return dump_yaml({"intermediaries": entries})
