"""`incibot doctor` against a Slack as strict as Slack (testkit's SlackEmulator), an OpenAI-compatible emulator,
SQLite and, where the binaries are there, a real PostgreSQL: a healthy setup passes with OK only, and each broken
part is one FAIL line that says what to do."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.backends import Postgres, postgres_bin
from bot.cli import app
from bot.config import AuthScheme, Settings
from bot.doctor import configuration, listen, run, storage, webhooks
from bot.doctor import llm as llm_doctor
from bot.doctor import slack as slack_doctor
from bot.doctor.report import Check, Status
from bot.intake.auth import CHECKS
from bot.net import free_port
from bot.store.sql import Store
from testkit.emulators import OpenAIEmulator, SlackEmulator, manifest_scopes

runner = CliRunner()
SECRETS = {
    "INCIBOT_WEBHOOK_SECRET": "hmac-secret",
    "INCIBOT_WEBHOOK_TOKEN": "bearer-token",
    "INCIBOT_WEBHOOK_BASIC_USER": "am",
    "INCIBOT_WEBHOOK_BASIC_PASSWORD": "pw",
    "INCIBOT_WEBHOOK_URL_TOKEN": "url-token",
    "INCIBOT_PAGERDUTY_WEBHOOK_SECRET": "pd",
    "INCIBOT_GITHUB_WEBHOOK_SECRET": "gh",
    "INCIBOT_GITLAB_WEBHOOK_TOKEN": "gl",
    "INCIBOT_LAUNCHDARKLY_WEBHOOK_SECRET": "ld",
}


@pytest.fixture
def llm() -> Iterator[OpenAIEmulator]:
    """An OpenAI-compatible endpoint answering anything (the doctor asks for no schema)."""
    emu = OpenAIEmulator(lambda request: {"answer": "OK"})
    yield emu
    emu.close()


@pytest.fixture
def emulated(slack: SlackEmulator, llm: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch) -> SlackEmulator:
    """A healthy setup: every credential, a reachable Slack with the manifest's scopes, a channel, an LLM."""
    slack.add_channel("#incidents")  # public; the bot is no member: chat:write.public lets it post
    slack.add_channel("G-secret", member=True)  # private, the bot invited
    env = {**SECRETS, "INCIBOT_SLACK_BOT_TOKEN": "xoxb-test", "INCIBOT_SLACK_SIGNING_SECRET": "s",
           "INCIBOT_SLACK_API_URL": slack.url, "INCIBOT_CHANNEL_ROUTES": '{"openai": "G-secret"}',
           "INCIBOT_LLM_BACKEND": "openai", "INCIBOT_OPENAI_BASE_URL": llm.url,
           "INCIBOT_HOST": "0.0.0.0", "INCIBOT_PORT": str(free_port())}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return slack


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def only(checks: list[Check], status: Status) -> list[str]:
    return [c.line() for c in checks if c.status is status]


# ---- a healthy setup -------------------------------------------------------------------------------------------
def test_a_healthy_setup_is_all_ok_and_exits_0(emulated: SlackEmulator) -> None:
    Store(Settings().db_url)  # the database as `serve` leaves it: created and migrated
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert all(ln.startswith("OK ") for ln in lines[:-1]), result.output
    assert lines[-1] == "0 FAIL, 0 WARN"
    names = {ln.split()[1] for ln in lines[:-1]}
    assert {"configuration", "database", "migrations", "chroma", "llm", "slack", "listen", "sender"} <= names
    out = result.output
    assert (
        "slack channel #incidents" in out and "slack channel G-secret" in out and "model gpt-4o-mini" in out
    )
    # read only: nothing posted, joined or created in Slack
    assert {m.split("!")[0] for m, _ in emulated.calls} == {"auth.test", "conversations.list"}


def test_the_emulator_names_the_tokens_scopes_as_slack_does(slack: SlackEmulator) -> None:
    from slack_sdk import WebClient

    resp = WebClient(token="xoxb-test", base_url=slack.url).auth_test()
    assert slack_doctor.granted_scopes(resp.headers) == manifest_scopes() == slack_doctor.manifest_scopes()


