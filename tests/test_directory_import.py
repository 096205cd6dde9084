"""`playbook directory import/export`: spreadsheets of intermediaries in and out, checked whole."""

from __future__ import annotations

import itertools
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, Cli
from playbook.directory import Intermediary
from playbook.directoryfile import load_directory

HEADER = "id,name,organisation,kind,communities,areas,languages,telegram_chat_id,email,backup\n"
EXAMPLE = ROOT / "examples" / "directory" / "intermediaries.csv"
LANGUAGES = ["en", "ar", "ar-EG", "es", "fr", "uk", "fa", "fa-AF", "prs"]


def _riverton() -> int:
    """How many intermediaries Riverton's example file holds."""
    return len(load_directory({"intermediaries": EXAMPLE}).intermediaries)


def _city(tmp_path: Path, target: str = "intermediaries.csv", *, example: bool = True) -> Path:
    """A playbook.toml whose intermediaries file is `directory/<target>`; Riverton's if CSV."""
    (tmp_path / "directory").mkdir()
    if example:
        shutil.copy(EXAMPLE, tmp_path / "directory" / target)
    config = tmp_path / "playbook.toml"
    config.write_text(f'[directory]\nintermediaries = "directory/{target}"\n', encoding="utf-8")
    return config


def _people(config: Path, target: str = "intermediaries.csv") -> dict[str, Intermediary]:
    path = config.parent / "directory" / target
    return {p.id: p for p in load_directory({"intermediaries": path}).intermediaries}


def _sheet(tmp_path: Path, text: str, name: str = "sheet.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_import_updates_by_id_adds_new_people_and_keeps_the_rest(
        cli: Cli, tmp_path: Path) -> None:
    """One changed row, one new and one the same: one more person, the others in their order."""
    config = _city(tmp_path)
    sheet = _sheet(tmp_path, HEADER
                   + "imam-karim,Karim Mansour,Al-Noor Mosque,religious_leader,muslim_community,"
                     "old_town,ar;en,6001,karim@alnoor.example,amina-s\n"
                   + "taras-b,Taras Bondar,St Volodymyr Parish,religious_leader,"
                     "ukrainian_community,east,uk,6008,,\n"
                   + "leila-h,Leila Hosseini,Dari Speakers Network,community_leader,"
                     "afghan_community,east,fa-AF;fa;en,6013,,hassan-r\n")
    result = cli("directory", "import", str(sheet), "--config", str(config))
    assert result.code == 0, result.err
    assert f"added 1, updated 1, unchanged 1; now {_riverton() + 1} intermediaries" in result.out
    assert "removed" not in result.out
    people = _people(config)
    assert next(iter(people)) == "imam-karim"
    assert list(people)[-1] == "leila-h"
    assert people["imam-karim"].email == "karim@alnoor.example"
    assert people["leila-h"].languages == ("fa-AF", "fa", "en")
    assert people["olena-k"].backup == "taras-b"  # someone not in the sheet is kept as it was


def test_replace_makes_the_sheet_the_whole_list(cli: Cli, tmp_path: Path) -> None:
    """`--replace` removes everyone the sheet leaves out, and says how many."""
    config = _city(tmp_path)
    sheet = _sheet(tmp_path, HEADER + "taras-b,Taras Bondar,St Volodymyr Parish,religious_leader,"
                   "ukrainian_community,east,uk,6008,,\nnew-1,New Person,,,c,,es,77,,taras-b\n")
    result = cli("directory", "import", str(sheet), "--replace", "--config", str(config))
    assert result.code == 0, result.err
    assert (f"added 1, updated 0, unchanged 1, removed {_riverton() - 1}; now 2 intermediaries"
            in result.out)
    assert list(_people(config)) == ["taras-b", "new-1"]


def test_with_replace_a_backup_must_be_in_the_sheet(cli: Cli, tmp_path: Path) -> None:
    """A backup who would be removed by `--replace` is unknown, so the import is refused."""
    config = _city(tmp_path)
    sheet = _sheet(tmp_path, HEADER + "new-1,New Person,,,c,,es,77,,taras-b\n")
    assert cli("directory", "import", str(sheet), "--config", str(config)).code == 0
    result = cli("directory", "import", str(sheet), "--replace", "--config", str(config))
    assert result.code == 2
    assert f"{sheet}:2:10: backup: unknown backup `taras-b`" in result.err


