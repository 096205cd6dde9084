"""Cross-checks of a playbook against itself and its templates: everything the schema cannot see.

Every check runs and every problem is listed, so a city fixes a borrowed playbook in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from playbook.errors import Loc, Problem
from playbook.language import known
from playbook.model import PARAMETER_REF, InjectStep, MessageStep, Playbook, Step, TaskStep
from playbook.plan import after, bind_parameters, first_offset
from playbook.render import (
    CERC_BLOCKS,
    Renderer,
    TemplateError,
    TemplateLibrary,
    TemplateSource,
    html_problems,
)

Locate = Callable[[Loc, str, str], Problem]

EXAMPLE_INCIDENT_ID = "2026-0001"


ContextFor = Callable[[Step], Mapping[str, Any]]


def example_context(playbook: Playbook, city: Mapping[str, str], start: datetime,
                    timezone: Any) -> ContextFor:
    """The values each step's template sees, filled with the parameters' example values."""
    examples = {name: str(p.example) for name, p in playbook.parameters.items()}
    params = bind_parameters(playbook, examples, "examples", timezone)

    def context_for(step: Step) -> Mapping[str, Any]:
        return message_context(playbook, params, city, start, EXAMPLE_INCIDENT_ID, step)

    return context_for


def next_public_offset(playbook: Playbook, step: Step, number: int = 1) -> timedelta | None:
    """When the next public message after occurrence `number` of `step` is planned.

    This is the "next update" promise; messages that wait for an event promise nothing.
    """
    if step.on is not None:
        return None
    mine = first_offset(step) + (number - 1) * (step.every or timedelta(0))
    later = []
    for other in playbook.steps:
        if not isinstance(other, MessageStep) or not other.to.public or other.on is not None:
            continue
        start = first_offset(other)
        if start > mine:
            later.append(start)
        elif other.every is not None:
            later.append(start + ((mine - start) // other.every + 1) * other.every)
    return min(later, default=None)


def message_context(playbook: Playbook, params: Mapping[str, Any], city: Mapping[str, str],
                    started_at: datetime, incident_id: str, step: Step,
                    number: int = 1) -> dict[str, Any]:
    """The documented template context (docs/templates.md): parameters, city and incident."""
    offset = next_public_offset(playbook, step, number)
    next_update = None if offset is None else after(started_at, offset)
    return {
        **params,
        "city": dict(city),
        "incident": {
            "id": incident_id,
            "title": playbook.title,
            "started_at": started_at,
            "next_update_at": next_update,
        },
    }


def check_playbook(playbook: Playbook, locate: Locate, templates: TemplateLibrary,
                   templates_root: str, renderer: Renderer,
                   context: ContextFor) -> list[Problem]:
    """Every cross-check; an empty list means the playbook is ready for a crisis."""
    problems = list(_references(playbook, locate))
    problems += _templates(playbook, locate, templates, templates_root, renderer, context)
    return problems


def _references(pb: Playbook, locate: Locate) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    approvers = sorted(name for name, role in pb.roles.items() if role.approves)
    role_hint = "declare it under `roles:` or use one of: " + ", ".join(sorted(pb.roles))
    if len(set(pb.languages)) != len(pb.languages):
        yield locate(("languages",), "a language is listed twice", "list each language once")
    for j, lang in enumerate(pb.fallback):
        if lang not in pb.languages:
            yield locate(("fallback", j), f"`{lang}` is not one of the playbook's languages",
                         "fall back to a language every template has: "
                         + ", ".join(pb.languages))
    if any(isinstance(s, MessageStep) and s.to.is_public for s in pb.steps) and not approvers:
        yield locate(("roles",), "no role may approve public messages",
                     "give at least one role `approves: true`")
    for name, declared in pb.roles.items():
        if declared.backup is not None and declared.backup not in pb.roles:
            yield locate(("roles", name, "backup"), f"unknown role `{declared.backup}`",
                         role_hint)
        elif declared.backup == name:
            yield locate(("roles", name, "backup"), f"`{name}` cannot back itself up",
                         "name another role of this playbook")
    for i, step in enumerate(pb.steps):
        here: Loc = ("steps", i)
        if step.id in seen:
            yield locate((*here, "id"), f"step id `{step.id}` is used twice "
                         f"(first as steps[{seen[step.id]}])", "give each step its own id")
        seen.setdefault(step.id, i)
        if isinstance(step, TaskStep):
            if step.role not in pb.roles:
                yield locate((*here, "role"), f"unknown role `{step.role}`", role_hint)
            if step.due is not None and step.due <= timedelta(0):
                yield locate((*here, "due"), "a deadline of zero", "give the task time: 30m")
        if isinstance(step, InjectStep):
            for j, role in enumerate(step.roles):
                if role not in pb.roles:
                    yield locate((*here, "roles", j), f"unknown role `{role}`", role_hint)
        if isinstance(step, MessageStep):
            yield from _message_references(pb, step, here, locate, role_hint, approvers)


def _message_references(pb: Playbook, step: MessageStep, here: Loc, locate: Locate,
                        role_hint: str, approvers: list[str]) -> Iterator[Problem]:
    for j, role in enumerate(step.to.roles):
        if role not in pb.roles:
            yield locate((*here, "to", "roles", j), f"unknown role `{role}`", role_hint)
    for j, role in enumerate(step.approval):
        if role not in pb.roles:
            yield locate((*here, "approval", j), f"unknown role `{role}`", role_hint)
        elif not pb.roles[role].approves:
            others = f" or name one of: {', '.join(approvers)}" if approvers else ""
            yield locate((*here, "approval", j), f"role `{role}` may not approve",
                         f"set `approves: true` on the role{others}")
    if step.cerc == "first" and not step.to.is_public:
        yield locate((*here, "cerc"), "`cerc: first` marks a first public message, but the "
                     "audience is not public", "send it to `public` or `media`, or drop `cerc`")
    if step.ack_within is not None and not (step.to.roles or step.to.intermediaries):
        yield locate((*here, "ack_within"), "nobody in the audience can acknowledge",
                     "send to roles or intermediaries, or drop `ack_within`")
    selector = step.to.intermediaries
    if selector is not None:
        for name, values in selector.wanted().items():
            loc: Loc = (*here, "to", "intermediaries", name)
            for j, value in enumerate(values):
                at = loc if isinstance(getattr(selector, name), str) else (*loc, j)
                ref = PARAMETER_REF.match(value)
                if "{" in value and not ref:
                    yield locate(at, f"{value!r} is not a parameter reference",
                                 "write `{{ name }}` or a plain value")
                elif ref and ref.group(1) not in pb.parameters:
                    yield locate(at, f"unknown parameter `{ref.group(1)}`",
                                 "declare it under `parameters:`")
                elif name == "language" and not ref and not known(value):
                    yield locate(at, f"{value!r} is not a language tag babel knows",
                                 "use a BCP 47 tag such as ar, fa-AF")


def _variants(pb: Playbook) -> list[dict[str, str]]:
    """The example values, then each other choice of each choice parameter, one at a time.

    A template words each choice in its own branch; rendering every branch here means a typo in
    the `assault` branch is found now, not in the middle of an assault.
    """
    variants: list[dict[str, str]] = [{}]
    for name, parameter in pb.parameters.items():
        variants += [{name: c} for c in parameter.choices or () if c != parameter.example]
    return variants


def _templates(pb: Playbook, locate: Locate, templates: TemplateLibrary, root: str,
               renderer: Renderer, context: ContextFor) -> Iterator[Problem]:
    checked: set[tuple[str, str]] = set()
    variants = _variants(pb)
    for i, step in enumerate(pb.steps):
        if not isinstance(step, MessageStep):
            continue
        extra = sorted(lang for key, lang in templates.sources
                       if key == step.message and lang not in pb.languages)
        for lang in (*pb.languages, *extra):
            source = templates.get(step.message, lang)
            if source is None:
                yield locate(("steps", i, "message"), f"no `{lang}` template for `{step.message}`"
                             f" (expected {root}/{step.message}/{lang}.j2)",
                             "write the translation, or remove the language from `languages`")
                continue
            if (step.message, lang) in checked and step.cerc is None:
                continue
            checked.add((step.message, lang))
            yield from _choice_tests(pb, source, renderer)
            seen: set[str] = set()
            for variant in variants:
                for problem in _render_checks(step, source, renderer, {**context(step), **variant}):
                    # One fault shows in many variants; report it once, naming the first.
                    if problem.message not in seen:
                        seen.add(problem.message)
                        yield _with_variant(problem, variant)


def _choice_tests(pb: Playbook, source: TemplateSource,
                  renderer: Renderer) -> Iterator[Problem]:
    for name, value, line in renderer.comparisons(source):
        parameter = pb.parameters.get(name)
        if parameter and parameter.choices and value not in parameter.choices:
            yield Problem(source.path, line, None, "", f"`{name}` is never {value!r}, so this "
                          "branch can never be taken", "use one of: " + ", ".join(
                              parameter.choices))


def _with_variant(problem: Problem, variant: Mapping[str, str]) -> Problem:
    if not variant:
        return problem
    (name, value), = variant.items()
    return replace(problem, message=f"{problem.message} (with {name}={value})")


def _render_checks(step: MessageStep, source: TemplateSource, renderer: Renderer,
                   context: Mapping[str, Any]) -> Iterator[Problem]:
    try:
        rendered = renderer.render(source, context)
    except TemplateError as exc:
        yield from exc.problems
        return
    for message in html_problems(rendered.text):
        yield Problem(source.path, None, None, "", message,
                      "use only <b>, <i>, <u>, <s>, <a href>, <code>, <pre>, <blockquote>, "
                      "each closed")
    if len(rendered.text) > renderer.max_chars:
        yield Problem(source.path, None, None, "", f"renders to {len(rendered.text):,} "
                      f"characters, over Telegram's {renderer.max_chars:,}",
                      "shorten it; a key message should be readable on a phone")
    if step.cerc == "first":
        for block, meaning in CERC_BLOCKS.items():
            if not rendered.blocks.get(block):
                yield Problem(source.path, None, None, "", f"a first message needs "
                              f"{meaning}: the block `{block}` is missing or empty",
                              f"add {{% block {block} %}}...{{% endblock %}}")
