"""docs/deployment.md and examples/deploy/: the commands, keys and files they show are real."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import ROOT, Cli
from playbook.config import Settings, example_config_keys
from stores import fresh_url, open_store

DOC = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
DEPLOY = ROOT / "examples" / "deploy"
UNIT = DEPLOY / "playbook.service"
NGINX = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
BACKUP = DEPLOY / "backup.sh"
SEPARATORS = {"&&", "||", ";", "|"}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, re.S)


def _doc_commands() -> list[list[str]]:
    """Every `playbook ...` command on the page, as the words after `playbook`."""
    found: list[list[str]] = []
    lines = [ln for block in _blocks("sh") for ln in block.replace("\\\n", " ").splitlines()]
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", DOC, flags=re.S))
    for text in [*lines, *spans]:
        try:
            words = shlex.split(text, comments=True)
        except ValueError:
            continue
        start = 0
        for i, word in enumerate(words):
            if word in SEPARATORS:
                start = i + 1
            elif (word == "playbook" and i == start) or word.endswith("/bin/playbook"):
                rest = words[i + 1:]
                cut = next((j for j, w in enumerate(rest) if w in SEPARATORS), len(rest))
                if rest[:cut]:
                    found.append(rest[:cut])
    return found


def _options(help_text: str) -> set[str]:
    """The option names a command's --help lists (long, and short where it has one)."""
    names: set[str] = set()
    for line in help_text.splitlines():
        found = re.match(r"│\s+(--[\w-]+)(?:\s+(-\w)\b)?", line)
        if found:
            names.update(name for name in found.groups() if name)
    return names


def _help(cli: Cli, words: list[str]) -> tuple[list[str], set[str]]:
    """The command path the words name (checked by `--help`) and the options it takes."""
    path: list[str] = []
    for word in words:
        path.append(word)
        shown = cli(*path, "--help")
        assert shown.code == 0, f"`playbook {' '.join(path)}` is not a command: {shown.err}"
        if not re.search(r"─ Commands ─", shown.out):
            return path, _options(shown.out)
    raise AssertionError(f"`playbook {' '.join(words)}` names a group, not a command")


def _toml_blocks() -> list[dict[str, Any]]:
    return [tomllib.loads(block) for block in _blocks("toml")]


def _unit() -> configparser.RawConfigParser:
    unit = configparser.RawConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit


def test_every_command_on_the_page_exists_with_its_options(cli: Cli) -> None:
    """Each `playbook ...` shown parses: its command answers --help and has every option used."""
    commands = _doc_commands()
    assert len(commands) >= 8, commands
    for words in commands:
        path, known = _help(cli, words)
        used = {w.split("=")[0] for w in words[len(path):] if re.fullmatch(r"--?[a-z][\w-]*.*", w)}
        assert used <= known, f"`playbook {' '.join(words)}`: unknown {sorted(used - known)}"


def test_every_config_key_on_the_page_exists() -> None:
    """Each `[section] key` named, and each TOML block shown, is accepted by the settings."""
    keys = set(example_config_keys())
    named = re.findall(r"\[([a-z]+)\] ([a-z_]+)", DOC)
    assert len(named) >= 10
    for section, key in named:
        assert f"{section}.{key}" in keys, f"[{section}] {key} is not a setting"
    for block in _toml_blocks():
        Settings.model_validate(block)  # unknown keys and bad values raise


def test_every_environment_variable_on_the_page_is_read_by_the_code() -> None:
    """Each PLAYBOOK_* variable the page names appears in the source."""
    source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    named = set(re.findall(r"\bPLAYBOOK_[A-Z_]+\b", DOC))
    assert {"PLAYBOOK_DATABASE_URL", "PLAYBOOK_TELEGRAM_TOKEN", "PLAYBOOK_TELEGRAM_SECRET",
            "PLAYBOOK_SMTP_PASSWORD", "PLAYBOOK_WEBHOOK_SECRET"} <= named
    assert {name for name in named if name not in source} == set()


