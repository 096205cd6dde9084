"""Property tests: whatever the input, the loader answers with a value or located problems."""

from __future__ import annotations

import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from playbook.errors import BadInput
from playbook.loader import load_checked, load_playbook
from playbook.yamlfile import parse_yaml

EXAMPLE = (ROOT / "protocols" / "hate_incident.yaml").read_text(encoding="utf-8")
LINES = EXAMPLE.splitlines(keepends=True)
YAMLISH = st.text(alphabet=st.sampled_from(list("ab: -[]{}'\"#&*!|>%@`\n\t0123456789,.?~")),
                  max_size=200)


@given(YAMLISH)
@settings(max_examples=400)
def test_any_text_parses_or_is_refused_with_a_location(text: str) -> None:
    """Random YAML-like text never escapes as anything but BadInput, and problems are located."""
    try:
        parse_yaml(text, "fuzz.yaml")
    except BadInput as exc:
        line_count = text.count("\n") + 1
        for problem in exc.problems:
            assert problem.path == "fuzz.yaml"
            assert problem.message
            assert problem.line is None or 1 <= problem.line <= line_count + 1


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The example playbook with a few lines dropped, duplicated or edited."""
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "dup", "edit"]))
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        else:
            line = lines[index]
            at = draw(st.integers(0, max(0, len(line) - 1)))
            lines[index] = line[:at] + draw(st.sampled_from(
                ["", "x", ":", " ", "-", "{{", "}", "'", "1", "\t"])) + line[at + 1:]
    return "".join(lines)


@given(mutated())
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
def test_mutated_playbooks_load_or_report_problems(tmp_path: Path, text: str) -> None:
    """A damaged playbook either still loads or yields problems naming the file."""
    folder = tmp_path / "protocols"
    folder.mkdir(exist_ok=True)
    path = folder / "damaged.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_playbook(path)
    except BadInput as exc:
        assert all(p.path == str(path) for p in exc.problems)


@given(mutated())
@settings(max_examples=25, deadline=None)
def test_mutated_playbooks_pass_full_validation_or_report(text: str) -> None:
    """Full validation, templates included, also ends in a result or located problems."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_checked(path, city={"name": "X", "info_url": "https://x", "hotline": "1"},
                         timezone=ZoneInfo("UTC"), templates_root=ROOT / "message_templates")
        except BadInput as exc:
            assert exc.problems
