"""Settings: `playbook.toml` read with tomllib into frozen pydantic models.

Read once, by the command line, and passed down; nothing reads settings at import time.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from playbook.duration import parse_duration
from playbook.errors import BadInput, Problem

DEFAULT_PATH = Path("playbook.toml")


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} — use an IANA name like Europe/Berlin"
        ) from None
    return name


def _web_address(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{url!r} is not a web address — start it with https://")
    return url


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CitySettings(_Section):
    """Who the city is; these values appear in every message (`{{ city.name }}`)."""

    name: StrictStr = "Example City"
    timezone: Annotated[StrictStr, AfterValidator(_zone)] = "UTC"
    info_url: Annotated[StrictStr, AfterValidator(_web_address)] = "https://example.org/emergency"
    hotline: Annotated[StrictStr, Field(min_length=3)] = "+1 555 0100"
    media_contact: Annotated[StrictStr, Field(
        min_length=3, description="The press office, given to journalists; not the public line.")
    ] = "+1 555 0199"
    emergency_number: Annotated[StrictStr, Field(
        min_length=2, description="Police, fire and ambulance, for life-safety messages.")] = "112"


class PathSettings(_Section):
    """Where playbooks and templates live, relative to the config file."""

    protocols: StrictStr = "protocols"
    templates: StrictStr | None = Field(
        default=None, description="Default: the nearest message_templates/ above a playbook."
    )


def _duration_text(text: str) -> str:
    parse_duration(text)  # raises ValueError with a message meant for a person
    return text


DurationText = Annotated[StrictStr, AfterValidator(_duration_text)]


class DatabaseSettings(_Section):
    """Where incidents and their logs live."""

    url: StrictStr = Field(default="sqlite:///playbook.db", description=(
        "SQLAlchemy URL; postgresql+psycopg://user@host/db for a city's service. "
        "Overridden by the PLAYBOOK_DATABASE_URL environment variable."))


class DirectorySettings(_Section):
    """The directory files (YAML, or CSV for intermediaries), relative to this file."""

    staff: StrictStr | None = None
    intermediaries: StrictStr | None = None
    media: StrictStr | None = None
    public: StrictStr | None = None


class EngineSettingsSection(_Section):
    """How patient the engine is."""

    approval_timeout: DurationText = "15m"
    late_after: DurationText = "1m"
    max_attempts: Annotated[StrictInt, Field(ge=1, le=50)] = 6
    lease: DurationText = "1m"


class TelegramSettings(_Section):
    """The Telegram bot; the token may instead come from an environment variable."""

    token: StrictStr = ""
    token_env: StrictStr = "PLAYBOOK_TELEGRAM_TOKEN"
    base_url: StrictStr = Field(default="", description="A self-hosted Bot API server, if any.")
    webhook_url: StrictStr = Field(default="", pattern=r"^(https://\S+)?$")
    mode: Literal["polling", "webhook"] = "polling"
    listen: StrictStr = "127.0.0.1"
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 8443
    path: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "telegram"
    secret_env: StrictStr = "PLAYBOOK_TELEGRAM_SECRET"
    invite_valid: DurationText = "7d"

    @field_validator("mode")
    @classmethod
    def _webhook_needs_url(cls, mode: str, info: ValidationInfo) -> str:
        if mode == "webhook" and info.data.get("webhook_url") == "":
            raise ValueError("webhook mode needs webhook_url — the public https address "
                             "Telegram posts to (your reverse proxy)")
        return mode


class EmailSettings(_Section):
    """SMTP for e-mail delivery."""

    host: StrictStr = ""
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 587
    sender: StrictStr = ""
    username: StrictStr = ""
    password_env: StrictStr = "PLAYBOOK_SMTP_PASSWORD"
    starttls: StrictBool = True


class WebhookSettings(_Section):
    """Signed webhooks; the HMAC secret comes from an environment variable."""

    secret_env: StrictStr = "PLAYBOOK_WEBHOOK_SECRET"


class OutputSettings(_Section):
    """Local outputs: the console log (and exercise sandbox), website files, the CAP feed."""

    console_dir: StrictStr = "outbox"
    files_dir: StrictStr = "public"
    cap_dir: StrictStr = "cap"
    cap_sender: StrictStr = "playbook@example.org"


class Settings(_Section):
    """Everything the command line needs; defaults work with no file at all."""

    city: CitySettings = CitySettings()
    paths: PathSettings = PathSettings()
    database: DatabaseSettings = DatabaseSettings()
    directory: DirectorySettings = DirectorySettings()
    engine: EngineSettingsSection = EngineSettingsSection()
    telegram: TelegramSettings = TelegramSettings()
    email: EmailSettings = EmailSettings()
    webhook: WebhookSettings = WebhookSettings()
    output: OutputSettings = OutputSettings()
    base_dir: Path = Field(default=Path("."), exclude=True)

    def path(self, relative: str) -> Path:
        """A path from the settings, relative to the config file's folder."""
        return (self.base_dir / relative).resolve()

    def database_url(self) -> str:
        """The database URL; a relative SQLite path is relative to the current folder."""
        return os.environ.get("PLAYBOOK_DATABASE_URL") or self.database.url

    def directory_files(self) -> dict[str, Path]:
        """The directory files that are configured, by section."""
        return {k: self.path(v) for k, v in self.directory.model_dump().items() if v}

    def telegram_token(self) -> str:
        """The bot token: the environment variable wins over the file."""
        return os.environ.get(self.telegram.token_env) or self.telegram.token

    @property
    def zone(self) -> ZoneInfo:
        """The city's time zone; every wall-clock time is shown in it."""
        return ZoneInfo(self.city.timezone)

    def city_values(self) -> dict[str, str]:
        """The `city` mapping templates see."""
        return self.city.model_dump()

    def templates_root(self) -> Path | None:
        """The configured template folder, if one is set."""
        if self.paths.templates is None:
            return None
        return (self.base_dir / self.paths.templates).resolve()


