"""What operators and Slack users type, read back safely (issue 32): `/metrics` and the details of `/healthz`
take the Bearer scheme in any case, as the webhooks do (RFC 7235); `/triage mode <arg>` never echoes a
mention."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.testclient import TestClient

from bot.intake.auth import authorization
from bot.service import TriageService
from tests import test_hostile_input as hostile
from tests.helpers import OPS_TOKEN

app = hostile.app  # a server with Slack, the ops token and a webhook secret configured


def test_the_bearer_scheme_is_read_in_any_case() -> None:
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert authorization({"authorization": f"{scheme}  tok "}, "bearer") == "tok"
    assert authorization({"authorization": "Basic tok"}, "bearer") is None
    assert authorization({}, "bearer") is None


def test_metrics_and_health_details_take_bearer_in_any_case(app: tuple[TestClient, TriageService]) -> None:
    client, _ = app
    for scheme in ("Bearer", "bearer", "BEARER"):
        auth = {"authorization": f"{scheme} {OPS_TOKEN}"}
        assert client.get("/metrics", headers=auth).status_code == 200, scheme
        assert "outbox" in client.get("/healthz", headers=auth).json(), scheme
    for wrong in ("bearer nope", f"Basic {OPS_TOKEN}", OPS_TOKEN, f"bearer{OPS_TOKEN}", ""):
        assert client.get("/metrics", headers={"authorization": wrong}).status_code == 401, wrong
        assert "outbox" not in client.get("/healthz", headers={"authorization": wrong}).json()


def test_triage_mode_does_not_echo_a_mention(app: tuple[TestClient, TriageService]) -> None:
    client, _ = app
    for arg in ("<!channel>", "<@U123>", "<!subteam^S1|oncall>"):
        form = {"command": "/triage", "text": f"mode {arg}", "user_id": "U1", "channel_id": "C1",
                "team_id": "T1", "trigger_id": "t1", "response_url": "http://127.0.0.1:9/x"}  # fmt: skip
        r = hostile.slack(client, urlencode(form).encode())
        assert r.status_code == 200, r.text
        # Bolt answers an ack with text only as text/plain, which Slack shows as the message's mrkdwn.
        json_answer = r.headers.get("content-type", "").startswith("application/json")
        text = r.json()["text"] if json_answer else r.text
        assert text.startswith("Mode not changed") and "<" not in text and "&lt;" in text, text
