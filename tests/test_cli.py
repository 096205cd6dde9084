"""The command line: validate, plan, schema, config handling and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, Cli

pytestmark = pytest.mark.usefixtures("at_root")


def test_validate_shipped_protocols(cli: Cli) -> None:
    """`playbook validate protocols/` passes and says what it checked."""
    result = cli("validate", "protocols/")
    assert result.code == 0, result.err
    assert "ok  protocols/hate_incident.yaml  (13 steps, 5 messages × 6 languages)" in result.out


def test_validate_defaults_to_configured_protocols_folder(cli: Cli) -> None:
    """With no paths, validate checks the protocols folder from the settings."""
    result = cli("validate")
    assert result.code == 0
    assert "protocols/hate_incident.yaml" in result.out


def test_validate_missing_path(cli: Cli) -> None:
    """A path that does not exist is bad input, exit 2."""
    result = cli("validate", "nowhere/")
    assert result.code == 2
    assert result.err.startswith("nowhere: no such file or folder — check the path")


def test_plan_shows_the_timeline_in_the_city_time_zone(cli: Cli) -> None:
    """The plan lists offsets and wall-clock times in the configured time zone."""
    result = cli("plan", "hate-incident", "--config", "examples/playbook.toml",
                 "--start", "2026-05-01T12:00:00+00:00", "-p", "location=Old Town")
    assert result.code == 0, result.err
    assert "activated Fri 01 May 2026 14:00 (Europe/Vienna)" in result.out
    lines = result.out.splitlines()
    statement = next(line for line in lines if "first-statement" in line)
    assert "+1h" in statement
    assert " 15:00 " in statement
    assert "Spokesperson or Incident lead" in statement
    assert "all 6" in statement
    assert "languages en ar es fr uk fa" in result.out
    assert "message #3" in result.out
    assert "on stand_down" in result.out
    assert "Sat 02:00" in result.out
    assert "location=Old Town" in result.out
    assert "Example values used for: community, support_point, what" in result.out


def test_plan_fits_a_narrow_terminal(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns no line of the plan is wider than the terminal."""
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("plan", "hate-incident", "--start", "2026-05-01T14:00")
    assert result.code == 0
    assert max(len(line) for line in result.out.splitlines()) <= 80
    assert "Incident lead" in result.out


def test_plan_by_path_and_repeats(cli: Cli) -> None:
    """A playbook can be named by path, and more repeats can be shown."""
    result = cli("plan", "protocols/hate_incident.yaml", "--repeats", "5",
                 "--start", "2026-05-01T14:00")
    assert result.code == 0
    assert "message #5" in result.out
    assert "message #6" not in result.out


@pytest.mark.parametrize(("args", "error"), [
    (["plan", "no-such-playbook"], "no-such-playbook: no such playbook file or id"),
    (["plan", "hate-incident", "-p", "what=arson"],
     "--param: what: 'arson' is not one of vandalism, assault, threats"),
    (["plan", "hate-incident", "-p", "colour=red"], "--param: colour: unknown parameter"),
    (["plan", "hate-incident", "-p", "nonsense"], "--param: 'nonsense' is not name=value"),
    (["plan", "hate-incident", "--start", "tomorrow"],
     "--start: 'tomorrow' is not an ISO 8601 date and time"),
])
def test_plan_bad_input(cli: Cli, args: list[str], error: str) -> None:
    """Bad plan arguments exit 2 with a message that says what to write."""
    result = cli(*args)
    assert result.code == 2
    assert result.err.startswith(error)
    assert " — " in result.err.splitlines()[0]


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    """A mistyped command exits 2."""
    assert cli("valdate").code == 2


def test_schema_matches_committed_file(cli: Cli) -> None:
    """The committed JSON Schema is exactly what `playbook schema` prints (no drift)."""
    result = cli("schema")
    committed = (ROOT / "schema" / "playbook.schema.json").read_text(encoding="utf-8")
    assert result.out == committed, "run: playbook schema > schema/playbook.schema.json"
    schema = json.loads(result.out)
    assert schema["additionalProperties"] is False
    assert {"id", "title", "kind", "languages", "roles", "steps"} <= set(schema["required"])


def test_every_playbook_points_editors_at_the_schema() -> None:
    """Each shipped playbook starts with the yaml-language-server schema line."""
    for path in (ROOT / "protocols").glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schema/playbook.schema.json"


