"""Webhook authentication: our HMAC signature (fresh, over the exact body) and a Bearer token."""

from __future__ import annotations

import time

from bot.config import Settings
from bot.intake.auth import check_webhook_auth, webhook_signature


def test_hmac_auth() -> None:
    s = Settings(webhook_secret="k")
    now = int(time.time())
    body = b'{"id": 1}'
    good = {"x-incibot-timestamp": str(now), "x-incibot-signature": webhook_signature("k", str(now), body)}
    assert check_webhook_auth(s, "generic", good, body) is None
    assert (check_webhook_auth(s, "generic", good, body + b" ") or "").startswith(
        "bad signature; generic expects"
    )
    assert "stale" in (check_webhook_auth(s, "generic", good, body, now=now + 3600) or "")
    t = Settings(webhook_token="tok")
    assert check_webhook_auth(t, "generic", {"authorization": "Bearer tok"}, body) is None
    assert check_webhook_auth(t, "generic", {"authorization": "Bearer no"}, body) is not None
