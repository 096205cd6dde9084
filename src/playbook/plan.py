"""The timeline of a playbook: when each step falls due, as a pure function of the start time.

The engine (a later layer) asks the same questions with the incident's events in hand; this module
answers them for a planned activation, which is what `playbook plan` shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from playbook.errors import BadInput, Problem
from playbook.model import (
    PARAMETER_REF,
    InjectStep,
    MessageStep,
    Parameter,
    Playbook,
    Step,
    TaskStep,
)


@dataclass(frozen=True)
class Occurrence:
    """One time a step falls due. `offset` is from activation, or from `event` when set."""

    step: Step
    offset: timedelta
    number: int = 1
    event: str | None = None

    def when(self, start: datetime) -> datetime | None:
        """Wall-clock time, or None when the step waits for an event."""
        return None if self.event else after(start, self.offset)


def after(start: datetime, offset: timedelta) -> datetime:
    """`start + offset` in real elapsed time, shown in start's zone.

    Plain `+` on an aware datetime adds wall-clock time, which is an hour off across a
    daylight-saving change: 45 minutes after 01:30 on the spring-forward night is 03:15, not 02:15.
    """
    if start.tzinfo is None:
        return start + offset
    return (start.astimezone(UTC) + offset).astimezone(start.tzinfo)


def first_offset(step: Step) -> timedelta:
    """When a step first falls due after activation (or its event); repeats start an interval in."""
    if step.at is None and step.every is not None and step.on is None:
        return step.every
    return step.at or timedelta(0)


def timeline(playbook: Playbook, *, repeats: int = 3) -> list[Occurrence]:
    """Every occurrence in time order; repeating steps show their first `repeats` occurrences.

    Steps that wait for an event (`on: stand_down`) come last, by event and offset.
    """
    timed: list[Occurrence] = []
    waiting: list[Occurrence] = []
    for step in playbook.steps:
        if step.on is not None:
            waiting.append(Occurrence(step, step.at or timedelta(0), 1, step.on))
        elif step.every is not None:
            timed += [Occurrence(step, first_offset(step) + n * step.every, n + 1)
                      for n in range(repeats)]
        else:
            timed.append(Occurrence(step, step.at or timedelta(0)))
    order = {step.id: i for i, step in enumerate(playbook.steps)}
    timed.sort(key=lambda o: (o.offset, order[o.step.id], o.number))
    waiting.sort(key=lambda o: (str(o.event), o.offset, order[o.step.id]))
    return timed + waiting


def due_at(step: Step, start: datetime, number: int = 1) -> datetime | None:
    """When occurrence `number` of a timed step is due; None for a step that waits for an event.

    Repeats are counted from the plan, not from when the last one fired, so they never drift.
    """
    if step.on is not None:
        return None
    if step.every is None:
        return after(start, first_offset(step)) if number == 1 else None
    return after(start, first_offset(step) + (number - 1) * step.every)


def due_after_event(step: Step, event_at: datetime) -> datetime:
    """When a step triggered by an event (`on: stand_down`, `at: 1d`) is due."""
    return after(event_at, step.at or timedelta(0))


def who(step: Step, playbook: Playbook, values: Mapping[str, Any] | None = None) -> str:
    """The role or audience of a step, as a person would say it, parameters filled in."""
    if isinstance(step, TaskStep):
        role = playbook.roles.get(step.role)
        return role.title if role else step.role
    if isinstance(step, InjectStep):
        titles = _titles(step.roles, playbook)
        return "drill players: " + (", ".join(titles) or "all")
    parts = _titles(step.to.roles, playbook)
    if step.to.intermediaries is not None:
        chosen = {k: " or ".join(fill(v, values or {}) for v in vs)
                  for k, vs in step.to.intermediaries.wanted().items()}
        parts.append("intermediaries" + (
            " (" + ", ".join(f"{k}={v}" for k, v in chosen.items()) + ")" if chosen else ""))
    if step.to.media:
        parts.append("media")
    if step.to.public:
        parts.append("public: " + ", ".join(step.to.public))
    return "; ".join(parts)


def _titles(roles: Iterable[str], playbook: Playbook) -> list[str]:
    return [playbook.roles[r].title if r in playbook.roles else r for r in roles]


def fill(value: str, values: Mapping[str, Any]) -> str:
    """A selector value with its `{{ parameter }}` reference, if any, filled in."""
    ref = PARAMETER_REF.match(value)
    return str(values.get(ref.group(1), value)) if ref else value


def approval(step: Step, playbook: Playbook) -> str:
    """Who must approve before the step goes out."""
    if not isinstance(step, MessageStep):
        return ""
    if step.preapproved:
        return "pre-approved (life safety)"
    if not step.approval:
        return "none (internal)"
    titles = _titles(step.approval, playbook)
    return " or ".join(titles)


def bind_parameters(playbook: Playbook, raw: Mapping[str, str], source: str,
                    timezone: Any) -> dict[str, Any]:
    """Check `--param k=v` values against the playbook; raise `BadInput` listing every problem."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name in raw:
        if name not in playbook.parameters:
            known = ", ".join(sorted(playbook.parameters)) or "none"
            problems.append(Problem(source, None, None, name, "unknown parameter",
                                    f"this playbook takes: {known}"))
    for name, parameter in playbook.parameters.items():
        if name not in raw:
            if parameter.required:
                problems.append(Problem(source, None, None, name, "missing required parameter",
                                        f"add --param {name}={parameter.example}"))
            continue
        try:
            values[name] = convert_value(parameter, raw[name], timezone)
        except ValueError as exc:
            problems.append(Problem(source, None, None, name, str(exc),
                                    f"for example --param {name}={parameter.example}"))
    if problems:
        raise BadInput(problems)
    return values


def convert_value(parameter: Parameter, text: str, timezone: Any) -> Any:
    text = text.strip()
    if not text:
        raise ValueError("empty value")
    if len(text) > parameter.max_length:
        raise ValueError(f"longer than {parameter.max_length} characters")
    if parameter.type == "integer":
        if not text.lstrip("-").isdigit():
            raise ValueError(f"{text!r} is not a whole number")
        return int(text)
    if parameter.type == "choice" and parameter.choices and text not in parameter.choices:
        raise ValueError(f"{text!r} is not one of {', '.join(parameter.choices)}")
    if parameter.type == "datetime":
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 date and time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone)
    if parameter.type == "url" and not text.startswith(("https://", "http://")):
        raise ValueError(f"{text!r} is not a web address")
    return text
