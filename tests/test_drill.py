"""Tabletop drills: the one-line instant drill, injects and backups, pause, resume, "no play"."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import ROOT, Cli
from drive import HATE_PARAMS, SETTINGS, START, Drive, checked
from playbook import drill
from playbook.clock import SystemClock
from playbook.dispatch import Dispatcher
from playbook.drillcli import _when_queued
from playbook.errors import BadInput
from playbook.events import chain
from playbook.isolation import SANDBOX_CHANNEL, sandbox
from playbook.model import Expectation, InjectStep
from playbook.scenario import met, scenario_now
from playbook.scenariofile import load_scenario
from playbook.store import SqlStore

FLOOD = ROOT / "protocols" / "natural_disaster.yaml"


@pytest.fixture
def fresh_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder with no playbook.toml, as on a fresh install."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAYBOOK_DATABASE_URL", raising=False)
    monkeypatch.delenv("PLAYBOOK_USER", raising=False)
    return tmp_path


def test_the_instant_drill_runs_to_its_report_with_no_config(cli: Cli, fresh_dir: Path) -> None:
    """`playbook drill FLOOD --instant --report aar.html` opens, plays, closes and reports."""
    result = cli("drill", str(FLOOD), "--instant", "--report", "aar.html")
    assert result.code == 0, result.err
    assert "using the example city's" in result.out
    assert "inject herald-evacuation" in result.out
    assert "closed: end of exercise" in result.out
    page = (fresh_dir / "aar.html").read_text(encoding="utf-8")
    assert 'class="timeline"' in page
    assert "EXERCISE" in page
    incident = result.out.split("`playbook report ")[1].split("`")[0]
    verified = cli("log", "verify", incident)
    assert verified.code == 0, verified.out
    markdown = cli("report", incident, "--format", "md")
    assert markdown.code == 0
    assert "Objectives" in markdown.out
    sandboxed = (fresh_dir / "outbox" / f"exercise_{incident}.txt").read_text(encoding="utf-8")
    assert sandboxed.count("EXERCISE — EXERCISE — EXERCISE") > 20


def test_an_unanswered_inject_sends_its_backup_and_an_answered_one_does_not(
        store: SqlStore, tmp_path: Path) -> None:
    """An unplayed inject gets its backup, an answered one's is skipped; all stays sandboxed."""
    drive = Drive(store, tmp_path)
    pb = checked("natural_disaster")
    scenario = load_scenario(ROOT / "scenarios" / "natural_disaster.yaml", pb.playbook)
    setup = drill.prepare(pb.playbook, pb.templates, scenario, dict(scenario.params) | {
        "hazard": "flood"}, scenario.participants, None)
    incident = drill.start(drive.engine, setup, city=SETTINGS.city_values(),
                           timezone=SETTINGS.city.timezone, actor="anna", now=START, wall=START)
    run = drill.Drill(drive.engine, incident.id, drive.clock, drive.dispatcher.drain,
                      players=drill.SimulatedPlayers(drive.engine, incident.id, setup))
    closed = asyncio.run(run.run())
    assert closed.state == "closed"
    events = drive.events(incident.id)
    fired = {e.step_id for e in events if e.kind == "inject"}
    skipped = {e.step_id for e in events if e.kind == "skipped" and e.data.get("unless")}
    assert "dari-families-backup" in fired
    assert "herald-evacuation-backup" in skipped
    assert any(e.kind == "answered" and e.step_id == "herald-evacuation" for e in events)
    assert not any(e.kind == "answered" and e.step_id == "dari-families" for e in events)
    assert {(r.delivery.channel, r.delivery.address) for r in drive.outbox(incident.id)} == {
        (SANDBOX_CHANNEL, sandbox(incident.id))}
    assert any(e.kind == "scenario" and e.data["objectives"] for e in events)