def test_a_column_the_sheet_leaves_out_keeps_its_value(cli: Cli, tmp_path: Path) -> None:
    """Tags and active set earlier survive an import of a sheet without those columns."""
    config = _city(tmp_path)
    tagged = _sheet(tmp_path, HEADER.strip() + ",tags,active\n"
                    "ruth-m,Ruth Meyer,Jewish Community Centre,community_leader,jewish_community,"
                    "south,de;en,,ruth@jcc.example,,youth;women,no\n", "tagged.csv")
    assert cli("directory", "import", str(tagged), "--config", str(config)).code == 0
    plain = _sheet(tmp_path, HEADER + "ruth-m,Ruth Meyer,Jewish Community Centre,"
                   "community_leader,jewish_community,south,de;en,6006,ruth@jcc.example,\n")
    result = cli("directory", "import", str(plain), "--config", str(config))
    assert "updated 1" in result.out
    ruth = _people(config)["ruth-m"]
    assert (ruth.tags, ruth.active, ruth.telegram_chat_id) == (("youth", "women"), False, "6006")


def test_export_then_import_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    """An exported sheet imports as all unchanged, and the directory file keeps every byte."""
    config = _city(tmp_path)
    target = tmp_path / "directory" / "intermediaries.csv"
    before = target.read_bytes()
    exported = tmp_path / "out" / "export.csv"
    exported.parent.mkdir()
    result = cli("directory", "export", "--output", str(exported), "--config", str(config))
    assert result.code == 0, result.err
    assert exported.read_text(encoding="utf-8").splitlines()[0] == HEADER.strip() + ",tags,active"
    assert cli("directory", "export", "--config", str(config)).out == exported.read_text(
        encoding="utf-8")
    result = cli("directory", "import", str(exported), "--config", str(config))
    assert result.code == 0, result.err
    total = _riverton()
    assert f"added 0, updated 0, unchanged {total}; now {total} intermediaries" in result.out
    assert target.read_bytes() == before
    again = cli("directory", "export", "--config", str(config))
    assert again.out == exported.read_text(encoding="utf-8")


def test_a_bad_sheet_is_refused_whole_naming_each_bad_cell(cli: Cli, tmp_path: Path) -> None:
    """Every bad row is named by row and column, exit 2, and the directory file is untouched."""
    config = _city(tmp_path)
    target = tmp_path / "directory" / "intermediaries.csv"
    before = target.read_bytes()
    sheet = _sheet(tmp_path, HEADER.strip() + ",active\n"
                   "ok-1,Good Person,,,c,,en,1,,,\n"               # 2
                   "bad-lang,Bad Language,,,c,,en;xx-nonsense,2,,,\n"
                   "no-name,,,,c,,en,,,,\n"                       # 4
                   ",No Id,,,c,,en,4,,,\n"
                   "bad-chat,Bad Chat,,,c,,en,abc,not-an-email,,\n"   # 6
                   "no-way,Nobody Reachable,,,c,,en,,,,\n"
                   "ok-1,Twice,,,c,,en,5,,,\n"                    # 8
                   "orphan,Orphan,,,c,,en,6,,ghost,\n"
                   "selfish,Self,,,c,,en,7,,selfish,\n"          # 10
                   "wide,Too Wide,,,c,,en,8,,,,extra\n"
                   "\n"                                           # 12: blank rows are skipped
                   "typo,Typo,,,c,,en,9,,,ture\n"                 # 13
                   'underscore,Under Score,,,c,,"en_US,ar",10,,,\n'
                   "fine,Fine Person,,,c,,ar-EG;en,11,,ok-1,\n")
    result = cli("directory", "import", str(sheet), "--config", str(config))
    assert result.code == 2
    assert "Traceback" not in result.err
    located = re.findall(rf"^{re.escape(str(sheet))}:(\d+):(\d+): (?:(\w+): )?", result.err,
                         re.M)
    assert located == [("3", "7", "languages"), ("4", "2", "name"),
                       ("4", "8", "telegram_chat_id"), ("5", "1", "id"),
                       ("6", "8", "telegram_chat_id"), ("6", "9", "email"),
                       ("7", "8", "telegram_chat_id"), ("8", "1", "id"), ("9", "10", "backup"),
                       ("10", "10", "backup"), ("11", "12", ""), ("13", "11", "active"),
                       ("14", "7", "languages")]
    assert "the id `ok-1` is also on row 2" in result.err
    assert "no way to reach this person" in result.err
    assert "an intermediary cannot be their own backup" in result.err
    assert "separated by `;`" in result.err
    assert "13 problems in 1 file." in result.err
    assert target.read_bytes() == before


