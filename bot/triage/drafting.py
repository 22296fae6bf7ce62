"""LLM drafting: prompt files + evidence -> structured answer constrained to the taxonomy and playbook ids.

Invalid output gets one repair attempt; transient endpoint errors are retried with tenacity; whatever still
fails comes back as a status, never an exception, so the pipeline can fall back to a retrieval-only draft.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import openai
import pybreaker
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from bot.config import Settings
from bot.models import Context, LLMUsage, SimilarIncident
from bot.retrying import wait_retry_after
from bot.taxonomy import Taxonomy
from bot.telemetry import describe
from bot.triage.llm import model_label
from bot.triage.playbooks import PlaybookLibrary

TRANSIENT = (
    openai.APIConnectionError,
    openai.APITimeoutError,
    openai.RateLimitError,
    openai.InternalServerError,
    httpx.TransportError,
)
PROMPT_TICKET_CHARS = 2000
PROMPT_RESOLUTION_CHARS = 240
_TAG = re.compile(r"</?\s*(?:ticket|context)\s*>", re.IGNORECASE)
CONTEXT_ITEMS = 5  # changes, alerts and moved signals each, in the prompt


class Prompts(BaseModel):
    system: str
    triage: str
    repair: str

    @classmethod
    def load(cls, directory: Path) -> Prompts:
        missing = [n for n in ("system", "triage", "repair") if not (directory / f"{n}.md").is_file()]
        if missing:
            raise FileNotFoundError(
                f"prompt files missing in {directory}: {', '.join(m + '.md' for m in missing)}"
            )
        return cls(
            **{n: (directory / f"{n}.md").read_text(encoding="utf-8") for n in ("system", "triage", "repair")}
        )


def answer_model(taxonomy: Taxonomy, playbook_ids: list[str]) -> type[BaseModel]:
    """The answer schema, built from the taxonomy so the model cannot leave it."""
    fields: dict[str, Any] = {}
    for name, f in taxonomy.fields.items():
        choice = Literal[tuple(f.ids)]
        fields[name] = (
            Annotated[list[choice], Field(min_length=1, max_length=3)] if f.multi_label else choice,
            ...,
        )
    fields["playbook"] = (Literal[tuple(playbook_ids)], ...)
    # Bounded text keeps the whole answer inside llm_max_tokens even when a small model degenerates into one
    # token per character (a cut-off answer is invalid JSON): at most ~600 characters of free text.
    fields["triage_step"] = (Annotated[str, StringConstraints(min_length=1, max_length=200)], ...)
    fields["mitigation_steps"] = (
        Annotated[list[Annotated[str, StringConstraints(max_length=120)]], Field(max_length=2)],
        ...,
    )
    fields["rationale"] = (Annotated[str, StringConstraints(max_length=160)], ...)
    return create_model("TriageAnswer", __config__=ConfigDict(extra="forbid"), **fields)


def format_similar(similar: list[SimilarIncident]) -> str:
    if not similar:
        return "(none found)"
    lines = []
    for n, s in enumerate(similar, 1):
        labels = ", ".join(f"{f}={'/'.join(v)}" for f, v in s.labels.items() if v) or "unlabelled"
        fix = " ".join(s.resolution.split())[:PROMPT_RESOLUTION_CHARS] or "not recorded"
        lines.append(f"[{n}] similarity {s.score:.2f}: {s.title} | labels: {labels} | fixed by: {fix}")
    return "\n".join(lines)


def format_context(context: Context | None) -> str:
    """What the bot looked up around the ticket (changes, what else fires, what the metrics did), as plain lines for
    the prompt: data between <context> tags, which nothing inside can close (a change summary is a sender's text)."""
    if context is None:
        return "(not looked up)"
    out = []
    if context.service:
        changes = "; ".join(f"{r.change.describe()}, {r.minutes_before:.0f} min before the ticket"
                            for r in context.changes[:CONTEXT_ITEMS])  # fmt: skip
        out.append(f"Recent changes to {context.service}: "
                   + (changes or f"none in the {context.window_min:.0f} min before the ticket"))  # fmt: skip
    if context.concurrent:
        out.append("Also firing: " + "; ".join(f"{s.title[:120]} (since {s.since:%H:%M})"
                                               for s in context.concurrent[:CONTEXT_ITEMS]))  # fmt: skip
    if (t := context.telemetry) is not None:
        moved = [describe(m, t.ticket_at) for m in t.moved[:CONTEXT_ITEMS]]
        out.append("Metrics that moved, earliest first: " + "; ".join(moved) if moved
                   else f"Metrics: nothing moved in {t.read} signals read")  # fmt: skip
    return _TAG.sub("[tag removed]", "\n".join(out)) if out else "(nothing recorded)"


def delimit_ticket(text: str) -> str:
    """Ticket text as inert data: our delimiter tags cannot be closed from inside it."""
    return _TAG.sub("[tag removed]", text)[:PROMPT_TICKET_CHARS]


@dataclass
class DraftResult:
    answer: BaseModel | None
    usage: LLMUsage


class Drafter:
    def __init__(
        self,
        settings: Settings,
        model: BaseChatModel,
        taxonomy: Taxonomy,
        playbooks: PlaybookLibrary,
        prompts: Prompts,
    ) -> None:
        self.settings = settings
        self.model = model
        self.taxonomy = taxonomy
        self.schema_model = answer_model(taxonomy, playbooks.ids)
        self.schema = self.schema_model.model_json_schema()
        self.keys = ", ".join(self.schema_model.model_fields)
        self.prompts = prompts
        self.system = prompts.system.format(taxonomy=taxonomy.describe(), playbooks=playbooks.describe())
        self.runnable = self._structured(model)
        # After `llm_breaker_failures` tickets in a row whose calls all failed, stop calling the endpoint for
        # `llm_breaker_reset_s`: tickets get their retrieval-only draft at once instead of waiting out retries.
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=settings.llm_breaker_failures, reset_timeout=settings.llm_breaker_reset_s
        )

    def _structured(self, model: BaseChatModel) -> Any:
        method = self.settings.structured_method
        if method == "json_object_schema":
            return model.bind(response_format={"type": "json_object", "schema": self.schema})
        if method == "json_schema":
            return model.bind(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "triage", "schema": self.schema},
                }
            )
        if method == "json_mode":
            return model.bind(response_format={"type": "json_object"})
        tool = {
            "type": "function",
            "function": {"name": "triage", "description": "Record the triage.", "parameters": self.schema},
        }
        return model.bind_tools([tool], tool_choice="triage")

    def messages(
        self, ticket_text: str, similar: list[SimilarIncident], context: str = "(not looked up)"
    ) -> list[BaseMessage]:
        human = self.prompts.triage.format(
            similar=format_similar(similar),
            ticket=delimit_ticket(ticket_text),
            keys=self.keys,
            context=context,
        )
        return [SystemMessage(self.system), HumanMessage(human)]

    def _invoke(self, messages: list[BaseMessage]) -> AIMessage:
        @retry(
            retry=retry_if_exception_type(TRANSIENT),
            stop=stop_after_attempt(self.settings.llm_retries),
            wait=wait_retry_after(max_s=8),
            reraise=True,
        )
        def call() -> AIMessage:
            return self.runnable.invoke(messages)

        return self.breaker.call(call)

    @staticmethod
    def _payload(msg: AIMessage) -> str:
        """The JSON text of an answer, wherever the method put it (content or a tool call)."""
        if msg.tool_calls:
            return json.dumps(msg.tool_calls[0]["args"])
        if msg.invalid_tool_calls:
            return str(msg.invalid_tool_calls[0].get("args") or "")
        return msg.content if isinstance(msg.content, str) else json.dumps(msg.content)

    def parse(self, text: str) -> BaseModel:
        # Some endpoints wrap JSON in a Markdown fence even in JSON mode.
        cleaned = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", text.strip())
        return self.schema_model.model_validate_json(cleaned)

    def draft(
        self, ticket_text: str, similar: list[SimilarIncident], context: str = "(not looked up)"
    ) -> DraftResult:
        """`context`: `format_context`'s lines (redacted by the caller where the LLM is external)."""
        usage = LLMUsage(model=model_label(self.model))
        t0 = time.perf_counter()
        messages = self.messages(ticket_text, similar, context)
        try:
            for attempt in (1, 2):
                usage.attempts = attempt
                msg = self._invoke(messages)
                tokens = msg.usage_metadata or {}
                usage.prompt_tokens += tokens.get("input_tokens", 0)
                usage.completion_tokens += tokens.get("output_tokens", 0)
                text = self._payload(msg)
                try:
                    answer = self.parse(text)
                    usage.status = "ok" if attempt == 1 else "repaired"
                    return DraftResult(answer, usage)
                except ValidationError as e:
                    error = _short_error(e)
                    usage.error = error
                    repair = self.prompts.repair.format(error=error, previous=text[:2000], keys=self.keys)
                    messages = [*messages, AIMessage(text[:2000]), HumanMessage(repair)]
            usage.status = "invalid"
            return DraftResult(None, usage)
        except pybreaker.CircuitBreakerError:
            usage.status = "unavailable"
            usage.error = (
                f"circuit open: the LLM endpoint failed for {self.breaker.fail_counter} tickets in a row; "
                f"next try within {self.settings.llm_breaker_reset_s:.0f} s"
            )
            return DraftResult(None, usage)
        except Exception as e:  # an unreachable or failing endpoint must not lose the ticket
            usage.status = "unavailable"
            usage.error = f"{type(e).__name__}: {e}"[:300]
            return DraftResult(None, usage)
        finally:
            usage.latency_s = time.perf_counter() - t0


def _short_error(e: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, err['loc'])) or 'answer'}: {err['msg']}" for err in e.errors()[:5]]
    return "; ".join(parts)
