"""The LLM: an endpoint answers a tiny completion (with its latency); the bundled model is installed, and with
`--llm` started and timed (its start takes seconds to tens of seconds, so it is not done by default)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator

import openai

from bot.config import Settings
from bot.doctor.report import Check, fail, first_line, ok, warn

PROMPT = [{"role": "user", "content": "Reply with the word OK."}]


def _complete(client: openai.OpenAI, model: str) -> float:
    """Seconds one tiny completion took."""
    t0 = time.perf_counter()
    client.chat.completions.create(model=model, messages=PROMPT, max_tokens=5, temperature=0)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def _endpoint(settings: Settings, client: openai.OpenAI, model: str, where: str, setting: str) -> Check:
    try:
        s = _complete(client, model)
    except openai.AuthenticationError as e:
        return fail("llm", f"{where} refused the key (HTTP {e.status_code})", "set INCIBOT_OPENAI_API_KEY")
    except openai.NotFoundError:
        return fail("llm", f"{where} has no model {model!r} (HTTP 404)", f"correct {setting}")
    except openai.APIStatusError as e:
        return fail("llm", f"{where} answered HTTP {e.status_code}: {first_line(e, 120)}",
                    "check the endpoint's own logs; drafts are retrieval-only while it fails")  # fmt: skip
    except openai.APIError as e:  # connection refused, DNS, TLS, timeout
        return fail("llm", f"{where} unreachable: {first_line(e)}",
                    "start the server, or correct INCIBOT_OPENAI_BASE_URL / INCIBOT_AZURE_ENDPOINT")  # fmt: skip
    detail = f"{where}, model {model}: a 5-token completion in {s * 1000:.0f} ms"
    if s > settings.llm_timeout_s / 2:
        return warn("llm", detail, f"close to INCIBOT_LLM_TIMEOUT_S ({settings.llm_timeout_s:.0f} s): "
                    "a draft asks for far more tokens; use a faster endpoint or raise the timeout")  # fmt: skip
    return ok("llm", detail)


def checks(settings: Settings, run_local: bool = False) -> Iterator[Check]:
    timeout = min(settings.llm_timeout_s, 30.0)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if settings.llm_backend == "none":
        yield ok("llm", "off (INCIBOT_LLM_BACKEND=none): retrieval-only drafts")
    elif settings.llm_backend == "openai":
        if settings.openai_base_url is None and key is None:
            yield fail("llm", "OpenAI's API without a key",
                       "set INCIBOT_OPENAI_API_KEY, or INCIBOT_OPENAI_BASE_URL for another endpoint")  # fmt: skip
            return
        client = openai.OpenAI(base_url=settings.openai_base_url, api_key=key or "not-needed", timeout=timeout,
                               max_retries=0)  # fmt: skip
        where = settings.openai_base_url or "api.openai.com"
        yield _endpoint(settings, client, settings.openai_model, where, "INCIBOT_OPENAI_MODEL")
    elif settings.llm_backend == "azure":
        if not (settings.azure_endpoint and settings.azure_deployment):
            yield fail("llm", "llm_backend=azure without an endpoint and a deployment",
                       "set INCIBOT_AZURE_ENDPOINT and INCIBOT_AZURE_DEPLOYMENT")  # fmt: skip
            return
        azure = openai.AzureOpenAI(azure_endpoint=settings.azure_endpoint, azure_deployment=settings.azure_deployment,
                                   api_version=settings.azure_api_version, api_key=key or "not-needed",
                                   timeout=timeout, max_retries=0)  # fmt: skip
        yield _endpoint(settings, azure, settings.azure_deployment, settings.azure_endpoint,
                        "INCIBOT_AZURE_DEPLOYMENT")  # fmt: skip
    else:
        yield _local(settings, run_local)


def _local(settings: Settings, run: bool) -> Check:
    from bot.triage.llm import LLMConfigError, local_model_file, model_server_config
    from bot.triage.model_server import LocalModelServer, ModelServerError

    try:
        path = local_model_file(settings)
    except LLMConfigError as e:
        return fail("llm", f"bundled model: {e}", "run scripts/setup.sh, or set INCIBOT_LLM_BACKEND")
    if not path.is_file():
        return fail("llm", f"bundled model: no GGUF at {path}", "correct INCIBOT_LOCAL_MODEL_PATH")
    if importlib.util.find_spec("llama_cpp") is None:
        return fail("llm", "bundled model: llama-cpp-python is not installed",
                    "run scripts/setup.sh (it builds llama-cpp-python once), or set INCIBOT_LLM_BACKEND")  # fmt: skip
    size = f"{path.stat().st_size / 1e6:.0f} MB"
    if not run:
        return ok("llm", f"bundled model installed ({path.name}, {size}); not started: `incibot doctor --llm` "
                  "starts it and times a completion")  # fmt: skip
    server = LocalModelServer(model_server_config(settings))
    t0 = time.perf_counter()
    try:
        url = server.ensure_ready()
        started = time.perf_counter() - t0
        client = openai.OpenAI(
            base_url=url, api_key=server.api_key, timeout=settings.llm_timeout_s, max_retries=0
        )
        s = _complete(client, server.cfg.alias)
    except (ModelServerError, openai.APIError) as e:
        return fail("llm", f"bundled model did not answer: {first_line(e)}",
                    f"see {settings.data_dir / 'model-server.log'}; INCIBOT_LOCAL_SERVER_START_TIMEOUT_S")  # fmt: skip
    finally:
        server.stop()
    return ok(
        "llm",
        f"bundled model {path.name}: started in {started:.1f} s, a 5-token completion in {s * 1000:.0f} ms",
    )