def test_a_fresh_install_warns_and_fails_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing configured: the command line works; Slack, open webhooks and loopback are WARNs, not FAILs."""
    monkeypatch.setenv("INCIBOT_LLM_BACKEND", "none")
    checks = list(run())
    assert not only(checks, Status.FAIL), only(checks, Status.FAIL)
    warned = by_name([c for c in checks if c.status is Status.WARN])
    assert set(warned) == {"slack", "webhooks", "listen"}
    assert "127.0.0.1" in warned["listen"].detail and "INCIBOT_HOST=0.0.0.0" in warned["listen"].fix


# ---- each FAIL ---------------------------------------------------------------------------------------------------
def _slack(emu: SlackEmulator, **kw: object) -> dict[str, Check]:
    settings = Settings(slack_bot_token=kw.pop("token", "xoxb-test"), slack_signing_secret="s",
                        slack_api_url=emu.url, **kw)  # type: ignore[arg-type]  # fmt: skip
    return by_name(list(slack_doctor.checks(settings)))


def test_a_bad_token_fails_with_where_to_find_the_right_one() -> None:
    emu = SlackEmulator(tokens={"xoxb-good"})
    try:
        c = _slack(emu, token="xoxb-bad")["slack token"]
    finally:
        emu.close()
    assert c.status is Status.FAIL and "invalid_auth" in c.detail and "OAuth & Permissions" in c.fix
    emu = SlackEmulator()
    try:
        c = _slack(emu, token="xapp-1-app-level")["slack token"]
    finally:
        emu.close()
    assert c.status is Status.FAIL and "not_allowed_token_type" in c.detail and "xoxb-" in c.fix


def test_a_missing_scope_fails_naming_it() -> None:
    emu = SlackEmulator(scopes=manifest_scopes() - {"channels:history", "groups:history"})
    emu.add_channel("#incidents")
    try:
        checks = _slack(emu)
    finally:
        emu.close()
    c = checks["slack scopes"]
    assert c.status is Status.FAIL and "channels:history, groups:history" in c.detail and "reinstall" in c.fix
    assert checks["slack token"].status is Status.OK


def test_files_write_is_needed_only_when_the_metrics_chart_is_on() -> None:
    """An install from the manifest before the chart existed: no FAIL unless the chart would be uploaded."""
    emu = SlackEmulator(scopes=manifest_scopes() - {"files:write"})
    emu.add_channel("#incidents")
    try:
        off = _slack(emu)["slack scopes"]
        on = _slack(emu, prometheus_url="http://127.0.0.1:9")["slack scopes"]
    finally:
        emu.close()
    assert off.status is Status.WARN and "files:write" in off.detail
    assert on.status is Status.FAIL and "files:write" in on.detail


def test_unknown_and_unreachable_channels_fail(slack: SlackEmulator) -> None:
    slack.add_channel("G-hidden")  # private, the bot not invited: Slack does not even list it
    slack.add_channel("#archived").member = True
    checks = _slack(slack, default_channel="#nope", channel_routes={"a": "G-hidden"})
    assert checks["slack channel #nope"].status is Status.FAIL
    assert "INCIBOT_DEFAULT_CHANNEL" in checks["slack channel #nope"].fix
    assert checks["slack channel G-hidden"].status is Status.FAIL
    assert "/invite @incibot" in checks["slack channel G-hidden"].fix

    no_public = SlackEmulator(scopes=manifest_scopes() - {"chat:write.public"})
    no_public.add_channel("#incidents")
    try:
        c = _slack(no_public)["slack channel #incidents"]
    finally:
        no_public.close()
    assert c.status is Status.FAIL and "chat:write.public" in c.detail


def test_slack_down_fails_as_unreachable(slack: SlackEmulator) -> None:
    slack.down = True
    c = _slack(slack)["slack token"]
    assert c.status is Status.FAIL and "HTTP 503" in c.detail and "slack-status.com" in c.fix
    settings = Settings(slack_bot_token="xoxb-test", slack_signing_secret="s",
                        slack_api_url=f"http://127.0.0.1:{free_port()}/api/")  # nothing listens there  # fmt: skip
    c = by_name(list(slack_doctor.checks(settings)))["slack token"]
    assert c.status is Status.FAIL and "unreachable" in c.detail and "HTTPS_PROXY" in c.fix


def test_a_missing_signing_secret_fails_unless_socket_mode(slack: SlackEmulator) -> None:
    base = {"slack_bot_token": "xoxb-test", "slack_api_url": slack.url}
    c = by_name(list(slack_doctor.checks(Settings(**base))))["slack signing secret"]  # type: ignore[arg-type]
    assert c.status is Status.FAIL and "Signing Secret" in c.fix
    c = by_name(list(slack_doctor.checks(Settings(**base, slack_app_token="xapp-1"))))["slack signing secret"]  # type: ignore[arg-type]
    assert c.status is Status.OK and "Socket Mode" in c.detail


def test_an_unreachable_database_fails_within_seconds(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://incibot:secret-pw@127.0.0.1:{free_port()}/incibot"
    checks = list(storage.database(Settings(database_url=url)))
    assert [c.status for c in checks] == [Status.FAIL]
    assert "unreachable" in checks[0].detail and "secret-pw" not in checks[0].line()
    assert "INCIBOT_DATABASE_URL" in checks[0].fix


def test_sqlite_not_created_yet_then_migrated(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert [c.status for c in storage.database(settings)] == [Status.OK]
    assert not (tmp_path / "data" / "incibot.db").exists()  # the doctor creates nothing
    Store(settings.db_url)
    assert [(c.name, c.status) for c in storage.database(settings)] == [
        ("database", Status.OK), ("migrations", Status.OK)]  # fmt: skip


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed")
def test_postgres_reachable_and_migrations_current() -> None:
    pg = Postgres()
    try:
        settings = Settings(database_url=pg.database("doctor"))
        fresh = by_name(list(storage.database(settings)))
        assert fresh["database"].status is Status.OK
        assert fresh["migrations"].status is Status.WARN and "serve" in fresh["migrations"].fix
        Store(settings.db_url)
        assert by_name(list(storage.database(settings)))["migrations"].status is Status.OK
    finally:
        pg.stop()
        pg.remove()


def test_the_llm_endpoint_down_refusing_or_without_the_model_fails(llm: OpenAIEmulator) -> None:
    settings = Settings(llm_backend="openai", openai_base_url=llm.url, openai_api_key="sk-x")
    ok = next(llm_doctor.checks(settings))
    assert ok.status is Status.OK and " ms" in ok.detail
    assert llm.requests()[-1]["max_tokens"] == 5  # a tiny completion
    llm.failures = [(401, {})]
    assert "refused the key" in next(llm_doctor.checks(settings)).detail
    llm.failures = [(404, {})]
    assert "no model 'gpt-4o-mini'" in next(llm_doctor.checks(settings)).detail
    llm.down = True
    c = next(llm_doctor.checks(settings))
    assert c.status is Status.FAIL and "unreachable" in c.detail and "INCIBOT_OPENAI_BASE_URL" in c.fix


def test_llm_settings_that_cannot_work_fail_without_a_call() -> None:
    no_key = Settings(llm_backend="openai")  # OpenAI's own API, without a key
    assert next(llm_doctor.checks(no_key)).status is Status.FAIL
    assert next(llm_doctor.checks(Settings(llm_backend="azure"))).status is Status.FAIL
    assert next(llm_doctor.checks(Settings(llm_backend="none"))).status is Status.OK
    missing = Settings(llm_backend="local", local_model_path=Path("/nonexistent/model.gguf"))
    c = next(llm_doctor.checks(missing))
    assert c.status is Status.FAIL and "no GGUF" in c.detail


def test_an_unreachable_chroma_server_fails() -> None:
    c = storage.chroma(Settings(chroma_host="127.0.0.1", chroma_port=free_port()))
    assert c.status is Status.FAIL and "INCIBOT_CHROMA_HOST" in c.fix


def test_a_bad_setting_fails_naming_the_variable_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_PORT", "abc")
    monkeypatch.setenv("INCIBOT_RETREIVAL_K", "3")
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "FAIL  configuration" in result.output and "INCIBOT_PORT='abc'" in result.output
    monkeypatch.delenv("INCIBOT_PORT")
    settings, checks = configuration.load()
    assert settings is not None
    assert any("INCIBOT_RETRIEVAL_K" in c.fix for c in checks if c.status is Status.WARN)


def test_an_unwritable_data_dir_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    c = configuration.data_dir(Settings(data_dir=tmp_path / "file" / "data"))
    assert c.status is Status.FAIL and "INCIBOT_DATA_DIR" in c.fix


# ---- senders, change sources, where serve listens ------------------------------------------------------------
def test_each_sender_says_whether_its_credential_is_set() -> None:
    checks = by_name(list(webhooks.checks(Settings(webhook_token="t"))))
    assert checks["sender alertmanager"].status is Status.OK
    assert "INCIBOT_WEBHOOK_TOKEN" in checks["sender alertmanager"].detail
    assert checks["change github"].status is Status.WARN
    assert "INCIBOT_GITHUB_WEBHOOK_SECRET" in checks["change github"].fix
    half = by_name(list(webhooks.checks(Settings(webhook_token="t", webhook_basic_user="u"))))
    assert half["webhook basic auth"].status is Status.FAIL
    typo = by_name(list(webhooks.checks(Settings(webhook_token="t", webhook_auth={"pagerdty": ["bearer"]}))))
    assert "'pagerduty'" in typo["webhook_auth"].fix
    refused = by_name(list(webhooks.checks(Settings(webhook_token="t", webhook_auth={"statuspage": []}))))
    assert refused["sender statuspage"].status is Status.FAIL


@pytest.mark.parametrize("scheme", list(AuthScheme))
def test_scheme_settings_are_what_authentication_reads(scheme: AuthScheme) -> None:
    """The settings docs/senders.md and the doctor name for a scheme are exactly those bot/intake/auth.py needs."""
    names = webhooks.SCHEME_SETTINGS[scheme]
    values = {n: "u" if n == "webhook_basic_user" else "x" for n in names}
    assert CHECKS[scheme][1](Settings(**values))  # type: ignore[arg-type]
    for n in names:  # each one is needed
        assert not CHECKS[scheme][1](Settings(**{k: v for k, v in values.items() if k != n}))  # type: ignore[arg-type]


def test_listen_loopback_warns_taken_port_warns_foreign_address_fails() -> None:
    assert listen.check(Settings(host="127.0.0.1", port=free_port())).status is Status.WARN
    assert listen.check(Settings(host="0.0.0.0", port=free_port())).status is Status.OK
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        c = listen.check(Settings(host="127.0.0.1", port=s.getsockname()[1]))
    assert c.status is Status.WARN and "taken" in c.detail
    assert listen.check(Settings(host="192.0.2.1", port=free_port())).status is Status.FAIL  # TEST-NET-1
