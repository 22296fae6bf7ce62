"""One Settings object: environment variables (INCIBOT_*) over an optional YAML file over defaults."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from bot.visibility import UNRESOLVED_DELAY

# Operator-editable files live at the top of the checkout, beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "INCIBOT_CONFIG"
ENV_PREFIX = "INCIBOT_"
# INCIBOT_* variables read outside Settings (the CLI, scripts/setup.sh, scripts/test.sh, the model server's
# process): not typos of a setting.
ENV_NOT_SETTINGS = frozenset(
    {CONFIG_ENV, "INCIBOT_DEBUG", "INCIBOT_LOCAL_LLM", "INCIBOT_TEST_WORKERS", "INCIBOT_PARENT_PID"}
)


class AuthScheme(StrEnum):
    """How a webhook sender proves itself; each source accepts its sender's schemes, or those `webhook_auth`
    lists for it."""

    HMAC = "hmac"  # X-Incibot-Timestamp + X-Incibot-Signature with webhook_secret (generic, signing proxies)
    BEARER = "bearer"  # Authorization: Bearer <webhook_token>
    BASIC = "basic"  # Authorization: Basic <webhook_basic_user:webhook_basic_password>
    PAGERDUTY = "pagerduty"  # X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>
    URL_TOKEN = "url_token"  # /webhooks/<source>/<webhook_url_token> or ?token=<webhook_url_token>
    # Change senders (bot/intake/changes/):
    GITHUB = "github"  # X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with github_webhook_secret>
    GITLAB = "gitlab"  # X-Gitlab-Token: <gitlab_webhook_token>
    LAUNCHDARKLY = (
        "launchdarkly"  # X-LD-Signature: <hex HMAC-SHA256 of the body with launchdarkly_webhook_secret>
    )


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "incibot"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", env_nested_delimiter="__")

    # --- files operators edit
    taxonomy_path: Path = PROJECT_ROOT / "taxonomies" / "genai.yaml"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    playbooks_dir: Path = PROJECT_ROOT / "playbooks"

    # --- history store (Chroma): embedded on disk unless chroma_host is set
    data_dir: Path = Field(default_factory=_default_data_dir)
    chroma_path: Path | None = None  # default: <data_dir>/chroma
    chroma_host: str | None = None
    chroma_port: int = 8000
    chroma_ssl: bool = False
    collection: str = "incidents"
    seed_demo_history: bool = True  # import the bundled demo history into an empty default collection
    import_batch_size: int = Field(default=512, ge=1, le=5000)
    history_retry_s: float = (
        30.0  # labelled incidents the history could not take are written again this often
    )

    # --- retrieval
    retrieval_k: int = Field(default=5, ge=1, le=50)
    retrieval_min_score: float = 0.15
    near_duplicate_score: float = 0.97  # results this similar to a better one are the same incident twice
    retrieval_min_with_fix: int = 3  # slots kept for the closest incidents that record how they were fixed
    # An incident with no resolved time counts as resolved this long after it opened, for replays of history
    # that ask what was visible when (bot/visibility.py says why 7 days); stored with each history record.
    unresolved_visible_after_h: float = Field(default=UNRESOLVED_DELAY / timedelta(hours=1), ge=0)

    # --- LLM: "local" runs the bundled GGUF in its own supervised llama.cpp server on 127.0.0.1 (a crash there is
    # an LLM outage, not a bot outage); "openai" is any OpenAI-compatible endpoint
    llm_backend: Literal["local", "openai", "azure", "none"] = "local"
    local_model: Literal["smollm2-135m", "gemma3-270m"] = "smollm2-135m"
    local_model_path: Path | None = None  # any other GGUF file
    local_ctx: int = 4096
    local_threads: int | None = None
    local_server_port: int = Field(default=0, ge=0, le=65535)  # 0: a free port on 127.0.0.1
    local_server_start_timeout_s: float = 60.0  # load the model and answer within this, or the start failed
    local_server_restart_max_s: float = 30.0  # restarts back off up to this while starts keep failing
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    azure_api_version: str = "2024-10-21"
    # How to ask an endpoint for structured output; some vLLM builds need function_calling; llama.cpp servers
    # constrain decoding to a schema given as {"type": "json_object", "schema": ...} (json_object_schema).
    structured_output: Literal["json_schema", "function_calling", "json_mode", "json_object_schema"] = (
        "function_calling"
    )
    llm_temperature: float = 0.0
    llm_max_tokens: int = 768
    llm_timeout_s: float = 60.0
    llm_retries: int = Field(default=3, ge=1, le=10)  # per ticket, honouring Retry-After
    llm_breaker_failures: int = Field(default=3, ge=1)  # tickets in a row whose LLM calls all failed...
    llm_breaker_reset_s: float = 60.0  # ...open the circuit for this long (retrieval-only drafts meanwhile)

    # --- combining the LLM with retrieval evidence
    llm_weight: float = Field(
        default=0.5, ge=0.0, le=1.0
    )  # the vote's LLM share, where no classifier is trained
    learned_decision: bool = True  # per-field classifiers + learned weights; False: the vote alone
    evidence_priors_path: Path | None = Field(
        default=PROJECT_ROOT / "taxonomies" / "evidence-priors.yaml",
        description="Why-now evidence priors: odds per label and weight in verdicts for each change, alert and "
        "signal feature, with their sources (bot/triage/evidence.py); checked against the taxonomy. Empty: none.",
    )
    # A fresh install trains its classifier at start; the bot's first posts wait this long for it (then the vote
    # decides and the draft says the classifier is still training).
    first_training_wait_s: float = Field(default=120.0, ge=0.0)
    target_precision: float = Field(
        default=0.85, gt=0.0, le=1.0
    )  # abstention thresholds are chosen to reach it
    confident_at: float = 0.6  # shown as "confident" at or above this
    # The first step separates the two likeliest root causes (or actions) when they are this close in probability
    # and lead to different playbooks (bot/triage/first_step.py); 0 turns that off.
    step_close_margin: float = Field(default=0.15, ge=0.0, le=1.0)
    # Time to mitigate on the post, by a method `python -m evals.time_to_mitigate` showed beats the overall median
    # of the history; none did on every dev set (genai-status, cloud-labeled, github-status), so none.
    ttm_estimator: Literal["none", "neighbours", "action", "severity", "service"] = "none"
    # Coverage of the conformal sets: the mitigation hypotheses (at most three shown) and an abstaining field's set
    hypothesis_coverage: float = Field(default=0.85, gt=0.0, lt=1.0)

    # --- input limits
    max_text_chars: int = Field(default=8000, ge=100)  # longer ticket text is truncated before embedding/LLM
    # --- redaction (bot/triage/redact.py): secrets and personal data become typed placeholders
    redact_for_external_llm: bool = True
    redact_for_local_llm: bool = True  # False lets the in-process model see raw text
    redact_in_slack: bool = True  # ticket text as shown in posts
    redact_in_history: bool = True  # tickets that become history (resolutions, engineer feedback)
    # The SQL store keeps tickets redacted; the sender's raw text and payload only with this on (or when the LLM
    # is configured to read raw text, which it then needs).
    store_raw_tickets: bool = False
    redact_names: bool = False  # person names (spaCy NER); off: it hides model names such as "Claude 3"
    redact_patterns: dict[str, str] = Field(default_factory=dict)  # KIND -> regex, organisation-specific

    # --- Slack and the HTTP server
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None  # Socket Mode
    slack_api_url: str = "https://slack.com/api/"
    default_channel: str = "#incidents"
    channel_routes: dict[str, str] = Field(default_factory=dict)  # service -> channel
    host: str = "127.0.0.1"
    port: int = 3000
    database_url: str | None = None  # default: sqlite:///<data_dir>/incibot.db
    slack_retries: int = Field(default=5, ge=1, le=20)  # retries per edit or lookup (never for posts)
    slack_outbox_backoff_max_s: float = 30.0  # Slack down: the outbox head is retried at most this far apart
    slack_channel_rate: float = 1.0  # messages per second per channel (Slack's limit)...
    slack_channel_burst: int = 4  # ...with short bursts allowed
    # The work queue in the database (bot/delivery/queue.py), shared by every replica:
    lease_s: float = Field(default=30.0, gt=0)  # a replica that stops renewing loses its claims after this
    queue_poll_s: float = Field(default=0.2, gt=0)  # how often an idle replica looks for work others stored
    max_backlog: int = Field(default=5000, ge=1)  # tickets waiting to be posted; beyond it webhooks get 429

    # --- webhook senders (docs/senders.md). Nothing configured: webhooks are open (local use).
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 of "v0:<timestamp>:<body>" (X-Incibot-Signature)
    webhook_token: SecretStr | None = None  # Authorization: Bearer <token>
    webhook_basic_user: str | None = None  # Authorization: Basic, with webhook_basic_password
    webhook_basic_password: SecretStr | None = None
    webhook_url_token: SecretStr | None = None  # /webhooks/<source>/<token> or ?token= (in URLs and logs)
    pagerduty_webhook_secret: SecretStr | None = None  # X-PagerDuty-Signature: v1=<HMAC-SHA256 of the body>
    # source -> the schemes it accepts, replacing that sender's default (bot/intake/senders/<source>.py)
    webhook_auth: dict[str, list[AuthScheme]] = Field(default_factory=dict)
    webhook_max_bytes: int = 1_000_000
    webhook_max_age_s: int = 300  # reject signed requests older than this (replay)
    # An open sender incident that said nothing new for this long, firing again with none of its earlier alerts,
    # is a new ticket (a resolve always ends an occurrence).
    occurrence_quiet_s: float = Field(default=3600.0, gt=0)
    clock_skew_max_h: float = Field(
        default=24.0,
        gt=0,
        le=24 * 366,
        description="How far ahead of the bot's clock a sender's timestamp may be. A change stamped later is "
        "refused (422: it would be listed as the latest change and never pruned); a ticket's time later than "
        "this, or not after 1970, is replaced by the time it was received (the alert is still posted). Past "
        "times are not bounded: alerts fire for weeks and webhooks are redelivered days late.",
    )
    # Change senders (docs/senders.md, "Connecting change sources"); argocd uses webhook_token or Basic
    github_webhook_secret: SecretStr | None = None  # the GitHub webhook's secret (X-Hub-Signature-256)
    gitlab_webhook_token: SecretStr | None = None  # the GitLab webhook's secret token (X-Gitlab-Token)
    launchdarkly_webhook_secret: SecretStr | None = None  # the LaunchDarkly webhook's secret (X-LD-Signature)
    # "<name>@<environment>" or "<name>" (a repository, GitLab project path, Argo CD application, LaunchDarkly flag
    # or project key, a generic change's service) -> the service tickets name; unmapped: stored under that name
    change_service_map: dict[str, str] = Field(default_factory=dict)
    change_window_min: float = Field(
        default=120.0, gt=0
    )  # changes and other alerts this long before a ticket
    change_skew_s: float = Field(
        default=120.0, ge=0
    )  # a change stamped this long after the ticket still counts
    change_retention_days: float = Field(default=14.0, gt=0)  # changes are kept this long
    concurrent_open_h: float = Field(default=24.0, gt=0)  # an unresolved ticket counts as firing this long
    change_replies_max: int = Field(default=10, ge=0)  # change replies in one incident's thread, at most
    # source -> the sender's severity value (any case) -> the taxonomy's severity, replacing that sender's default
    # map whole (bot/intake/senders/<source>.py); a value that is itself a taxonomy severity id maps to it
    severity_map: dict[str, dict[str, str]] = Field(default_factory=dict)

    # --- watching itself (bot/watch/monitor.py, /metrics, incibot report) and the fleet-wide rollback (bot/watch/mode.py)
    ops_channel: str | None = None  # quality alerts and recoveries; default: default_channel
    # Bearer token for /metrics and the details of /healthz (model server pid, errors, queue figures); unset,
    # they are refused and /healthz only says ready or not ready.
    ops_token: SecretStr | None = None
    admin_user_ids: list[str] = Field(default_factory=list)  # Slack user ids that may run /triage mode
    mode_ttl_s: float = Field(default=2.0, gt=0)  # each replica rereads the mode at most this often
    # model -> (USD per 1k prompt tokens, per 1k completion tokens); a model without one has an unknown cost
    llm_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    quality_window: int = Field(default=50, ge=1)  # the newest verdicts the acceptance signal looks at
    quality_min_verdicts: int = Field(default=20, ge=1)  # per field and model, before it can alert
    quality_alert_below: float = Field(default=0.5, ge=0, le=1)  # acceptance below this opens an alert...
    quality_recover_at: float = Field(default=0.7, ge=0, le=1)  # ...that closes at or above this
    llm_failure_window: int = Field(default=20, ge=1)  # the newest LLM drafts the failure signal looks at
    llm_failure_min_calls: int = Field(default=10, ge=1)
    llm_failure_alert_above: float = Field(default=0.5, ge=0, le=1)
    llm_failure_recover_below: float = Field(default=0.2, ge=0, le=1)

    # --- incident storms: a ticket this similar to an active posted incident in its channel joins it
    storm_similarity: float = Field(default=0.9, ge=0.0, le=1.01)  # > 1 turns grouping off
    storm_window_s: float = 1800.0  # an incident stays open for grouping this long after its newest ticket
    storm_flush_s: float = 15.0  # per incident: one thread reply + one counter edit at most this often
    storm_reply_batch: int = Field(default=25, ge=1, le=40)  # tickets listed per thread reply

    # --- telemetry around a ticket (bot/telemetry/): a Prometheus-compatible API, read-only (query_range)
    prometheus_url: str | None = Field(
        default=None,
        description="Base URL of a Prometheus-compatible API (Prometheus, Thanos, Mimir's /prometheus, "
        "VictoriaMetrics, Grafana Cloud); `/api/v1/query_range` is appended. Unset: no telemetry.",
    )
    prometheus_token: SecretStr | None = Field(default=None, description="Sent as `Authorization: Bearer`.")
    prometheus_basic_user: str | None = Field(default=None, description="Basic auth user, with the password.")
    prometheus_basic_password: SecretStr | None = Field(default=None, description="Basic auth password.")
    prometheus_headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers, e.g. Mimir's `X-Scope-OrgID`."
    )
    signals_path: Path = Field(
        default=PROJECT_ROOT / "taxonomies" / "signals.yaml",
        description="The signal catalogue: PromQL per signal and the per-service label selectors.",
    )
    telemetry_before_min: float = Field(
        default=60.0, gt=0, description="Minutes of metrics read before the ticket opened (up to now)."
    )
    telemetry_step_s: float = Field(default=30.0, ge=1, description="Resolution of the read, in seconds.")
    telemetry_budget_s: float = Field(
        default=1.5, gt=0, description="Seconds the whole read may take; queries still out then are errors."
    )
    telemetry_max_series: int = Field(default=20, ge=1, description="Series kept per signal (query).")
    telemetry_max_points: int = Field(
        default=1000, ge=10, description="Points per series; longer windows are read at a coarser step."
    )
    telemetry_max_bytes: int = Field(
        default=5_000_000, ge=10_000, description="Bytes one query's answer may have; more is an error."
    )
    telemetry_breaker_failures: int = Field(
        default=3, ge=1, description="Reads in a row whose every query failed open the circuit..."
    )
    telemetry_breaker_reset_s: float = Field(
        default=60.0, gt=0, description="...for this long: telemetry is skipped meanwhile."
    )
    telemetry_chart: bool = Field(
        default=True,
        description="Upload a chart of the signals that moved to the incident's thread (Slack scope files:write).",
    )

    # --- history importers (bot/intake/importers/): `incibot history import --from pagerduty|opsgenie|jira|incidentio|markdown`
    pagerduty_api_url: str = Field(
        default="https://api.pagerduty.com",
        description="PagerDuty's REST API v2 (`https://api.eu.pagerduty.com` for an EU account).",
    )
    pagerduty_api_token: SecretStr | None = Field(
        default=None, description="A read-only PagerDuty REST API key, for `history import --from pagerduty`."
    )
    opsgenie_api_url: str = Field(
        default="https://api.opsgenie.com",
        description="Opsgenie's API (`https://api.eu.opsgenie.com` for an EU account).",
    )
    opsgenie_api_key: SecretStr | None = Field(
        default=None,
        description="An Opsgenie API key with Read access, for `history import --from opsgenie`.",
    )
    jira_url: str | None = Field(
        default=None,
        description="Your Jira site, for `history import --from jira`: `https://your-site.atlassian.net` (Cloud) or "
        "the Data Center base URL.",
    )
    jira_email: str | None = Field(
        default=None,
        description="The Atlassian account's email for Jira Cloud (Basic auth with `jira_api_token`); unset: "
        "`jira_api_token` is a Data Center personal access token (Bearer).",
    )
    jira_api_token: SecretStr | None = Field(
        default=None,
        description="A Jira Cloud API token (with `jira_email`) or a Data Center personal access token of a user "
        "who can browse the incident project.",
    )
    jira_jql: str = Field(
        default="project = INC ORDER BY created ASC",
        description="The JQL query whose issues `history import --from jira` reads (oldest first is added where "
        "it has no ORDER BY).",
    )
    incidentio_api_url: str = Field(
        default="https://api.incident.io",
        description="incident.io's API (v2 incidents and incident updates).",
    )
    incidentio_api_key: SecretStr | None = Field(
        default=None,
        description="An incident.io API key that can view incidents (and private ones, if they are to be "
        "imported), for `history import --from incidentio`.",
    )
    import_page_size: int = Field(
        default=100,
        ge=1,
        le=100,
        description="Records asked per page (PagerDuty and Opsgenie allow 100 at most; Jira and incident.io are asked as many, within their own caps).",
    )
    import_retries: int = Field(
        default=6, ge=1, le=20, description="Tries per request on a 429 (after Retry-After) or a 5xx."
    )
    import_backoff_s: float = Field(
        default=1.0, ge=0, description="First wait after a 5xx without Retry-After; it doubles, up to 30 s."
    )
    import_timeout_s: float = Field(default=30.0, gt=0, description="Seconds one API request may take.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"{CONFIG_ENV}={config_file}: no such file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @property
    def webhook_auth_configured(self) -> bool:
        """Any webhook credential set; without one the webhooks are open (local use only)."""
        return any(
            x is not None
            for x in (self.webhook_secret, self.webhook_token, self.webhook_basic_password,
                      self.webhook_url_token, self.pagerduty_webhook_secret, self.github_webhook_secret,
                      self.gitlab_webhook_token, self.launchdarkly_webhook_secret)
        )  # fmt: skip

    @property
    def model_dir(self) -> Path:
        """The learned decision's model files, beside the history."""
        return self.data_dir / "models"

    @property
    def chroma_dir(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'incibot.db'}"

    def channel_for(self, service: str | None) -> str:
        return self.channel_routes.get(service or "", self.default_channel)

    @property
    def redact_llm_input(self) -> bool:
        return self.redact_for_external_llm if self.external_llm else self.redact_for_local_llm

    @property
    def keep_raw_tickets(self) -> bool:
        return self.store_raw_tickets or not self.redact_llm_input

    @property
    def structured_method(self) -> str:
        """The bundled model's server is llama.cpp: its grammar-constrained JSON mode keeps a 135M model valid."""
        return "json_object_schema" if self.llm_backend == "local" else self.structured_output

    @property
    def external_llm(self) -> bool:
        """True when ticket text would leave this process for an LLM."""
        return self.llm_backend in ("openai", "azure")


