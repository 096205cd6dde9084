"""The dependency rule of the design: core <- orchestration <- edges <- cli, by parsed imports."""

from __future__ import annotations

import ast
import sys

from conftest import ROOT

SRC = ROOT / "src" / "playbook"

LAYERS = {
    "core": {"errors", "duration", "model", "render", "checks", "plan", "delivery", "directory",
             "events", "cap", "version", "catalog", "language", "audience", "phrases", "i18n",
             "scenario", "report", "reportdoc", "reportmetrics", "isolation"},
    "orchestration": {"clock", "engine", "dispatch", "approvals", "ports", "fanout",
                      "listening", "buttons", "links", "desk", "wizard", "drill",
                      "drilldesk"},
    "edge": {"atomicfile", "yamlfile", "loader", "config", "directoryfile", "store",
             "migrations.__init__", "migrations.versions.__init__", "migrations.env",
             "migrations.versions.0001_initial", "migrations.versions.0002_acks",
             "migrations.versions.0003_bot", "tables", "chatstore", "scheduler", "leader",
             "fake_telegram", "fake_telegram_http", "service", "bot", "scenariofile",
             "channels.__init__", "channels.console", "channels.telegram", "channels.email",
             "channels.webhook", "channels.cap"},
    "cli": {"cli", "commands", "directorycli", "outreach", "plancli", "i18ntool", "drillcli",
            "__main__",
            "__init__"},
}
RANK = {"core": 0, "orchestration": 1, "edge": 2, "cli": 3}
CORE_LIBRARIES = {"pydantic", "jinja2", "markupsafe", "babel"}
EDGE_LIBRARIES = {"atomicfile": set(), "yamlfile": {"ruamel"}, "loader": set(), "config": set(),
                  "directoryfile": set(), "store": {"sqlalchemy"},
                  "migrations.__init__": {"alembic"}, "migrations.versions.__init__": set(),
                  "migrations.env": {"alembic", "sqlalchemy"},
                  "migrations.versions.0001_initial": {"alembic", "sqlalchemy"},
                  "migrations.versions.0002_acks": {"alembic", "sqlalchemy"},
                  "migrations.versions.0003_bot": {"alembic", "sqlalchemy"},
                  "tables": {"sqlalchemy"}, "chatstore": {"sqlalchemy"},
                  "scheduler": {"apscheduler"}, "leader": {"sqlalchemy"},
                  "fake_telegram": set(),
                  "fake_telegram_http": set(), "service": set(), "scenariofile": set(),
                  "bot": {"telegram"},
                  "channels.__init__": set(), "channels.console": set(),
                  "channels.telegram": {"telegram"}, "channels.email": set(),
                  "channels.webhook": {"httpx"}, "channels.cap": set(),
                  "cli": {"typer", "rich"}, "commands": {"typer", "rich"},
                  "directorycli": {"typer", "rich"}, "outreach": {"typer", "rich"},
                  "plancli": {"typer", "rich"}, "i18ntool": set(),
                  "drillcli": {"typer", "rich"},
                  "__main__": set(), "__init__": set()}


def layer_of(module: str) -> str:
    return next(name for name, members in LAYERS.items() if module in members)


def imports(module: str) -> tuple[set[str], set[str]]:
    """(our modules, foreign top-level packages) imported by `module`."""
    tree = ast.parse((SRC / f"{module.replace('.', '/')}.py").read_text(encoding="utf-8"))
    ours: set[str] = set()
    foreign: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "playbook":
                ours |= _our_module(parts[1:])
            elif parts[0] not in sys.stdlib_module_names and parts[0] != "__future__":
                foreign.add(parts[0])
    return ours, foreign


def _our_module(parts: list[str]) -> set[str]:
    """The longest prefix of `parts` that names one of our modules."""
    for end in range(len(parts), 0, -1):
        if (SRC / ("/".join(parts[:end]) + ".py")).exists():
            return {".".join(parts[:end])}
    return set()


MODULES = sorted(".".join(p.relative_to(SRC).with_suffix("").parts) for p in SRC.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in a layer before it can land."""
    placed = set().union(*LAYERS.values())
    assert set(MODULES) <= placed, f"unplaced: {set(MODULES) - placed}"


def test_modules_only_import_their_own_layer_or_below() -> None:
    """Core never imports orchestration, edges or the CLI; and so on up the stack."""
    violations = []
    for module in MODULES:
        ours, _ = imports(module)
        for other in ours:
            if RANK[layer_of(other)] > RANK[layer_of(module)]:
                violations.append(f"{module} ({layer_of(module)}) imports {other}")
    assert violations == []


def test_core_uses_only_its_libraries() -> None:
    """The pure core imports the standard library, pydantic, jinja2 and babel only."""
    for module in (LAYERS["core"] | LAYERS["orchestration"]) & set(MODULES):
        _, foreign = imports(module)
        assert foreign <= CORE_LIBRARIES, f"{module} imports {foreign - CORE_LIBRARIES}"


def test_each_edge_owns_its_foreign_library() -> None:
    """Each edge module is the only importer of its foreign library."""
    for module in (LAYERS["edge"] | LAYERS["cli"]) & set(MODULES):
        _, foreign = imports(module)
        assert foreign - CORE_LIBRARIES == EDGE_LIBRARIES[module], module


def test_the_rule_catches_a_violation() -> None:
    """The import parser sees a core module importing an edge (guards the test itself)."""
    ours, foreign = imports("loader")
    assert "yamlfile" in ours
    assert "pydantic" in foreign
