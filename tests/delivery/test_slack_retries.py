"""Slack's own retry handlers (slack_sdk, as bot/delivery/slack/messages.py configures them): edits and lookups
are retried after 429s, 5xx and dropped connections; posts never (the outbox looks a post up before sending it
again); a long Retry-After is left to the caller."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError

from benchmarks.backends import free_port
from bot.config import Settings
from bot.delivery.slack.app import web_client
from bot.delivery.slack.messages import SlackMessages, retryable
from bot.retrying import retry_after
from testkit.emulators import SlackEmulator


def _poster(settings: Settings, url: str, retries: int = 2) -> SlackMessages:
    s = settings.model_copy(
        update={"slack_bot_token": SecretStr("xoxb-test"), "slack_api_url": url, "slack_retries": retries}
    )
    return SlackMessages(web_client(s), s)


def _methods(slack: SlackEmulator) -> list[str]:
    return [m for m, _ in slack.calls]


def test_an_edit_rate_limited_by_slack_waits_the_retry_after_and_goes_through(
    settings: Settings, slack: SlackEmulator
) -> None:
    slack.failures["chat.update"] = [(429, {"Retry-After": "1"})]
    _poster(settings, slack.url).update("C-x", slack.add_message("C-x"), "t", [])
    assert _methods(slack) == ["chat.update!429", "chat.update"]
    assert slack.arrivals[1] - slack.arrivals[0] >= 1.0  # the second try waited what Slack asked


def test_a_long_retry_after_is_left_to_the_caller(settings: Settings, slack: SlackEmulator) -> None:
    """The worker must not sleep a minute for one channel: the 429 is raised, Retry-After readable on it."""
    slack.failures["conversations.history"] = [(429, {"Retry-After": "30"})]
    t0 = time.monotonic()
    with pytest.raises(SlackApiError) as e:
        _poster(settings, slack.url).find_posted("C-x", datetime.now(UTC), "incibot_ticket", "k")
    assert time.monotonic() - t0 < 2 and retry_after(e.value) == 30 and retryable(e.value)
    assert _methods(slack) == ["conversations.history!429"]


def test_edits_and_lookups_are_retried_after_5xx_and_dropped_connections(
    settings: Settings, slack: SlackEmulator
) -> None:
    poster = _poster(settings, slack.url, retries=3)
    slack.add_channel("C-x", member=True)
    slack.failures["chat.update"] = [(503, {}), (502, {}), (0, {})]  # 502: beyond slack_sdk's 500/503 handler
    poster.update("C-x", slack.add_message("C-x"), "t", [])
    assert _methods(slack) == ["chat.update!503", "chat.update!502", "chat.update!0", "chat.update"]
    slack.failures["conversations.history"] = [(500, {})]
    assert poster.find_posted("C-x", datetime.now(UTC), "incibot_ticket", "k") is None
    assert _methods(slack)[-2:] == ["conversations.history!500", "conversations.history"]


def test_an_edit_gives_up_after_slack_retries(settings: Settings, slack: SlackEmulator) -> None:
    slack.failures["chat.update"] = [(503, {})] * 5
    with pytest.raises(SlackApiError) as e:
        _poster(settings, slack.url, retries=2).update("C-x", "1.0", "t", [])
    assert e.value.response.status_code == 503 and retryable(e.value)
    assert _methods(slack) == ["chat.update!503"] * 3  # the first try and 2 retries


def test_an_edit_to_an_unreachable_slack_is_retried_then_raised(settings: Settings) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/"  # nobody listens: connection refused
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        _poster(settings, dead, retries=2).update("C-x", "1.0", "t", [])
    # slack_sdk's backoff before the 2 retries: 0.5 s and 1 s, each plus up to 1 s of jitter
    assert time.monotonic() - t0 >= 1.5 and retryable(e.value)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        _poster(settings, dead, retries=2).post("#x", "t", [], {})
    assert time.monotonic() - t0 < 1.0  # a post is not retried, not even a refused one


@pytest.mark.parametrize("failure", [(503, {}), (502, {}), (0, {})], ids=["503", "502", "dropped"])
def test_a_post_is_never_retried_by_the_client(
    settings: Settings, slack: SlackEmulator, failure: tuple[int, dict[str, str]]
) -> None:
    """A post may have reached the channel when its answer is a 5xx or nothing: the outbox looks it up first."""
    slack.failures["chat.postMessage"] = [failure]
    with pytest.raises((SlackApiError, OSError)) as e:
        _poster(settings, slack.url, retries=3).post("#x", "t", [], {"event_type": "incibot_ticket"})
    assert retryable(e.value)
    assert _methods(slack) == [f"chat.postMessage!{failure[0]}"]  # exactly one call reached Slack


def test_a_rate_limited_post_is_raised_with_its_retry_after(settings: Settings, slack: SlackEmulator) -> None:
    """Safe to send again, but the caller does it: it parks that channel only, for the time Slack asked."""
    slack.failures["chat.postMessage"] = [(429, {"Retry-After": "1"})]
    with pytest.raises(SlackApiError) as e:
        _poster(settings, slack.url, retries=3).post("#x", "t", [], {})
    assert retry_after(e.value) == 1 and retryable(e.value)
    assert _methods(slack) == ["chat.postMessage!429"]
