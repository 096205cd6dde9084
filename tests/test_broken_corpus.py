"""The corpus of broken inputs: each one exits 2 with exactly the error in its expected.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, Cli

CASES = sorted(p for p in (ROOT / "tests" / "broken").iterdir() if p.is_dir())


def test_corpus_is_large_enough() -> None:
    """The issue asks for at least 25 broken inputs."""
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.usefixtures("at_root")
def test_broken_input_gets_its_exact_error(case: Path, cli: Cli) -> None:
    """A broken input exits 2 and prints exactly the located error, never a traceback."""
    result = cli("validate", str(case.relative_to(ROOT) / "playbook.yaml"))
    expected = (case / "expected.txt").read_text(encoding="utf-8")
    assert result.code == 2
    assert result.err == expected
    assert "Traceback" not in result.err + result.out
    first = expected.splitlines()[0]
    assert first.startswith(f"tests/broken/{case.name}/")


@pytest.mark.usefixtures("at_root")
def test_all_broken_inputs_at_once_list_every_file(cli: Cli) -> None:
    """Validating the whole corpus reports every broken file, not just the first."""
    result = cli("validate", "tests/broken")
    assert result.code == 2
    named = {line.split("/")[2] for line in result.err.splitlines() if line.startswith("tests/")}
    assert named == {c.name for c in CASES}
