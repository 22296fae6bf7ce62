"""The signal catalogue: the default file, per-service selectors, escaping a ticket's service, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.telemetry import Catalogue, CatalogueError, SignalKind, promql_string


def test_the_default_catalogue_covers_vllm_dcgm_http_and_quality() -> None:
    cat = Catalogue.load(Settings().signals_path)
    text = " ".join(s.promql for s in cat.signals)
    for metric in ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "vllm:num_requests_waiting",
                   "vllm:num_preemptions_total", "vllm:time_to_first_token_seconds_bucket", "DCGM_FI_DEV_GPU_UTIL",
                   "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_XID_ERRORS", "http_requests_total",
                   "genai_quality_eval_pass_ratio"):  # fmt: skip
        assert metric in text
    assert {s.kind for s in cat.signals} == set(SignalKind)
    assert not [s.name for s in cat.signals if s.is_counter]  # every default reads rates, not raw counters


@pytest.mark.parametrize(
    ("raw", "literal"),
    [
        ("chat-api", '"chat-api"'),
        ('a"b', r'"a\"b"'),
        ("a\\b", r'"a\\b"'),
        ("a\nb\r\t", r'"a\nb\r\t"'),
        ("nul\x00", r'"nul\x00"'),
        ('x"} or vector(1) or {service="y', r'"x\"} or vector(1) or {service=\"y"'),
    ],
)
def test_a_service_name_is_an_escaped_string_literal(raw: str, literal: str) -> None:
    assert promql_string(raw) == literal


def test_selectors_default_per_label_and_override_per_service() -> None:
    cat = Catalogue.model_validate({
        "selectors": {"chat-api": '{namespace="chat", job="vllm"}'},
        "signals": [{"name": "err", "promql": 'sum(rate(x{code=~"5..", {matchers}}[5m])) / sum(rate(x{selector}[5m]))',
                     "kind": "errors", "bad": "up"}],
    })  # fmt: skip
    err = cat.signals[0]
    assert err.render(cat.selector("chat-api")) == (
        'sum(rate(x{code=~"5..", namespace="chat", job="vllm"}[5m])) / sum(rate(x{namespace="chat", job="vllm"}[5m]))'
    )
    assert err.render(cat.selector('evil"}')) == (
        r'sum(rate(x{code=~"5..", service="evil\"}"}[5m])) / sum(rate(x{service="evil\"}"}[5m]))'
    )


def test_a_raw_counter_is_guessed_from_the_template() -> None:
    cat = Catalogue.model_validate({"signals": [
        {"name": "a", "promql": "sum(x_total{selector})", "kind": "errors", "bad": "up"},
        {"name": "b", "promql": "sum(rate(x_total{selector}[5m]))", "kind": "errors", "bad": "up"},
        {"name": "c", "promql": "sum(x{selector})", "kind": "errors", "bad": "up", "counter": True},
    ]})  # fmt: skip
    assert [s.is_counter for s in cat.signals] == [True, False, True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("signals: [{name: a, promql: 'x{selector}', kind: errors, bad: up}, "
         "{name: ttft, promql: 'y{selector}', kind: slowness, bad: up}]", "signals[1] (ttft).kind: Input should be"),
        ("signals: [{name: a, promql: 'x', kind: errors, bad: up}]", "signals[0] (a).promql: Value error, the promql"),
        ("signals: [{name: a, promql: 'x{selector}', kind: errors, bad: sideways}]", "signals[0] (a).bad:"),
        ("signals: [{name: a, promql: 'x{selector}', kind: errors, bad: up}, "
         "{name: a, promql: 'y{selector}', kind: errors, bad: up}]", "signal names must be unique: a"),
        ("selectors: {chat: 'namespace=chat'}\nsignals: []", "selectors: Value error, selector of 'chat'"),
        ("signals: [: :", "is not valid YAML"),
    ],
)  # fmt: skip
def test_a_bad_catalogue_is_one_line_naming_file_and_entry(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "signals.yaml"
    path.write_text(text)
    with pytest.raises(CatalogueError) as e:
        Catalogue.load(path)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"signal catalogue {path}")
    assert expected in message


def test_a_missing_catalogue_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"signal catalogue not found: .*nope\.yaml"):
        Catalogue.load(tmp_path / "nope.yaml")
