"""The README's two commands are the ones the project really runs."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None
    return [ln for ln in block.group(1).splitlines() if ln and not ln.startswith("#")]


def test_readme_starts_with_two_commands() -> None:
    """The first code block holds exactly two commands: run the main job, run the tests."""
    first, second = commands()
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert "playbook drill protocols/natural_disaster.yaml --instant --report aar.html" in first
    assert second.endswith(".venv/bin/pytest")


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls exactly the README's test command."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands()[1] in ci
