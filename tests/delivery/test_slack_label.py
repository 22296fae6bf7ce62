"""`/triage label [n]`: the past incidents active learning picks, listed in Slack with the classifier's guess and a
Label button that opens the Correct modal for that history incident; its submission writes the labels into the
history (read back from the real embedded Chroma) and asks for a retraining. Signed requests into the real
slack-bolt HTTP path, the strict Slack emulator on 127.0.0.1 (response URLs included).

The interaction payloads follow Slack's reference: a slash command's form fields
(https://api.slack.com/interactivity/slash-commands#app_command_handling), `block_actions` from an ephemeral
message (https://api.slack.com/reference/interaction-payloads/block-actions: `container.is_ephemeral`, no
`message`), `view_submission` (https://api.slack.com/reference/interaction-payloads/views), whose `view` is the
modal the bot opened, with the state of its inputs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient

from bot.delivery.slack import blocks
from bot.delivery.slack.app import build_app
from bot.models import HistoricalIncident, LabelBatch
from bot.server import build_server
from bot.service import TriageService
from bot.store.factory import open_history
from bot.taxonomy import MITIGATION
from testkit.emulators import SlackEmulator
from tests.conftest import SMALL_HISTORY, incident
from tests.helpers import OPS, make_service

TEXTS = {
    "errors": ("deployment", "Elevated 500 errors on chat completions, failing requests"),
    "latency": ("external_traffic", "Slow responses and timeouts on the completions API, high latency"),
    "unavailability": ("infrastructure", "Service down and unreachable, login failures for all users"),
}
HOSTILE = incident(
    90,
    "<!channel> Outage <@U0ADMIN>",
    "Click <https://evil.example|here> & <!here> now: 500 errors everywhere",
)
PARTIAL = incident(91, "Timeouts on embeddings", "Slow embeddings, timeouts for batch jobs",
                   labels={"severity": ["sev3"], "team": ["search"]})  # fmt: skip


def history() -> list[HistoricalIncident]:
    """30 labelled incidents of three kinds (enough to train a classifier), 4 unlabelled, a hostile one, and one
    with some labels (severity and a label outside the taxonomy) but not the others."""
    out = []
    for i in range(34):
        kind = list(TEXTS)[i % 3]
        cause, text = TEXTS[kind]
        labels = {"symptom": [kind], "root_cause": [cause], "severity": ["sev2"]} if i < 30 else {}
        out.append(incident(20 + i, f"{kind} incident {i}", f"{text} (region {i % 5})", labels=labels))
    return [*out, HOSTILE, PARTIAL]


class Slack:
    """The bot's HTTP server and Slack, as Slack calls it: signed slash commands and interactions."""

    def __init__(self, service: TriageService, emu: SlackEmulator) -> None:
        self.service, self.emu = service, emu
        app = build_app(service.settings, service.client, service)
        self.http = TestClient(build_server(service.settings, service, app), headers=OPS)
        self.responses = 0

    def post(self, body: str) -> Any:
        stamp = str(int(time.time()))
        sig = SignatureVerifier("s").generate_signature(timestamp=stamp, body=body)  # make_service's secret
        return self.http.post("/slack/events", content=body, headers={"content-type": "application/x-www-form-urlencoded",
                                                                      "x-slack-request-timestamp": stamp, "x-slack-signature": sig})  # fmt: skip

    def command(self, text: str) -> tuple[Any, str]:
        """`/triage <text>`: Slack's answer and the response URL's method name in the emulator."""
        self.responses += 1
        method = f"respond/label-{self.responses}"
        form = {"token": "x", "team_id": "T1", "team_domain": "acme", "channel_id": "C1", "channel_name": "incidents",
                "user_id": "UALICE", "user_name": "alice", "command": "/triage", "text": text, "api_app_id": "A1",
                "is_enterprise_install": "false", "response_url": self.emu.url.replace("/api/", f"/{method}"),
                "trigger_id": f"trig-cmd-{self.responses}"}  # fmt: skip
        return self.post(urlencode(form)), method

    def click(self, incident_id: str) -> Any:
        payload = {"type": "block_actions", "user": {"id": "UBOB", "username": "bob", "name": "bob", "team_id": "T1"},
                   "api_app_id": "A1", "token": "x", "trigger_id": f"trig-label-{incident_id}",
                   "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1", "is_ephemeral": True},
                   "team": {"id": "T1", "domain": "acme"}, "enterprise": None, "is_enterprise_install": False,
                   "channel": {"id": "C1", "name": "incidents"}, "state": {"values": {}},
                   "response_url": self.emu.url.replace("/api/", "/respond/click"),
                   "actions": [{"action_id": blocks.LABEL, "block_id": "label-0", "value": incident_id, "type": "button",
                                "text": {"type": "plain_text", "text": "Label", "emoji": True},
                                "action_ts": "1700000001.000200"}]}  # fmt: skip
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def submit(self, view: dict[str, Any], chosen: dict[str, str], fix: str = "") -> Any:
        """The modal `view` (as opened) submitted with `chosen` (block_id -> option value) and the free-text fix."""
        values: dict[str, Any] = {b: {"value": {"type": "static_select", "selected_option": {
            "text": {"type": "plain_text", "text": v}, "value": v}}} for b, v in chosen.items()}  # fmt: skip
        values["fix"] = {"value": {"type": "plain_text_input", "value": fix or None}}
        payload = {"type": "view_submission", "team": {"id": "T1", "domain": "acme"},
                   "user": {"id": "UBOB", "username": "bob", "name": "bob", "team_id": "T1"}, "api_app_id": "A1",
                   "token": "x", "trigger_id": "trig-submit", "is_enterprise_install": False, "response_urls": [],
                   "view": {**view, "id": "V1", "team_id": "T1", "hash": "1700000002.abc", "state": {"values": values}}}  # fmt: skip
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def response(self, method: str) -> dict[str, Any]:
        return self.emu.wait_for(lambda: self.emu.of(method), 120)[0]

    def opened(self, n: int) -> dict[str, Any]:
        """The n-th modal (or notice) the bot opened, 1-based."""
        return self.emu.wait_for(
            lambda: len(self.emu.of("views.open")) >= n and self.emu.of("views.open"), 30
        )[n - 1]["view"]


