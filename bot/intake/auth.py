"""Webhook authentication, per sender, with what each sender can actually send.

PagerDuty signs the body (`X-PagerDuty-Signature: v1=<hex HMAC-SHA256>`, several comma-separated while a secret
is rotated); Alertmanager sends `Authorization: Bearer` or Basic from its `http_config`; Opsgenie can only add
custom headers (Bearer or Basic); Statuspage can only be given a URL (a token in the path or the query string).
Our own timestamped HMAC (`X-Incibot-Signature`) stays for the generic format and signing proxies. Each sender
declares the schemes it accepts (`bot/intake/senders/`), the operator's `webhook_auth` replaces them per source;
any one that is configured and matches lets a request in.

Secrets are compared in constant time and never logged or echoed: a refusal names what the source accepts and
what was wrong with what came, never a value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.config import AuthScheme, Settings
from bot.intake.senders import accepted_auth
from bot.intake.senders.pagerduty import pagerduty_signature as pagerduty_signature  # public here too
from bot.intake.senders.pagerduty import verify_signature

# Per check: None = authentic, "" = this scheme's credential was not presented, otherwise what was wrong.
Check = Callable[[Settings, Mapping[str, str], bytes, str | None, float], str | None]

EXPECTED = {
    AuthScheme.HMAC: "X-Incibot-Timestamp and X-Incibot-Signature (v0=HMAC-SHA256 with INCIBOT_WEBHOOK_SECRET)",
    AuthScheme.BEARER: "Authorization: Bearer <INCIBOT_WEBHOOK_TOKEN>",
    AuthScheme.BASIC: "Authorization: Basic (INCIBOT_WEBHOOK_BASIC_USER and INCIBOT_WEBHOOK_BASIC_PASSWORD)",
    AuthScheme.PAGERDUTY: "X-PagerDuty-Signature (v1=HMAC-SHA256 of the body with INCIBOT_PAGERDUTY_WEBHOOK_SECRET)",
    AuthScheme.URL_TOKEN: "the token in the URL (/webhooks/<source>/<INCIBOT_WEBHOOK_URL_TOKEN> or ?token=)",
    AuthScheme.GITHUB: "X-Hub-Signature-256 (sha256=HMAC-SHA256 of the body with INCIBOT_GITHUB_WEBHOOK_SECRET)",
    AuthScheme.GITLAB: "X-Gitlab-Token (INCIBOT_GITLAB_WEBHOOK_TOKEN)",
    AuthScheme.LAUNCHDARKLY: "X-LD-Signature (HMAC-SHA256 of the body with INCIBOT_LAUNCHDARKLY_WEBHOOK_SECRET)",
}


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """What a sender puts in X-Incibot-Signature: v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>")."""
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def authorization(headers: Mapping[str, str], scheme: str) -> str | None:
    """The credentials of an `Authorization: <scheme> <credentials>` header, or None if it names another
    scheme. The scheme is matched in any case (RFC 7235: "bearer" is Bearer), for webhooks and /metrics alike."""
    kind, _, value = headers.get("authorization", "").strip().partition(" ")
    return value.strip() if kind.lower() == scheme.lower() else None


def _hmac(s: Settings, headers: Mapping[str, str], body: bytes, _: str | None, now: float) -> str | None:
    assert s.webhook_secret is not None
    ts, sig = headers.get("x-incibot-timestamp", ""), headers.get("x-incibot-signature", "")
    if not ts and not sig:
        return ""
    if not ts or not sig:
        return "missing X-Incibot-Timestamp or X-Incibot-Signature"
    try:
        age = abs(now - int(ts))
    except ValueError:
        return "bad X-Incibot-Timestamp"
    if age > s.webhook_max_age_s:
        return "stale timestamp (possible replay)"
    return (
        None
        if _same(webhook_signature(s.webhook_secret.get_secret_value(), ts, body), sig)
        else "bad signature"
    )


def _bearer(s: Settings, headers: Mapping[str, str], *_: Any) -> str | None:
    assert s.webhook_token is not None
    token = authorization(headers, "bearer")
    if token is None:
        return ""
    return None if _same(token, s.webhook_token.get_secret_value()) else "wrong bearer token"


def _basic(s: Settings, headers: Mapping[str, str], *_: Any) -> str | None:
    assert s.webhook_basic_user is not None and s.webhook_basic_password is not None
    value = authorization(headers, "basic")
    if value is None:
        return ""
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "malformed Basic credentials"
    # Both compared whatever the first says: the time taken tells nothing about which one was wrong.
    ok = _same(user, s.webhook_basic_user) & _same(password, s.webhook_basic_password.get_secret_value())
    return None if sep and ok else "wrong Basic user or password"


