"""The `playbook` command line (typer + rich). Exit codes: 0 ok, 2 bad input, 1 runtime failure."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from playbook import __version__
from playbook.atomicfile import replace_file
from playbook.audience import language_gaps
from playbook.catalog import COMMAND, Entry, catalog
from playbook.checks import message_context
from playbook.config import Settings, load_settings
from playbook.directorycli import app as directory_app
from playbook.directoryfile import load_directory
from playbook.errors import BadInput, PlaybookError, Problem, RuntimeFailure
from playbook.loader import CheckedPlaybook, load_checked, model_json_schema
from playbook.model import Playbook
from playbook.plan import approval, bind_parameters
from playbook.render import Renderer
from playbook.yamlfile import load_yaml

app = typer.Typer(
    help="Crisis-communication playbooks for city governments.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(directory_app, name="directory", help="Import and export trusted intermediaries.")
def _out() -> Console:
    # Made per call, so COLUMNS and NO_COLOR are read when the command runs, not at import.
    return Console(highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file (default ./playbook.toml, else built-ins).",
                 dir_okay=False),
]


def _version(value: bool) -> None:
    if value:
        _out().print(f"playbook {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Crisis-communication playbooks for city governments."""


def _playbook_files(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(f for f in [*path.rglob("*.yaml"), *path.rglob("*.yml")]
                           if not _skipped(f.relative_to(path)))
            if not found:
                problems.append(Problem(str(path), None, None, "", "no playbooks (*.yaml) here",
                                        "name a folder that holds playbooks"))
            files += found
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, None, "", "no such file or folder",
                                    "check the path"))
    return files, problems


def _skipped(relative: Path) -> bool:
    # Hidden folders, virtual environments and installed packages hold YAML that is not ours.
    return any(part.startswith(".") or part in ("node_modules", "site-packages", "__pycache__")
               for part in relative.parts[:-1])


def _check(path: Path, settings: Settings) -> CheckedPlaybook:
    return load_checked(path, city=settings.city_values(), timezone=settings.zone,
                        templates_root=settings.templates_root())


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Playbook files or folders (default: the configured protocols folder).")] = None,
    config: ConfigOption = None,
) -> None:
    """Check playbooks and every template they use, in every language, before a crisis."""
    settings = load_settings(config)
    files, problems = _playbook_files(paths or [settings.base_dir / settings.paths.protocols])
    directory = load_directory(settings.directory_files())
    bad = 0
    ids: dict[str, str] = {}
    for path in files:
        try:
            checked = _check(path, settings)
        except BadInput as exc:
            bad += 1
            problems += exc.problems
            continue
        pb = checked.playbook
        if pb.id in ids:
            problems.append(checked.loaded.problem(
                ("id",), f"the playbook id `{pb.id}` is also used by {ids[pb.id]}",
                "give each playbook its own id"))
            bad += 1
            continue
        ids[pb.id] = str(path)
        templates = len({s.message for s in pb.message_steps()})
        _out().print(f"[green]ok[/green]  {path}  ({len(pb.steps)} steps, {templates} messages"
                  f" × {len(pb.languages)} languages)")
        for gap in language_gaps(pb, checked.templates, directory):
            r = gap.recipient
            _out().print(f"[yellow]warning[/]: {r.name} <{r.id}> reads {', '.join(r.languages)}"
                         f"; {pb.id} has no message in any of them, so they would get "
                         f"{gap.gets} — add a translation, or a language they read")
    if problems:
        raise BadInput(problems)
    _out().print(f"{len(files)} playbook{'s' if len(files) != 1 else ''} valid.")


def _resolve(name: str, settings: Settings) -> Path:
    path = Path(name)
    if path.exists():
        return path
    folder = settings.base_dir / settings.paths.protocols
    files, _ = _playbook_files([folder]) if folder.is_dir() else ([], [])
    ids = _ids(files)
    if name in ids:
        return ids[name]
    known = ", ".join(sorted(ids)) or "none"
    raise BadInput.one(name, "no such playbook file or id",
                       f"give a path, or one of the ids in {folder}/: {known}")


def _ids(files: list[Path]) -> dict[str, Path]:
    """Each readable playbook's `id`, first file wins; broken files are for `validate`."""
    ids: dict[str, Path] = {}
    for path in files:
        try:
            data = load_yaml(path).data
        except BadInput:
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            ids.setdefault(data["id"], path)
    return ids


