"""Alert senders and change sources: for each, whether a credential it accepts is configured. Also the words and
settings the generated tables of docs/senders.md use for each scheme (scripts/gen_docs.py)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence

from bot.config import AuthScheme, Settings
from bot.doctor.report import Check, fail, ok, warn
from bot.intake.auth import CHECKS
from bot.intake.changes import CHANGE_SENDERS
from bot.intake.changes import accepted_auth as change_auth
from bot.intake.senders import SENDERS, accepted_auth

# The settings that configure each scheme (all of them needed); tests/test_doctor.py checks them against the
# predicates bot/intake/auth.py authenticates with.
SCHEME_SETTINGS: dict[AuthScheme, tuple[str, ...]] = {
    AuthScheme.HMAC: ("webhook_secret",),
    AuthScheme.BEARER: ("webhook_token",),
    AuthScheme.BASIC: ("webhook_basic_user", "webhook_basic_password"),
    AuthScheme.PAGERDUTY: ("pagerduty_webhook_secret",),
    AuthScheme.URL_TOKEN: ("webhook_url_token",),
    AuthScheme.GITHUB: ("github_webhook_secret",),
    AuthScheme.GITLAB: ("gitlab_webhook_token",),
    AuthScheme.LAUNCHDARKLY: ("launchdarkly_webhook_secret",),
}
SCHEME_NAMES: dict[AuthScheme, str] = {
    AuthScheme.HMAC: "our HMAC",
    AuthScheme.BEARER: "Bearer",
    AuthScheme.BASIC: "Basic",
    AuthScheme.PAGERDUTY: "PagerDuty's signature",
    AuthScheme.URL_TOKEN: "a token in the URL",
    AuthScheme.GITHUB: "GitHub's signature (X-Hub-Signature-256)",
    AuthScheme.GITLAB: "GitLab's token (X-Gitlab-Token)",
    AuthScheme.LAUNCHDARKLY: "LaunchDarkly's signature (X-LD-Signature)",
}


def scheme_vars(scheme: AuthScheme) -> list[str]:
    """The environment variables that configure a scheme (all of them needed)."""
    return [f"INCIBOT_{s.upper()}" for s in SCHEME_SETTINGS[scheme]]


def scheme_env(scheme: AuthScheme) -> str:
    return " + ".join(scheme_vars(scheme))


def alert_url(name: str) -> str:
    return f"/webhooks/{name}"


def change_url(name: str) -> str:
    return "/webhooks/change" if name == "change" else f"/webhooks/change/{name}"


def _line(settings: Settings, label: str, url: str, schemes: Sequence[AuthScheme]) -> Check:
    if not schemes:
        return fail(label, f"{url}: INCIBOT_WEBHOOK_AUTH lists no scheme, so every delivery is refused",
                    "list at least one scheme for it, or remove its entry")  # fmt: skip
    configured = [s for s in schemes if CHECKS[s][1](settings)]
    if not configured:
        accepts = " or ".join(f"{scheme_env(s)} ({SCHEME_NAMES[s]})" for s in schemes)
        return warn(label, f"{url}: none of its credentials is set, so every delivery gets 401",
                    f"if you use it, set {accepts}")  # fmt: skip
    return ok(label, f"{url}: " + "; ".join(f"{scheme_env(s)} set ({SCHEME_NAMES[s]})" for s in configured))


def checks(settings: Settings) -> Iterator[Check]:
    if (settings.webhook_basic_user is None) != (settings.webhook_basic_password is None):
        yield fail("webhook basic auth", "only one of INCIBOT_WEBHOOK_BASIC_USER and _PASSWORD is set",
                   "set both, or neither")  # fmt: skip
    for kind, names in (("webhook_auth", {*SENDERS, *CHANGE_SENDERS}), ("severity_map", set(SENDERS))):
        for key in getattr(settings, kind):
            if key not in names:
                close = difflib.get_close_matches(key, sorted(names), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(sorted(names))}"
                yield warn(kind, f"INCIBOT_{kind.upper()} names {key!r}, which is no sender", hint)
    if not settings.webhook_auth_configured:  # one line, not one per sender: they are all open
        yield warn("webhooks", f"all {len(SENDERS) + len(CHANGE_SENDERS)} webhook URLs are open: no webhook "
                   "credential is set (fine on one machine only)",
                   "set INCIBOT_WEBHOOK_TOKEN (Bearer), and each sender's own secret (docs/senders.md)")  # fmt: skip
        return
    for name in SENDERS:
        yield _line(settings, f"sender {name}", alert_url(name), accepted_auth(settings, name))
    for name in CHANGE_SENDERS:
        label = "change (generic)" if name == "change" else f"change {name}"
        yield _line(settings, label, change_url(name), change_auth(settings, name))
