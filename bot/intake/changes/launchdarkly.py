"""LaunchDarkly webhooks: each delivery is an audit log entry, signed with X-LD-Signature (hex HMAC-SHA256 of the
body with the webhook's secret). Flag changes are `flag` changes; environment, project and segment changes are
`config` changes; anything else (members, roles, tokens...) records nothing. The service name is the flag's key
(from `target.resources`, "proj/<p>:env/<e>:flag/<key>"), else the project's key; the environment is `<e>`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.config import AuthScheme
from bot.intake.changes.base import ChangeSender, Ignored, Parsed, make_change
from bot.intake.senders.base import as_obj, as_str, need, read_time

KINDS = {"flag": "flag", "environment": "config", "project": "config", "segment": "config"}
SITE = "https://app.launchdarkly.com"
_PART = re.compile(r"(proj|env|flag|segment)/([^:;/]+)")


def parse(p: dict[str, Any], _: Mapping[str, str]) -> Parsed:
    kind = as_str(p.get("kind"))
    if kind not in KINDS:
        return Ignored(f"LaunchDarkly {kind or 'unknown'} changes are not service changes")
    target = as_obj(p.get("target"))
    resources = [r for r in target.get("resources") or [] if isinstance(r, str)]
    accesses = [as_str(as_obj(a).get("resource")) for a in p.get("accesses") or []]
    parts = dict(_PART.findall((resources or accesses or [""])[0]))
    name = parts.get("flag") or parts.get("proj") or need(p, "name")
    member = as_obj(p.get("member"))
    author = " ".join(x for x in (as_str(member.get("firstName")), as_str(member.get("lastName"))) if x)
    verb = as_str(p.get("titleVerb")) or "changed"
    href = as_str(as_obj(as_obj(p.get("_links")).get("site")).get("href"))
    return make_change(
        id=need(p, "_id"), source="launchdarkly", service=name, kind=KINDS[kind],
        summary=f"{verb} {as_str(p.get('name')) or name}", at=read_time(need(p, "date"), "date"),
        author=author or as_str(member.get("email")) or None, environment=parts.get("env"),
        link=(SITE + href if href.startswith("/") else href) or None,
    )  # fmt: skip


SENDER = ChangeSender("launchdarkly", parse, (AuthScheme.LAUNCHDARKLY,))
