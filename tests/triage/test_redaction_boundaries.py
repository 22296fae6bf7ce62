"""Redaction at the boundaries: nothing planted in a ticket reaches an external LLM (an OpenAI-compatible emulator
on 127.0.0.1), and posts and the history show the ticket redacted."""

from __future__ import annotations

import json
from pathlib import Path

from bot.config import Settings
from bot.models import Ticket
from bot.store.vectors import VectorStore
from bot.triage.pipeline import Triager
from testkit.emulators import OpenAIEmulator, SlackEmulator
from tests.helpers import accept, corpus, external, make_service, top_level_posts, wait_until


def _escaped(value: str) -> set[str]:
    """The forms a value takes inside a JSON request body."""
    return {value, json.dumps(value)[1:-1]}


def test_no_planted_secret_or_personal_data_reaches_the_external_llm(
    settings: Settings, store: VectorStore, llm: OpenAIEmulator
) -> None:
    tickets = corpus("secrets")
    assert len(tickets) >= 50
    triager = Triager.from_settings(external(settings, llm), store)
    for t in tickets:
        draft = triager.triage(Ticket(id=t["id"], title=t["title"], text=t["text"]))
        assert draft.kind == "llm" and draft.redactions, t["id"]
    assert len(llm.bodies) == len(tickets)  # one request per ticket, each recorded
    planted = {p["value"] for t in tickets for p in t["planted"]}
    bodies = [b.decode() for b in llm.bodies]
    leaks = [(i, v) for i, body in enumerate(bodies) for v in planted if any(f in body for f in _escaped(v))]
    assert leaks == []
    # The ticket text did reach the endpoint, as placeholders.
    assert sum(b.decode().count("[EMAIL_") for b in llm.bodies) >= 5


def test_without_redaction_the_same_values_do_reach_it(
    settings: Settings, store: VectorStore, llm: OpenAIEmulator
) -> None:
    """Control: the check above would see a leak."""
    t = corpus("secrets")[0]
    Triager.from_settings(external(settings, llm, redact_for_external_llm=False), store).triage(
        Ticket(id=t["id"], title=t["title"], text=t["text"])
    )
    assert any(p["value"] in llm.bodies[0].decode() or json.dumps(p["value"])[1:-1] in llm.bodies[0].decode()
               for p in t["planted"])  # fmt: skip


def test_posts_and_history_show_the_ticket_redacted(tmp_path: Path, slack: SlackEmulator) -> None:
    service = make_service(tmp_path, slack)
    service.start()
    text = "Errors for tenant tnt-8f3a2b1c; customer jane@corp.example, key sk-proj-abcdefghijklmnop1234"
    accept(service, {"id": "r1", "title": "API 500s", "text": text, "service": "openai"})
    wait_until(lambda: top_level_posts(slack), what="post")
    service.stop()
    body = json.dumps(slack.calls)
    assert "jane@corp.example" not in body and "sk-proj-abcdefghijklmnop1234" not in body
    assert "[EMAIL_1]" in body and "[API_KEY_1]" in body
    resolve = {
        "id": "r1",
        "status": "resolved",
        "resolution": "Rotated key sk-proj-abcdefghijklmnop1234 and told jane@corp.example",
    }
    assert accept(service, resolve) == "resolved"
    stored = service.history.get(["generic:r1"])[0]
    assert "jane@corp.example" not in stored.model_dump_json() and "sk-proj" not in stored.model_dump_json()


def test_similar_incidents_reach_the_external_llm_redacted(
    settings: Settings, store: VectorStore, llm: OpenAIEmulator
) -> None:
    """History imported as written (a team's notes) is shown to the LLM in the prompt: redacted like the ticket."""
    from tests.conftest import incident

    key, mail = "sk-proj-abcdefghijklmnop1234", "oncall.lead@corp.example"
    store.upsert([incident(50, f"ChatGPT 500 errors, paged {mail}",
                           resolution=f"Rotated the key {key} and rolled back the deployment.")])  # fmt: skip
    draft = Triager.from_settings(external(settings, llm), store).triage(
        Ticket(id="t", title="ChatGPT 500 errors", text="Elevated 500 errors on ChatGPT")
    )
    body = llm.bodies[-1].decode()
    assert any(s.id == "h50" for s in draft.similar) and "rolled back the deployment" in body
    assert not any(f in body for v in (key, mail) for f in _escaped(v))
