"""Settings: `playbook.toml` read with tomllib into frozen pydantic models.

Read once, by the command line, and passed down; nothing reads settings at import time.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError

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


class PathSettings(_Section):
    """Where playbooks and templates live, relative to the config file."""

    protocols: StrictStr = "protocols"
    templates: StrictStr | None = Field(
        default=None, description="Default: the nearest message_templates/ above a playbook."
    )


class Settings(_Section):
    """Everything the command line needs; defaults work with no file at all."""

    city: CitySettings = CitySettings()
    paths: PathSettings = PathSettings()
    base_dir: Path = Field(default=Path("."), exclude=True)

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
