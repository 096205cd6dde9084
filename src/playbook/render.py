"""Rendering key messages: a sandboxed, cost-bounded jinja2 subset with babel formatting.

Templates are a trust boundary (a template may come from another city), so they are compiled in a
sandbox and checked against a small whitelist of jinja constructs: no macros, includes or imports
(no recursion), loops at most two deep and never carrying state between iterations, only
whitelisted filters and functions, no attribute starting with `_`. Multiplication and powers are
capped at run time and output is streamed with a hard cap. Together these bound the cost of any
template, so `validate` can promise a template renders quickly in a crisis.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time, format_timedelta
from babel.numbers import format_decimal
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from playbook.errors import Problem
from playbook.language import expand, lookup

TELEGRAM_LIMIT = 4096
MAX_COMPILED = 4096
_COMPILED: dict[tuple[str, str, str], Any] = {}
"""Checked, compiled template code by (key, path, text), shared by every renderer.

The code is the same for every language and time zone: every sandbox has the same options
and filter names, and a template looks its filters up in the environment it is loaded into.
So `validate` compiles a playbook's templates, and an incident's renderer only loads them.
"""
MAX_VALUE_CHARS = 20_000
MAX_RANGE = 1000
MAX_LOOP_DEPTH = 2

CERC_BLOCKS: dict[str, str] = {
    "empathy": "empathy and concern",
    "facts": "the confirmed facts",
    "unknown": "what is not yet known",
    "actions": "what the city is doing and when the next update comes",
    "instructions": "what people should do",
    "more_info": "where to learn more",
}

SAFE_FILTERS = frozenset({
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int",
    "join", "last", "length", "list", "lower", "round", "string", "striptags", "title", "trim",
    "truncate", "upper", "wordcount",
})
OUR_FILTERS = frozenset({"ltr", "datetime", "date", "time", "number", "duration"})
SAFE_FUNCTIONS = frozenset({"range"})

NATIVE_DIGITS = {
    "arab": "٠١٢٣٤٥٦٧٨٩", "arabext": "۰۱۲۳۴۵۶۷۸۹", "beng": "০১২৩৪৫৬৭৮৯", "deva": "०१२३४५६७८९",
    "mymr": "၀၁၂၃၄၅၆၇၈၉",
}
FSI, LRI, PDI, RLM = "\u2068", "\u2066", "\u2069", "\u200f"
BIDI_CONTROLS = frozenset(
    "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
TELEGRAM_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a",
                           "code", "pre", "tg-spoiler", "span", "blockquote"})

EXERCISE_BANNER = {
    "en": "EXERCISE — EXERCISE — EXERCISE",
    "ar": "تمرين — تمرين — تمرين",
    "es": "SIMULACRO — SIMULACRO — SIMULACRO",
    "fr": "EXERCICE — EXERCICE — EXERCICE",
    "uk": "НАВЧАННЯ — НАВЧАННЯ — НАВЧАННЯ",
    "fa": "رزمایش — رزمایش — رزمایش",
    "fa-AF": "تمرین — تمرین — تمرین",
}


@dataclass(frozen=True)
class TemplateSource:
    """One key message in one language, as read from `message_templates/<key>/<lang>.j2`."""

    key: str
    lang: str
    path: str
    text: str


@dataclass(frozen=True)
class TemplateLibrary:
    """The templates available to a playbook, by (key, language)."""

    sources: Mapping[tuple[str, str], TemplateSource] = field(default_factory=dict)

    def get(self, key: str, lang: str) -> TemplateSource | None:
        """The template for `key` in `lang`, if there is one."""
        return self.sources.get((key, lang))


@dataclass(frozen=True)
class Rendered:
    """A message ready for a channel."""

    key: str
    lang: str
    text: str
    direction: str
    blocks: Mapping[str, str] = field(default_factory=dict)


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; carries its located problems."""

    def __init__(self, problem: Problem, *more: Problem) -> None:
        self.problems = (problem, *more)
        self.problem = problem
        super().__init__("\n".join(str(p) for p in self.problems))


def exercise_banner(locale: str) -> str:
    """The exercise banner in a locale's language (its own variant first), else English."""
    return lookup(EXERCISE_BANNER, locale)


def is_rtl(lang: str) -> bool:
    """Whether a language is written right to left (Arabic, Persian, Hebrew, Urdu, ...)."""
    return parse_locale(lang).character_order == "right-to-left"


