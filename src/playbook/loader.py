"""Loading playbooks and their message templates from disk, with every error located.

Schema errors from pydantic are translated here into `file:line:col: field: what — what to do`,
using the positions `yamlfile` recorded for every node.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from playbook import model
from playbook.checks import check_playbook, example_context
from playbook.errors import BadInput, Loc, Problem
from playbook.language import known
from playbook.render import Renderer, TemplateLibrary, TemplateSource
from playbook.yamlfile import Document, load_yaml, read_text

TEMPLATES_DIR = "message_templates"
_STEP_TAGS = {"task", "message", "inject"}


@dataclass(frozen=True)
class LoadedPlaybook:
    """A playbook with the document it came from, for locating later problems."""

    playbook: model.Playbook
    document: Document

    @property
    def path(self) -> str:
        """The file the playbook was read from."""
        return self.document.path

    def problem(self, loc: Loc, message: str, hint: str, *, key: bool = False) -> Problem:
        """A problem at `loc` inside this playbook's file."""
        line, col = self.document.locate(loc, key=key)
        return Problem(self.path, line, col, field_name(loc), message, hint)


def load_playbook(path: Path) -> LoadedPlaybook:
    """Read and schema-check one playbook file; raise `BadInput` with every problem."""
    document = load_yaml(path)
    if not isinstance(document.data, dict):
        raise BadInput.one(document.path, "a playbook must be a mapping of keys to values",
                           "start with `id: ...`", line=1, col=1)
    try:
        playbook = model.Playbook.model_validate(document.data)
    except ValidationError as exc:
        raise BadInput(sorted(located(document, exc))) from None
    return LoadedPlaybook(playbook, document)


def find_templates_root(playbook_path: Path) -> Path | None:
    """The nearest `message_templates/` beside the playbook's folder or any folder above it."""
    for folder in playbook_path.resolve().parents:
        candidate = folder / TEMPLATES_DIR
        if candidate.is_dir():
            return candidate
    return None


def load_templates(root: Path, keys: Iterable[str], languages: Iterable[str]) -> TemplateLibrary:
    """Read `root/<key>/<lang>.j2` for each key, language and regional version beside them.

    A regional version (`fa-AF.j2`) is used where a reader prefers it; missing files are simply
    absent (the checks say which are required).
    """
    library: dict[tuple[str, str], TemplateSource] = {}
    problems: list[Problem] = []
    wanted = list(languages)
    for key in sorted(set(keys)):
        folder = root / key
        extra = sorted(p.stem for p in folder.glob("*.j2") if p.stem not in wanted
                       and known(p.stem)) if folder.is_dir() else []
        for lang in (*wanted, *extra):
            path = folder / f"{lang}.j2"
            if not path.is_file():
                continue
            try:
                text = read_text(path)
                library[key, lang] = TemplateSource(key, lang, _relative(path), text)
            except BadInput as exc:
                problems.extend(exc.problems)
    if problems:
        raise BadInput(problems)
    return TemplateLibrary(library)