def load_settings(path: Path | None) -> Settings:
    """Read `path`, or `./playbook.toml` if it exists, else the built-in defaults."""
    if path is None:
        if not DEFAULT_PATH.is_file():
            return Settings()
        path = DEFAULT_PATH
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput.one(name, "no such config file",
                           "check the path, or copy config.example.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput.one(name, f"cannot be read ({exc})", "save it as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        line, col = (int(found[1]), int(found[2])) if found else (None, None)
        raise BadInput.one(name, f"invalid TOML: {message}", "fix the TOML syntax",
                           line=line, col=col) from None
    try:
        return Settings.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise BadInput(_problems(name, text, exc)) from None


def _problems(name: str, text: str, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(p) for p in error["loc"])
        line, col = _find(text, loc)
        field = ".".join(loc)
        if error["type"] == "extra_forbidden":
            message, hint = f"unknown key `{loc[-1]}`", "see config.example.toml for every key"
        elif error["type"] == "value_error":
            message, _, hint = str(error["msg"]).removeprefix("Value error, ").partition(" — ")
        else:
            message, hint = str(error["msg"]).lower(), "see config.example.toml"
        problems.append(Problem(name, line, col, field, message, hint))
    return problems


def _find(text: str, loc: tuple[str, ...]) -> tuple[int | None, int | None]:
    """Where `[section] key` is written; TOML parsers do not keep positions."""
    lines = text.splitlines()
    section, key = (loc[:-1], loc[-1]) if len(loc) > 1 else ((), loc[0])
    start = 0
    if section:
        header = re.compile(r"^\s*\[\s*" + re.escape(".".join(section)) + r"\s*\]")
        start = next((i for i, ln in enumerate(lines) if header.match(ln)), -1)
        if start < 0:
            return None, None
    pattern = re.compile(r"^(\s*)" + re.escape(key) + r"\s*=")
    for i in range(start, len(lines)):
        if i > start and section and lines[i].lstrip().startswith("["):
            break
        found = pattern.match(lines[i])
        if found:
            return i + 1, len(found[1]) + 1
    return (start + 1, 1) if section else (None, None)


def example_config_keys(settings: Any = Settings) -> list[str]:
    """Every `section.key` the settings accept; a test keeps config.example.toml complete."""
    keys = []
    for section, info in settings.model_fields.items():
        if info.exclude:
            continue
        for key in info.annotation.model_fields:
            keys.append(f"{section}.{key}")
    return keys
