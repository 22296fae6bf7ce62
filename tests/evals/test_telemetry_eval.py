"""The scenario suite and its eval (`python -m evals.telemetry`): the generated stories hold their truth, the
detector finds what moved and flags nothing on normal days, and the decision part runs the bot's own path."""

from __future__ import annotations

from pathlib import Path

from evals import telemetry
from evals.scenarios import KINDS, generate, suite


def test_every_kind_generates_a_full_read_with_its_truth() -> None:
    for kind in KINDS:
        sc = generate(kind, 0)
        assert len(sc.read.signals) == 14 and all(r.series for r in sc.read.signals)
        assert bool(sc.moved) == bool(kind.effects)
        assert sc.read.start < min(sc.moved.values(), default=sc.read.start + (sc.read.end - sc.read.start))
        if kind.change is not None:  # the causing change lands before the fault's first effect
            caused = [r for r in sc.changes if r.change.kind == kind.change]
            assert caused and caused[0].change.at <= min(sc.moved.values())
    assert generate(KINDS[0], 3).read == generate(KINDS[0], 3).read  # seeded: the same suite every run


def test_what_moved_is_found_and_normal_days_raise_no_false_signals(tmp_path: Path) -> None:
    result = telemetry.main(["--per-kind", "8", "--no-decision", "--out", str(tmp_path)])
    moved = result["detection"]
    assert isinstance(moved, dict)
    assert moved["normal"]["false_signal_rate"] <= 0.05  # the bar for false alarms
    for kind in ("kv_cache", "config_error", "tenant_surge", "dependency"):
        assert moved[kind]["precision"] >= 0.9 and moved[kind]["recall"] >= 0.8, (kind, moved[kind])
        assert moved[kind]["first_line_right"] >= 0.8, (kind, moved[kind])
    assert (tmp_path / "summary.md").read_text().startswith("# Metrics as evidence")


def test_the_decision_part_replays_verdicts_through_the_bot() -> None:
    scenarios = suite(2, kinds=tuple(k for k in KINDS if k.name == "config_error"))
    from bot.config import Settings
    from bot.telemetry import Catalogue, summarize

    settings = Settings(seed_demo_history=False)
    catalogue = Catalogue.load(settings.signals_path)
    summaries = [summarize(sc.read, catalogue, sc.ticket.created_at) for sc in scenarios]
    tri = telemetry._triager(settings)
    out = telemetry.decisions(tri, scenarios, summaries, settings.change_window_min, share=0.5)
    assert list(out) == ["day one", "after 1 verdicts", "after 1 verdicts, learned as history"]
    # a config change minutes before a 5xx jump: configuration from day one, on the priors alone
    assert out["day one"]["config_error"]["changes rc@1"] == 1.0
    assert out["day one"]["config_error"]["text rc@1"] <= out["day one"]["config_error"]["both rc@1"]
