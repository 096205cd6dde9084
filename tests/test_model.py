"""The playbook schema: triggers, approvals, parameters, frozen models, unknown keys."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from playbook.model import MessageStep, Parameter, Playbook, TaskStep


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "test", "title": "Test", "kind": "protest", "languages": ["en"],
        "roles": {"lead": {"title": "Lead", "duties": ["Lead"], "approves": True}},
        "steps": [{"id": "a", "task": "Do it", "role": "lead", "at": "0m"}],
    }
    data.update(changes)
    return data


def step_error(step: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        Playbook.model_validate(base(steps=[step]))
    return str(caught.value)


def test_steps_are_discriminated_by_their_key() -> None:
    """A step with `task:` is a task, with `message:` a message."""
    pb = Playbook.model_validate(base(steps=[
        {"id": "a", "task": "Do", "role": "lead", "at": "0m", "due": "30m"},
        {"id": "b", "message": "m", "to": {"roles": ["lead"]}, "at": "1h"},
        {"id": "c", "inject": "Rumours spread", "at": "2h"},
    ]))
    assert [type(s).__name__ for s in pb.steps] == ["TaskStep", "MessageStep", "InjectStep"]
    assert isinstance(pb.steps[0], TaskStep)
    assert pb.steps[0].due is not None
    assert pb.steps[0].due.total_seconds() == 1800


@pytest.mark.parametrize(("step", "message"), [
    ({"id": "a", "task": "x", "role": "lead"}, "the step has no trigger"),
    ({"id": "a", "task": "x", "role": "lead", "every": "4h", "on": "stand_down"},
     "cannot be combined"),
    ({"id": "a", "task": "x", "role": "lead", "at": "1h", "until": "stand_down"},
     "`until` only applies to `every`"),
    ({"id": "a", "task": "x", "role": "lead", "every": "2m"}, "shorter than 5m"),
    ({"id": "a", "task": "x", "role": "lead", "at": "31d"}, "more than 30 days"),
    ({"id": "a", "task": "x", "role": "lead", "on": "sunrise"}, "stand_down"),
    ({"id": "a", "message": "m", "to": {"public": ["web"]}, "at": "0m"}, "needs `approval"),
    ({"id": "a", "message": "m", "to": {"public": ["web"]}, "at": "0m", "preapproved": True,
      "approval": ["lead"]}, "not both"),
    ({"id": "a", "message": "m", "to": {"media": True}, "at": "0m", "approval": ["lead"],
      "ack_within": "30m"}, "needs a private audience"),
    ({"id": "a", "message": "m", "to": {}, "at": "0m"}, "the audience is empty"),
    ({"id": "a", "task": "x", "message": "m", "role": "lead", "at": "0m"}, "exactly one of"),
])
def test_invalid_steps_explain_themselves(step: dict[str, Any], message: str) -> None:
    """Each malformed step is refused with a message that says what to write instead."""
    assert message in step_error(step)


def test_repeating_step_stops_at_stand_down_by_default() -> None:
    """`every` without `until` repeats until stand-down."""
    pb = Playbook.model_validate(base(steps=[
        {"id": "u", "message": "m", "to": {"roles": ["lead"]}, "every": "4h"}]))
    assert pb.steps[0].repeat_until == "stand_down"


def test_preapproved_public_message_needs_no_approvers() -> None:
    """A life-safety alert may be marked pre-approved."""
    pb = Playbook.model_validate(base(steps=[
        {"id": "alert", "message": "m", "to": {"public": ["sms"]}, "at": "0m",
         "preapproved": True}]))
    step = pb.steps[0]
    assert isinstance(step, MessageStep)
    assert step.preapproved
    assert step.to.is_public


@pytest.mark.parametrize(("parameter", "message"), [
    ({"type": "choice", "example": "a"}, "needs `choices`"),
    ({"type": "choice", "choices": ["a"], "example": "b"}, "one of `choices`"),
    ({"type": "text", "choices": ["a"], "example": "a"}, "only for type: choice"),
    ({"type": "integer", "example": "3"}, "integer example"),
    ({"type": "text", "example": 3}, "must be text"),
    ({"type": "datetime", "example": "tomorrow"}, "ISO 8601"),
    ({"type": "url", "example": "example.org"}, "web address"),
    ({"type": "text", "example": "x" * 30, "max_length": 10}, "longer than max_length"),
    ({"type": "text"}, "example"),
])
def test_parameter_examples_must_fit_their_type(parameter: dict[str, Any], message: str) -> None:
    """The example value is what validate renders with, so it must be a valid value."""
    with pytest.raises(ValidationError, match=message.replace("`", ".")):
        Parameter.model_validate(parameter)


def test_models_are_frozen() -> None:
    """A loaded playbook cannot be changed by accident."""
    pb = Playbook.model_validate(base())
    with pytest.raises(ValidationError):
        pb.title = "Other"  # type: ignore[misc]


def test_unknown_language_tag_is_refused() -> None:
    """Languages must be tags babel knows."""
    with pytest.raises(ValidationError, match="not a language tag babel knows"):
        Playbook.model_validate(base(languages=["xx"]))


def test_regional_and_script_tags_are_accepted() -> None:
    """Regional tags such as fa-AF and ar-EG are valid playbook languages."""
    assert Playbook.model_validate(base(languages=["fa-AF", "ar-EG", "uk"])).languages == (
        "fa-AF", "ar-EG", "uk")
