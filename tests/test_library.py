"""The protocol library: every protocol has the parts of a crisis response, and runs end to end."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import ROOT, Cli
from drive import SETTINGS, START, Drive, checked, example_directory
from playbook.approvals import Approvals
from playbook.catalog import COMMAND
from playbook.directory import assign_roles
from playbook.loader import CheckedPlaybook
from playbook.model import InjectStep, MessageStep, Playbook, TaskStep, TriggerEvent
from stores import open_store

STEMS = sorted(p.stem for p in (ROOT / "protocols").glob("*.yaml"))
BRIEF_KINDS = {"protest", "hate_incident", "natural_disaster", "terrorist_attack",
               "false_narrative", "global_crisis_local_tension"}
PHASES = {"initial", "maintenance", "resolution", "follow_up"}
H = timedelta(hours=1)


def playbook(stem: str) -> Playbook:
    """A shipped protocol's playbook."""
    return checked(stem).playbook


def messages(pb: Playbook) -> list[MessageStep]:
    """The message steps of a playbook."""
    return [s for s in pb.steps if isinstance(s, MessageStep)]


def test_every_kind_of_incident_in_the_brief_has_a_protocol() -> None:
    """Protests, hate incidents, disasters, attacks, false narratives and tension abroad."""
    assert {playbook(stem).kind.value for stem in STEMS} >= BRIEF_KINDS


@pytest.mark.parametrize("stem", STEMS)
def test_roles_can_approve_and_each_has_a_backup(stem: str) -> None:
    """The lead and spokesperson approve; every role names a backup role and real duties."""
    pb = playbook(stem)
    assert pb.roles["incident_lead"].approves
    assert pb.roles["spokesperson"].approves
    for name, role in pb.roles.items():
        assert role.backup in pb.roles, name
        assert role.backup != name
        assert len(role.duties) >= 2, name


@pytest.mark.parametrize("stem", STEMS)
def test_the_example_city_fills_every_role(stem: str) -> None:
    """Riverton's roster has a person for every role of every protocol, not a stand-in."""
    for assignment in assign_roles(playbook(stem), example_directory()):
        assert assignment.holder is not None, assignment
        assert "covered" not in assignment.note, assignment


@pytest.mark.parametrize("stem", STEMS)
def test_intermediaries_hear_first_then_media_then_residents(stem: str) -> None:
    """A briefing that asks for acknowledgement comes before the one CERC first statement."""
    pb = playbook(stem)
    firsts = [s for s in messages(pb) if s.cerc == "first"]
    assert len(firsts) == 1
    first = firsts[0]
    assert first.at is not None
    assert first.on is None
    assert set(first.to.public) >= {"telegram_channel", "website"}
    assert set(first.approval) == {"spokesperson", "incident_lead"}
    briefings = [s for s in messages(pb) if s.to.intermediaries is not None
                 and not s.to.is_public and s.ack_within is not None and s.at is not None
                 and s.on is None and s.every is None]
    assert briefings
    assert min(b.at for b in briefings if b.at is not None) < first.at
    holding = [s for s in messages(pb) if s.to.media and s.on is None]
    assert holding
    assert min(h.at for h in holding if h.at is not None) <= first.at


@pytest.mark.parametrize("stem", STEMS)
def test_updates_repeat_until_stand_down_and_a_resolution_follows(stem: str) -> None:
    """Residents get approved updates until stand-down, then a closing message with media."""
    pb = playbook(stem)
    updates = [s for s in messages(pb) if s.every is not None and s.to.public]
    assert updates
    assert all(u.repeat_until == "stand_down" and u.approval for u in updates)
    closing = [s for s in messages(pb) if s.on == "stand_down" and s.to.public and s.to.media]
    assert closing
    assert all(c.approval for c in closing)


@pytest.mark.parametrize("stem", STEMS)
def test_only_life_safety_alerts_skip_approval(stem: str) -> None:
    """A pre-approved message is an immediate alert at activation; all else public is approved."""
    for step in messages(playbook(stem)):
        if step.preapproved:
            assert step.at == timedelta(0), step.id
            assert step.cerc is None, step.id
        elif step.to.is_public:
            assert step.approval, step.id


@pytest.mark.parametrize("stem", STEMS)
def test_tasks_have_deadlines_phases_and_follow_up(stem: str) -> None:
    """Every task has a deadline; all four phases appear; follow-up work is planned for after."""
    pb = playbook(stem)
    assert {s.phase for s in pb.steps} >= PHASES
    tasks = [s for s in pb.steps if isinstance(s, TaskStep)]
    assert all(t.due is not None for t in tasks)
    follow_up = [t for t in tasks if t.phase == "follow_up" and t.on == "stand_down"]
    assert len(follow_up) >= 2
    assert {t.role for t in follow_up} & {"community_liaison"}, "listening to communities"
    assert any(t.role == "incident_lead" for t in follow_up), "the transparency report"
    assert len([s for s in pb.steps if isinstance(s, InjectStep)]) >= 2


def _example_values(pb: CheckedPlaybook) -> dict[str, str]:
    return {name: str(p.example) for name, p in pb.playbook.parameters.items()}


