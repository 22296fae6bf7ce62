"""Mitigation playbooks: Markdown files with YAML front matter in `playbooks/`, editable by operators.

Front matter: id, title, applies_to (taxonomy field -> categories), first_check, signature; description and keywords
(in the words incident resolutions use) let `bot.triage.resolutions` match past resolutions to a playbook.
Body: a numbered list of steps; an indented line "Check: ..." under a step says how to confirm it worked.
"""

from __future__ import annotations

import re
from pathlib import Path

import frontmatter
from pydantic import BaseModel, Field, ValidationError

from bot.models import PlaybookStep

_STEP = re.compile(r"^\s*(\d+)[.)]\s+(.*)$")
_CHECK = re.compile(r"^\s*Check:\s*(.*)$", re.IGNORECASE)
FALLBACK_ID = "general-investigation"


class PlaybookError(ValueError):
    pass


class Playbook(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    description: str = ""
    keywords: list[str] = Field(default_factory=list)
    applies_to: dict[str, list[str]] = Field(default_factory=dict)
    first_check: str = ""
    # What the data shows when this playbook's case is the one ("only {model} in {region} fails"): the first step
    # uses it to tell two close hypotheses apart (bot/triage/first_step.py); placeholders are the ticket's entities.
    signature: str = ""
    steps: list[PlaybookStep] = Field(min_length=1)
    path: Path | None = None

    def match(self, labels: dict[str, str], weights: dict[str, float]) -> float:
        """How well the playbook fits decided labels: sum of the weights of fields whose label it lists."""
        return sum(weights.get(f, 0.0) for f, cats in self.applies_to.items() if labels.get(f) in cats)


def parse_steps(body: str) -> list[PlaybookStep]:
    steps: list[PlaybookStep] = []
    for line in body.splitlines():
        if m := _STEP.match(line):
            steps.append(PlaybookStep(action=m.group(2).strip()))
        elif (m := _CHECK.match(line)) and steps:
            steps[-1].check = m.group(1).strip()
        elif line.strip() and steps:
            # Continuation of a wrapped step or check line.
            last = steps[-1]
            if last.check:
                last.check += " " + line.strip()
            else:
                last.action += " " + line.strip()
    return steps


def load_playbook(path: Path) -> Playbook:
    try:
        post = frontmatter.load(str(path))
        return Playbook.model_validate({**post.metadata, "steps": parse_steps(post.content), "path": path})
    except (ValidationError, ValueError, OSError) as e:
        raise PlaybookError(f"playbook {path} is invalid: {e}") from e


class PlaybookLibrary:
    def __init__(self, playbooks: list[Playbook]) -> None:
        self.by_id = {p.id: p for p in playbooks}
        if len(self.by_id) != len(playbooks):
            raise PlaybookError("two playbooks share an id")

    @classmethod
    def load(cls, directory: Path) -> PlaybookLibrary:
        files = sorted(directory.glob("*.md"))
        if not files:
            raise PlaybookError(f"no playbooks (*.md) in {directory}")
        return cls([load_playbook(f) for f in files])

    @property
    def ids(self) -> list[str]:
        return list(self.by_id)

    def get(self, playbook_id: str) -> Playbook | None:
        return self.by_id.get(playbook_id)

    def fallback(self) -> Playbook:
        return self.by_id.get(FALLBACK_ID) or next(iter(self.by_id.values()))

    def describe(self) -> str:
        """Playbooks as prompt text: id, title and what they apply to."""
        lines = []
        for p in self.by_id.values():
            scope = "; ".join(f"{f}: {', '.join(c)}" for f, c in p.applies_to.items())
            lines.append(f"- {p.id}: {p.title} ({scope})")
        return "\n".join(lines)
