"""Incident taxonomies as data: loaded from YAML, used to constrain and validate every label."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from bot.fileio import read_yaml

MITIGATION = "mitigation"  # the label name of the mitigation action in labelled incidents and verdicts


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message says which file and why."""


class Category(BaseModel):
    title: str = ""
    description: str = ""


class LabelField(BaseModel):
    title: str = ""
    description: str = ""
    multi_label: bool = False
    ordinal: bool = False  # categories listed from most to least severe
    categories: dict[str, Category]

    @model_validator(mode="after")
    def _non_empty(self) -> LabelField:
        if not self.categories:
            raise ValueError("a field needs at least one category")
        return self

    @property
    def ids(self) -> list[str]:
        return list(self.categories)


class Mitigation(Category):
    """A mitigation action: how an incident was fixed. `keywords` are generic phrases of status pages and reviews
    ("rolled back the deployment") that say it was done; `playbooks` the playbook ids it maps to."""

    keywords: list[str] = Field(default_factory=list)
    playbooks: list[str] = Field(default_factory=list)


class MitigationField(LabelField):
    """The `mitigation:` section: a label field the decision stage does not predict (yet); it is read off past
    incidents (labels, verdicts, resolution text)."""

    categories: dict[str, Mitigation]  # type: ignore[assignment]


class PrivacyRule(BaseModel):
    symptom: str | None = None
    severity: str | None = None
    playbook: str = "privacy-incident-response"
    patterns: list[str] = Field(default_factory=list)


class Taxonomy(BaseModel):
    name: str
    description: str = ""
    fields: dict[str, LabelField]
    # Kept out of `fields` on purpose: everything that iterates `fields` (the LLM's schema and prompt, training, the
    # decision, the Correct modal's label selects, the eval's per-field scores) would start predicting it.
    mitigation: MitigationField | None = None
    privacy: PrivacyRule | None = None
    # Optional: normalisation of raw label spellings found in a dataset (typos, case) to category ids.
    aliases: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Optional: how categories read in the default GenAI taxonomy that playbooks are written in.
    maps_to_default: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Why-now evidence: words that make a concurrent ticket's title a `resource` or `quality` alert (lower case,
    # first match wins; others are `other`). Their worth is learned from verdicts (bot/triage/evidence.py).
    evidence_alerts: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mitigation_name(self) -> Taxonomy:
        if self.mitigation is not None and MITIGATION in self.fields:
            raise ValueError(f"{MITIGATION!r} is both a label field and the mitigation section: keep one")
        return self

    @property
    def label_fields(self) -> dict[str, LabelField]:
        """Every field a labelled incident may carry: the predicted fields and the mitigation action."""
        return {**self.fields, MITIGATION: self.mitigation} if self.mitigation else dict(self.fields)

    def playbooks_for(self, action: str) -> list[str]:
        """The playbooks a mitigation action maps to ([] if none is declared or the action is unknown)."""
        m = self.mitigation.categories.get(action) if self.mitigation else None
        return list(m.playbooks) if m else []

    def unknown_playbooks(self, known: list[str]) -> list[str]:
        """'action -> playbook' pairs naming a playbook that is not in `known` (for a warning at load time)."""
        cats = self.mitigation.categories if self.mitigation else {}
        return [f"{a} -> {p}" for a, m in cats.items() for p in m.playbooks if p not in known]

    @model_validator(mode="after")
    def _privacy_refs(self) -> Taxonomy:
        p = self.privacy
        if p:
            if (
                p.symptom
                and p.symptom not in self.fields.get("symptom", LabelField(categories={"x": {}})).ids
            ):
                raise ValueError(f"privacy.symptom {p.symptom!r} is not a symptom category")
            if (
                p.severity
                and p.severity not in self.fields.get("severity", LabelField(categories={"x": {}})).ids
            ):
                raise ValueError(f"privacy.severity {p.severity!r} is not a severity category")
            for pat in p.patterns:
                re.compile(pat)
        return self

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        path = Path(path)
        data = read_yaml(path, "taxonomy file", TaxonomyError)
        try:
            return cls.model_validate(data)
        except (ValidationError, re.error) as e:
            raise TaxonomyError(f"taxonomy file {path} is invalid: {e}") from e

    @cached_property
    def privacy_regexes(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in (self.privacy.patterns if self.privacy else [])]

    def privacy_match(self, text: str) -> str | None:
        """The matched phrase if the text suggests personal-data exposure (intake's priority, triage's override)."""
        for rx in self.privacy_regexes:
            if m := rx.search(text):
                return m.group(0)
        return None

    def is_valid(self, field: str, label: str) -> bool:
        f = self.label_fields.get(field)
        return f is not None and label in f.categories

    def normalise(self, field: str, raw: str) -> str | None:
        """Map a raw label spelling to a category id, or None if it is not one (unknown, empty)."""
        raw = raw.strip()
        if not raw:
            return None
        f = self.label_fields[field]
        alias = self.aliases.get(field, {})
        for candidate in (raw, alias.get(raw), alias.get(raw.upper()), raw.lower(), raw.upper()):
            if candidate and candidate in f.categories:
                return candidate
        return None

    def to_default(self, field: str, label: str) -> str:
        """The label in the default taxonomy's vocabulary (itself if no mapping is declared)."""
        return self.maps_to_default.get(field, {}).get(label, label)

    def describe(self) -> str:
        """The taxonomy as text for a prompt: one line per category."""
        lines: list[str] = []
        for name, f in self.fields.items():
            lines.append(f"{name} ({f.title}): {f.description}")
            lines.extend(f"  - {cid}: {c.title}. {c.description}".rstrip() for cid, c in f.categories.items())
        return "\n".join(lines)