@pytest.mark.parametrize(("toml", "error"), [
    ("[city\nname = 1\n", "playbook.toml:1:6: invalid TOML"),
    ("[city]\nnmae = \"X\"\n",
     "playbook.toml:2:1: city.nmae: unknown key `nmae` — see config.example.toml"),
    ("[city]\ntimezone = \"Mars/Olympus\"\n",
     "playbook.toml:2:1: city.timezone: unknown time zone 'Mars/Olympus' — use an IANA name"),
    ("[city]\nname = 3\n", "playbook.toml:2:1: city.name: input should be a valid string"),
    ("[telegram]\nmode = \"webhook\"\n",
     "playbook.toml:2:1: telegram.mode: webhook mode needs webhook_url"),
    ("[telegram]\nmode = \"push\"\n",
     "playbook.toml:2:1: telegram.mode: input should be 'polling' or 'webhook'"),
    ("[telegram]\nwebhook_url = \"http://bot.example\"\n",
     "playbook.toml:2:1: telegram.webhook_url: string should match pattern"),
])
def test_bad_config_is_located(cli: Cli, tmp_path: Path, toml: str, error: str) -> None:
    """A broken config file gets file:line:col errors and exit 2."""
    config = tmp_path / "playbook.toml"
    config.write_text(toml)
    result = cli("validate", "--config", str(config))
    assert result.code == 2
    assert result.err.startswith(f"{config.parent}/{error}")


def test_missing_config_file(cli: Cli) -> None:
    """Naming a config file that does not exist is bad input."""
    result = cli("validate", "--config", "nope.toml")
    assert result.code == 2
    assert "nope.toml: no such config file" in result.err


def test_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    """The installed entry point maps bad input to exit 2 and prints no traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ntitle: [unclosed\n")
    done = subprocess.run([sys.executable, "-m", "playbook", "validate", str(bad)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{bad}:3:1: ")
    assert "Traceback" not in done.stderr


def test_preview_shows_each_language_as_recipients_read_it(cli: Cli) -> None:
    """`preview` renders a step in the chosen languages with the given parameters."""
    result = cli("preview", "hate-incident", "first-statement", "-l", "en", "-l", "fa",
                 "-p", "what=assault", "-p", "location=Old Town",
                 "--config", "examples/playbook.toml", "--start", "2026-05-01T14:00")
    assert result.code == 0, result.err
    assert "first-statement · en" in result.out
    assert "first-statement · fa" in result.out
    assert "attack on members of our community at Old Town" in result.out
    assert "next update at 6:00" in result.out
    assert "۱۸:۰۰" in result.out
    assert "<b>" not in result.out
    assert "· ar" not in result.out


def test_preview_exercise_banner(cli: Cli) -> None:
    """With --exercise every message starts with the localized exercise banner."""
    result = cli("preview", "hate-incident", "update", "-l", "uk", "--exercise")
    assert result.code == 0
    assert "НАВЧАННЯ — НАВЧАННЯ — НАВЧАННЯ" in result.out


@pytest.mark.parametrize(("args", "error"), [
    (["preview", "hate-incident", "confirm-facts"], "confirm-facts: no such message step"),
    (["preview", "hate-incident", "-l", "de"], "--lang: de is not a language of this playbook"),
])
def test_preview_bad_input(cli: Cli, args: list[str], error: str) -> None:
    """Asking for a step or language the playbook lacks is bad input, exit 2."""
    result = cli(*args)
    assert result.code == 2
    assert result.err.startswith(error)


def test_webhook_mode_without_its_secret_stops_run_cleanly(cli: Cli, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    """`playbook run` in webhook mode with no secret set exits 2 before starting anything."""
    config = tmp_path / "playbook.toml"
    config.write_text('[database]\nurl = "sqlite:///run.db"\n[telegram]\ntoken = "1:T"\n'
                      'mode = "webhook"\nwebhook_url = "https://bot.example/telegram"\n')
    monkeypatch.delenv("PLAYBOOK_TELEGRAM_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    result = cli("run", "--config", str(config))
    assert result.code == 2
    assert "PLAYBOOK_TELEGRAM_SECRET must hold the webhook secret" in result.err
    assert "Traceback" not in result.err


def test_invite_bad_input_is_located_and_writes_nothing(cli: Cli, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown intermediary or a bad --valid exits 2 with a reason; a good one prints a code."""
    monkeypatch.setenv("PLAYBOOK_DATABASE_URL", f"sqlite:///{tmp_path / 'invite.db'}")
    config = str(ROOT / "examples" / "playbook.toml")
    unknown = cli("directory", "invite", "nobody", "--config", config)
    assert unknown.code == 2
    assert "nobody: no intermediary with this id in the directory — use an id" in unknown.err
    bad = cli("directory", "invite", "imam-karim", "--valid", "5x", "--config", config)
    assert bad.code == 2
    assert bad.err.startswith("--valid: ")
    assert "Traceback" not in unknown.err + bad.err
    good = cli("directory", "invite", "imam-karim", "--valid", "48h", "--config", config)
    assert good.code == 0
    assert "/start " in good.out