def test_scenario_time_runs_at_speed_and_stops_while_paused() -> None:
    """A scaled drill's clock comes from its log: it runs at speed, stops while paused."""
    wall = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    opened = chain("2026-0001", 1, wall, "activated", prev_hash="",
                   data={"clock": {"speed": 60, "wall": wall.isoformat()}})
    assert scenario_now([opened], wall + timedelta(minutes=2)) == wall + timedelta(hours=2)
    paused = chain("2026-0001", 2, wall + timedelta(hours=2), "paused", prev_hash="",
                   data={"wall": (wall + timedelta(minutes=2)).isoformat()})
    assert scenario_now([opened, paused], wall + timedelta(minutes=9)) == wall + timedelta(
        hours=2)
    resumed = chain("2026-0001", 3, wall + timedelta(hours=2), "resumed", prev_hash="",
                    data={"wall": (wall + timedelta(minutes=10)).isoformat()})
    assert scenario_now([opened, paused, resumed], wall + timedelta(minutes=11)) == (
        wall + timedelta(hours=3))
    actual = chain("2026-0002", 1, wall, "activated", prev_hash="", data={})
    assert scenario_now([actual], wall + timedelta(minutes=5)) == wall + timedelta(minutes=5)


def test_a_paused_drill_fires_nothing_and_a_resumed_one_goes_on(
        store: SqlStore, tmp_path: Path) -> None:
    """Nothing of a paused drill is due, even far past its times; resuming brings it back."""
    drive = Drive(store, tmp_path)
    incident = drive.activate(mode="exercise")
    wall = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)
    drill.pause(drive.engine, incident.id, actor="anna", wall=wall)
    later = drive.clock.now() + timedelta(hours=5)
    assert drive.engine.next_wake(incident.id) is None
    assert drive.engine.tick(later, only=incident.id) == 0
    with pytest.raises(BadInput, match="paused"):
        drill.pause(drive.engine, incident.id, actor="anna", wall=wall)
    drill.resume(drive.engine, incident.id, actor="anna", wall=wall)
    assert drive.engine.tick(later, only=incident.id) > 0


def test_ending_a_drill_cancels_everything_and_logs_no_play(
        store: SqlStore, tmp_path: Path) -> None:
    """"No play": pending steps, drafts and unsent messages are cancelled; the log says why."""
    drive = Drive(store, tmp_path)
    incident = drive.activate(mode="exercise")
    with store.begin() as tx:
        queued_before = sum(1 for r in tx.outbox(incident.id) if r.state == "queued")
    drive.engine.tick(drive.after(timedelta(minutes=25)), only=incident.id)
    steps, unsent = drill.end(drive.engine, incident.id, actor="anna",
                              reason="real flood warning", now=drive.after(timedelta(minutes=25)))
    assert steps > 0
    assert unsent >= queued_before
    with store.begin() as tx:
        assert not [r for r in tx.schedule(incident.id) if r.state == "pending"]
        assert not [r for r in tx.outbox(incident.id) if r.state == "queued"]
        assert not tx.drafts(incident.id, "pending")
    closed = drive.events(incident.id, "closed")[-1]
    assert closed.data["no_play"]
    assert closed.data["reason"] == "real flood warning"
    with pytest.raises(BadInput, match="closed"):
        drill.end(drive.engine, incident.id, actor="anna", reason="", now=drive.clock.now())


def test_drill_controls_refuse_an_actual_incident(store: SqlStore, tmp_path: Path) -> None:
    """Pause and "no play" are for exercises; an actual incident is stood down instead."""
    drive = Drive(store, tmp_path)
    incident = drive.activate()
    for control in (lambda: drill.pause(drive.engine, incident.id, actor="anna",
                                        wall=drive.clock.now()),
                    lambda: drill.end(drive.engine, incident.id, actor="anna", reason="",
                                      now=drive.clock.now())):
        with pytest.raises(BadInput, match="actual incident"):
            control()


def test_players_answer_injects_and_evaluators_rate_from_the_cli(
        cli: Cli, fresh_dir: Path) -> None:
    """`answer`, `evaluate`, `pause`, `resume` and `end` work on a drill; bad ones exit 2."""
    assert cli("drill", str(FLOOD), "--instant").code == 0
    incident = f"{datetime.now(UTC).year}-0001"
    answered = cli("answer", incident, "dari-families", "Shelter open to all; Dari help at desk",
                   "--as", "yusuf")
    assert answered.code == 0, answered.err
    bad = cli("answer", incident, "no-such-inject", "x", "--as", "yusuf")
    assert bad.code == 2
    assert "no inject 'no-such-inject'" in bad.err
    assert cli("evaluate", incident, "intermediaries", "S", "--note", "late", "--as",
               "anna").code == 0
    wrong = cli("evaluate", incident, "intermediaries", "Q", "--as", "anna")
    assert wrong.code == 2
    assert "P, S, M or U" in wrong.err
    report = cli("report", incident, "--format", "md")
    assert re.search(r"S — Performed with some challenges \| rated by \W?anna", report.out)
    assert cli("pause", incident).code == 2  # closed at the end of the instant drill


