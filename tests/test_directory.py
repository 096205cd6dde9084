"""Directory files: YAML and CSV read and checked like playbooks; roles and audiences from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, Cli
from drive import checked, example_directory
from playbook import directoryfile
from playbook.audience import select
from playbook.directory import Directory, Staff, assign_roles
from playbook.directoryfile import load_directory
from playbook.errors import BadInput

HEADER = "id,name,organisation,kind,communities,areas,languages,telegram_chat_id,email,backup\n"


def _problems(files: dict[str, Path]) -> list[str]:
    with pytest.raises(BadInput) as caught:
        load_directory(files)
    return [str(p) for p in caught.value.problems]


def test_the_example_directory_loads() -> None:
    """Riverton's directory has its staff, intermediaries, media and public channels."""
    directory = example_directory()
    assert (len(directory.staff), len(directory.intermediaries), len(directory.media),
            len(directory.public)) == (9, 13, 2, 3)
    hassan = next(i for i in directory.intermediaries if i.id == "hassan-r")
    assert hassan.languages == ("fa-AF", "fa", "en")
    assert hassan.communities == ("muslim_community", "afghan_community")


def test_a_bad_csv_is_refused_whole_with_every_row_named(tmp_path: Path) -> None:
    """Each bad row is reported with its line and column; nothing is loaded."""
    path = tmp_path / "intermediaries.csv"
    path.write_text(HEADER
                    + "ok-1,Good Person,,,c,,en,1,,\n"
                    + "bad-lang,No Language,,,c,,xx-nonsense,2,,\n"
                    + "no-name,,,,c,,en,3,,\n"
                    + "no-way,Nobody Reachable,,,c,,en,,,\n"
                    + "ok-1,Twice,,,c,,en,4,,\n"
                    + "orphan,Orphan,,,c,,en,5,,ghost\n", encoding="utf-8")
    found = _problems({"intermediaries": path})
    text = "\n".join(found)
    assert f"{path}:3:7: languages" in text
    assert f"{path}:4:2: name" in text
    assert f"{path}:5" in text
    assert "no way to reach this person" in text
    assert len([p for p in found if f"{path}:" in p]) >= 3
    assert _problems({"intermediaries": path})  # still refused: nothing half-loaded


def test_duplicate_ids_and_unknown_backups_are_refused(tmp_path: Path) -> None:
    """A second entry with the same id, or a backup nobody has, is an error."""
    path = tmp_path / "intermediaries.csv"
    path.write_text(HEADER + "a,A,,,c,,en,1,,\na,B,,,c,,en,2,,\nb,C,,,c,,en,3,,ghost\n",
                    encoding="utf-8")
    found = "\n".join(_problems({"intermediaries": path}))
    assert "the id `a` is used twice" in found
    assert "unknown backup `ghost`" in found


def test_a_yaml_mistake_is_located(tmp_path: Path) -> None:
    """A wrong field in a YAML staff file points at its line and column."""
    path = tmp_path / "staff.yaml"
    path.write_text("staff:\n  - id: ann\n    name: Ann\n    languages: [en]\n"
                    "    email: ann@x.example\n    rolez: [lead]\n", encoding="utf-8")
    assert _problems({"staff": path}) == [
        f"{path}:6:5: staff[0].rolez: unknown key `rolez` — did you mean `roles`?"]


def test_an_unknown_column_is_refused(tmp_path: Path) -> None:
    """A misspelt CSV column is reported in the header row."""
    path = tmp_path / "i.csv"
    path.write_text("id,name,langauges\na,A,en\n", encoding="utf-8")
    assert any(p.startswith(f"{path}:1:3: langauges: unknown column") for p in
               _problems({"intermediaries": path}))


def test_the_backup_fills_a_role_whose_primary_is_away() -> None:
    """With the incident lead on leave, the backup holds the role and the log says so."""
    directory = example_directory()
    away = [s.model_copy(update={"available": False}) if s.id == "anna" else s
            for s in directory.staff]
    assigned = {a.role: a for a in assign_roles(checked().playbook,
                                                Directory(staff=tuple(away)))}
    assert assigned["incident_lead"].holder == "miriam"
    assert "backup" in assigned["incident_lead"].note


def test_a_role_nobody_can_fill_is_reported() -> None:
    """An empty roster leaves roles unfilled, and says so rather than failing."""
    assigned = assign_roles(checked().playbook, Directory())
    assert all(a.holder is None and "unfilled" in a.note for a in assigned)


def test_the_playbook_backup_role_covers_a_role_nobody_holds() -> None:
    """A role with no one in the roster falls to the holder of the role it names as `backup`."""
    roster = Directory(staff=tuple(s for s in example_directory().staff
                                   if s.id not in ("tom", "jonas")))
    assigned = {a.role: a for a in assign_roles(checked().playbook, roster)}
    assert assigned["digital_monitor"].holder == assigned["spokesperson"].holder == "miriam"
    assert "covered by the spokesperson" in assigned["digital_monitor"].note


def test_audiences_select_by_community_and_parameter() -> None:
    """`community: {{ community }}` reaches that community's active intermediaries only."""
    directory = example_directory()
    step = next(s for s in checked().playbook.message_steps() if s.id == "brief-intermediaries")
    chosen = select(step.to, directory, {"community": "ukrainian_community"}, {})
    assert sorted(r.id for r in chosen) == ["intermediary:olena-k", "intermediary:taras-b"]


def test_a_person_needs_a_way_to_be_reached() -> None:
    """A staff entry without Telegram or e-mail is refused."""
    with pytest.raises(ValueError, match="no way to reach"):
        Staff.model_validate({"id": "x", "name": "X", "languages": ["en"]})


def test_activate_refuses_a_playbook_naming_an_unknown_public_channel(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A playbook that posts to a channel the directory lacks is refused before anything starts."""
    config = tmp_path / "playbook.toml"
    config.write_text(f'[paths]\nprotocols = "{ROOT / "protocols"}"\n[database]\n'
                      f'url = "sqlite:///{tmp_path / "x.db"}"\n', encoding="utf-8")
    monkeypatch.delenv("PLAYBOOK_DATABASE_URL", raising=False)
    result = cli("activate", "hate-incident", "--config", str(config), "-p", "what=assault",
                 "-p", "location=Park", "-p", "community=c", "-p", "support_point=Hall")
    assert result.code == 2
    assert "public channels the directory does not define: telegram_channel, website" in (
        result.err)


def test_a_large_spreadsheet_loads_and_an_oversized_one_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CSV past YAML's 1 MB bound (17,000 people) loads; past its own bound, refused."""
    path = tmp_path / "intermediaries.csv"
    rows = [f"p{i:05d},Person number {i},Org,,c,,en,{100000 + i},p{i:05d}@x.example,\n"
            for i in range(17_000)]
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    assert path.stat().st_size > 1_000_000
    assert len(load_directory({"intermediaries": path}).intermediaries) == 17_000
    monkeypatch.setattr(directoryfile, "MAX_CSV_BYTES", 1_000_001)
    [problem] = _problems({"intermediaries": path})
    assert "over the 1,000,001 limit" in problem
    path.write_bytes(HEADER.encode() + "".join(rows).encode() + b"x,\xff\n")
    monkeypatch.setattr(directoryfile, "MAX_CSV_BYTES", 50_000_000)
    [problem] = _problems({"intermediaries": path})
    assert f"{path}:17002:3: " in problem
    assert "UTF-8" in problem
