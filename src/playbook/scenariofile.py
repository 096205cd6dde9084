"""Reading drill scenario files, with every problem located in the YAML.

A scenario is checked whole against the playbook it exercises (roles, step ids, objectives), so
a broken scenario stops the drill before anything is opened.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from playbook import scenario as sc
from playbook.errors import BadInput, Problem
from playbook.loader import field_name, located
from playbook.model import Playbook
from playbook.yamlfile import load_yaml

SCENARIOS_DIR = "scenarios"
_KEYS = {name for cls in (sc.Scenario, sc.Objective, sc.Inject, sc.Play, sc.Backup, sc.Players)
         for name in cls.model_fields} | {"action", "step", "within"}


def load_scenario(path: Path, playbook: Playbook) -> sc.Scenario:
    """Read one scenario file for `playbook`; raise `BadInput` with every problem located."""
    document = load_yaml(path)
    if not isinstance(document.data, dict):
        raise BadInput.one(document.path, "a scenario must be a mapping of keys to values",
                           "start with `title: ...`", line=1, col=1)
    try:
        scenario = sc.Scenario.model_validate(document.data)
    except ValidationError as exc:
        raise BadInput(sorted(located(document, exc, _KEYS))) from None
    found = []
    for loc, message, hint in sc.problems(scenario, playbook):
        line, col = document.locate(loc)
        found.append(Problem(document.path, line, col, field_name(loc), message, hint))
    if found:
        raise BadInput(found)
    return scenario


def beside(playbook_path: Path) -> Path | None:
    """The scenario shipped for a playbook: `scenarios/<name>.yaml` beside its folder."""
    candidate = playbook_path.resolve().parent.parent / SCENARIOS_DIR / playbook_path.name
    return candidate if candidate.is_file() else None
