"""Rendering: locale formatting, right-to-left display, escaping, the sandbox and its limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from playbook.render import (
    EXERCISE_BANNER,
    FSI,
    LRI,
    PDI,
    RLM,
    Renderer,
    TemplateError,
    TemplateSource,
    is_rtl,
)

VIENNA = ZoneInfo("Europe/Vienna")
NOON_UTC = datetime(2026, 5, 1, 12, 0, tzinfo=ZoneInfo("UTC"))


def render(text: str, lang: str = "en", **context: Any) -> str:
    source = TemplateSource("k", lang, f"message_templates/k/{lang}.j2", text)
    return Renderer(VIENNA).render(source, context).text


@pytest.mark.parametrize(("lang", "expected"), [
    ("en", "2:00\u202fPM"), ("fr", "14:00"), ("uk", "14:00"), ("es", "14:00"),
    ("fa", f"{RLM}{FSI}۱۴:۰۰{PDI}"), ("ar-EG", f"{RLM}{FSI}٢:٠٠ م{PDI}"),
])
def test_times_are_local_to_the_city_and_the_reader(lang: str, expected: str) -> None:
    """12:00 UTC is 14:00 in Vienna, written the way each language writes times."""
    assert render("{{ t|time }}", lang, t=NOON_UTC) == expected


def test_same_template_text_renders_per_language() -> None:
    """One renderer serves many languages without mixing their formats."""
    renderer = Renderer(VIENNA)
    texts = [renderer.render(TemplateSource("k", lang, "same", "{{ t|date }}"), {"t": NOON_UTC})
             .text for lang in ("en", "fr")]
    assert texts == ["May 1, 2026", "1 mai 2026"]


def test_rtl_values_are_isolated_and_lines_marked() -> None:
    """In Arabic, a Latin place name is isolated and every line starts right-to-left."""
    text = render("تجمع في {{ place }}\nالرقم {{ phone|ltr }}", "ar", place="Market Square",
                  phone="+1 555 0100")
    assert text.splitlines() == [
        f"{RLM}تجمع في {FSI}Market Square{PDI}",
        f"{RLM}الرقم {FSI}{LRI}+1 555 0100{PDI}{PDI}",
    ]


def test_ltr_languages_get_no_invisible_marks() -> None:
    """English text carries no bidi control characters."""
    assert render("Call {{ phone|ltr }} at {{ place }}", phone="+1 555", place="X") \
        == "Call +1 555 at X"


def test_direction_follows_the_language() -> None:
    """Arabic, Persian, Hebrew and Urdu are right-to-left; the others are not."""
    assert [is_rtl(lang) for lang in ("ar", "fa", "he", "ur", "en", "uk", "fa-AF")] == [
        True, True, True, True, False, False, True]


def test_parameter_values_are_escaped_for_telegram_html() -> None:
    """A value cannot inject markup into a Telegram HTML message."""
    assert render("<b>{{ place }}</b>", place="<a href='x'>&</a>") == \
        "<b>&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;</b>"


def test_exercise_banner_is_first_in_every_language() -> None:
    """An exercise message starts with the localized banner."""
    for lang, banner in EXERCISE_BANNER.items():
        source = TemplateSource("k", lang, "k.j2", "Hello")
        assert Renderer(VIENNA).render(source, {}, exercise=True).text.startswith(banner)


def test_blank_lines_from_conditions_collapse() -> None:
    """`{% if %}` blocks leave no runs of blank lines behind."""
    text = render("A\n{% if x %}\nB\n{% endif %}\n\n\nC", x=False)
    assert text == "A\n\nC"


@pytest.mark.parametrize(("template", "message"), [
    ("{{ missing }}", "`missing` is undefined"),
    ("{{ ''.__class__ }}", "attribute `__class__` is not allowed"),
    ("{{ x.__globals__ }}", "attribute `__globals__` is not allowed"),
    ("{{ 'a' * 100000 }}", "repetition too long"),
    ("{{ [1] * 100000 }}", "repetition too long"),
    ("{{ 9 ** 999999 }}", "power too large"),
    ("{{ '%s' % x }}", "`%` string formatting is not allowed"),
    ("{% for i in range(5000) %}{% endfor %}", "range() longer than 1000"),
    ("{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}",
     "loops nested deeper than 2"),
    ("{% for a in x %}{% set y = a %}{% endfor %}", "`{% set %}` inside a loop"),
    ("{% for a in x recursive %}{{ loop(a) }}{% endfor %}", "recursive loops"),
    ("{% for a in 'x' * 9000 %}{% endfor %}", "a loop may only go over a value"),
    ("{% for a in [1, 2] + [3] %}{% endfor %}", "a loop may only go over a value"),
    ("{% include 'other' %}", "includes are not allowed"),
    ("{% import 'm' as m %}", "imports are not allowed"),
    ("{{ x|pprint }}", "the filter `pprint` is not allowed"),
    ("{{ lipsum(1000000) }}", "only range() may be called"),
    ("{{ x.upper() }}", "only range() may be called"),
    ("{{ self._TemplateReference__context }}", "attribute `_TemplateReference__context`"),
])
def test_unsafe_or_costly_templates_are_refused(template: str, message: str) -> None:
    """Sandbox escapes and cost bombs fail fast with a message naming the problem."""
    with pytest.raises(TemplateError) as caught:
        render(template, x="abc")
    assert message in str(caught.value)


def test_errors_name_the_template_line() -> None:
    """An undefined variable is reported at its line in the template file."""
    with pytest.raises(TemplateError) as caught:
        render("line one\nline two {{ nope }}")
    assert caught.value.problem.path == "message_templates/k/en.j2"
    assert caught.value.problem.line == 2


def test_every_forbidden_construct_is_listed() -> None:
    """A template with several forbidden constructs names each one, with its line."""
    with pytest.raises(TemplateError) as caught:
        render("{{ x|pprint }}\n{% include 'a' %}\n{{ x.__class__ }}", x="a")
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (1, "the filter `pprint` is not allowed in message templates"),
        (2, "includes are not allowed in message templates"),
        (3, "the attribute `__class__` is not allowed")]


def test_runaway_output_is_cut_off() -> None:
    """Output far past Telegram's limit stops rendering instead of filling memory."""
    with pytest.raises(TemplateError, match="runs past"):
        render("{% for i in range(1000) %}{% for j in range(1000) %}ab{% endfor %}{% endfor %}")


def test_cerc_blocks_are_rendered_separately() -> None:
    """Each first-message element is available to the validator on its own."""
    source = TemplateSource("k", "en", "k.j2",
                            "{% block empathy %}We care about {{ p }}.{% endblock %} rest")
    rendered = Renderer(VIENNA).render(source, {"p": "you"})
    assert rendered.blocks == {"empathy": "We care about you."}
    assert rendered.text == "We care about you. rest"


def test_the_right_to_left_mark_goes_inside_a_block_that_opens_a_line() -> None:
    """A line that opens with `<blockquote>` or `<b>` gets its mark after the tag, not before."""
    out = render("<blockquote>• تجنبوا المنطقة\n• اتبعوا التعليمات</blockquote>\n<b>عاجل</b>", "ar")
    assert out == (f"<blockquote>{RLM}• تجنبوا المنطقة\n{RLM}• اتبعوا التعليمات"
                        f"</blockquote>\n<b>{RLM}عاجل</b>")