def test_the_systemd_unit_runs_the_service_as_the_page_says() -> None:
    """The unit runs `playbook run --config`, restarts, stops with SIGTERM, may write its state."""
    service = _unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/bin/playbook")
    assert command[1:3] == ["run", "--config"]
    assert Path(command[3]).parent == Path(service["WorkingDirectory"])
    assert f"ExecStart={service['ExecStart']}" in DOC
    assert service["EnvironmentFile"] in DOC
    assert service["User"] == "playbook"
    assert service["Restart"] == "always"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 60
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["ProtectSystem"] == "strict"
    writable = [Path(p) for p in service["ReadWritePaths"].split()]
    settings = Settings.model_validate(next(b for b in _toml_blocks() if "output" in b))
    database = Path(settings.database.url.removeprefix("sqlite:///"))
    outputs = [Path(p) for p in settings.output.model_dump().values() if p.startswith("/")]
    for path in [database, *outputs]:
        assert any(path.is_relative_to(w) for w in writable), f"{path} is read-only"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (pointed at this environment's playbook)."""
    playbook = Path(sys.executable).parent / "playbook"
    unit = tmp_path / "playbook.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(
        "/opt/playbook/.venv/bin/playbook", str(playbook)), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_proxy_forwards_the_webhook_the_page_configures() -> None:
    """nginx.conf serves the webhook's host on 443 and forwards its path to listen:port."""
    telegram = next(b["telegram"] for b in _toml_blocks() if "telegram" in b)
    settings = Settings.model_validate({"telegram": telegram}).telegram
    public = urlsplit(settings.webhook_url)
    assert settings.mode == "webhook"
    assert public.port in (None, 443, 80, 88, 8443)  # the ports Telegram posts to
    assert public.path == f"/{settings.path}"
    assert f"server_name {public.hostname};" in NGINX
    assert re.search(r"^\s*listen 443 ssl;", NGINX, re.M)
    assert f"location = /{settings.path} {{" in NGINX
    assert re.search(rf"^\s*server {re.escape(settings.listen)}:{settings.port};", NGINX, re.M)
    assert "proxy_pass http://playbook_bot;" in NGINX


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                    reason="no nginx or openssl here")
def test_nginx_accepts_the_proxy_config(tmp_path: Path) -> None:
    """`nginx -t` accepts nginx.conf (with a throwaway certificate and an unprivileged port)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=bot.city.example", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    site = re.sub(r"ssl_certificate_key .*;", f"ssl_certificate_key {key};", NGINX)
    site = re.sub(r"ssl_certificate .*;", f"ssl_certificate {cert};", site)
    site = re.sub(r"(listen\s+(?:\[::\]:)?)443\b", r"\g<1>18443", site)
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n", encoding="utf-8")
    done = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_backup_script_is_valid_bash() -> None:
    """backup.sh passes `bash -n` (and shellcheck, where it is installed)."""
    subprocess.run(["bash", "-n", str(BACKUP)], check=True, timeout=60)
    assert os.access(BACKUP, os.X_OK)
    if shutil.which("shellcheck"):
        done = subprocess.run(["shellcheck", str(BACKUP)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout


def _install(tmp: Path, url: str, *, migrate: bool = True) -> Path:
    """A small installation: config, a protocol, state folders; the database migrated."""
    (tmp / "city" / "protocols").mkdir(parents=True)
    (tmp / "city" / "protocols" / "one.yaml").write_text("id: one\n", encoding="utf-8")
    (tmp / "state" / "outbox").mkdir(parents=True)
    (tmp / "state" / "outbox" / "5001.txt").write_text("── a message\n", encoding="utf-8")
    config = tmp / "city" / "playbook.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[output]\n'
                      f'console_dir = "{tmp / "state" / "outbox"}"\n', encoding="utf-8")
    if migrate:
        open_store(url).dispose()
    return config


def _backup(tmp: Path, config: Path, env_file: Path, path: str | None = None,
            database_url: str | None = None) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "PLAYBOOK_DATABASE_URL"}
    env.update(CONFIG=str(config), ENV_FILE=str(env_file), PYTHON=sys.executable,
               BACKUP_DIR=str(tmp / "backups"))
    if path is not None:
        env["PATH"] = path
    if database_url is not None:
        env["PLAYBOOK_DATABASE_URL"] = database_url
    done = subprocess.run([str(BACKUP)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (saved,) = (tmp / "backups").iterdir()
    with tarfile.open(saved / "files.tar.gz") as archive:
        names = archive.getnames()
    for kept in (config, tmp / "city" / "protocols" / "one.yaml",
                 tmp / "state" / "outbox" / "5001.txt"):
        assert str(kept.resolve()).lstrip("/") in names
    assert not [n for n in names if n.endswith(".db")]
    return saved


@pytest.fixture
def without_sqlite3(tmp_path: Path) -> str:
    """A PATH with every program of this one except the sqlite3 command-line shell."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            if entry.name != "sqlite3" and not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry.path)
    return str(folder)


@pytest.mark.parametrize("cli_shell", [True, False], ids=["sqlite3-cli", "python-api"])
def test_backup_script_copies_sqlite_and_the_files(
        tmp_path: Path, cli_shell: bool, request: pytest.FixtureRequest) -> None:
    """On SQLite, backup.sh saves a checked copy of the database the env file names, and files."""
    if cli_shell and shutil.which("sqlite3") is None:
        pytest.skip("no sqlite3 command-line shell here")
    path = None if cli_shell else request.getfixturevalue("without_sqlite3")
    # [database] url names a file that does not exist: the env file's URL must win.
    config = _install(tmp_path, f"sqlite:///{tmp_path / 'state' / 'unused.db'}", migrate=False)
    real = tmp_path / "state" / "playbook.db"
    open_store(f"sqlite:///{real}").dispose()
    env_file = tmp_path / "playbook.env"
    env_file.write_text(f"PLAYBOOK_TELEGRAM_TOKEN='1:x'\nPLAYBOOK_DATABASE_URL='sqlite:///{real}'\n",
                        encoding="utf-8")
    saved = _backup(tmp_path, config, env_file, path)
    copy = sqlite3.connect(saved / "playbook.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {r[0] for r in copy.execute("SELECT name FROM sqlite_master")}
    finally:
        copy.close()
    assert {"incidents", "events", "outbox"} <= tables


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="no pg_dump here")
def test_backup_script_dumps_postgresql(tmp_path: Path) -> None:
    """On PostgreSQL, backup.sh writes a pg_dump custom archive that pg_restore can read."""
    urls = fresh_url("postgresql", tmp_path)
    url = next(urls)  # skips where PostgreSQL is not reachable
    try:
        config = _install(tmp_path, url)
        saved = _backup(tmp_path, config, tmp_path / "no.env", database_url=url)
        listing = subprocess.run(["pg_restore", "--list", str(saved / "playbook.dump")],
                                 check=True, capture_output=True, text=True, timeout=60).stdout
        assert "TABLE DATA public events" in listing
        assert "TRIGGER public events events_append_only" in listing
    finally:
        next(urls, None)  # drops the database
