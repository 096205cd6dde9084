"""A frozen playbook version: what an incident runs, whatever happens to the files afterwards.

An incident stores the playbook, every template it uses, and the city settings as one JSON
document with its SHA-256. Editing `protocols/` mid-incident changes nothing for that incident,
and the after-action report can say exactly which version ran.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from playbook.model import Playbook, Step
from playbook.render import Renderer, TemplateLibrary, TemplateSource


def freeze(playbook: Playbook, templates: TemplateLibrary, city: Mapping[str, str],
           timezone: str) -> tuple[str, dict[str, Any]]:
    """(version hash, document) for a checked playbook and its templates."""
    texts: dict[str, dict[str, str]] = {}
    for (key, lang), source in sorted(templates.sources.items()):
        texts.setdefault(key, {})[lang] = source.text
    document = {"playbook": playbook.model_dump(mode="json"), "templates": texts,
                "city": dict(city), "timezone": timezone}
    return digest(document), document


def digest(document: Mapping[str, Any]) -> str:
    """The SHA-256 of a document's canonical JSON."""
    body = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Version:
    """A thawed frozen document: the playbook, its templates, the city and its renderer."""

    incident_id: str
    document: Mapping[str, Any]

    @cached_property
    def playbook(self) -> Playbook:
        """The playbook as it was at activation."""
        return Playbook.model_validate(self.document["playbook"])

    @cached_property
    def templates(self) -> TemplateLibrary:
        """The templates as they were at activation."""
        return TemplateLibrary({
            (key, lang): TemplateSource(key, lang, f"incident {self.incident_id}: {key}/{lang}.j2",
                                        text)
            for key, langs in self.document["templates"].items() for lang, text in langs.items()})

    @property
    def city(self) -> dict[str, str]:
        """The city values templates see."""
        return dict(self.document["city"])

    @cached_property
    def zone(self) -> ZoneInfo:
        """The city's time zone."""
        return ZoneInfo(self.document["timezone"])

    @cached_property
    def renderer(self) -> Renderer:
        """A renderer in the city's time zone."""
        return Renderer(self.zone)

    def step(self, step_id: str) -> Step:
        """The step with this id."""
        return next(s for s in self.playbook.steps if s.id == step_id)
