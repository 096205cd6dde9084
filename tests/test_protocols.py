"""The shipped protocols: every template of every protocol renders in every language."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import ROOT
from playbook.audience import available
from playbook.checks import example_context
from playbook.config import Settings
from playbook.loader import load_checked
from playbook.model import MessageStep
from playbook.render import CERC_BLOCKS, FSI, LRI, PDI, RLM, Renderer, is_rtl

PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))
ZONE = ZoneInfo("Europe/Vienna")


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_every_message_renders_in_every_language(path: Path) -> None:
    """Each message step renders in each language it has (fa-AF too), in the right direction."""
    settings = Settings()
    checked = load_checked(path, city=settings.city_values(), timezone=ZONE)
    pb = checked.playbook
    context_for = example_context(pb, settings.city_values(),
                                  datetime(2026, 5, 1, 14, tzinfo=ZONE), ZONE)
    renderer = Renderer(ZONE)
    rendered = 0
    # Each value of each choice parameter selects different wording; render them all.
    variants: list[dict[str, str]] = [{}] + [
        {name: choice} for name, p in pb.parameters.items() for choice in p.choices or ()]
    for step in pb.steps:
        if not isinstance(step, MessageStep):
            continue
        for lang in available(pb, checked.templates, step.message):  # with regional versions
            source = checked.templates.get(step.message, lang)
            assert source is not None
            for variant in variants:
                context = {**context_for(step), **variant}
                out = renderer.render(source, context)
                assert out.text.strip()
                assert "{{" not in out.text
                assert "{%" not in out.text
                assert len(out.text) <= 4096
                visible = re.sub(r"<[^>]*>", "", out.text)
                assert all(ln.startswith(RLM) == is_rtl(lang)
                           for ln in visible.split("\n") if ln.strip()), (step.message, lang)
                if step.cerc == "first":
                    assert set(out.blocks) == set(CERC_BLOCKS)
                if is_rtl(lang):
                    assert _bare_ltr(out.text) == "", (step.message, lang)
                rendered += 1
    assert rendered > 0


def _bare_ltr(text: str) -> str:
    """Latin letters and ASCII digits outside HTML tags and outside bidi isolates."""
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(f"[{FSI}{LRI}][^{PDI}]*{PDI}", "", text)
    while re.search(f"[{FSI}{LRI}]", text):  # nested isolates: peel the outer layers
        text = re.sub(f"[{FSI}{LRI}][^{FSI}{LRI}]*?{PDI}", "", text)
    return "".join(re.findall(r"[A-Za-z0-9]+", text))


def test_translations_differ_from_english() -> None:
    """No template is an untranslated copy of the English one."""
    for english in (ROOT / "message_templates").glob("*/en.j2"):
        for other in english.parent.glob("*.j2"):
            if other != english:
                assert other.read_text(encoding="utf-8") != english.read_text(encoding="utf-8")


def test_persian_uses_persian_letters() -> None:
    """Persian and Dari templates use Persian ی and ک, not the Arabic code points."""
    for path in [*(ROOT / "message_templates").glob("*/fa.j2"),
                 *(ROOT / "message_templates").glob("*/fa-AF.j2")]:
        text = path.read_text(encoding="utf-8")
        assert "ي" not in text, path
        assert "ك" not in text, path
