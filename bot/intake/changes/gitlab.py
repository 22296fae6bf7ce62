"""GitLab deployment events (X-Gitlab-Event: Deployment Hook), authenticated by X-Gitlab-Token.

A deployment is recorded when it finished (success, failed, canceled); running records nothing. The service name
is the project's `path_with_namespace` (map it with `change_service_map`, also as "<path>@<environment>")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import AuthScheme
from bot.intake.changes.base import ChangeSender, Ignored, Parsed, make_change
from bot.intake.senders.base import as_obj, as_str, need, read_time

FINISHED = ("success", "failed", "canceled")


def parse(p: dict[str, Any], _: Mapping[str, str]) -> Parsed:
    kind = as_str(p.get("object_kind"))
    if kind != "deployment":
        return Ignored(f"GitLab {kind or 'unknown'} events are not changes; tick only Deployment events")
    status = as_str(p.get("status"))
    if status not in FINISHED:
        return Ignored(
            f"deployment {status or 'without status'}: recorded when it finishes ({', '.join(FINISHED)})"
        )
    project = as_obj(p.get("project"))
    name = need(project, "path_with_namespace")
    dep = p.get("deployment_id") or need(
        p, "deployable_id"
    )  # deployment_id since GitLab 15.x; the job before
    user = as_obj(p.get("user"))
    title, sha = as_str(p.get("commit_title")), as_str(p.get("short_sha"))
    summary = " ".join(x for x in (title, f"({sha})" if sha else "") if x)
    if status != "success":
        summary += f" ({status})"
    return make_change(
        id=f"{name}/deployments/{dep}/{status}", source="gitlab", service=name, kind="deploy", summary=summary,
        at=read_time(p.get("status_changed_at"), "status_changed_at"),
        author=as_str(user.get("username")) or as_str(user.get("name")) or None,
        link=as_str(p.get("deployable_url")) or as_str(p.get("commit_url")) or None,
        environment=as_str(p.get("environment")) or None,
    )  # fmt: skip


SENDER = ChangeSender("gitlab", parse, (AuthScheme.GITLAB,))