def field_name(loc: Loc) -> str:
    """`('steps', 2, 'to')` -> `steps[2].to`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _all_field_names() -> set[str]:
    names: set[str] = set()
    for cls in (model.Playbook, model.Parameter, model.Role, model.Audience,
                model.IntermediarySelector, model.TaskStep, model.MessageStep, model.InjectStep):
        names.update(cls.model_fields)
    return names


def _clean_loc(raw: tuple[str | int, ...]) -> Loc:
    loc: list[str | int] = []
    for index, part in enumerate(raw):
        after_step = index >= 2 and raw[index - 2] == "steps" and isinstance(raw[index - 1], int)
        if after_step and part in _STEP_TAGS:
            continue  # pydantic names the union member; the file does not
        loc.append(part)
    return tuple(loc)


def located(document: Document, exc: ValidationError,
            names: Iterable[str] | None = None) -> Iterable[Problem]:
    """Every pydantic error as a problem located in the YAML document it came from.

    `names` are the keys "did you mean" may suggest (default: every playbook key).
    """
    known = sorted(_all_field_names() if names is None else names)
    seen: set[tuple[Loc, str]] = set()
    errors = exc.errors(include_url=False)
    locs = [_clean_loc(tuple(e["loc"])) for e in errors]
    for error, loc in zip(errors, locs, strict=True):
        if error["type"] == "too_short" and any(
            other[: len(loc)] == loc and len(other) > len(loc) for other in locs
        ):
            continue  # a list emptied by its own bad items; the items say what is wrong
        message, hint = _explain(error, loc, known)
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        is_key = error["type"] == "extra_forbidden"
        line, col = document.locate(loc, key=is_key)
        yield Problem(document.path, line, col, field_name(loc), message, hint)


def _explain(error: Any, loc: Loc, known: list[str]) -> tuple[str, str]:
    kind: str = error["type"]
    given = error.get("input")
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(last), known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else "remove it or check the spelling"
        return f"unknown key `{last}`", hint
    if kind == "missing":
        return f"missing required key `{last}`", "add it"
    if kind in ("value_error", "assertion_error"):
        text = str(error["msg"]).removeprefix("Value error, ")
        message, _, hint = text.partition(" — ")
        return message, hint or "see docs/playbook-language.md"
    if kind == "step_kind":
        return error["msg"], "start the step with `task:`, `message:` or `inject:`"
    if kind == "string_type":
        return f"expected text, got {_yaml_type(given)}", f'quote the value: "{given}"'
    if kind == "bool_type":
        return (f"expected true or false, got {_yaml_type(given)} {given!r}",
                "write true or false (yes/no/on/off are plain text in YAML 1.2)")
    if kind == "int_type":
        return f"expected a whole number, got {_yaml_type(given)}", "write a number such as 3"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value), got {_yaml_type(given)}", "see the schema"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list, got {_yaml_type(given)}", "write [a, b] or one `- item` per line"
    if kind == "string_pattern_mismatch" and loc and loc[0] == "languages":
        return f"{given!r} is not a language tag", _pattern_hint(loc)
    if kind == "string_pattern_mismatch":
        return f"{given!r} is not a valid identifier here", _pattern_hint(loc)
    if kind in ("literal_error", "enum"):
        expected = error.get("ctx", {}).get("expected", "")
        return f"{given!r} is not allowed here", f"use one of {expected}"
    if kind == "too_short" and error.get("ctx", {}).get("min_length") == 1:
        return f"`{last}` is empty", f"add at least one entry under `{last}`"
    if kind == "string_too_short":
        return "the text is empty", "write something, or remove the key"
    if kind in ("too_short", "too_long", "greater_than_equal", "less_than_equal",
                "string_too_long"):
        return str(error["msg"]).lower(), "see the schema (`playbook schema`)"
    return str(error["msg"]), "see the schema (`playbook schema`)"


def _pattern_hint(loc: Loc) -> str:
    last = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if loc[:1] == ("steps",) and last == "id":
        return "step ids are lower-kebab-case, e.g. brief-intermediaries"
    if loc == ("id",):
        return "playbook ids are lower-kebab-case, e.g. hate-incident"
    if loc[:1] == ("languages",):
        return "use a BCP 47 language tag such as en, ar or fa-AF"
    if last == "message":
        return "template keys are lower_snake_case folder names, e.g. hate_incident_first_statement"
    return "use lower_snake_case, e.g. incident_lead"


def _yaml_type(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def model_json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to autocomplete playbooks."""
    schema = model.Playbook.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/city-playbook/playbook/schema/playbook.schema.json"
    return schema


@dataclass(frozen=True)
class CheckedPlaybook:
    """A playbook that passed every check, with the templates it needs."""

    loaded: LoadedPlaybook
    templates: TemplateLibrary
    templates_root: Path

    @property
    def playbook(self) -> model.Playbook:
        """The validated playbook."""
        return self.loaded.playbook


def load_checked(path: Path, *, city: dict[str, str], timezone: ZoneInfo,
                 templates_root: Path | None = None, start: datetime | None = None,
                 ) -> CheckedPlaybook:
    """Load a playbook and run every cross-check; raise `BadInput` listing all problems."""
    if templates_root is not None and not templates_root.is_dir():
        raise BadInput.one(str(templates_root), "the templates folder does not exist",
                           "fix [paths] templates in the settings, or remove it")
    loaded = load_playbook(path)
    pb = loaded.playbook
    root = templates_root or find_templates_root(path)
    if root is None:
        raise BadInput([loaded.problem(("steps",), f"no {TEMPLATES_DIR}/ folder found beside "
                        "or above the playbook", "create it, or set [paths] templates")])
    templates = load_templates(root, [s.message for s in pb.message_steps()], pb.languages)
    renderer = Renderer(timezone)
    moment = start or datetime(2026, 5, 1, 14, 0, tzinfo=timezone)
    context = example_context(pb, city, moment, timezone)
    problems = check_playbook(pb, loaded.problem, templates, _relative(root), renderer, context)
    if problems:
        raise BadInput(problems)
    return CheckedPlaybook(loaded, templates, root)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