def parse_locale(tag: str) -> Locale:
    """The babel locale of a tag, through an alias where babel does not know it (`prs`)."""
    for candidate in expand(tag):
        try:
            return Locale.parse(candidate, sep="-")
        except (ValueError, UnknownLocaleError):
            continue
    raise ValueError(f"unknown language tag {tag!r}")


class LimitExceeded(SecurityError):
    """A template tried to do too much work (a huge loop, repetition or power)."""


class _BoundedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
            return operator.mul(left, right)
        if op == "**":
            if abs(right) > 64 or abs(left) > 10**6:
                raise LimitExceeded("power too large for a message template")
            return operator.pow(left, right)
        if op == "%" and isinstance(left, str):
            raise SecurityError("`%` string formatting is not allowed; use filters")
        if op == "+" and isinstance(left, str | list) and len(left) + len(right) > MAX_VALUE_CHARS:
            raise LimitExceeded("value too long for a message template")
        return super().call_binop(context, op, left, right)


def _check_repeat(seq: Any, times: Any) -> None:
    if isinstance(seq, str | list | tuple) and isinstance(times, int) \
            and len(seq) * times > MAX_VALUE_CHARS:
        raise LimitExceeded("repetition too long for a message template")


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise LimitExceeded(f"range() longer than {MAX_RANGE} in a message template")
    return result