def _env(environ: Mapping[str, str] | None) -> dict[str, str]:
    # pydantic-settings matches variable names in any case
    return {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}


def _closest(name: str) -> str | None:
    """The setting `name` (no prefix, any case) was probably meant to be."""
    close = difflib.get_close_matches(name.lower(), list(Settings.model_fields), n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_env_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """A line per INCIBOT_* variable that names no setting, with the closest real name: pydantic-settings ignores
    such a variable, so a typo would silently leave the setting at its default."""
    known = {ENV_PREFIX + f.upper() for f in Settings.model_fields} | ENV_NOT_SETTINGS
    lines = []
    for var in sorted(_env(environ)):
        if not var.startswith(ENV_PREFIX) or var.split("__")[0] in known:  # FIELD__KEY: a nested value
            continue
        close = _closest(var.removeprefix(ENV_PREFIX).split("__")[0])
        lines.append(
            f"{var} is not a setting" + (f"; did you mean {ENV_PREFIX}{close.upper()}?" if close else "")
        )
    return lines


def settings_error_message(e: BaseException, environ: Mapping[str, str] | None = None) -> str | None:
    """Settings that do not validate as one line, each named as the operator set it with its value and what is
    expected: `INCIBOT_PORT='abc': Input should be a valid integer` ('; ' between several). None: `e` is not
    about Settings."""
    env = _env(environ)

    def where(field: str) -> str:
        var = ENV_PREFIX + field.upper()
        if var in env or any(k.startswith(var + "__") for k in env):
            return var
        return f"{field} (in {env[CONFIG_ENV]})" if CONFIG_ENV in env else field

    def shown(field: str, value: object) -> str:
        info = Settings.model_fields.get(field)
        secret = info is not None and "SecretStr" in str(info.annotation)
        text = "'***'" if secret else repr(value)
        return text if len(text) <= 80 else text[:77] + "..."

    if isinstance(e, SettingsError):  # a complex setting (dict, list) whose value is not JSON
        m = re.search(r'field "(\w+)"', str(e))
        if m is None:
            return None
        field = m[1]
        value = env.get(ENV_PREFIX + field.upper())
        cause = f" ({e.__cause__})" if e.__cause__ else ""
        given = f"={shown(field, value)}" if value is not None else ""
        return f"{where(field)}{given}: expected JSON{cause}"
    if not isinstance(e, ValidationError) or e.title != Settings.__name__:
        return None
    parts = []
    for x in e.errors():
        field, *rest = [str(p) for p in x["loc"]] or ["?"]
        name = ".".join([where(field), *rest])
        if x["type"] == "extra_forbidden":  # a key of the YAML file
            close = _closest(field)
            parts.append(f"{name} is not a setting" + (f"; did you mean {close}?" if close else ""))
        elif x["type"] == "missing":
            parts.append(f"{name}: {x['msg']}")
        else:
            parts.append(f"{name}={shown(field, x.get('input'))}: {x['msg']}")
    return "; ".join(parts)
