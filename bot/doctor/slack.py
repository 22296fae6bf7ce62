"""Slack: the bot token (auth.test), its scopes against slack-manifest.yaml, the signing secret, and each channel
the bot posts to (found, and the bot allowed to post there). Nothing is posted: the checks only read."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import PROJECT_ROOT, Settings
from bot.doctor.report import Check, fail, first_line, ok, warn

MANIFEST = PROJECT_ROOT / "slack-manifest.yaml"
TIMEOUT_S = 10

TOKEN_FIXES = {
    "invalid_auth": "copy the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page into "
    "INCIBOT_SLACK_BOT_TOKEN",
    "not_authed": "set INCIBOT_SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...)",
    "token_revoked": "the app was uninstalled or the token revoked: reinstall the app and copy the new token",
    "account_inactive": "the app was uninstalled or the token revoked: reinstall the app and copy the new token",
    "not_allowed_token_type": "INCIBOT_SLACK_BOT_TOKEN takes the bot token (xoxb-...), not an app-level token",
}


def _unused(settings: Settings) -> set[str]:
    """Manifest scopes this configuration never calls: files:write uploads only the metrics chart."""
    return set() if settings.prometheus_url and settings.telemetry_chart else {"files:write"}


def manifest_scopes(path: Path = MANIFEST) -> set[str]:
    """The bot token scopes the app asks for in its manifest (what the bot's Slack calls need)."""
    return set(yaml.safe_load(path.read_text())["oauth_config"]["scopes"]["bot"])


def granted_scopes(headers: Mapping[str, Any]) -> set[str] | None:
    """The token's scopes, from the `x-oauth-scopes` header Slack sends with every Web API answer."""
    value = next((v for k, v in headers.items() if k.lower() == "x-oauth-scopes"), None)
    if isinstance(value, list):  # some HTTP stacks keep repeated headers as lists
        value = ",".join(value)
    return None if value is None else {s.strip() for s in str(value).split(",") if s.strip()}


def _channels(client: WebClient) -> dict[str, dict[str, Any]]:
    """Every channel the bot can see, by "#name" and by id (public ones, and private ones it is in)."""
    seen: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        resp = client.conversations_list(types="public_channel,private_channel", limit=1000, cursor=cursor)
        for c in resp.get("channels") or []:
            seen["#" + c["name"]] = seen[c["id"]] = c
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return seen


def _channel(ref: str, info: dict[str, Any] | None, scopes: set[str] | None, setting: str) -> Check:
    name = f"slack channel {ref}"
    if info is None:
        return fail(name, "no such channel visible to the bot",
                    f"create it or correct {setting}; for a private channel, /invite @incibot there")  # fmt: skip
    where = f"#{info.get('name')} ({info.get('id')}, {'private' if info.get('is_private') else 'public'})"
    if info.get("is_archived"):
        return fail(
            name, f"{where} is archived: Slack refuses posts there", f"unarchive it or correct {setting}"
        )
    if info.get("is_member"):
        return ok(name, f"{where}: the bot is a member and can post")
    if info.get("is_private"):  # Slack lists a private channel only to members; kept for safety
        return fail(name, f"{where}: the bot is not a member", "/invite @incibot in that channel")
    if scopes is not None and "chat:write.public" not in scopes:
        return fail(name, f"{where}: the bot is not a member and lacks chat:write.public",
                    "/invite @incibot there, or add chat:write.public and reinstall the app")  # fmt: skip
    return ok(name, f"{where}: not a member; chat:write.public lets it post (it joins only for a lookup)")


def checks(settings: Settings, manifest: Path = MANIFEST) -> Iterator[Check]:
    if settings.slack_bot_token is None:  # the command line works without Slack; `serve` does not
        yield warn("slack", "not configured (INCIBOT_SLACK_BOT_TOKEN unset): `incibot serve` cannot post",
                   "create the app from slack-manifest.yaml, install it, set its token and secret (docs/slack.md)")  # fmt: skip
        return
    yield from _secrets(settings)
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=TIMEOUT_S
    )
    t0 = time.perf_counter()
    try:
        resp = client.auth_test()
    except SlackApiError as e:
        error = str(e.response.get("error") or "")
        if e.response.status_code >= 429:  # Slack's trouble (or its rate limit), not the token's
            yield fail("slack token", f"auth.test answered HTTP {e.response.status_code} ({error})",
                       "retry in a minute; https://slack-status.com says whether Slack is down")  # fmt: skip
            return
        yield fail("slack token", f"auth.test refused the bot token: {error}",
                   TOKEN_FIXES.get(error, "check INCIBOT_SLACK_BOT_TOKEN"))  # fmt: skip
        return
    except (SlackClientError, OSError) as e:  # unreachable, TLS, proxy, timeout
        yield fail("slack token", f"Slack unreachable at {settings.slack_api_url}: {first_line(e)}",
                   "check this machine's access to slack.com (HTTPS_PROXY) and INCIBOT_SLACK_API_URL")  # fmt: skip
        return
    ms = (time.perf_counter() - t0) * 1000
    who = resp.get("user") or resp.get("user_id")
    team = resp.get("team") or resp.get("team_id")
    yield ok("slack token", f"auth.test: bot {who} in workspace {team} ({resp.get('url')}, {ms:.0f} ms)")

    scopes = granted_scopes(resp.headers)
    wanted = manifest_scopes(manifest)
    if scopes is None:
        yield warn("slack scopes", "Slack did not report the token's scopes (no x-oauth-scopes header)",
                   f"compare OAuth & Permissions with {manifest.name} by hand")  # fmt: skip
    elif missing := wanted - scopes - _unused(settings):
        yield fail("slack scopes", f"the token lacks {', '.join(sorted(missing))} (in {manifest.name})",
                   "add them (or paste the manifest again) and reinstall the app to the workspace")  # fmt: skip
    elif unused := (wanted - scopes) & _unused(settings):
        yield warn("slack scopes", f"the token lacks {', '.join(sorted(unused))}, needed only for the metrics "
                   "chart (prometheus_url, telemetry_chart)", "reinstall the app from the manifest before turning "
                   "the chart on")  # fmt: skip
    else:
        extra = scopes - wanted
        more = f"; also {', '.join(sorted(extra))}, not needed" if extra else ""
        yield ok("slack scopes", f"all {len(wanted)} of {manifest.name}{more}")

    targets = {settings.default_channel: "INCIBOT_DEFAULT_CHANNEL"}
    for channel in settings.channel_routes.values():
        targets.setdefault(channel, "INCIBOT_CHANNEL_ROUTES")
    if settings.ops_channel:
        targets.setdefault(settings.ops_channel, "INCIBOT_OPS_CHANNEL")
    try:
        visible = _channels(client)
    except SlackApiError as e:
        error = str(e.response.get("error") or "")
        for ref in targets:
            yield fail(f"slack channel {ref}", f"conversations.list refused: {error}",
                       "grant channels:read and groups:read (slack-manifest.yaml) and reinstall the app")  # fmt: skip
        return
    except (SlackClientError, OSError) as e:
        for ref in targets:
            yield fail(
                f"slack channel {ref}", f"conversations.list failed: {first_line(e)}", "retry; see above"
            )
        return
    for ref, setting in targets.items():
        key = ref if ref.startswith("#") or ref[:1] in ("C", "G") else "#" + ref  # a name without its "#"
        yield _channel(ref, visible.get(key), scopes, setting)


def _secrets(settings: Settings) -> Iterator[Check]:
    """The signing secret (HTTP mode) or the app-level token (Socket Mode): Slack cannot be asked whether they
    are right, only whether they are there."""
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if app_token is not None and not app_token.startswith("xapp-"):
        yield fail("slack app token", "INCIBOT_SLACK_APP_TOKEN is not an app-level token (xapp-...)",
                   "Basic Information -> App-Level Tokens, with connections:write")  # fmt: skip
    if settings.slack_signing_secret is not None:
        yield ok("slack signing secret", "set: HTTP mode (`incibot serve`) verifies Slack's requests with it")
    elif app_token is not None:
        yield ok(
            "slack signing secret", "unset; app-level token set: Socket Mode only (`serve --socket-mode`)"
        )
    else:
        yield fail("slack signing secret", "unset: `incibot serve` (HTTP mode) refuses to start",
                   "copy Basic Information -> App Credentials -> Signing Secret into "
                   "INCIBOT_SLACK_SIGNING_SECRET, or set INCIBOT_SLACK_APP_TOKEN for --socket-mode")  # fmt: skip
