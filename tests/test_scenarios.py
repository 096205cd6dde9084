"""The shipped drill scenarios: one per protocol, each fitting its playbook and the example city."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import ROOT
from drive import SETTINGS, example_directory
from playbook.directory import assign_roles
from playbook.errors import BadInput
from playbook.loader import load_playbook
from playbook.model import InjectStep, Playbook
from playbook.plan import bind_parameters
from playbook.scenario import Scenario, inject_steps, with_injects
from playbook.scenariofile import beside, load_scenario

PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))
ZONE = ZoneInfo(SETTINGS.city.timezone)


def _playbook(protocol: Path) -> Playbook:
    return load_playbook(protocol).playbook


def _scenario(protocol: Path) -> Scenario:
    found = beside(protocol)
    assert found is not None, f"no scenarios/{protocol.name} beside {protocol}"
    return load_scenario(found, _playbook(protocol))


by_name = pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.stem)


def test_every_protocol_is_covered() -> None:
    """The protocols folder is not empty, so the parametrized tests below check something."""
    assert len(PROTOCOLS) >= 6


@by_name
def test_scenario_sits_beside_the_protocol_and_loads(protocol: Path) -> None:
    """scenarios/<name>.yaml exists and load_scenario accepts it against its playbook."""
    assert beside(protocol) == (ROOT / "scenarios" / protocol.name).resolve()
    scenario = _scenario(protocol)
    assert scenario.playbook == _playbook(protocol).id
    assert scenario.title
    assert scenario.summary


@by_name
def test_params_bind_with_the_example_directory(protocol: Path) -> None:
    """The activation values bind, and community/area values are ids in the example directory."""
    playbook = _playbook(protocol)
    scenario = _scenario(protocol)
    values = bind_parameters(playbook, {k: str(v) for k, v in scenario.params.items()},
                             "params", ZONE)
    directory = example_directory()
    known = {
        "community": {c for i in directory.intermediaries for c in i.communities},
        "area": {a for i in directory.intermediaries for a in i.areas},
    }
    for name, parameter in playbook.parameters.items():
        if parameter.type in known:
            assert values[name] in known[parameter.type], f"{name}={values[name]}"


@by_name
def test_participants_are_staff_and_hold_every_inject_role(protocol: Path) -> None:
    """Participants are staff ids, and among them are the holders of every role injects reach."""
    playbook = _playbook(protocol)
    scenario = _scenario(protocol)
    directory = example_directory()
    staff = {s.id for s in directory.staff}
    assert set(scenario.participants) <= staff
    holders = {a.role: a.holder for a in assign_roles(playbook, directory)}
    for inject in scenario.injects:
        assert holders[inject.to] in scenario.participants, inject.id


@by_name
def test_injects_make_a_valid_playbook(protocol: Path) -> None:
    """with_injects adds every inject and backup as a step of a valid playbook."""
    playbook = _playbook(protocol)
    scenario = _scenario(protocol)
    drilled = with_injects(playbook, scenario)
    added = {s.id for s in inject_steps(scenario)}
    assert added <= {s.id for s in drilled.steps if isinstance(s, InjectStep)}
    assert len(drilled.steps) == len(playbook.steps) + len(added)


@by_name
def test_one_inject_is_left_unplayed_and_backups_exist(protocol: Path) -> None:
    """At least one inject has a backup; exactly one has no play, and its backup will fire."""
    scenario = _scenario(protocol)
    assert any(i.backup is not None for i in scenario.injects)
    unplayed = [i for i in scenario.injects if i.play is None]
    assert len(unplayed) == 1
    assert unplayed[0].backup is not None


@by_name
def test_scenario_shape(protocol: Path) -> None:
    """3-5 objectives each tested by an inject, 4-6 simulated injects, every one with a target."""
    scenario = _scenario(protocol)
    assert 3 <= len(scenario.objectives) <= 5
    assert 4 <= len(scenario.injects) <= 6
    assert {o.id for o in scenario.objectives} == {i.objective for i in scenario.injects}
    assert all(o.capability for o in scenario.objectives)
    for inject in scenario.injects:
        assert "(simulated)" in inject.sender, inject.id
        assert inject.expect is not None, inject.id
        if inject.play is not None:
            assert inject.play.text, inject.id


@by_name
def test_stand_down_comes_after_the_timeline(protocol: Path) -> None:
    """The lead stands down after every inject, backup and one-off timed step of the playbook."""
    playbook = _playbook(protocol)
    scenario = _scenario(protocol)
    assert scenario.stand_down_at is not None
    timed = [s.at for s in playbook.steps if s.on is None and s.every is None and s.at]
    injected = [s.at for s in inject_steps(scenario) if s.at is not None]
    assert scenario.stand_down_at > max(timed + injected, default=timedelta(0))


def test_a_role_the_playbook_lacks_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """An inject to a role the playbook lacks is refused with file:line:col naming the role."""
    path = tmp_path / "hate_incident.yaml"
    path.write_text(
        "title: Wrong role\n"
        "playbook: hate-incident\n"
        "objectives:\n"
        "  - {id: media, text: Answer the press}\n"
        "injects:\n"
        "  - id: mayor-call\n"
        "    at: 30m\n"
        "    sender: Office of the mayor (simulated)\n"
        "    to: mayor\n"
        "    text: The mayor wants a briefing.\n"
        "    expect: {action: answer, within: 15m}\n"
        "    objective: media\n",
        encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        load_scenario(path, _playbook(ROOT / "protocols" / "hate_incident.yaml"))
    assert len(caught.value.problems) == 1
    message = str(caught.value.problems[0])
    assert message.startswith(f"{path}:9:9: ")
    assert "`mayor`" in message
