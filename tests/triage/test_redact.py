"""Redaction: secrets and personal data become typed placeholders; ordinary operational text is left alone."""

from __future__ import annotations

from bot.triage.redact import redact


def test_redaction_replaces_secrets_and_personal_data_with_typed_placeholders() -> None:
    text = (
        "User alice@example.com saw key sk-proj-abcdefghijklmnop1234 from 10.1.2.3; "
        "db postgres://admin:hunter2@db.internal/x; card 4111 1111 1111 1111; Authorization: Bearer abcdefghijklmnopqrstuvwx"
    )
    out, counts = redact(text)
    for secret in ("alice@example.com", "sk-proj-abcdefghijklmnop1234", "10.1.2.3", "hunter2", "4111 1111 1111 1111",
                   "abcdefghijklmnopqrstuvwx"):  # fmt: skip
        assert secret not in out
    assert "[EMAIL_1]" in out and "[API_KEY_1]" in out and counts["IP_ADDRESS"] == 1
    assert redact("Error rate 7% since 14:05 UTC on gpt-4o")[0] == "Error rate 7% since 14:05 UTC on gpt-4o"
