"""A password in a URL's userinfo typed unencoded, with "/" or "@" in it, is hidden whole (issue 32)."""

from __future__ import annotations

import pytest

from bot.triage.redact import redact

PASSWORDS = ["pa/ss@word", "Xq9@Zk7/Wm2", "ab1@cd2@ef3", "s3cr3t/"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_whole_password_in_userinfo_is_hidden(password: str) -> None:
    for url in (f"postgres://user:{password}@db.example.com:5432/x", f"redis://:{password}@cache:6379/0"):
        text, counts = redact(f"cannot connect to {url} since 10:05")
        assert counts.get("PASSWORD"), text
        # No piece of the password is left, however the URL splits around it.
        assert not any(len(part) > 1 and part in text for part in password.replace("@", "/").split("/")), text
        assert "cannot connect to" in text and "since 10:05" in text


def test_urls_without_a_password_are_left_alone() -> None:
    for text in ("https://status.example.com:8443/incidents/42 is fine", "see https://mastodon.social/@ops"):
        assert redact(text) == (text, {})