@pytest.fixture
def bot(tmp_path: Path, slack: SlackEmulator) -> Iterator[Slack]:
    service = make_service(tmp_path, slack)
    service.history.upsert(history())
    service.start()
    try:
        yield Slack(service, slack)
    finally:
        service.stop()


def stored(service: TriageService, incident_id: str) -> HistoricalIncident | None:
    """The incident as the real embedded Chroma store holds it, read through a client of its own."""
    return next(iter(open_history(service.settings).get([incident_id])), None)


def test_label_lists_the_batch_opens_the_modal_and_writes_the_history(
    bot: Slack, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, chosen_n = bot.service, []
    real = service.to_label

    def slow(n: int) -> LabelBatch:  # reading the history and fitting the classifiers can take seconds
        chosen_n.append(n)
        time.sleep(4)
        return real(n)

    monkeypatch.setattr(service, "to_label", slow)
    t0 = time.perf_counter()
    r, method = bot.command("label 10")
    assert r.status_code == 200 and time.perf_counter() - t0 < 3.0  # acknowledged before the batch is chosen
    assert "Choosing past incidents to label" in r.text
    reply = bot.response(method)
    assert chosen_n == [10] and reply["response_type"] == "ephemeral"
    # every unlabelled incident with a field missing: the 4 without labels, the hostile one, the partial one
    buttons = [
        b["accessory"] for b in reply["blocks"] if b.get("accessory", {}).get("action_id") == blocks.LABEL
    ]
    ids = {b["value"] for b in buttons}
    assert ids == {f"h{20 + i}" for i in range(30, 34)} | {HOSTILE.id, PARTIAL.id}
    assert (
        reply["text"] == "Label these 6 past incidents"
        and "Label these 6 past incidents" in reply["blocks"][0]["text"]["text"]
    )
    shown = json.dumps(reply["blocks"])
    assert (
        "Guess:" in shown and "%" in shown and "region" in shown
    )  # the classifier's guess beside the excerpt
    assert "2024-" in shown and "service *openai*" in shown
    # ticket text is attacker-controlled: no mention, broadcast or link reaches Slack
    for raw in ("<!channel>", "<!here>", "<@U0ADMIN>", "<https://evil"):
        assert raw not in shown
    assert "&lt;!channel&gt; Outage &lt;@U0ADMIN&gt;" in shown and "&lt;!here&gt;" in shown
    assert bot.emu.refused() == []

    # Label: the Correct modal for that history incident, its labels so far preselected
    trainings: list[int] = []
    monkeypatch.setattr(service.triager.trainer, "request", lambda: trainings.append(1))
    assert bot.click(PARTIAL.id).status_code == 200
    view = bot.opened(1)
    assert view["callback_id"] == blocks.LABEL_SUBMIT and view["private_metadata"] == f"history:{PARTIAL.id}"
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert {"label_symptom", "label_root_cause", "label_severity", MITIGATION, "fix"} <= set(inputs)
    assert inputs["label_severity"]["element"]["initial_option"]["value"] == "sev3"
    assert "initial_option" not in inputs["label_symptom"]["element"]
    assert "Timeouts on embeddings" in json.dumps(view["blocks"][0])

    # an invalid label: said in the modal (which keeps what was typed), nothing written
    answer = {
        "label_symptom": "latency",
        "label_root_cause": "nonsense",
        "label_severity": "sev3",
        MITIGATION: "rollback",
    }
    r = bot.submit(view, answer, fix="Raised the pool size")
    assert r.json() == {"response_action": "errors", "errors": {"label_root_cause": "Choose a value"}}
    r = bot.submit(view, answer | {"label_root_cause": "external_traffic", MITIGATION: "teleport"})
    assert r.json()["response_action"] == "errors"
    assert "unknown mitigation action 'teleport'" in r.json()["errors"][MITIGATION]
    assert stored(service, PARTIAL.id).labels == PARTIAL.labels and trainings == []

    r = bot.submit(view, answer | {"label_root_cause": "external_traffic"}, fix="Raised the pool size")
    assert r.status_code == 200 and r.json()["response_action"] == "update"
    assert "labelled by <@UBOB>" in json.dumps(r.json()["view"])
    inc = stored(service, PARTIAL.id)
    assert inc is not None and inc.labels == {"severity": ["sev3"], "team": ["search"], "symptom": ["latency"],
                                              "root_cause": ["external_traffic"], MITIGATION: ["rollback"]}  # fmt: skip
    assert inc.labelled_by == "slack:UBOB" and inc.source == PARTIAL.source  # the sender stays the sender
    assert inc.resolution.startswith("Raised the pool size") and PARTIAL.resolution in inc.resolution
    assert inc.text == PARTIAL.text and trainings == [1]  # a retraining asked for, as a verdict does

    # the next batch no longer asks about it
    r, method = bot.command("label")
    assert PARTIAL.id not in {
        b["accessory"]["value"] for b in bot.response(method)["blocks"] if "accessory" in b
    }
    assert chosen_n[-1] == blocks.LABEL_DEFAULT
    assert bot.emu.refused() == []


def test_an_incident_gone_from_the_history_is_said_so_and_nothing_is_written(bot: Slack) -> None:
    service = bot.service
    assert bot.click("h-deleted").status_code == 200
    notice = bot.opened(1)
    assert "no longer in the history" in json.dumps(notice) and "submit" not in notice
    # a modal opened before the incident was deleted, then submitted
    assert bot.click(HOSTILE.id).status_code == 200
    view = bot.opened(2)
    service.history.collection.delete(ids=[HOSTILE.id])
    before = service.history.count()
    answer = {"label_symptom": "errors", "label_root_cause": "deployment", "label_severity": "sev2"}
    r = bot.submit(view, answer)
    assert r.json()["response_action"] == "update" and "no longer in the history" in json.dumps(
        r.json()["view"]
    )
    assert service.history.count() == before and stored(service, HOSTILE.id) is None
    # a submission whose metadata names no history incident (forged): acknowledged, nothing done
    r = bot.submit(view | {"private_metadata": HOSTILE.id}, answer)
    assert r.status_code == 200 and not r.content and service.history.count() == before


def test_history_store_down_the_answer_is_refused_so_it_can_be_submitted_again(bot: Slack) -> None:
    service = bot.service
    assert bot.click(PARTIAL.id).status_code == 200
    view = bot.opened(1)
    service.history.client.delete_collection(service.history.name)  # the store goes away under the bot
    answer = {"label_symptom": "latency", "label_root_cause": "external_traffic", "label_severity": "sev3"}
    r = bot.submit(view, answer)
    assert r.json()["response_action"] == "errors"
    assert "history store is unavailable, nothing was saved" in r.json()["errors"]["label_symptom"]
    r, method = bot.command("label 5")
    assert "history store is unavailable" in bot.response(method)["text"]
    assert bot.click(PARTIAL.id).status_code == 200
    assert "history store is unavailable" in json.dumps(bot.opened(2))


def test_nothing_to_label_an_empty_history_one_incident_and_usage(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)  # SMALL_HISTORY: every incident labelled
    bot = Slack(service, slack)
    try:
        r, method = bot.command("label")
        assert (
            "Nothing to label: every past incident with text (6 in the history) is labelled"
            in bot.response(method)["text"]
        )
        service.history.collection.delete(ids=[i.id for i in SMALL_HISTORY])
        r, method = bot.command("label 3")
        assert "The history is empty" in bot.response(method)["text"]
        # one incident: too few to fit a classifier on, still asked about, without a guess
        service.history.upsert([HOSTILE])
        r, method = bot.command("label 3")
        reply = bot.response(method)
        assert reply["text"] == "Label this past incident" and "No guess yet" in json.dumps(reply["blocks"])
        assert [b["accessory"]["value"] for b in reply["blocks"] if "accessory" in b] == [HOSTILE.id]
        for bad in ("0", "21", "ten", "-1"):
            r, _ = bot.command(f"label {bad}")
            assert "Usage: /triage label [n], n from 1 to 20" in r.text
        assert "/triage label [n]" in bot.command("help")[0].text
    finally:
        service.stop()
