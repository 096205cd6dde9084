"""The playbook language: a frozen pydantic schema that refuses unknown keys.

The schema checks shape and types. References between parts of a playbook (roles, templates,
parameters) are checked in `checks.py`, which can report every dangling reference at once.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from playbook.duration import HINT as DURATION_HINT
from playbook.duration import format_duration, parse_duration
from playbook.language import known

MAX_OFFSET = timedelta(days=30)
MIN_REPEAT = timedelta(minutes=5)


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a bare {type(value).__name__} is not a duration — {DURATION_HINT}")
    if value.strip().startswith("-"):
        raise ValueError(
            "negative durations are not allowed — steps are timed from activation or an event"
        )
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{exc} — {DURATION_HINT}") from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    # Frozen incidents store the playbook as JSON; durations must read back in as written.
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
            "description": "A duration with units, largest first: 90s, 15m, 2h, 3d, 1h30m.",
            "examples": ["15m", "2h", "1h30m"],
        }
    ),
]

_SLUG = r"^[a-z][a-z0-9_]{0,62}$"
Slug = Annotated[StrictStr, Field(pattern=_SLUG, description="lower_snake_case identifier")]
StepId = Annotated[
    StrictStr, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="lower-kebab-case step id")
]
Text = Annotated[StrictStr, Field(min_length=1, max_length=2000)]


def _language(tag: str) -> str:
    if not known(tag):
        raise ValueError(
            f"{tag!r} is not a language tag babel knows — use a BCP 47 tag such as en, ar, fa-AF"
        )
    return tag


Language = Annotated[
    StrictStr,
    Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", examples=["en", "ar", "fa-AF"]),
    AfterValidator(_language),
]


class IncidentKind(StrEnum):
    """The kinds of emergency the brief names, and two it implies."""

    protest = "protest"
    hate_incident = "hate_incident"
    natural_disaster = "natural_disaster"
    terrorist_attack = "terrorist_attack"
    false_narrative = "false_narrative"
    global_crisis_local_tension = "global_crisis_local_tension"
    other = "other"


TriggerEvent = Literal["stand_down", "escalate", "de_escalate"]
ChannelName = Literal["console", "file", "telegram", "email", "webhook", "cap"]
ParameterType = Literal[
    "text", "integer", "choice", "community", "area", "datetime", "url", "phone"
]
Phase = Literal["initial", "maintenance", "resolution", "follow_up"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Parameter(_Frozen):
    """A value given at activation (`--param location=Market Square`)."""

    type: ParameterType
    required: StrictBool = True
    example: StrictStr | StrictInt = Field(
        description="Used by `playbook validate` to render every template before a crisis."
    )
    description: StrictStr = ""
    choices: tuple[StrictStr, ...] | None = None
    max_length: StrictInt = Field(default=200, ge=1, le=1000)

    @model_validator(mode="after")
    def _example_fits(self) -> Parameter:
        if self.type == "choice":
            if not self.choices:
                raise ValueError("a choice parameter needs `choices` — list the allowed values")
            if self.example not in self.choices:
                raise ValueError("the example must be one of `choices`")
        elif self.choices is not None:
            raise ValueError("`choices` is only for type: choice — remove it or change the type")
        if self.type == "integer" and not isinstance(self.example, int):
            raise ValueError("an integer parameter needs an integer example")
        if self.type != "integer" and not isinstance(self.example, str):
            raise ValueError("the example must be text — quote it")
        if self.type == "datetime" and isinstance(self.example, str):
            try:
                datetime.fromisoformat(self.example)
            except ValueError:
                raise ValueError("the example is not an ISO 8601 date and time — "
                                 'write it like "2026-05-01T14:00"') from None
        if self.type == "url" and not str(self.example).startswith(("https://", "http://")):
            raise ValueError("the example is not a web address — start it with https://")
        if isinstance(self.example, str) and len(self.example) > self.max_length:
            raise ValueError(f"the example is longer than max_length ({self.max_length})")
        return self


class Role(_Frozen):
    """A responsibility filled from the roster at activation."""

    title: Text
    duties: tuple[Text, ...] = Field(min_length=1)
    approves: StrictBool = Field(
        default=False, description="May this role approve public messages?"
    )
    backup: Slug | None = Field(
        default=None,
        description="The role whose holder takes this one when nobody in the roster holds or "
                    "backs it up.",
    )


Choices = Annotated[
    StrictStr | tuple[StrictStr, ...],
    Field(description="One value, or a list meaning any of them; `{{ name }}` uses a parameter."),
]


class IntermediarySelector(_Frozen):
    """Which trusted intermediaries to reach: every field given must match (a list: any of it).

    Values may name an activation parameter as `{{ name }}`, e.g. the affected community.
    """

    community: Choices | None = None
    area: Choices | None = None
    tag: Choices | None = None
    kind: Choices | None = Field(
        default=None, description="The intermediary's role: religious_leader, community_leader, "
                                  "organisation, ...")
    language: Choices | None = Field(
        default=None, description="Speaks this language (`ar` also matches `ar-EG`).")

    def wanted(self) -> dict[str, tuple[str, ...]]:
        """Each field given, as a tuple of accepted values."""
        found = self.model_dump(exclude_none=True)
        return {k: (v,) if isinstance(v, str) else tuple(v) for k, v in found.items()}


class Audience(_Frozen):
    """Who receives a message. Parts combine: roles and intermediaries, say."""

    roles: tuple[Slug, ...] = ()
    intermediaries: IntermediarySelector | None = Field(
        default=None, description="Trusted intermediaries; `{}` selects every active one."
    )
    media: StrictBool = False
    public: tuple[Slug, ...] = Field(
        default=(), description="Public channels from the directory, e.g. telegram_channel."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Audience:
        if not (self.roles or self.intermediaries is not None or self.media or self.public):
            raise ValueError(
                "the audience is empty — name roles, intermediaries, media or public channels"
            )
        return self

    @property
    def is_public(self) -> bool:
        """Public audiences (residents, media) may only be reached after approval."""
        return self.media or bool(self.public)


class _Step(_Frozen):
    id: StepId
    title: StrictStr = ""
    phase: Phase | None = None
    at: Duration | None = Field(
        default=None, description="Offset from activation, or from the `on` event."
    )
    every: Duration | None = Field(default=None, description="Repeat interval.")
    until: TriggerEvent | None = Field(default=None, description="Stop repeating at this event.")
    on: TriggerEvent | None = Field(default=None, description="Fire when this event happens.")

    @model_validator(mode="after")
    def _trigger(self) -> _Step:
        if self.at is None and self.every is None and self.on is None:
            raise ValueError(
                "the step has no trigger — add `at: 0m`, `every: 4h` or `on: stand_down`"
            )
        if self.every is not None:
            if self.on is not None:
                raise ValueError("`every` and `on` cannot be combined — use one trigger")
            if self.every < MIN_REPEAT:
                raise ValueError("`every` is shorter than 5m — that would flood the audience")
        elif self.until is not None:
            raise ValueError("`until` only applies to `every` — remove it or add `every`")
        if self.at is not None and self.at > MAX_OFFSET:
            raise ValueError("`at` is more than 30 days out — plan long follow-up outside")
        return self

    @property
    def repeat_until(self) -> str | None:
        """The event that ends a repeating step (stand-down unless stated)."""
        if self.every is None:
            return None
        return self.until or "stand_down"


class TaskStep(_Step):
    """Work for a role holder, with a deadline."""

    task: Text
    role: Slug
    due: Duration | None = Field(default=None, description="Deadline after the step fires.")


class MessageStep(_Step):
    """A pre-approved key message to an audience."""

    message: Slug = Field(description="Template key: message_templates/<key>/<lang>.j2")
    to: Audience
    channels: tuple[ChannelName, ...] = ()
    approval: tuple[Slug, ...] = Field(
        default=(), description="Roles whose holders may approve; a second person must do it."
    )
    preapproved: StrictBool = Field(
        default=False, description="Life-safety alerts approved in advance; they skip approval."
    )
    ack_within: Duration | None = None
    cerc: Literal["first"] | None = Field(
        default=None, description="A first public message: must carry the six CERC elements."
    )

    @model_validator(mode="after")
    def _approval(self) -> MessageStep:
        if self.preapproved and self.approval:
            raise ValueError("a message is either `preapproved` or has `approval` — not both")
        if self.to.is_public and not (self.preapproved or self.approval):
            raise ValueError(
                "a public message needs `approval: [role, ...]` "
                "(or `preapproved: true` for a life-safety alert)"
            )
        if self.ack_within is not None and self.to.is_public:
            raise ValueError("`ack_within` needs a private audience — the public cannot ack")
        return self


ExpectedAction = Literal["answer", "approve", "task", "message", "log", "escalate", "stand_down"]
InjectChannel = Literal["phone", "telegram", "email", "social_media", "in_person", "radio",
                        "press"]


class Expectation(_Frozen):
    """What the players should do about an inject, and by when (the evaluator's yardstick)."""

    action: ExpectedAction = Field(description=(
        "answer: reply to the inject; approve / task / message: that playbook step is approved, "
        "done or sent; log: a log entry; escalate / stand_down: that event."))
    step: StepId | None = Field(default=None, description="The step for approve, task, message.")
    within: Duration = Field(description="Time allowed after the inject arrives.")

    @model_validator(mode="after")
    def _step_named(self) -> Expectation:
        if (self.action in ("approve", "task", "message")) != (self.step is not None):
            raise ValueError("`step` names the playbook step for approve, task and message, "
                             "and only for them")
        return self


class InjectStep(_Step):
    """A scenario development delivered to players in a drill; ignored in actual incidents."""

    inject: Text
    roles: tuple[Slug, ...] = Field(default=(), description="Who receives it (default: all).")
    sender: StrictStr = Field(default="", description="The simulated sender, e.g. a reporter.")
    channel: InjectChannel | None = Field(
        default=None, description="How it reaches the player in the story (a call, a post).")
    expect: Expectation | None = None
    objective: Slug | None = Field(default=None, description="The exercise objective it tests.")
    unless: StepId | None = Field(default=None, description=(
        "A backup inject: skipped if the expected action of this earlier inject was taken."))


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [k for k in ("task", "message", "inject") if k in value]
        return kinds[0] if len(kinds) == 1 else None
    if isinstance(value, BaseModel):
        return {TaskStep: "task", MessageStep: "message", InjectStep: "inject"}.get(type(value))
    return None


Step = Annotated[
    Annotated[TaskStep, Tag("task")]
    | Annotated[MessageStep, Tag("message")]
    | Annotated[InjectStep, Tag("inject")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one of `task`, `message` or `inject`",
    ),
]


class Playbook(_Frozen):
    """One declarative protocol for one kind of incident."""

    id: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
    title: Text
    kind: IncidentKind
    description: StrictStr = ""
    languages: tuple[Language, ...] = Field(
        min_length=1, description="Every message template must exist in each; first is source."
    )
    fallback: tuple[Language, ...] = Field(
        default=(), description="Languages, in order, for a recipient none of whose languages "
                                "a template has (default: the first language).")
    parameters: dict[Slug, Parameter] = Field(default_factory=dict)
    roles: dict[Slug, Role] = Field(min_length=1)
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("parameters")
    @classmethod
    def _parameter_names_free(cls, parameters: dict[str, Parameter]) -> dict[str, Parameter]:
        taken = sorted(set(parameters) & RESERVED_NAMES)
        if taken:
            raise ValueError(f"the parameter name `{taken[0]}` is reserved for the built-in "
                             "template values — choose another name")
        return parameters

    @property
    def fallback_chain(self) -> tuple[str, ...]:
        """The languages tried, in order, when none of a recipient's languages has a template."""
        return self.fallback or self.languages[:1]

    def message_steps(self) -> list[MessageStep]:
        """The steps that send messages, in file order."""
        return [s for s in self.steps if isinstance(s, MessageStep)]


RESERVED_NAMES = frozenset({"city", "incident", "range", "loop", "self"})
PARAMETER_REF = re.compile(r"^\{\{\s*([a-z][a-z0-9_]*)\s*\}\}$")
