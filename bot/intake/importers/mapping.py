"""The operator's mapping from a source's own labels (PagerDuty priority and urgency, Opsgenie priority and tags,
a post-mortem's front matter) onto the taxonomy's fields.

    pagerduty:
      priority: {P1: {severity: sev1}, P2: {severity: sev2}}
      urgency: {high: {severity: sev2}}
    opsgenie:
      tags: {gpu: {root_cause: infrastructure}}

Per source, per key of the source, per value: the labels it gives. What is not listed maps nothing (no
default guesses: a wrong label teaches the classifier worse than none). The earlier key wins where two give the
same field. Checked against the taxonomy when loaded, so a typo is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from bot.intake.files import InputError
from bot.taxonomy import Taxonomy

# value -> {field: label}
ValueMap = dict[str, dict[str, str]]


class LabelMapping(BaseModel):
    sources: dict[str, dict[str, ValueMap]] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, taxonomy: Taxonomy) -> LabelMapping:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
        except yaml.YAMLError as e:
            raise InputError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e
        try:
            mapping = cls(sources=data)
        except ValidationError as e:
            raise InputError(
                f"{path}: expected source -> key -> value -> {{field: label}} ({e.errors()[0]['msg']})"
            ) from e
        if bad := mapping.unknown(taxonomy):
            raise InputError(f"{path}: the taxonomy '{taxonomy.name}' has no {bad[0]}; nothing was imported")
        return mapping

    def unknown(self, taxonomy: Taxonomy) -> list[str]:
        """'field x' or 'label y of field x' for each entry the taxonomy lacks."""
        bad = []
        for source, keys in self.sources.items():
            for key, values in keys.items():
                for value, labels in values.items():
                    for field, label in labels.items():
                        where = f"(mapping {source}.{key}.{value})"
                        if field not in taxonomy.label_fields:
                            bad.append(f"field {field!r} {where}")
                        elif not taxonomy.is_valid(field, label):
                            bad.append(f"label {label!r} in field {field!r} {where}")
        return bad

    def labels(self, source: str, pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        """The labels (key, value) pairs of a record map to, first wins per field; values match case-blind."""
        keys = self.sources.get(source, {})
        out: dict[str, list[str]] = {}
        for key, value in pairs:
            values = {v.casefold(): m for v, m in keys.get(key, {}).items()}
            for field, label in values.get(str(value).casefold(), {}).items():
                out.setdefault(field, [label])
        return out

    def label(self, source: str, key: str, value: str) -> str | None:
        """The severity a source's own severity value maps to (shown as the ticket's `sender_label`)."""
        return self.labels(source, [(key, value)]).get("severity", [None])[0]
