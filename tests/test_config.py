"""Settings: defaults, the example file, and where values come from."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conftest import ROOT
from playbook.config import Settings, example_config_keys, load_settings


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no playbook.toml, the built-in defaults apply."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.city.timezone == "UTC"


def test_playbook_toml_in_current_folder_is_read(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """./playbook.toml is the default settings file."""
    (tmp_path / "playbook.toml").write_text('[city]\nname = "Lund"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(None).city.name == "Lund"


def test_example_config_names_every_key() -> None:
    """config.example.toml documents every key the settings accept, and loads as-is."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for key in ("templates", "staff", "intermediaries", "media", "public"):
        text = text.replace(f"# {key} =", f"{key} =")
    uncommented = tomllib.loads(text)
    written = {f"{section}.{key}" for section, table in uncommented.items() for key in table}
    assert written == set(example_config_keys())
    assert load_settings(ROOT / "config.example.toml") == Settings(base_dir=ROOT)  # as shipped


def test_paths_are_relative_to_the_config_file() -> None:
    """A config in examples/ finds ../protocols relative to itself."""
    settings = load_settings(ROOT / "examples" / "playbook.toml")
    assert (settings.base_dir / settings.paths.protocols).resolve() == ROOT / "protocols"
    assert settings.city.name == "Riverton"