class Renderer:
    """Compiles and renders templates for one city time zone."""

    def __init__(self, timezone: ZoneInfo, *, max_chars: int = TELEGRAM_LIMIT) -> None:
        self.timezone = timezone
        self.max_chars = max_chars
        self._cache: dict[tuple[str, str, str], Any] = {}
        self._environments: dict[str, _BoundedSandbox] = {}

    def _environment(self, lang: str) -> _BoundedSandbox:
        """One sandbox per language, made once: its filters format for that language."""
        if lang in self._environments:
            return self._environments[lang]
        rtl = is_rtl(lang)

        def finalize(value: Any) -> Any:
            # Isolates keep an LTR value (a street name, a phone number) from scrambling an
            # RTL sentence, and an RTL value from scrambling an LTR one.
            if not rtl or value is None or value == "":
                return value
            if isinstance(value, Markup):
                return Markup(FSI) + value + Markup(PDI)
            return FSI + str(value) + PDI

        env = _BoundedSandbox(
            autoescape=True, undefined=StrictUndefined, finalize=finalize,
            keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True,
        )
        env.globals = {"range": _bounded_range}
        env.filters = {name: env.filters[name] for name in SAFE_FILTERS}
        env.filters.update(self._locale_filters(lang, rtl=rtl))
        self._environments[lang] = env
        return env

    def _locale_filters(self, lang: str, *, rtl: bool) -> dict[str, Callable[..., str]]:
        locale = parse_locale(lang)
        tz = self.timezone

        # babel keeps Latin digits; Persian readers expect their own (۱۵:۰۰).
        digits = str.maketrans("0123456789", NATIVE_DIGITS.get(
            locale.default_numbering_system, "0123456789"))

        def as_datetime(value: datetime, fmt: str = "medium") -> str:
            return format_datetime(value, fmt, tzinfo=tz, locale=locale).translate(digits)

        def as_date(value: datetime, fmt: str = "long") -> str:
            return format_date(value.astimezone(tz).date(), fmt, locale=locale).translate(digits)

        def as_time(value: datetime, fmt: str = "short") -> str:
            return format_time(value, fmt, tzinfo=tz, locale=locale).translate(digits)

        def as_number(value: float) -> str:
            return format_decimal(value, locale=locale, numbering_system="default").translate(
                digits)

        def as_duration(value: timedelta) -> str:
            return format_timedelta(value, threshold=1.0, locale=locale).translate(digits)

        def ltr(value: Any) -> Any:
            # Phone numbers and web addresses written inside RTL text keep their order.
            return Markup(LRI) + value + Markup(PDI) if rtl else value

        return {"datetime": as_datetime, "date": as_date, "time": as_time,
                "number": as_number, "duration": as_duration, "ltr": ltr}

    def compile(self, source: TemplateSource, locale: str | None = None) -> Any:
        """Compile (cached) after checking the whitelist; raise `TemplateError` with a line.

        `locale` (default: the template's language) decides how dates and numbers are written.
        """
        locale = locale or source.lang
        cache_key = (locale, source.path, source.text)
        if cache_key in self._cache:
            return self._cache[cache_key]
        env = self._environment(locale)
        code = _COMPILED.get((source.key, source.path, source.text))
        if code is None:
            try:
                tree = env.parse(source.text, source.key, source.path)
            except TemplateSyntaxError as exc:
                raise TemplateError(Problem(
                    source.path, exc.lineno, None, "", f"template syntax error: {exc.message}",
                    "fix the jinja syntax ({{ value }}, {% if %}...{% endif %})")) from None
            problems = list(check_tree(tree, source.path))
            if problems:
                raise TemplateError(*problems)
            code = env.compile(tree, name=source.key, filename=source.path)
            if len(_COMPILED) >= MAX_COMPILED:
                _COMPILED.clear()
            _COMPILED[(source.key, source.path, source.text)] = code
        template = env.template_class.from_code(env, code, env.make_globals(None))
        self._cache[cache_key] = template
        return template

    def render(self, source: TemplateSource, context: Mapping[str, Any],
               *, exercise: bool = False, locale: str | None = None) -> Rendered:
        """Render with a hard output cap; raise `TemplateError` naming the template line.

        `locale` is the reader's own variant of the template's language (`ar-EG` reading `ar`).
        """
        locale = locale or source.lang
        template = self.compile(source, locale)
        try:
            text = _tidy("".join(_stream(template.generate(dict(context)), 4 * self.max_chars)))
            blocks = {}
            for name in CERC_BLOCKS:
                if name in template.blocks:
                    ctx = template.new_context(dict(context))
                    blocks[name] = "".join(template.blocks[name](ctx)).strip()
        except _TooLong:
            raise TemplateError(Problem(
                source.path, None, None, "", "rendered text runs past "
                f"{4 * self.max_chars:,} characters", "shorten the message")) from None
        except (UndefinedError, SecurityError, TypeError, ValueError, ArithmeticError,
                RecursionError, LookupError) as exc:
            line = _template_line(exc, source.path)
            what = str(exc).replace("'", "`").replace("`dict object` has no attribute",
                                                       "there is no value")
            hint = "pass it as a parameter or use one listed in docs/templates.md"
            if isinstance(exc, LimitExceeded):
                hint = "keep key messages simple: no large loops, repetition or arithmetic"
            elif isinstance(exc, SecurityError):
                hint = "templates may only use the documented values and filters"
            elif not isinstance(exc, UndefinedError):
                hint = "check the expression"
            raise TemplateError(Problem(source.path, line, None, "", what, hint)) from None
        if is_rtl(locale):
            text = "\n".join(_rtl_line(ln) for ln in text.split("\n"))
        if exercise:
            text = f"{exercise_banner(locale)}\n\n{text}"
        return Rendered(source.key, locale, text, "rtl" if is_rtl(locale) else "ltr", blocks)


    def comparisons(self, source: TemplateSource) -> list[tuple[str, str, int]]:
        """`(name, constant, line)` for each `name == "constant"` test in the template.

        Lets the validator catch `what == "asault"`, a branch that would never be taken.
        """
        try:
            tree = self._environment(source.lang).parse(source.text, source.key, source.path)
        except TemplateSyntaxError:
            return []  # reported when rendering
        found = []
        for compare in tree.find_all(nodes.Compare):
            operands = [compare.expr, *(op.expr for op in compare.ops)]
            names = [o.name for o in operands if isinstance(o, nodes.Name)]
            consts = [o.value for o in operands
                      if isinstance(o, nodes.Const) and isinstance(o.value, str)]
            if len(names) == 1 and consts:
                found += [(names[0], value, compare.lineno) for value in consts]
        return found


def html_problems(text: str) -> list[str]:
    """What Telegram's HTML parser would refuse: unknown tags and unbalanced ones."""
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    return checker.problems + [f"<{tag}> is never closed" for tag in reversed(checker.open)]


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problems.append(f"<{tag}> is not a tag Telegram shows")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes a tag that is not open")
        else:
            self.open.pop()


class _TooLong(Exception):
    pass


def _stream(chunks: Iterator[str], cap: int) -> Iterator[str]:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise _TooLong
        yield chunk


