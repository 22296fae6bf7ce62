"""The bot watching itself: a quality alert from engineers' verdicts (one per episode, then one recovery), the
fleet-wide rollback (`/triage mode`, `incibot mode`), `/metrics`, `incibot report` and the Home tab. Verdicts and
commands go through the real Bolt app over HTTP with signed requests; posts land in the Slack emulator."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.delivery.slack.app import build_app
from bot.intake.senders import parse
from bot.models import Feedback
from bot.server import build_server
from bot.service import TriageService
from bot.watch.report import markdown
from testkit.emulators import OpenAIEmulator, SlackEmulator
from tests.helpers import OPS as OPS_AUTH
from tests.helpers import accept, make_service, rows_in, tool_answer, wait_until

SIGNING = "s"  # make_service's signing secret
OPS = "#incibot-ops"


class Slack:
    """Signed requests to the bot's /slack/events, as Slack sends them."""

    def __init__(self, service: TriageService) -> None:
        self.http = TestClient(
            build_server(service.settings, service, build_app(service.settings, service.client, service)),
            headers=OPS_AUTH,
        )

    def send(self, form: dict[str, str]) -> Any:
        body, stamp = urlencode(form), str(int(time.time()))
        sig = SignatureVerifier(SIGNING).generate_signature(timestamp=stamp, body=body)
        return self.http.post("/slack/events", content=body, headers={
            "content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": stamp,
            "x-slack-signature": sig})  # fmt: skip

    def event(self, event: dict[str, Any]) -> Any:
        body, stamp = json.dumps({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event": event,
                                  "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time())}), str(int(time.time()))  # fmt: skip
        sig = SignatureVerifier(SIGNING).generate_signature(timestamp=stamp, body=body)
        return self.http.post("/slack/events", content=body, headers={
            "content-type": "application/json", "x-slack-request-timestamp": stamp, "x-slack-signature": sig})  # fmt: skip

    def command(self, text: str, user: str) -> str:
        r = self.send({"command": "/triage", "text": text, "user_id": user, "channel_id": "C-incidents",
                       "team_id": "T1", "trigger_id": f"t{time.monotonic_ns()}", "response_url": "http://127.0.0.1:9/x"})  # fmt: skip
        assert r.status_code == 200, r.text
        return (
            r.json().get("text", "")
            if r.headers.get("content-type", "").startswith("application/json")
            else r.text
        )

    def confirm(self, key: str, channel: str, ts: str, user: str = "UALICE") -> None:
        payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T1"}, "api_app_id": "A1",
                   "trigger_id": f"t{time.monotonic_ns()}", "channel": {"id": channel},
                   "container": {"type": "message", "message_ts": ts, "channel_id": channel}, "message": {"ts": ts},
                   "actions": [{"action_id": "confirm", "block_id": "feedback", "value": key, "type": "button"}]}  # fmt: skip
        assert self.send({"payload": json.dumps(payload)}).status_code == 200

    def correct(self, key: str, labels: dict[str, str], user: str = "UBOB") -> None:
        values = {f"label_{f}": {"value": {"selected_option": {"value": v}}} for f, v in labels.items()}
        payload = {"type": "view_submission", "user": {"id": user}, "team": {"id": "T1"}, "api_app_id": "A1",
                   "view": {"id": "V1", "type": "modal", "callback_id": "correct_submit", "private_metadata": key,
                            "state": {"values": values}}}  # fmt: skip
        assert self.send({"payload": json.dumps(payload)}).status_code == 200


def ops_messages(emu: SlackEmulator, word: str) -> list[dict[str, Any]]:
    return [p for p in emu.of("chat.postMessage") if emu.channel_id(p.get("channel", "")) == "C-incibot-ops"
            and word in p.get("text", "")]  # fmt: skip


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    e = SlackEmulator()
    yield e
    e.close()


def started(service: TriageService) -> TriageService:
    service.start()
    return service


def drafted(service: TriageService, n: int) -> list[dict[str, Any]]:
    return wait_until(lambda: (rows := rows_in(service.store, "drafted")) and len(rows) >= n and rows, 60,
                      f"{n} drafts")  # fmt: skip


def test_mostly_corrected_drafts_alert_once_then_confirms_recover_once(
    tmp_path: Path, emu: SlackEmulator
) -> None:
    # 40 posts to one channel: at Slack's pace of 1 a second (the default) most of this test would be waiting.
    service = started(make_service(tmp_path, emu, storm_similarity=1.01, ops_channel=OPS, quality_window=20,
                                   quality_min_verdicts=10, quality_alert_below=0.5, quality_recover_at=0.7,
                                   slack_channel_rate=50.0, slack_channel_burst=50))  # fmt: skip
    slack = Slack(service)
    try:
        for i in range(40):
            accept(
                service,
                {"id": f"q{i}", "title": f"Chat completions failing in region {i}", "service": "openai"},
            )
        rows = sorted(drafted(service, 40), key=lambda r: r.key)
        symptoms = service.triager.taxonomy.fields["symptom"].ids
        for i, row in enumerate(rows[:30]):
            draft = row.draft.model_dump()["labels"]
            if i % 10 == 9:  # mostly corrected: one in ten kept
                slack.confirm(row.key, row.channel, row.message_ts)
                continue
            other = next(s for s in symptoms if s != draft["symptom"]["label"])
            slack.correct(row.key, {f: d["label"] for f, d in draft.items()} | {"symptom": other})
        wait_until(lambda: ops_messages(emu, "*incibot quality alert*"), 30, "the quality alert")
        alert = ops_messages(emu, "*incibot quality alert*")
        assert len(alert) == 1 and "*symptom* accepted" in alert[0]["text"] and "`none`" in alert[0]["text"]
        for row in [*rows[30:], *rows[:12]]:  # confirms: the window fills with accepted labels
            slack.confirm(row.key, row.channel, row.message_ts)
        wait_until(lambda: ops_messages(emu, "*incibot recovered*"), 30, "the recovery message")
        time.sleep(0.5)
        assert (
            len(ops_messages(emu, "*incibot quality alert*")) == 1
            and len(ops_messages(emu, "*incibot recovered*")) == 1
        )
    finally:
        service.stop()


def test_a_mode_switch_on_one_replica_changes_the_next_post_of_another(
    tmp_path: Path, emu: SlackEmulator
) -> None:
    llm = OpenAIEmulator(tool_answer)
    shared = {"database_url": f"sqlite:///{tmp_path / 'shared.db'}", "mode_ttl_s": 0.1, "storm_similarity": 1.01,
              "admin_user_ids": ["UADMIN"]}  # fmt: skip
    a = started(make_service(tmp_path / "a", emu, **shared))
    b = started(make_service(tmp_path / "b", emu, llm_backend="openai", openai_base_url=llm.url,
                             openai_api_key="sk-test", llm_retries=1, **shared))  # fmt: skip
    slack = Slack(a)
    try:
        assert "only the bot's admins" in slack.command("mode retrieval-only", "UINTRUDER")
        assert "unknown mode 'off'" in slack.command("mode off", "UADMIN")
        assert b.mode.mode == "llm"
        assert "Mode: retrieval-only" in slack.command("mode retrieval-only", "UADMIN")
        time.sleep(0.3)
        b.accept(parse("generic", {"id": "m1", "title": "GPU pool exhausted in westus"}))
        row = wait_until(lambda: (r := b.store.get("generic:m1")) and r.status == "drafted" and r, 30, "m1")
        post = next(p for p in emu.of("chat.postMessage") if "generic:m1" in json.dumps(p.get("metadata")))
        assert "Retrieval-only mode, set by UADMIN" in json.dumps(post["blocks"])
        assert row.draft.kind == "retrieval-only" and llm.requests() == []  # the LLM was not called
        # Back on, from the command line this time: the next ticket gets an LLM draft again.
        result = CliRunner().invoke(
            cli, ["mode", "llm"], env={"INCIBOT_DATABASE_URL": shared["database_url"]}
        )
        assert result.exit_code == 0 and "mode llm" in result.output
        time.sleep(0.3)
        b.accept(parse("generic", {"id": "m2", "title": "Image model returns blank images"}))
        wait_until(lambda: (r := b.store.get("generic:m2")) and r.status == "drafted", 60, "m2")
        assert len(llm.requests()) >= 1
        # gpt-4o-mini has no price configured here: its cost is unknown, never a made-up 0.
        report = b.report(timedelta(days=1))
        assert report.unpriced_models == ["gpt-4o-mini"] and report.cost_per_triage is None
        assert "unknown (no price for gpt-4o-mini)" in markdown(report)
        metrics = b.metrics.render().decode()
        assert 'incibot_llm_unpriced_calls_total{model="gpt-4o-mini"} 1.0' in metrics
        assert 'incibot_llm_calls_total{model="gpt-4o-mini",outcome="ok"} 1.0' in metrics
        history = CliRunner().invoke(cli, ["mode"], env={"INCIBOT_DATABASE_URL": shared["database_url"]})
        assert "mode llm (set by cli:" in history.output
        assert [m.mode for m in [a.store.watch.latest_mode()]] == ["llm"]
    finally:
        a.stop()
        b.stop()
        llm.close()


def test_no_verdicts_no_alert_unknown_cost_and_a_verdict_flood_alerts_once(
    tmp_path: Path, emu: SlackEmulator
) -> None:
    service = make_service(tmp_path, emu, storm_similarity=1.01, ops_channel=OPS, quality_window=50,
                           quality_min_verdicts=20, llm_prices={"gpt-4o-mini": (0.15, 0.6)})  # fmt: skip
    assert service.monitor.check() == []  # zero verdicts: no alert, no division by zero
    report = service.report(timedelta(days=7))
    assert report.triages == 0 and report.confident_precision is None and report.cost_per_triage is None
    started(service)
    try:
        accept(service, {"id": "flood", "title": "Responses truncated after model rollout"})
        row = drafted(service, 1)[0]
        draft = row.draft.model_dump()["labels"]
        symptoms = service.triager.taxonomy.fields["symptom"].ids
        other = next(s for s in symptoms if s != draft["symptom"]["label"])
        labels = {f: [d["label"]] for f, d in draft.items()} | {"symptom": [other]}
        for i in range(1000):  # 1,000 corrections as fast as the store takes them
            service.record_feedback(
                "generic:flood", Feedback(action="correct", user_id=f"U{i % 7}", labels=labels)
            )
            if i % 100 == 99:
                service.monitor.check()
        assert len(ops_messages(emu, "*incibot quality alert*")) == 1
        # The bot drafts with no LLM here: "none" has no price, so its cost is unknown, not 0.
        report = service.report(timedelta(days=7))
        assert report.triages == 1 and report.verdicts == {"correct": 1000}
        assert report.corrections[0][:3] == ("symptom", draft["symptom"]["label"], other)
    finally:
        service.stop()


def test_metrics_answer_during_a_burst_and_the_home_tab_and_report_show_the_figures(
    tmp_path: Path, emu: SlackEmulator
) -> None:
    # Posting paced for this test only (Slack allows ~1 post/s per channel; the emulator does not care).
    service = started(make_service(tmp_path, emu, storm_similarity=1.01, slack_channel_rate=200.0,
                                   slack_channel_burst=200))  # fmt: skip
    slack = Slack(service)
    scrapes: list[dict[str, Any]] = []
    try:
        burst = threading.Thread(target=lambda: [accept(service, {"id": f"b{i}", "title": f"Errors on model {i}"})
                                                 for i in range(150)])  # fmt: skip
        burst.start()
        while burst.is_alive() or len(scrapes) < 5:
            r = slack.http.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            scrapes.append({f.name: f for f in text_string_to_metric_families(r.text)})
        burst.join()
        drafted(service, 150)
        last = {f.name: f for f in text_string_to_metric_families(slack.http.get("/metrics").text)}
        assert next(s.value for s in last["incibot_tickets_accepted"].samples) == 150
        assert {s.labels["state"]: s.value for s in last["incibot_tickets"].samples}["drafted"] == 150
        first_post = {s.name: s.value for s in last["incibot_first_post_seconds"].samples}
        assert first_post["incibot_first_post_seconds_count"] == 150
        assert "incibot_queue_depth" in scrapes[0] and len(scrapes) >= 5
        assert [x.labels["mode"] for x in last["incibot_mode"].samples] == ["llm"]  # never switched
        row = service.store.get("generic:b1")
        slack.confirm("generic:b1", row.channel, row.message_ts)
        after = {f.name: f for f in text_string_to_metric_families(slack.http.get("/metrics").text)}
        assert {s.labels["verdict"]: s.value for s in after["incibot_feedback"].samples} == {"confirm": 1}
        assert "incibot_acceptance_ratio" in after
        r = slack.event({"type": "app_home_opened", "user": "UALICE", "channel": "D1", "tab": "home"})
        assert r.status_code == 200
        home = wait_until(lambda: emu.of("views.publish"), 30, "views.publish")[0]
        view = home["view"] if isinstance(home["view"], dict) else json.loads(home["view"])
        text = json.dumps(view)
        assert home["user_id"] == "UALICE" and view["type"] == "home"
        assert "*Triages:* 150" in text and "confirm 1" in text
        out = tmp_path / "report"
        result = CliRunner().invoke(cli, ["report", "--since", "1d", "--out", str(out)],
                                    env={"INCIBOT_DATABASE_URL": service.settings.db_url})  # fmt: skip
        assert result.exit_code == 0, result.output
        md = (out / "report.md").read_text()
        assert "Triages: **150**" in md and (out / "triages.png").stat().st_size > 0
        bad = CliRunner().invoke(cli, ["report", "--since", "a week"])
        assert bad.exit_code == 2 and "--since takes a number" in bad.output
    finally:
        service.stop()
