"""The bundled model runs in its own supervised server process: its misconfiguration is an LLM outage, never a
bot outage, and the server answers as the library does in process. Every test here runs the real llama.cpp server
with the bundled SmolLM2. A crash or a hang of the running server: test_model_server_faults.py (two files, so that
the two xdist workers share them)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from bot.store.vectors import VectorStore
from bot.triage.llm import LocalServerChat, build_chat_model, llm_health
from bot.triage.model_server import ServerState
from bot.triage.pipeline import Triager
from testkit.emulators import SlackEmulator
from tests.helpers import accept, wait_until
from tests.triage.model_server_rig import TICKET, bot, final_update, health, ticket

pytestmark = pytest.mark.e2e


def test_the_model_runs_in_another_process_behind_the_openai_client(
    settings: Settings, store: VectorStore
) -> None:
    cfg = settings.model_copy(update={"llm_backend": "local"})
    model = build_chat_model(cfg)
    assert isinstance(model, LocalServerChat)
    draft = Triager(cfg, store, model).triage(TICKET)
    status = llm_health(model)
    assert draft.kind == "llm" and draft.llm.status in ("ok", "repaired"), draft.llm
    assert status is not None and status.state is ServerState.READY
    assert status.pid and status.pid != os.getpid()
    assert status.url and status.url.startswith("http://127.0.0.1:")
    assert draft.llm.model.endswith(".gguf") and draft.llm.prompt_tokens > 0


def test_a_taken_port_names_the_setting_to_change(settings: Settings, store: VectorStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = settings.model_copy(update={"llm_backend": "local", "local_server_port": port})
        model = build_chat_model(cfg)
        draft = Triager(cfg, store, model).triage(TICKET)
        assert draft.kind == "retrieval-only" and draft.llm.status == "unavailable"
        assert f"port 127.0.0.1:{port}" in (draft.llm.error or "")
        assert "INCIBOT_LOCAL_SERVER_PORT" in (draft.llm.error or "")
        status = llm_health(model)
        assert status is not None and status.state is ServerState.FAILED
        model.server.stop()  # type: ignore[attr-defined]


def demo(tmp_path: Path, model_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")}
    env |= {
        "INCIBOT_DATA_DIR": str(tmp_path / "data"),
        "INCIBOT_SEED_DEMO_HISTORY": "false",
        "INCIBOT_LOCAL_MODEL_PATH": str(model_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "demo"], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_missing_model_file_is_one_line_and_a_retrieval_only_draft(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    run = demo(tmp_path, missing)
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if "LLM unavailable" in ln]
    assert len(lines) == 1 and f"{missing} not found" in lines[0] and "INCIBOT_LOCAL_MODEL_PATH" in lines[0]
    assert "pip install -e .[local-llm]" in lines[0]
    assert "retrieval-only draft (LLM unavailable)" in run.stdout
    assert "Traceback" not in run.stderr + run.stdout


def test_a_corrupt_model_file_is_one_line_and_a_retrieval_only_draft(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(4096))
    run = demo(tmp_path, corrupt)
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if "LLM unavailable" in ln]
    assert len(lines) == 1 and "while starting" in lines[0], run.stderr
    assert "retrieval-only draft (LLM unavailable)" in run.stdout


def test_serve_says_in_one_line_that_the_model_cannot_start(
    tmp_path: Path, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="incibot.model_server")
    service, client = bot(tmp_path, slack, local_model_path=tmp_path / "missing.gguf")
    try:
        status = wait_until(lambda: (h := health(client))["state"] == "failed" and h, 30, "start failure")
        assert "missing.gguf not found" in status["last_error"]
        accept(service, ticket(1))
        text = json.dumps(final_update(service, slack, "generic:m-1")["blocks"])
        assert "Retrieval-only draft" in text and "missing.gguf not found" in text
        logged = [r.getMessage() for r in caplog.records if "local model server" in r.getMessage()]
        assert logged and all("\n" not in m for m in logged)
    finally:
        service.stop()
        service.triager.model.server.stop()  # type: ignore[union-attr]


def test_the_model_server_dies_with_a_killed_bot(tmp_path: Path) -> None:
    code = (
        "import os, sys, time\n"
        "from bot.config import Settings\n"
        "from bot.triage.llm import build_chat_model\n"
        f"m = build_chat_model(Settings(data_dir={str(tmp_path)!r}, llm_backend='local'))\n"
        "m.server.ensure_ready()\n"
        "print(m.server.status().pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    bot_proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        model_pid = int(bot_proc.stdout.readline())  # type: ignore[union-attr]
        os.kill(model_pid, 0)  # running
        bot_proc.kill()
        bot_proc.wait()
        with pytest.raises(ProcessLookupError):
            wait_until(lambda: os.kill(model_pid, 0) and False, 10, "model server gone")
    finally:
        bot_proc.kill()


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_the_installed_llama_build_has_no_avx512_or_amx_code() -> None:
    """The build setup.sh installs runs on every x86-64 machine of this kind: no AVX-512 (zmm) or AMX code."""
    import llama_cpp

    libs = sorted((Path(llama_cpp.__file__).parent / "lib").glob("*.so"))
    assert any(lib.name == "libggml-cpu.so" for lib in libs)
    for lib in libs:
        asm = subprocess.run(["objdump", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
        assert not re.search(r"%zmm\d|\btdpb\w+|\bldtilecfg\b", asm), f"{lib.name} holds AVX-512/AMX code"


def test_the_server_answers_exactly_as_the_library_does_in_process(
    settings: Settings, store: VectorStore
) -> None:
    """Same GGUF, same greedy decoding, same schema: the server's defaults must not change the answer (its
    default repeat penalty of 1.1 did: fewer valid JSON answers, worse labels)."""
    from llama_cpp import Llama

    cfg = settings.model_copy(update={"llm_backend": "local", "local_threads": 1})
    model = build_chat_model(cfg)
    triager = Triager(cfg, store, model)
    drafter = triager.drafter
    assert drafter is not None and isinstance(model, LocalServerChat)
    messages = drafter.messages(TICKET.body, triager.retrieve(TICKET).shown)
    served = drafter.runnable.invoke(messages).content
    role = {"system": "system", "human": "user"}
    llama = Llama(
        model_path=str(model.server.cfg.model_path), n_ctx=cfg.local_ctx, n_threads=1, seed=0, verbose=False
    )
    direct = llama.create_chat_completion(
        messages=[{"role": role[m.type], "content": str(m.content)} for m in messages],
        temperature=0.0,
        max_tokens=cfg.llm_max_tokens,
        response_format={"type": "json_object", "schema": drafter.schema},
        seed=0,
    )["choices"][0]["message"]["content"]
    assert served == direct
    drafter.parse(served)  # and it is a valid answer
