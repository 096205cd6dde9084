"""Directory files: staff, intermediaries, media and public channels, from YAML or CSV.

A city keeps its roster in YAML and often its intermediaries in a spreadsheet, so both are read,
and both are checked like playbooks: every problem is reported with its file, line and column,
and a directory with any problem is refused whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from playbook.directory import Directory, Intermediary, MediaContact, PublicChannel, Staff
from playbook.errors import BadInput, Problem
from playbook.loader import located
from playbook.yamlfile import load_yaml, read_text

SECTIONS: dict[str, type[BaseModel]] = {
    "staff": Staff, "intermediaries": Intermediary, "media": MediaContact,
    "public": PublicChannel,
}
FIELD_NAMES = frozenset(name for model in SECTIONS.values() for name in model.model_fields)
LIST_COLUMNS = frozenset({"languages", "communities", "areas", "tags", "roles", "backup_for"})
BOOL_COLUMNS = frozenset({"active", "available"})


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
        return list(_read_csv(section, path))
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


def _read_csv(section: str, path: Path) -> Iterator[BaseModel]:
    name = str(path)
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise BadInput.one(name, "the file is empty", "the first row names the columns",
                           line=1, col=1)
    header = [h.strip() for h in header]
    model = SECTIONS[section]
    known = set(model.model_fields)
    problems = [Problem(name, 1, i + 1, h, "unknown column", "columns: " + ", ".join(
        sorted(known))) for i, h in enumerate(header) if h and h not in known]
    entries = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            problems.append(Problem(name, line, len(header) + 1, "", f"{len(row)} cells but "
                                    f"{len(header)} columns", "quote cells that contain commas"))
            continue
        raw = {h: _cell(h, c) for h, c in zip(header, row, strict=False) if h in known and
               c.strip()}
        try:
            entries.append(model.model_validate(raw))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                column = str(error["loc"][0]) if error["loc"] else ""
                col = header.index(column) + 1 if column in header else None
                message = str(error["msg"]).removeprefix("Value error, ")
                message, _, hint = message.partition(" — ")
                problems.append(Problem(name, line, col, column, message.lower() if not hint
                                        else message, hint or "see docs/directory.md"))
    if problems:
        raise BadInput(problems)
    yield from entries


def _cell(column: str, value: str) -> Any:
    value = value.strip()
    if column in LIST_COLUMNS:
        return tuple(v.strip() for v in value.split(";") if v.strip())
    if column in BOOL_COLUMNS:
        return value.lower() in ("true", "yes", "1", "y")
    return value


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