def _tidy(text: str) -> str:
    # Collapse the blank lines that `{% if %}` blocks leave behind.
    lines = [ln.rstrip() for ln in text.strip().split("\n")]
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1]):
            out.append(ln)
    return "\n".join(out)


def _template_line(exc: BaseException, path: str) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_FORBIDDEN = {
    nodes.Macro: "macros", nodes.CallBlock: "call blocks", nodes.Include: "includes",
    nodes.Import: "imports", nodes.FromImport: "imports", nodes.Extends: "extends",
}


def check_tree(tree: nodes.Template, path: str) -> Iterator[Problem]:
    """The whitelist that bounds a template's cost (see the module docstring)."""
    yield from _walk(tree, path, 0)


def _bounded_iterable(node: nodes.Node) -> bool:
    # Loop sizes then come from the context (parameters are length-capped) or from range(),
    # never from an expression such as `'x' * 20000` that a template could inflate.
    if isinstance(node, nodes.Name):
        return True
    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Filter) and node.node is not None:
        return _bounded_iterable(node.node)
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) \
        and node.node.name in SAFE_FUNCTIONS


def _walk(node: nodes.Node, path: str, depth: int) -> Iterator[Problem]:
    line = getattr(node, "lineno", None)

    def problem(message: str, hint: str) -> Problem:
        return Problem(path, line, None, "", message, hint)

    if isinstance(node, nodes.Block) and node.name not in CERC_BLOCKS:
        close = difflib.get_close_matches(node.name, list(CERC_BLOCKS), n=1)
        yield problem(f"unknown block `{node.name}`", f"did you mean `{close[0]}`?" if close
                      else "blocks name first-message elements: " + ", ".join(CERC_BLOCKS))
    if isinstance(node, nodes.TemplateData):
        typed = sorted({f"U+{ord(c):04X}" for c in node.data if c in BIDI_CONTROLS})
        if typed:
            yield problem(f"typed bidi control character {', '.join(typed)}",
                          "remove it; right-to-left text is isolated automatically")
    for kind, what in _FORBIDDEN.items():
        if isinstance(node, kind):
            yield problem(f"{what} are not allowed in message templates", "write the text out")
            return
    if isinstance(node, nodes.For):
        if node.recursive:
            yield problem("recursive loops are not allowed", "write a plain loop")
        if depth >= MAX_LOOP_DEPTH:
            yield problem(f"loops nested deeper than {MAX_LOOP_DEPTH}", "flatten the loop")
        if not _bounded_iterable(node.iter):
            yield problem("a loop may only go over a value the template is given, or range()",
                          "loop over a parameter or range(n)")
        for child in node.body:
            if any(isinstance(n, nodes.Assign | nodes.AssignBlock)
                   for n in [child, *child.find_all((nodes.Assign, nodes.AssignBlock))]):
                yield problem("`{% set %}` inside a loop is not allowed",
                              "compute the value before the loop")
                break
        depth += 1
    elif isinstance(node, nodes.Filter | nodes.FilterBlock):
        name = node.filter.name if isinstance(node, nodes.FilterBlock) else node.name
        if name not in SAFE_FILTERS | OUR_FILTERS:
            yield problem(f"the filter `{name}` is not allowed in message templates",
                          "use one of: " + ", ".join(sorted(SAFE_FILTERS | OUR_FILTERS)))
    elif isinstance(node, nodes.Call):
        if not (isinstance(node.node, nodes.Name) and node.node.name in SAFE_FUNCTIONS):
            yield problem("only range() may be called in message templates",
                          "use a filter instead, e.g. {{ when|datetime }}")
    elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        yield problem(f"the attribute `{node.attr}` is not allowed", "templates may only read "
                      "the documented values")
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
            and str(node.arg.value).startswith("_"):
        yield problem(f"the key `{node.arg.value}` is not allowed", "templates may only read "
                      "the documented values")
    for child in node.iter_child_nodes():
        yield from _walk(child, path, depth)


_LEADING_TAGS = re.compile(r"^\s*(?:<[^>]*>\s*)*")


def _rtl_line(line: str) -> str:
    """Start a line's text right-to-left, the mark after leading tags.

    Before `<blockquote>` the mark would sit on a line of its own and show as an empty one.
    """
    head = _LEADING_TAGS.match(line)
    at = head.end() if head else 0
    if not line[at:].strip():
        return line
    return line[:at] + RLM + line[at:]