def _pagerduty(s: Settings, headers: Mapping[str, str], body: bytes, *_: Any) -> str | None:
    assert s.pagerduty_webhook_secret is not None
    secret = s.pagerduty_webhook_secret.get_secret_value()
    return verify_signature(secret, headers.get("x-pagerduty-signature", ""), body)


def body_signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the body: X-LD-Signature as is, X-Hub-Signature-256 after "sha256="."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _github(s: Settings, headers: Mapping[str, str], body: bytes, *_: Any) -> str | None:
    assert s.github_webhook_secret is not None
    sig = headers.get("x-hub-signature-256", "").strip()
    if not sig:
        return ""
    if not sig.startswith("sha256="):
        return "X-Hub-Signature-256 is not sha256=<hex>"
    ok = _same(sig.removeprefix("sha256="), body_signature(s.github_webhook_secret.get_secret_value(), body))
    return None if ok else "bad X-Hub-Signature-256"


def _gitlab(s: Settings, headers: Mapping[str, str], *_: Any) -> str | None:
    assert s.gitlab_webhook_token is not None
    token = headers.get("x-gitlab-token")
    if token is None:
        return ""
    return None if _same(token, s.gitlab_webhook_token.get_secret_value()) else "wrong X-Gitlab-Token"


def _launchdarkly(s: Settings, headers: Mapping[str, str], body: bytes, *_: Any) -> str | None:
    assert s.launchdarkly_webhook_secret is not None
    sig = headers.get("x-ld-signature", "").strip()
    if not sig:
        return ""
    ok = _same(sig.lower(), body_signature(s.launchdarkly_webhook_secret.get_secret_value(), body))
    return None if ok else "bad X-LD-Signature"


def _url_token(s: Settings, _: Mapping[str, str], __: bytes, token: str | None, *___: Any) -> str | None:
    assert s.webhook_url_token is not None
    if token is None:
        return ""
    return None if _same(token, s.webhook_url_token.get_secret_value()) else "wrong token in the URL"


CHECKS: dict[AuthScheme, tuple[Check, Callable[[Settings], bool]]] = {
    AuthScheme.HMAC: (_hmac, lambda s: s.webhook_secret is not None),
    AuthScheme.BEARER: (_bearer, lambda s: s.webhook_token is not None),
    AuthScheme.BASIC: (
        _basic,
        lambda s: s.webhook_basic_user is not None and s.webhook_basic_password is not None,
    ),
    AuthScheme.PAGERDUTY: (_pagerduty, lambda s: s.pagerduty_webhook_secret is not None),
    AuthScheme.URL_TOKEN: (_url_token, lambda s: s.webhook_url_token is not None),
    AuthScheme.GITHUB: (_github, lambda s: s.github_webhook_secret is not None),
    AuthScheme.GITLAB: (_gitlab, lambda s: s.gitlab_webhook_token is not None),
    AuthScheme.LAUNCHDARKLY: (_launchdarkly, lambda s: s.launchdarkly_webhook_secret is not None),
}


def check_webhook_auth(
    settings: Settings,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    url_token: str | None = None,
    now: float | None = None,
    allowed: Sequence[AuthScheme] | None = None,
) -> str | None:
    """None if the request is authentic for this source, else why not and what the source accepts (the 401).
    `allowed`: the schemes a change sender accepts (default: the alert sender's). With no webhook credential
    configured at all, open (local use)."""
    if not settings.webhook_auth_configured:
        return None
    allowed = accepted_auth(settings, source) if allowed is None else allowed
    schemes = [a for a in allowed if CHECKS[a][1](settings)]
    if not schemes:
        wanted = " or ".join(EXPECTED[a] for a in allowed) or "nothing (webhook_auth lists no scheme)"
        return f"no credential is configured for {source}; it accepts {wanted}"
    expected = "; or ".join(EXPECTED[a] for a in schemes)
    if url_token is not None and AuthScheme.URL_TOKEN not in schemes:
        return f"{source} does not take a token in the URL (it travels in logs); it expects {expected}"
    when = time.time() if now is None else now
    problems = [why for a in schemes if (why := CHECKS[a][0](settings, headers, body, url_token, when)) != ""]
    if None in problems:
        return None
    return f"{problems[0] if problems else 'no credentials'}; {source} expects {expected}"


class HideUrlTokens(logging.Filter):
    """Access-log lines without the URL token (path segment or ?token=): it is a secret that travels in URLs."""

    _PATH = re.compile(r"^(/webhooks/(?!change/)[^/?]+)/[^?]+")  # /webhooks/change/<sender> holds no token
    _QUERY = re.compile(r"(?i)([?&]token=)[^&]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._QUERY.sub(r"\1***", self._PATH.sub(r"\1/***", a)) if isinstance(a, str) else a
                for a in record.args
            )
        return True
