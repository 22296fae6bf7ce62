"""GitHub `deployment` and `deployment_status` webhooks (X-GitHub-Event), signed with X-Hub-Signature-256.

A created deployment is recorded as a deploy that started; a status is recorded when the deployment finished
(success, failure, error). pending, queued, in_progress and inactive (superseded) record nothing. The service name
is the repository's `full_name` (map it with `change_service_map`, also as "<repo>@<environment>")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import AuthScheme
from bot.intake.changes.base import ChangeSender, Ignored, Parsed, make_change
from bot.intake.senders.base import WebhookError, as_obj, as_str, need, read_time

FINISHED = ("success", "failure", "error")


def parse(p: dict[str, Any], headers: Mapping[str, str]) -> Parsed:
    event = headers.get("x-github-event", "")
    if event == "ping":
        return Ignored("ping: the webhook reaches the bot; send deployment and deployment_status events")
    if event and event not in ("deployment", "deployment_status"):
        return Ignored(
            f"GitHub {event} events are not changes; subscribe to deployment and deployment_status"
        )
    repo = as_obj(p.get("repository"))
    name = need(repo, "full_name")
    dep = as_obj(p.get("deployment"))
    if not dep:
        raise WebhookError("missing field deployment")
    dep_id = need(dep, "id")
    status = p.get("deployment_status")
    ref, sha = as_str(dep.get("ref")), as_str(dep.get("sha"))[:7]
    what = as_str(dep.get("description")) or (f"{ref}@{sha}" if ref and sha and ref != sha else ref or sha)
    fields: dict[str, Any] = {"source": "github", "service": name, "kind": "deploy",
                              "environment": as_str(dep.get("environment")) or None}  # fmt: skip
    if status is None:  # the `deployment` event: created
        creator = as_str(as_obj(dep.get("creator")).get("login")) or as_str(
            as_obj(p.get("sender")).get("login")
        )
        return make_change(id=f"{name}/deployments/{dep_id}", summary=f"{what} (started)",
                           at=read_time(dep.get("created_at"), "deployment.created_at"),
                           author=creator or None,
                           link=as_str(repo.get("html_url")) + "/deployments" if repo.get("html_url") else None,
                           **fields)  # fmt: skip
    st = as_obj(status)
    state = as_str(st.get("state"))
    if state not in FINISHED:
        return Ignored(f"deployment {state or 'status'}: recorded when it finishes ({', '.join(FINISHED)})")
    creator = as_str(as_obj(st.get("creator")).get("login")) or as_str(as_obj(p.get("sender")).get("login"))
    link = as_str(st.get("log_url")) or as_str(st.get("target_url")) or as_str(st.get("environment_url"))
    summary = what if state == "success" else f"{what} ({state})"
    at = read_time(st.get("updated_at") or st.get("created_at"), "deployment_status.updated_at")
    return make_change(id=f"{name}/deployments/{dep_id}/statuses/{need(st, 'id')}", summary=summary, at=at,
                       author=creator or None, link=link or None, **fields)  # fmt: skip


SENDER = ChangeSender("github", parse, (AuthScheme.GITHUB,))
