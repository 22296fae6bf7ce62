"""The labels of a submitted Correct modal (a ticket's, or a past incident's from `/triage label`), validated
once for both: what the engineer chose, or the errors Slack shows in the modal, which keeps everything typed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bot.delivery.slack import blocks
from bot.taxonomy import MITIGATION, Taxonomy
from bot.triage.mitigation import MitigationError, check_action


class LabelForm(BaseModel):
    labels: dict[str, list[str]] = Field(default_factory=dict)  # every field, and MITIGATION when given
    fix: str | None = None
    errors: dict[str, str] = Field(default_factory=dict)  # block_id -> message: ack(response_action="errors")


def read_labels(taxonomy: Taxonomy, view: dict[str, Any]) -> LabelForm:
    values = blocks.view_values(view)
    labels = {
        f: [values[f"label_{f}"]]
        for f in taxonomy.fields
        if taxonomy.is_valid(f, values.get(f"label_{f}", ""))
    }
    errors = {f"label_{f}": "Choose a value" for f in taxonomy.fields if f not in labels}
    if raw := values.get(MITIGATION):
        # The select offers only the vocabulary, but a modal opened before a vocabulary edit (or a forged
        # payload) can send another value: said in the modal, which keeps everything typed in it.
        try:
            labels[MITIGATION] = [check_action(taxonomy, raw)]
        except MitigationError as e:
            errors[MITIGATION] = str(e)[:300]
    return LabelForm(labels=labels, fix=values.get("fix") or None, errors=errors)