def test_a_broken_scenario_stops_the_drill_before_anything_opens(
        cli: Cli, fresh_dir: Path) -> None:
    """A scenario naming an unknown role is located, exit 2, and no incident is opened."""
    bad = fresh_dir / "bad.yaml"
    bad.write_text("title: Bad\nplaybook: natural-disaster\ninjects:\n  - id: x\n    at: 5m\n"
                   "    sender: Sam (simulated)\n    to: mayor\n    text: Hello\n",
                   encoding="utf-8")
    result = cli("drill", str(FLOOD), "--instant", "--scenario", str(bad))
    assert result.code == 2
    assert f"{bad}:7:9" in result.err
    assert "mayor" in result.err
    assert not (fresh_dir / "playbook.db").exists()
    both = cli("drill", str(FLOOD), "--instant", "--speed", "60")
    assert both.code == 2
    assert "exclude each other" in both.err


def test_an_expected_message_is_its_delivery_not_a_staff_notice() -> None:
    """A message expectation needs the message itself; a repeating one counts from the inject."""
    step = InjectStep(id="rumour", at=timedelta(hours=1), inject="A rumour",
                      expect=Expectation(action="message", step="update",
                                         within=timedelta(hours=1)))
    arrived = START + timedelta(hours=1)
    notice = chain("i", 1, START + timedelta(minutes=30), "sent", prev_hash="", step_id="update",
                   data={"key": "i/update/1/r1/approve"})
    earlier = chain("i", 2, START + timedelta(minutes=40), "sent", prev_hash="",
                    step_id="update", data={"key": "i/update/1/public:tg:en/en/telegram"})
    later = chain("i", 3, START + timedelta(hours=2), "sent", prev_hash="", step_id="update",
                  data={"key": "i/update/2/public:tg:en/en/telegram"})
    assert met(step, arrived, [notice]) is None
    assert met(step, arrived, [notice, earlier]) == earlier
    assert met(step, arrived, [notice, earlier, later], frozenset({"update"})) == later


def test_a_live_drill_runs_on_scenario_time_until_a_controller_ends_it(
        store: SqlStore, tmp_path: Path) -> None:
    """A scaled drill fires and sends on scenario time, and stops when ended from outside."""
    drive = Drive(store, tmp_path)
    pb = checked()
    setup = drill.prepare(pb.playbook, pb.templates, None, HATE_PARAMS, ("anna", "miriam"),
                          100_000.0)
    wall = datetime.now(UTC)
    incident = drill.start(drive.engine, setup, city=SETTINGS.city_values(),
                           timezone=SETTINGS.city.timezone, actor="anna", now=wall, wall=wall)
    clock = drill.DrillClock(drive.engine, incident.id, SystemClock(), setup.speed or 1)
    dispatcher = Dispatcher(store, drive.channels, clock, only=incident.id)
    run = drill.Drill(drive.engine, incident.id, clock, dispatcher.drain,
                      poll=timedelta(milliseconds=20))

    async def play() -> str:
        task = asyncio.create_task(run.run())
        for _ in range(500):
            await asyncio.sleep(0.01)
            if drive.events(incident.id, "inject"):
                break
        drill.end(drive.engine, incident.id, actor="anna", reason="no play", now=clock.now())
        return (await asyncio.wait_for(task, timeout=10)).state

    assert asyncio.run(play()) == "closed"
    assert drive.events(incident.id, "inject")
    assert [r.state for r in drive.outbox(incident.id) if r.state == "sent"]


