"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) sending to `incibot`'s HTTP endpoint through
its own webhook receiver, with Bearer auth from its `http_config`, exactly as the README tells an operator to
configure it: fire, grow, resolve, fire again. Alerts are pushed to Alertmanager's API as Prometheus would."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from benchmarks.backends import free_port
from bot.server import build_server
from bot.service import TriageService
from testkit.emulators import SlackEmulator
from tests.helpers import last_edit, make_service, post_of, reply_count, rows_in, wait_until

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "am-bearer-token-0123456789"
pytestmark = pytest.mark.skipif(
    ALERTMANAGER is None, reason="prometheus-alertmanager not installed (scripts/system-deps.sh installs it)"
)

CONFIG = """
route:
  receiver: incibot
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: incibot
    webhook_configs:
      - url: {url}
        send_resolved: true
        max_alerts: 20
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""


@dataclass
class Setup:
    service: TriageService
    emu: SlackEmulator
    am: str  # Alertmanager's base URL


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("alertmanager")
    emu = SlackEmulator()
    # The bot accepts only Bearer for Alertmanager here, so a post proves Alertmanager's own auth header worked.
    service = make_service(tmp / "bot", emu, storm_similarity=1.01, webhook_token=TOKEN,
                           webhook_auth={"alertmanager": ["bearer"]})  # fmt: skip
    service.start()
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(build_server(service.settings, service, None), host="127.0.0.1", port=port,
                                       log_level="warning"))  # fmt: skip
    threading.Thread(target=uv.run, daemon=True).start()
    wait_until(lambda: uv.started, 30, "the bot's HTTP server")

    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    config = tmp / "alertmanager.yml"
    config.write_text(
        CONFIG.format(url=f"http://127.0.0.1:{port}/webhooks/alertmanager", token_file=token_file)
    )
    am_port = free_port()
    log = (tmp / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    am = f"http://127.0.0.1:{am_port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{am}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, (tmp / "alertmanager.log").read_text()[-2000:]
            return False

    wait_until(ready, 30, "Alertmanager to be ready")
    yield Setup(service, emu, am)
    proc.terminate()
    proc.wait(timeout=30)
    uv.should_exit = True
    service.stop()
    emu.close()


def push(am: str, *alerts: dict[str, Any]) -> None:
    """What Prometheus does: POST the alerts it evaluates to Alertmanager's API."""
    r = httpx.post(f"{am}/api/v2/alerts", json=list(alerts), timeout=10)
    assert r.status_code == 200, r.text


def alert(instance: str, starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {
        "labels": {"alertname": "InferenceErrorRate", "service": "inference", "severity": "critical",
                   "instance": instance},
        "annotations": {"summary": "Chat completions 5xx rate above 5%",
                        "description": f"5xx ratio 0.12 on {instance}",
                        "runbook_url": "https://runbooks.example/inference-errors"},
        "startsAt": starts.isoformat(),
        "generatorURL": "https://prometheus.example/graph?g0.expr=errors",
    }  # fmt: skip
    if ends is not None:
        a["endsAt"] = ends.isoformat()
    return a


def notifications(am: str, outcome: str) -> float:
    """Alertmanager's own count of webhook notifications (`total` or `failed`)."""
    metric = (
        "alertmanager_notifications_failed_total"
        if outcome == "failed"
        else "alertmanager_notifications_total"
    )
    for line in httpx.get(f"{am}/metrics", timeout=10).text.splitlines():
        if line.startswith(f'{metric}{{integration="webhook"') or line.startswith(
            f'{metric}{{integration="webhook",'
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_real_alertmanager_fires_grows_resolves_and_fires_again(setup: Setup) -> None:
    service, emu, am = setup.service, setup.emu, setup.am
    t0 = datetime.now(UTC)
    push(am, alert("gpu-a", t0))
    key = wait_until(lambda: next((r.key for r in rows_in(service.store, "posted", "drafted", "received",
                                  "posting") if r.key.startswith("alertmanager:")), None), 30, "the first post")  # fmt: skip
    post = json.dumps(post_of(emu, key)["blocks"])
    assert "Chat completions 5xx rate above 5%" in post
    assert "alertmanager says severity critical" in post
    assert "<https://runbooks.example/inference-errors|Runbook>" in post
    assert "<https://prometheus.example/graph?g0.expr=errors|Source>" in post

    push(am, alert("gpu-a", t0), alert("gpu-b", t0))  # the group grows: news in the thread, not a new post
    grown = reply_count(emu, key, 1)[0]
    assert grown["thread_ts"] == service.store.get(key).message_ts and "gpu-b" in json.dumps(grown["blocks"])

    now = datetime.now(UTC)
    push(am, alert("gpu-a", t0, now), alert("gpu-b", t0, now))  # resolved
    resolved = reply_count(emu, key, 2)[1]
    assert "resolved in Alertmanager" in json.dumps(resolved["blocks"])
    last_edit(emu, service, key, "Resolved in alertmanager")
    assert service.store.get(key).resolution is None  # Alertmanager's stock words are not a fix

    push(am, alert("gpu-a", datetime.now(UTC)))  # fires again after it resolved: a new ticket
    again = f"{key}#2"
    assert f"occurrence 2 (previous: `{key}`)" in json.dumps(post_of(emu, again)["blocks"])
    top = [p for p in emu.of("chat.postMessage") if not p.get("thread_ts")]
    assert len(top) == 2  # one post per occurrence, nothing else
    assert notifications(am, "failed") == 0 and notifications(am, "total") >= 4
