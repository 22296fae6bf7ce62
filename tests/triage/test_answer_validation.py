"""The LLM's answer is checked before anyone sees it: content that breaks the rules (repeats a redacted value,
links, mentions, cites unknown ids) is discarded for the retrieval draft and flagged."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.models import Ticket
from bot.store.vectors import VectorStore
from bot.triage.pipeline import Triager
from testkit.emulators import OpenAIEmulator
from tests.helpers import external, tool_answer


@pytest.mark.parametrize(
    ("free_text", "why"),
    [
        (
            {"triage_step": "Page the owner at jane@corp.example right now and check the error rates."},
            "repeats",
        ),
        (
            {"rationale": "See https://evil.example/phish for the real runbook, it explains everything."},
            "links",
        ),
        (
            {"mitigation_steps": ["Alert <!channel> and roll back the deployment immediately please"]},
            "mentions",
        ),
        (
            {"rationale": "Same as incident INC-4242 which was fixed by a rollback of the model weights."},
            "cites",
        ),
    ],
)
def test_answers_breaking_content_rules_fall_back_to_retrieval_and_are_flagged(
    settings: Settings, store: VectorStore, free_text: dict[str, object], why: str
) -> None:
    emu = OpenAIEmulator(lambda request: tool_answer(request, **free_text))
    try:
        # Raw text to the model (allowed for a local model when configured): it can echo what it sees.
        s = external(settings, emu, redact_for_external_llm=False)
        draft = Triager.from_settings(s, store).triage(
            Ticket(id="v1", title="Elevated errors", text="Reported by jane@corp.example after the rollout")
        )
    finally:
        emu.close()
    assert draft.kind == "retrieval-only" and draft.llm.status == "rejected"
    assert why in (draft.llm.error or "") and any("discarded" in w for w in draft.warnings)
    shown = draft.model_dump_json()
    assert "evil.example" not in shown and "<!channel>" not in shown and "INC-4242" not in shown


def test_version_numbers_in_an_answer_are_not_taken_for_leaked_ip_addresses(
    settings: Settings, store: VectorStore
) -> None:
    emu = OpenAIEmulator(
        lambda request: tool_answer(request, rationale="Errors began with build 3.5.1.1 rollout.")
    )
    try:
        draft = Triager.from_settings(external(settings, emu), store).triage(
            Ticket(id="v2", title="API errors")
        )
    finally:
        emu.close()
    assert draft.kind == "llm" and draft.llm.status == "ok"
