"""Test doubles for tests and benchmarks (never installed with the bot): a Slack Web API emulator and an
OpenAI-compatible emulator on 127.0.0.1, and small helpers."""