def _bind(pb: Playbook, pairs: list[str], settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """The activation values from `--param`, examples filling the gaps, and which were filled."""
    given = _parse_params(pairs)
    examples = {k: str(p.example) for k, p in pb.parameters.items() if k not in given}
    values = bind_parameters(pb, {**examples, **given}, "--param", settings.zone)
    return values, sorted(examples)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BadInput.one("--param", f"{pair!r} is not name=value",
                               'write --param location="Market Square"')
        values[name.strip()] = value
    return values


def _start(text: str | None, settings: Settings) -> datetime:
    if text is None:
        return datetime.now(settings.zone).replace(second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput.one("--start", f"{text!r} is not an ISO 8601 date and time",
                           "write it like 2026-05-01T14:00") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=settings.zone)
    return moment.astimezone(settings.zone)


@app.command()
def preview(
    playbook: Annotated[str, typer.Argument(help="A playbook file, or its id.")],
    step: Annotated[str | None, typer.Argument(
        help="A message step id (default: every message step).")] = None,
    lang: Annotated[list[str] | None, typer.Option(
        "--lang", "-l", help="Only these languages (repeatable).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="An activation parameter, name=value (repeatable).")] = None,
    start: Annotated[str | None, typer.Option(
        help="Activation time, ISO 8601 (default: now).")] = None,
    exercise: Annotated[bool, typer.Option(
        "--exercise", help="Show the exercise banner drills carry.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show messages exactly as recipients will read them, in each language."""
    settings = load_settings(config)
    checked = _check(_resolve(playbook, settings), settings)
    pb = checked.playbook
    steps = [s for s in pb.message_steps() if step is None or s.id == step]
    if not steps:
        raise BadInput.one(step or playbook, "no such message step", "use one of: "
                           + ", ".join(s.id for s in pb.message_steps()))
    languages = lang or list(pb.languages)
    unknown = [code for code in languages if code not in pb.languages]
    if unknown:
        raise BadInput.one("--lang", f"{', '.join(unknown)} is not a language of this playbook",
                           "use one of: " + ", ".join(pb.languages))
    values, examples = _bind(pb, param or [], settings)
    begin = _start(start, settings)
    renderer = Renderer(settings.zone)
    console = _out()
    for message_step in steps:
        context = message_context(pb, values, settings.city_values(), begin, "PREVIEW",
                                  message_step)
        for code in languages:
            source = checked.templates.get(message_step.message, code)
            if source is None:  # pragma: no cover - load_checked guarantees every language
                continue
            rendered = renderer.render(source, context, exercise=exercise)
            console.print(Panel(
                _styled(rendered.text), title=f"[bold]{message_step.id}[/bold] · {code}",
                title_align="left", subtitle=f"{len(rendered.text):,} characters · "
                f"{rendered.direction} · {approval(message_step, pb)}", subtitle_align="right",
                expand=False, width=min(console.width, 88)))
    if examples:
        console.print(Text("Example values used for: " + ", ".join(examples),
                           style="dim"))


_TAG = re.compile(r"<(/?)(b|strong|i|em|u|s|code)>")
_STYLE = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
          "s": "strike", "code": "cyan"}


def _styled(html: str) -> Text:
    """Telegram HTML shown with terminal styles; entities unescaped."""
    text = Text()
    active: list[str] = []
    position = 0
    for match in _TAG.finditer(html):
        text.append(unescape(html[position:match.start()]), style=" ".join(active))
        style = _STYLE[match.group(2)]
        if match.group(1):
            if style in active:
                active.remove(style)
        else:
            active.append(style)
        position = match.end()
    text.append(unescape(html[position:]), style=" ".join(active))
    return text


@app.command()
def schema() -> None:
    """Print the playbook JSON Schema (also in schema/playbook.schema.json)."""
    sys.stdout.write(schema_text())


def schema_text() -> str:
    """The committed schema file's exact content."""
    return json.dumps(model_json_schema(), indent=2, ensure_ascii=False) + "\n"


@app.command("catalog")
def catalog_command(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Playbook files or folders (default: the configured protocols folder).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here (default: print).", dir_okay=False)] = None,
    check: Annotated[bool, typer.Option(
        help="Write nothing; exit 1 if --output is not current.")] = False,
    config: ConfigOption = None,
) -> None:
    """Summarise playbooks in Markdown: roles, timeline, audiences, languages."""
    settings = load_settings(config)
    files, problems = _playbook_files(paths or [settings.base_dir / settings.paths.protocols])
    entries = []
    for path in files:
        try:
            entries.append(Entry(_shown(path), _check(path, settings).playbook))
        except BadInput as exc:
            problems += exc.problems
    if problems:
        raise BadInput(problems)
    text = catalog(entries)
    if output is None:
        sys.stdout.write(text)
    elif check:
        if not output.is_file() or output.read_text(encoding="utf-8") != text:
            raise RuntimeFailure(f"{output} is out of date — run: {COMMAND}")
        _out().print(f"{output} is current.")
    else:
        replace_file(output, text.encode("utf-8"))
        _out().print(f"wrote {output} ({len(entries)} playbooks)")


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def _report(problems: tuple[Problem, ...]) -> None:
    err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    for problem in problems:
        err.print(str(problem))
    files = len({p.path for p in problems if Path(p.path).is_file()})
    where = f" in {files} file{'s' if files != 1 else ''}" if files else ""
    err.print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}{where}.")


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code; bad input never shows a traceback."""
    try:
        app(args=argv, prog_name="playbook", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BadInput as exc:
        _report(exc.problems)
        return 2
    except PlaybookError as exc:
        Console(stderr=True, markup=False).print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence; PLAYBOOK_DEBUG=1 shows the traceback
        if os.environ.get("PLAYBOOK_DEBUG"):
            raise
        Console(stderr=True, markup=False).print(
            f"internal error: {type(exc).__name__}: {exc} — please report it; "
            "PLAYBOOK_DEBUG=1 shows the traceback")
        return 1
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


# The other commands live in their own modules; importing them registers them on `app`.
from playbook import commands, drillcli, outreach, plancli  # noqa: E402, F401
