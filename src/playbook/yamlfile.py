"""Reading YAML safely: plain values plus the line and column of every node.

We walk ruamel.yaml's parse events ourselves instead of using its constructor, because a playbook
must never change meaning silently: YAML 1.1 reads `no` as false, `1:30` as 90 and `010` as 8.
Here plain scalars are only `true`/`false`, `null`, decimal numbers and text; a number with a
leading zero is refused; aliases are refused (an alias bomb expands exponentially); duplicate keys
are refused with both places named. `dump_yaml` writes plain values in a form this reader
reads back to the same values (directory files rewritten by `playbook directory import`).
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import RoundTripRepresenter

from playbook.errors import BadInput, Loc, Problem

MAX_BYTES = 1_000_000
MAX_DEPTH = 40

_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9]+([eE][-+]?[0-9]+)?")
_NULL = {"null", "Null", "NULL", "~", ""}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Document:
    """A YAML file as plain Python values, with the position of every value and mapping key."""

    path: str
    data: Any
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def locate(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of `loc`, or of its nearest ancestor that exists."""
        probe = tuple(loc)
        while probe:
            table = self.keys if key else self.values
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
            key = False
        return self.values.get((), (1, 1))


def read_text(path: Path) -> str:
    """Read a file as strict UTF-8, naming the position of the first bad byte."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput.one(name, "no such file", "check the path") from None
    except IsADirectoryError:
        raise BadInput.one(name, "is a directory", "name a file inside it") from None
    except OSError as exc:
        raise BadInput.one(name, f"cannot be read ({exc.strerror})", "check permissions") from None
    if len(raw) > MAX_BYTES:
        raise BadInput.one(
            name, f"the file is {len(raw):,} bytes, over the {MAX_BYTES:,} limit",
            "split it up; a playbook is rarely over 50 kB",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise BadInput.one(
            name, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x})",
            "save the file as UTF-8", line=line, col=col,
        ) from None


def load_yaml(path: Path) -> Document:
    """Parse one YAML file into a `Document`, or raise `BadInput` listing every problem."""
    text = read_text(path)
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str) -> Document:
    """Parse YAML text (see the module docstring for what is refused)."""
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise BadInput.one(name, "the file is empty", "write a playbook: id, title, kind, ...",
                           line=1, col=1)
    builder = _Builder(name)
    try:
        builder.run(YAML(typ="rt").parse(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message, hint = _plain_words((exc.problem or exc.context or "invalid YAML").strip())
        context = exc.context_mark
        if exc.context and context is not None and mark is not None and context.line != mark.line:
            message += f" (it starts at line {context.line + 1})"
        if mark is not None and _char_at(text, mark.line, mark.column) == "\t":
            hint = "indent with spaces, not tabs"
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise BadInput([*builder.problems, Problem(name, line, col, "", message, hint)]) from None
    except YAMLError as exc:
        raise BadInput.one(name, f"invalid YAML: {exc}", "fix the YAML syntax") from None
    except _Stop:
        pass
    if builder.problems:
        raise BadInput(builder.problems)
    return Document(name, builder.result, builder.values, builder.keys)


_PARSER_WORDS = [
    ("expected <block end>", "this line is indented differently from the lines above it",
     "line it up with its siblings, using spaces"),
    ("mapping values are not allowed here", "a `key: value` cannot start here",
     "check the indentation, or quote a value that contains \": \""),
    ("could not find expected ':'", "a line here is not `key: value`",
     "add the colon, or quote the text"),
    ("found character '\\t'", "a tab character is used for indentation",
     "indent with spaces, not tabs"),
    ("expected ',' or ']'", "a [list] is not closed properly",
     "separate items with commas and close it with ]"),
    ("expected ',' or '}'", "a {mapping} is not closed properly",
     "separate entries with commas and close it with }"),
    ("found unexpected end of stream", "the file ends inside a quoted value or bracket",
     "close the quote or bracket"),
]


def _plain_words(parser_message: str) -> tuple[str, str]:
    """Say what ruamel's parser means in a city comms officer's words, keeping its detail."""
    for needle, message, hint in _PARSER_WORDS:
        if needle in parser_message:
            return message, hint
    return parser_message, "fix the YAML syntax"


def _char_at(text: str, line: int, col: int) -> str:
    lines = text.split("\n")
    return lines[line][col : col + 1] if line < len(lines) else ""


class _Stop(Exception):
    """Raised inside the builder when going on would be unsafe (alias, depth)."""


class _Builder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []
        self.values: dict[Loc, tuple[int, int]] = {}
        self.keys: dict[Loc, tuple[int, int]] = {}
        self.result: Any = None
        self.documents = 0

    def _problem(self, event: ev.Event, message: str, hint: str) -> None:
        mark = event.start_mark
        self.problems.append(Problem(self.name, mark.line + 1, mark.column + 1, "", message, hint))

    def run(self, stream: Iterator[ev.Event]) -> None:
        for event in stream:
            if isinstance(event, ev.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    self._problem(event, "more than one YAML document in the file",
                                  "keep one playbook per file; remove the `---` separator")
                    raise _Stop
                if getattr(event, "version", None) not in (None, (1, 2)):
                    self._problem(event, "only YAML 1.2 is accepted",
                                  "remove the %YAML directive")
                    raise _Stop
            elif isinstance(event, ev.NodeEvent):
                self.result = self._node(event, stream, (), 0)

    def _node(self, event: ev.Event, stream: Iterator[ev.Event], loc: Loc, depth: int) -> Any:
        mark = event.start_mark
        self.values[loc] = (mark.line + 1, mark.column + 1)
        if isinstance(event, ev.AliasEvent) or getattr(event, "anchor", None):
            self._problem(event, "YAML anchors and aliases are not allowed",
                          "write the value out in full")
            raise _Stop
        if depth > MAX_DEPTH:
            self._problem(event, f"nested deeper than {MAX_DEPTH} levels", "flatten the structure")
            raise _Stop
        if isinstance(event, ev.ScalarEvent):
            return self._scalar(event)
        tag = getattr(event, "tag", None)
        if tag is not None and not str(tag).startswith("tag:yaml.org,2002:"):
            self._problem(event, f"the YAML tag {tag} is not allowed", "remove the tag")
        if isinstance(event, ev.SequenceStartEvent):
            items: list[Any] = []
            for child in stream:
                if isinstance(child, ev.SequenceEndEvent):
                    return items
                items.append(self._node(child, stream, (*loc, len(items)), depth + 1))
        if isinstance(event, ev.MappingStartEvent):
            return self._mapping(stream, loc, depth)
        raise _Stop  # pragma: no cover - the parser only yields the kinds above

    def _mapping(self, stream: Iterator[ev.Event], loc: Loc, depth: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key_event in stream:
            if isinstance(key_event, ev.MappingEndEvent):
                return mapping
            if not isinstance(key_event, ev.ScalarEvent):
                self._node(key_event, stream, (*loc, "?"), depth + 1)
                self._problem(key_event, "a mapping key must be plain text", "use a simple key")
                self._node(next(stream), stream, (*loc, "?"), depth + 1)
                continue
            key = self._scalar(key_event)
            mark = key_event.start_mark
            position = (mark.line + 1, mark.column + 1)
            if not isinstance(key, str):
                key = str(key_event.value)
            child_loc = (*loc, key)
            if key in mapping:
                first = self.keys[child_loc]
                self._problem(key_event, f"duplicate key `{key}` (first at line {first[0]})",
                              "remove one of them")
                self._node(next(stream), stream, (*loc, "?dup"), depth + 1)
                continue
            self.keys[child_loc] = position
            mapping[key] = self._node(next(stream), stream, child_loc, depth + 1)
        return mapping

    def _scalar(self, event: ev.ScalarEvent) -> Any:
        value: str = event.value
        if event.style == ">":
            # ruamel's events mark where a folded scalar's lines were joined with BEL; its own
            # loader drops them, and so must we, or every folded text carries a control char.
            value = value.replace("\a", "")
        tag = getattr(event, "tag", None)
        if event.style is not None or str(tag) == _STR_TAG:
            return value
        if tag is not None:
            self._problem(event, f"the YAML tag {tag} is not allowed", "remove the tag")
            return value
        if value in _NULL:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        if _LEADING_ZERO.fullmatch(value):
            self._problem(
                event, f"`{value}` is ambiguous (YAML 1.1 reads a leading zero as octal)",
                f'write {int(value.replace("_", ""))} or quote it: "{value}"',
            )
            return value
        if _INT.fullmatch(value):
            return int(value.replace("_", ""))
        if _FLOAT.fullmatch(value):
            return float(value.replace("_", ""))
        return value


def dump_yaml(data: Any) -> str:
    """Plain values (dicts, lists, text, numbers, booleans) as YAML that `parse_yaml` reads back."""
    yaml = YAML(typ="rt")
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 4096  # a long name folded over two lines is harder to edit by hand
    yaml.indent(mapping=2, sequence=4, offset=2)
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def _represent_text(representer: RoundTripRepresenter, text: str) -> ScalarNode:
    # ruamel folds or drops control characters and Unicode line breaks in plain and single-quoted
    # style; double quotes escape them, so the text reads back exactly.
    unusual = any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")
                  for c in text)
    return representer.represent_scalar(_STR_TAG, text, style='"' if unusual else None)


class _Representer(RoundTripRepresenter):
    """ruamel's round-trip representer with our text rule, without changing ruamel's own class."""


_Representer.add_representer(str, _represent_text)
