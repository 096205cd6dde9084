"""Cross-checks list every problem at once, located in the files."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from playbook.errors import BadInput
from playbook.loader import load_checked

PLAYBOOK = """\
id: many-problems
title: Many problems
kind: natural_disaster
languages: [en, fr]
parameters:
  area: {type: area, example: Riverside}
roles:
  lead: {title: Lead, duties: [Lead]}
steps:
  - id: alert
    message: alert
    to: {public: [sms]}
    preapproved: true
    cerc: first
    at: 0m
  - id: alert
    task: Check shelters
    role: shelter_manager
    at: 10m
  - id: brief
    message: briefing
    to: {intermediaries: {area: "{{ district }}"}}
    approval: [lead]
    at: 20m
"""


def test_every_problem_is_listed(tmp_path: Path) -> None:
    """Dangling references, missing translations and template faults come out together."""
    (tmp_path / "protocols").mkdir()
    path = tmp_path / "protocols" / "many.yaml"
    path.write_text(PLAYBOOK)
    templates = tmp_path / "message_templates"
    (templates / "alert").mkdir(parents=True)
    (templates / "alert" / "en.j2").write_text(
        "{% block empathy %}We know this is frightening.{% endblock %}\n"
        "{% block facts %}Water is rising in {{ area }}.{% endblock %}\n")
    (templates / "briefing").mkdir()
    (templates / "briefing" / "en.j2").write_text("Brief for {{ areaa }}\n")
    with pytest.raises(BadInput) as caught:
        load_checked(path, city={"name": "X"}, timezone=ZoneInfo("UTC"))
    lines = [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]
    assert lines[:5] == [
        "protocols/many.yaml:8:3: roles: no role may approve public messages — give at least "
        "one role `approves: true`",
        "protocols/many.yaml:16:9: steps[1].id: step id `alert` is used twice (first as "
        "steps[0]) — give each step its own id",
        "protocols/many.yaml:18:11: steps[1].role: unknown role `shelter_manager` — declare it "
        "under `roles:` or use one of: lead",
        "protocols/many.yaml:23:16: steps[2].approval[0]: role `lead` may not approve — set "
        "`approves: true` on the role",
        "protocols/many.yaml:22:33: steps[2].to.intermediaries.area: unknown parameter "
        "`district` — declare it under `parameters:`",
    ]
    rest = "\n".join(lines[5:])
    assert "the block `unknown` is missing or empty" in rest
    assert "the block `more_info` is missing or empty" in rest
    assert "`areaa` is undefined" in rest
    assert "no `fr` template for `briefing`" in rest
    assert "protocols/many.yaml:11:14: steps[0].message: no `fr` template for `alert` (expected " \
        "message_templates/alert/fr.j2) — write the translation, or remove the language from " \
        "`languages`" in rest
