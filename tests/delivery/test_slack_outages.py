"""Slack down, or failing in one channel: posts wait in the outbox and go out in order, exactly once (a post
that reached Slack before a crash is not posted again), and a failing channel holds no other."""

from __future__ import annotations

from pathlib import Path

from bot.models import Ticket
from testkit.emulators import SlackEmulator
from tests.helpers import accept, make_service, posted_keys, top_level_posts, wait_until


def test_slack_down_posts_wait_in_the_outbox_and_go_out_in_order(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack, storm_similarity=1.01)
    slack.down = True
    service.start()
    keys = [f"generic:o{i}" for i in range(6)]
    for i in range(6):
        accept(service, {"id": f"o{i}", "title": f"Distinct incident number {i}", "service": "openai"})
    wait_until(lambda: len(slack.calls) >= 3, what="failed attempts")
    assert top_level_posts(slack) == [] and service.store.counts().get("posting") == 1
    slack.down = False
    wait_until(lambda: len(top_level_posts(slack)) == 6, timeout=30, what="outbox drained")
    service.stop()
    assert posted_keys(slack) == keys


def test_a_post_that_reached_slack_before_a_crash_is_not_posted_again(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    service = make_service(tmp_path, slack)
    accept(service, {"id": "c1", "title": "GPU pool exhausted", "service": "openai"})
    # Crash window: status says "posting" and the message is already in the channel.
    row = service.store.get("generic:c1")
    draft = service.triager.triage(Ticket.model_validate(row.ticket), use_llm=False)
    service.store.update_ticket("generic:c1", status="posting", draft=draft)
    sent = service.client.chat_postMessage(
        channel="#genai-oncall", text="x", metadata={"event_type": "incibot_ticket", "event_payload": {"key": "generic:c1"}}
    )  # fmt: skip
    restarted = make_service(tmp_path, slack)  # a new process on the same store
    restarted.start()
    wait_until(lambda: restarted.store.get("generic:c1").status == "drafted", what="resumed")
    restarted.stop()
    assert len(top_level_posts(slack)) == 1 and restarted.store.get("generic:c1").message_ts == sent["ts"]


def test_slack_failing_in_one_channel_does_not_hold_the_others(tmp_path: Path, slack: SlackEmulator) -> None:
    service = make_service(tmp_path, slack, storm_similarity=1.01)
    slack.failing_channels = {"#genai-oncall"}  # the openai route
    service.start()
    try:
        for i in range(3):
            accept(service, {"id": f"o{i}", "title": f"OpenAI errors {i}", "service": "openai"})
        for i in range(3):
            accept(service, {"id": f"c{i}", "title": f"Claude latency {i}", "service": "anthropic"})
        wait_until(lambda: len(posted_keys(slack)) == 3, 30, "the healthy channel's tickets")
        assert posted_keys(slack) == [f"generic:c{i}" for i in range(3)]
        # The failing channel's tickets wait, none lost (the last healthy post's state may land just after Slack saw it).
        wait_until(lambda: service.backlog() == 3, 10, "the failing channel's 3 tickets waiting")
        slack.failing_channels = set()
        wait_until(lambda: len(posted_keys(slack)) == 6, 60, "the recovered channel's tickets")
        assert posted_keys(slack)[3:] == [f"generic:o{i}" for i in range(3)]  # in their arrival order
        assert len(set(posted_keys(slack))) == 6  # each exactly once
    finally:
        service.stop()