def test_bad_participants_report_names_and_formats_exit_2(cli: Cli, fresh_dir: Path) -> None:
    """An unknown participant is located by line and column; bad formats are refused."""
    team = fresh_dir / "team.txt"
    team.write_text("anna  # lead\nmiriam, nobody\n", encoding="utf-8")
    result = cli("drill", str(FLOOD), "--instant", "--participants", str(team))
    assert result.code == 2
    assert f"{team}:2:9" in result.err
    assert "'nobody' is not in the staff directory" in result.err
    assert "Traceback" not in result.err
    pdf = cli("drill", str(FLOOD), "--instant", "--report", "aar.pdf")
    assert pdf.code == 2
    assert "end the file name in .html or .md" in pdf.err
    assert cli("report", "2026-0001", "--format", "pdf").code == 2


def _flood_drill(store: SqlStore, tmp_path: Path) -> tuple[Drive, drill.Setup, str]:
    drive = Drive(store, tmp_path)
    pb = checked("natural_disaster")
    scenario = load_scenario(ROOT / "scenarios" / "natural_disaster.yaml", pb.playbook)
    setup = drill.prepare(pb.playbook, pb.templates, scenario, dict(scenario.params),
                          scenario.participants, None)
    incident = drill.start(drive.engine, setup, city=SETTINGS.city_values(),
                           timezone=SETTINGS.city.timezone, actor="anna", now=START, wall=START)
    return drive, setup, incident.id


async def _plain_loop(drive: Drive, incident_id: str, players: drill.SimulatedPlayers,
                      dispatcher: Dispatcher) -> None:
    """The instant drill with no shortcuts: tick, act, tick, send and look at every step."""
    engine = drive.engine
    while True:
        now = drive.clock.now()
        engine.tick(now, only=incident_id)
        players.act(now)
        engine.tick(now, only=incident_id)
        await dispatcher.drain()
        with engine.store.begin() as tx:
            players.log.read(tx)
            incident = engine.incident(tx, incident_id)
            players.look(tx, incident)
            wake = tx.next_wake(incident_id)
        wakes = [t for t in (wake, players.next()) if t]
        if incident.state == "closed":
            return
        if incident.state == "stood_down" and not wakes:
            drill.end(engine, incident_id, actor="drill", reason="end of exercise", now=now,
                      no_play=False)
            continue
        drive.clock.set(min(wakes))


def _story(drive: Drive, incident_id: str) -> list[tuple[object, ...]]:
    """The log without what differs between two runs (ids, random codes, wall-clock text)."""
    return [(e.at - START, e.kind, e.step_id, e.actor, e.data.get("number"), e.data.get("lang"),
             e.data.get("recipient"), e.data.get("role"), e.data.get("deliveries"))
            for e in drive.events(incident_id)]


def test_an_instant_drill_skips_only_what_changes_nothing_and_replays_the_same(
        store: SqlStore, tmp_path: Path) -> None:
    """The instant drill's log equals a plain tick-act-tick-send loop's, and a rerun's."""
    stories = []
    for name in ("plain", "drill", "again"):
        drive, setup, incident_id = _flood_drill(store, tmp_path / name)
        dispatcher = Dispatcher(store, drive.channels, drive.clock, only=incident_id)
        drive.engine.on_enqueue = dispatcher.wake.set
        players = drill.SimulatedPlayers(drive.engine, incident_id, setup)
        if name == "plain":
            asyncio.run(_plain_loop(drive, incident_id, players, dispatcher))
        else:
            run = drill.Drill(drive.engine, incident_id, drive.clock,
                              _when_queued(dispatcher), players=players)
            assert asyncio.run(run.run()).state == "closed"
        stories.append(_story(drive, incident_id))
    assert stories[0] == stories[1] == stories[2]
    kinds = {story[1] for story in stories[0]}
    assert {"acked", "task_done", "approved", "answered", "stood_down", "closed"} <= kinds


def test_the_drill_reads_its_log_once_then_only_what_was_appended(
        store: SqlStore, tmp_path: Path) -> None:
    """`drill.Log` reads the whole log first, then only the entries appended since."""
    drive = Drive(store, tmp_path)
    incident = drive.activate(mode="exercise")
    log = drill.Log(incident.id)
    before = drive.events(incident.id)
    with store.begin() as tx:
        assert log.read(tx) == before
        assert log.read(tx) == []
        added = tx.append(incident.id, "logged", START, actor="anna", data={"text": "noted"})
    with store.begin() as tx:
        assert log.read(tx) == [added]
    assert log.entries == drive.events(incident.id)