def test_a_sheet_with_a_byte_order_mark_imports(cli: Cli, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM; the first column is still `id`."""
    config = _city(tmp_path)
    sheet = tmp_path / "excel.csv"
    sheet.write_bytes(b"\xef\xbb\xbf" + (HEADER + "new-1,Nour Haddad,,,c,,ar;en,61,,\n")
                      .replace("\n", "\r\n").encode("utf-8"))
    result = cli("directory", "import", str(sheet), "--config", str(config))
    assert result.code == 0, result.err
    assert _people(config)["new-1"].name == "Nour Haddad"


def test_a_semicolon_sheet_is_told_how_to_save_from_excel(cli: Cli, tmp_path: Path) -> None:
    """European Excel separates with `;`: one clear problem naming the Save As choice."""
    config = _city(tmp_path)
    sheet = _sheet(tmp_path, HEADER.replace(",", ";") + "new-1;New;;;c;;en;61;;\n")
    result = cli("directory", "import", str(sheet), "--config", str(config))
    assert result.code == 2
    assert result.err.splitlines()[0] == (
        f"{sheet}:1:1: the columns are separated by semicolons, not commas — "
        "in Excel use File › Save As › “CSV UTF-8 (comma delimited)”")


def test_a_sheet_not_in_utf8_is_refused_with_the_excel_hint(cli: Cli, tmp_path: Path) -> None:
    """A Windows-1252 file names the first bad byte's place and how to save as UTF-8."""
    config = _city(tmp_path)
    sheet = tmp_path / "legacy.csv"
    sheet.write_bytes((HEADER + "new-1,René Dupont,,,c,,fr,61,,\n").encode("cp1252"))
    result = cli("directory", "import", str(sheet), "--config", str(config))
    assert result.code == 2
    assert result.err.startswith(f"{sheet}:2:10: invalid UTF-8 (byte 0xe9) — in Excel use")
    assert "CSV UTF-8 (comma delimited)" in result.err


def test_the_header_is_required_and_checked(cli: Cli, tmp_path: Path) -> None:
    """No header, a misspelt column, or a missing column: each is named in row 1."""
    config = _city(tmp_path)
    headless = _sheet(tmp_path, "new-1,New,,,c,,en,61,,\n", "headless.csv")
    assert f"{headless}:1:1: the first row does not name the columns" in cli(
        "directory", "import", str(headless), "--config", str(config)).err
    misspelt = _sheet(tmp_path, HEADER.replace("languages", "langauges") + "a,A,,,,,en,1,,\n")
    result = cli("directory", "import", str(misspelt), "--config", str(config))
    assert result.code == 2
    assert f"{misspelt}:1:7: langauges: unknown column — did you mean `languages`?" in result.err
    assert f"{misspelt}:1: missing column: languages" in result.err


def test_without_a_configured_file_both_commands_say_what_to_set(
        cli: Cli, tmp_path: Path) -> None:
    """No `[directory] intermediaries` in the settings: exit 2 with the key to add."""
    config = tmp_path / "playbook.toml"
    config.write_text('[city]\nname = "Riverton"\n', encoding="utf-8")
    sheet = _sheet(tmp_path, HEADER + "new-1,New,,,c,,en,61,,\n")
    for args in (("import", str(sheet)), ("export",)):
        result = cli("directory", *args, "--config", str(config))
        assert result.code == 2
        assert result.err.startswith(f"{config}: directory.intermediaries: no intermediaries "
                                     "file is configured — add `[directory] intermediaries")
        assert "to playbook.toml" in result.err


def test_a_dry_run_reports_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    """`--dry-run` gives the same counts as a real import and leaves the file alone."""
    config = _city(tmp_path)
    target = tmp_path / "directory" / "intermediaries.csv"
    before = target.read_bytes()
    sheet = _sheet(tmp_path, HEADER + "new-1,New,,,c,,en,61,,\n")
    result = cli("directory", "import", str(sheet), "--dry-run", "--replace",
                 "--config", str(config))
    assert result.code == 0, result.err
    assert "dry run" in result.out
    assert (f"added 1, updated 0, unchanged 0, removed {_riverton()}; would be 1 intermediary"
            in result.out)
    assert target.read_bytes() == before


def test_a_first_import_creates_a_yaml_file_that_loads_back(cli: Cli, tmp_path: Path) -> None:
    """A YAML intermediaries file is written as `intermediaries:` YAML, chat ids kept as text."""
    config = _city(tmp_path, "intermediaries.yaml", example=False)
    result = cli("directory", "import", str(EXAMPLE), "--config", str(config))
    assert result.code == 0, result.err
    total = _riverton()
    assert f"added {total}, updated 0, unchanged 0; now {total} intermediaries" in result.out
    target = tmp_path / "directory" / "intermediaries.yaml"
    assert target.read_text(encoding="utf-8").startswith("intermediaries:\n  - id: imam-karim\n")
    people = _people(config, "intermediaries.yaml")
    assert people["imam-karim"].telegram_chat_id == "6001"
    assert people["hassan-r"].languages == ("fa-AF", "fa", "en")
    again = cli("directory", "import", str(EXAMPLE), "--config", str(config))
    assert f"unchanged {total}" in again.out


def _generated(count: int) -> str:
    """`count` intermediaries cycling through nine languages, each backed up by the one before."""
    rows = [HEADER]
    langs = itertools.cycle(LANGUAGES)
    for n in range(count):
        lang = next(langs)
        spoken = lang if lang == "en" else f"{lang};en"
        backup = f"person-{n - 1:03d}" if n else ""
        rows.append(f'person-{n:03d},Person {n},"Org {n // 10}, Riverton",community_leader,'
                    f"community_{n % 7},area_{n % 5},{spoken},{7000 + n},"
                    f"p{n}@city.example,{backup}\n")
    return "".join(rows)


def test_a_sheet_of_240_people_in_nine_languages_imports_and_reimports(
        cli: Cli, tmp_path: Path) -> None:
    """240 rows in nine languages import into a new file; changing ten updates exactly ten."""
    config = _city(tmp_path, example=False)
    sheet = _sheet(tmp_path, _generated(240))
    result = cli("directory", "import", str(sheet), "--config", str(config))
    assert result.code == 0, result.err
    assert "added 240, updated 0, unchanged 0; now 240 intermediaries" in result.out
    spoken = Counter(lang for person in _people(config).values() for lang in person.languages)
    assert spoken["en"] == 240
    assert set(spoken) == set(LANGUAGES)
    assert min(spoken.values()) == 26
    shown = next(ln for ln in result.out.splitlines() if ln.startswith("languages: "))
    assert dict(pair.rsplit(" ", 1) for pair in shown.removeprefix("languages: ").split(", ")) \
        == {k: str(v) for k, v in spoken.items()}
    people = _people(config)
    assert len(people) == 240
    assert people["person-100"].organisation == "Org 10, Riverton"
    changed = sheet.read_text(encoding="utf-8").replace("Org 3, Riverton", "Org 3, Riverside")
    sheet.write_text(changed, encoding="utf-8")
    result = cli("directory", "import", str(sheet), "--config", str(config))
    assert "added 0, updated 10, unchanged 230; now 240 intermediaries" in result.out
    assert _people(config)["person-035"].organisation == "Org 3, Riverside"


@pytest.mark.parametrize("rows", ["", "\n\n"])
def test_a_sheet_with_no_people_is_refused(cli: Cli, tmp_path: Path, rows: str) -> None:
    """A header alone is a mistake, most dangerous with --replace: it would empty the list."""
    config = _city(tmp_path)
    sheet = _sheet(tmp_path, HEADER + rows)
    result = cli("directory", "import", str(sheet), "--replace", "--config", str(config))
    assert result.code == 2
    assert "no intermediaries in the file" in result.err
    assert len(_people(config)) == _riverton()