def _approve_everything(drive: Drive, approvals: Approvals, incident_id: str) -> None:
    with drive.store.begin() as tx:
        pending = tx.drafts(incident_id, "pending")
    for step_id in sorted({d.step_id for d in pending}):
        approvals.approve(incident_id, step_id, actor="anna", now=drive.clock.now())
    drive.send()


@pytest.mark.parametrize("stem", STEMS)
def test_each_protocol_runs_from_activation_to_follow_up(stem: str, tmp_path: Path) -> None:
    """Every message of every protocol reaches its audience, approved, with nothing failed."""
    pb = checked(stem)
    store = open_store(f"sqlite:///{tmp_path / 'playbook.db'}")
    drive = Drive(store, tmp_path)
    approvals = Approvals(drive.engine)
    incident = drive.engine.activate(
        pb.playbook, pb.templates, city=SETTINGS.city_values(),
        timezone="Europe/Vienna", params=_example_values(pb), actor="jonas",
        now=drive.clock.now())
    # Stand down once every timed step has fired at least once.
    last = max((s.at if s.at is not None else s.every) or timedelta(0)
               for s in pb.playbook.steps if s.on is None)
    milestones: list[tuple[datetime, TriggerEvent | None]] = [
        (START + 3 * H, "escalate"), (START + last + H, "stand_down"),
        (START + last + timedelta(days=31), None)]
    for moment, event in milestones:
        while (wake := drive.engine.next_wake()) is not None and wake <= moment:
            drive.clock.set(wake)
            drive.engine.tick(wake)
            _approve_everything(drive, approvals, incident.id)
        drive.clock.set(moment)
        if event is not None:
            drive.engine.event(incident.id, event, actor="anna", now=moment)
        drive.engine.tick(moment)
        _approve_everything(drive, approvals, incident.id)
    rows = drive.outbox(incident.id)
    store.dispose()
    assert {r.state for r in rows} == {"sent"}
    expected = {s.id for s in messages(pb.playbook) if s.on != "de_escalate"}
    sent = {r.delivery.step_id for r in rows}
    assert expected <= sent, expected - sent
    first = next(s for s in messages(pb.playbook) if s.cerc == "first")
    public_langs = {r.delivery.lang for r in rows
                    if r.delivery.step_id == first.id and r.delivery.channel == "telegram"}
    assert public_langs == set(pb.playbook.languages)
    pages = [f.read_text(encoding="utf-8") for f in (tmp_path / "public").rglob("*.html")]
    rtl = [p for p in pages if p.startswith(('<article lang="ar"', '<article lang="fa"'))]
    assert rtl
    assert all('dir="rtl"' in p.splitlines()[0] for p in rtl)
    due = {e.step_id for e in drive.events(incident.id, "due")}
    assert {s.id for s in pb.playbook.steps if isinstance(s, TaskStep)} <= due


@pytest.mark.usefixtures("at_root")
def test_docs_protocols_is_current(cli: Cli) -> None:
    """docs/protocols.md is exactly what `playbook catalog` makes of protocols/ today."""
    result = cli("catalog", "protocols/", "--output", "docs/protocols.md", "--check")
    assert result.code == 0, result.err + "\nrun: " + COMMAND


@pytest.mark.usefixtures("at_root")
def test_the_catalog_lists_roles_steps_audiences_and_languages(cli: Cli) -> None:
    """Each protocol's section names every role, every step and every audience it reaches."""
    result = cli("catalog", "protocols/")
    assert result.code == 0
    for stem in STEMS:
        pb = playbook(stem)
        section = result.out.split(f'<a id="{pb.id}"></a>')[1].split("<a id=")[0]
        assert f"`protocols/{stem}.yaml`" in section
        assert all(f"(`{name}`)" in section for name in pb.roles)
        assert all(f"| `{step.id}` |" in section for step in pb.steps)
        assert "Arabic (`ar`)" in section
        assert "Persian (`fa`)" in section
        assert "### Audiences" in section


def test_a_stale_catalog_fails_the_check_and_is_rewritten(cli: Cli, tmp_path: Path) -> None:
    """`--check` exits 1 naming the command; without it the file is written whole."""
    out = tmp_path / "protocols.md"
    out.write_text("# old\n", encoding="utf-8")
    stale = cli("catalog", str(ROOT / "protocols" / "hate_incident.yaml"), "--output", str(out),
                "--check")
    assert stale.code == 1
    assert COMMAND in stale.err
    assert out.read_text(encoding="utf-8") == "# old\n"
    assert cli("catalog", str(ROOT / "protocols" / "hate_incident.yaml"), "--output",
               str(out)).code == 0
    assert out.read_text(encoding="utf-8").startswith("# Protocols\n")
    assert not list(tmp_path.glob("*.partial"))


def test_a_broken_playbook_writes_no_catalog(cli: Cli, tmp_path: Path) -> None:
    """Bad input exits 2 with the located error and leaves the output file as it was."""
    out = tmp_path / "protocols.md"
    out.write_text("# kept\n", encoding="utf-8")
    result = cli("catalog", str(ROOT / "tests" / "broken" / "dangling_role" / "playbook.yaml"),
                 "--output", str(out))
    assert result.code == 2
    assert "unknown role `spokesman`" in result.err
    assert out.read_text(encoding="utf-8") == "# kept\n"
