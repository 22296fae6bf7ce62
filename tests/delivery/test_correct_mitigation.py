"""The Correct modal's "what fixed it" action: offered from the taxonomy's vocabulary, stored with the verdict's
labels, refused in the modal when outside the vocabulary, and read back as that past incident's action."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from bot.delivery.slack.app import build_app
from bot.server import build_server
from bot.taxonomy import MITIGATION
from bot.triage.mitigation import MitigationExtractor
from testkit.emulators import SlackEmulator
from tests.helpers import OPS, accept, make_service, wait_until


def signed(http: TestClient, payload: dict[str, Any]) -> Any:
    body, stamp = urlencode({"payload": json.dumps(payload)}), str(int(time.time()))
    sig = SignatureVerifier("s").generate_signature(timestamp=stamp, body=body)  # make_service's secret
    return http.post("/slack/events", content=body, headers={"content-type": "application/x-www-form-urlencoded",
                                                             "x-slack-request-timestamp": stamp, "x-slack-signature": sig})  # fmt: skip


def submission(key: str, action: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "label_symptom": {"value": {"selected_option": {"value": "errors"}}},
        "label_root_cause": {"value": {"selected_option": {"value": "deployment"}}},
        "label_severity": {"value": {"selected_option": {"value": "sev2"}}},
        "fix": {"value": {"value": "Rolled back build 4.2 in East US."}},
    }
    if action is not None:
        values[MITIGATION] = {"value": {"selected_option": {"value": action}}}
    return {"type": "view_submission", "user": {"id": "UBOB"}, "team": {"id": "T1"}, "api_app_id": "A1",
            "view": {"id": "V1", "type": "modal", "callback_id": "correct_submit", "private_metadata": key,
                     "state": {"values": values}}}  # fmt: skip


def test_the_correct_modal_asks_what_fixed_it_and_stores_it_with_the_verdict(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)
    service.start()
    http = TestClient(build_server(service.settings, service, build_app(service.settings, service.client, service)),
                      headers=OPS)  # fmt: skip
    try:
        assert (
            accept(
                service, {"id": "m-1", "title": "5xx on chat completions after deploy", "service": "openai"}
            )
            == "accepted"
        )
        key = "generic:m-1"
        row = wait_until(lambda: (x := service.store.get(key)) and x.message_ts and x, 60, "the post")
        click = {"type": "block_actions", "user": {"id": "UBOB"}, "team": {"id": "T1"}, "api_app_id": "A1",
                 "trigger_id": "trig-1", "channel": {"id": row.channel},
                 "container": {"type": "message", "message_ts": row.message_ts, "channel_id": row.channel},
                 "actions": [{"action_id": "correct", "block_id": "feedback", "value": key, "type": "button"}]}  # fmt: skip
        assert signed(http, click).status_code == 200
        view = wait_until(lambda: slack.of("views.open"), 30, "the modal")[0]["view"]
        block = next(b for b in view["blocks"] if b["block_id"] == MITIGATION)
        assert block["optional"] and block["element"]["type"] == "static_select"
        assert [o["value"] for o in block["element"]["options"]] == service.triager.taxonomy.mitigation.ids

        # A value outside the vocabulary (a modal opened before a vocabulary edit): said in the modal, nothing stored.
        r = signed(http, submission(key, "teleport"))
        assert r.json()["response_action"] == "errors"
        assert "unknown mitigation action 'teleport': use one of rollback" in r.json()["errors"][MITIGATION]
        assert service.store.feedback_for(key) == []

        assert signed(http, submission(key, "rollback")).status_code == 200
        fb = service.store.feedback_for(key)[-1]
        assert fb.labels is not None and fb.labels[MITIGATION] == ["rollback"] and fb.fix
        # the verdict is that past incident's action from now on
        inc = wait_until(lambda: next((h.incident for h in service.history.search("5xx on chat completions", 5)
                                       if h.incident.id == key), None), 30, "the history")  # fmt: skip
        fix = MitigationExtractor(service.triager.taxonomy).of_history([inc])[0]
        assert fix is not None and (fix.action, fix.source) == ("rollback", "verdict")

        assert signed(http, submission(key, None)).status_code == 200  # the action is optional
        assert MITIGATION not in (service.store.feedback_for(key)[-1].labels or {})
    finally:
        service.stop()
