"""The detector: false alarms on normal series (noise, rate-like smoothed noise, daily seasonality, single
spikes) at most 5%; steps and ramps found with their onset; counters, gaps, NaN/Inf, flat and late series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.telemetry import Catalogue, Detector, MovedSignal, SignalKind, SignalRead, TelemetryRead, describe
from bot.telemetry.models import Point, Series

STEP = 30.0
T0 = datetime(2026, 12, 6, 13, 0, tzinfo=UTC).timestamp()
N_NORMAL = 1000


def points(values: np.ndarray | list[float], t0: float = T0, step: float = STEP) -> list[Point]:
    return [
        Point(at=datetime.fromtimestamp(t0 + i * step, UTC), value=float(v)) for i, v in enumerate(values)
    ]


def normal_series(rng: np.random.Generator, n: int = 150) -> np.ndarray:
    """A quiet service over 75 minutes: a level, white or rate()-smoothed noise, part of a daily cycle, spikes."""
    level = 10 ** rng.uniform(-2, 3)
    sd = level * rng.uniform(0.01, 0.1)
    if rng.random() < 0.5:  # rate(x[5m]) at a 30 s step: a moving average of 10 steps
        noise = np.convolve(rng.normal(0, sd * 3, n + 9), np.ones(10) / 10, "valid")
    else:
        noise = rng.normal(0, sd, n)
    t = rng.uniform(0, 86400) + np.arange(n) * STEP
    daily = level * rng.uniform(0, 0.3) * np.sin(2 * np.pi * t / 86400 + rng.uniform(0, 2 * np.pi))
    v = level + daily + noise
    for _ in range(rng.integers(0, 3)):
        v[rng.integers(0, n)] += rng.choice([-1, 1]) * rng.uniform(5, 20) * sd
    return v


def test_at_most_five_percent_of_normal_series_are_flagged() -> None:
    rng = np.random.default_rng(33)
    detector = Detector()
    flagged = sum(detector.detect(points(normal_series(rng))) is not None for _ in range(N_NORMAL))
    rate = flagged / N_NORMAL
    print(f"false alarms: {flagged}/{N_NORMAL} normal series = {rate:.1%}")
    assert rate <= 0.05


@pytest.mark.parametrize("ramp", [0, 4, 10])
def test_a_step_or_ramp_is_found_at_its_onset(ramp: int) -> None:
    rng = np.random.default_rng(ramp)
    detector = Detector()
    misses, errors = 0, []
    for _ in range(100):
        n, k = 150, int(rng.integers(20, 130))
        low, high = 0.55, 0.55 * rng.uniform(1.4, 1.8)
        v = np.array(
            [low if i < k else min(high, low + (high - low) * (i - k + 1) / (ramp + 1)) for i in range(n)]
        )
        shift = detector.detect(points(v + rng.normal(0, 0.015, n)))
        if shift is None:
            misses += 1
            continue
        errors.append(abs(shift.onset.timestamp() - (T0 + k * STEP)) / STEP)
        assert shift.before == pytest.approx(low, abs=0.03)
        assert shift.after == pytest.approx(high, abs=0.03 + (high - low) * ramp / 40)
    assert misses <= 2
    assert np.mean(np.array(errors) <= 2) >= 0.95  # within two steps


def test_a_single_spike_is_not_a_shift() -> None:
    v = np.full(120, 0.5) + np.random.default_rng(1).normal(0, 0.01, 120)
    v[60] = 5.0
    v[61] = 4.0
    assert Detector().detect(points(v)) is None


def test_flat_short_and_empty_series_are_not_shifts() -> None:
    assert Detector().detect(points(np.full(100, 0.7))) is None
    assert Detector().detect(points([1.0, 2.0, 3.0])) is None
    assert Detector().detect([]) is None


def test_nan_and_inf_are_dropped() -> None:
    v = [0.5] * 60 + [0.9] * 60
    v[10], v[70], v[80] = float("nan"), float("inf"), float("-inf")
    shift = Detector().detect(points(v))
    assert shift is not None and (shift.before, shift.after) == (0.5, 0.9)
    assert shift.onset == datetime.fromtimestamp(T0 + 60 * STEP, UTC)
    assert Detector().detect(points([float("nan")] * 50)) is None


def test_gaps_keep_the_onset_in_real_time() -> None:
    v = [0.5] * 60 + [0.9] * 60
    pts = [p for i, p in enumerate(points(v)) if not 40 <= i < 58]  # 9 minutes missing just before the move
    shift = Detector().detect(pts)
    assert shift is not None and shift.onset == datetime.fromtimestamp(T0 + 60 * STEP, UTC)


def test_a_raw_counter_with_a_reset_is_read_as_its_rate() -> None:
    rate = np.array([2.0] * 60 + [10.0] * 60)
    counter = np.cumsum(rate * STEP)
    counter[30:] -= counter[29]  # the process restarted: the counter starts again from zero
    shift = Detector().detect(points(counter), counter=True)
    assert shift is not None
    assert (shift.before, shift.after) == (pytest.approx(2.0), pytest.approx(10.0))
    assert abs(shift.onset.timestamp() - (T0 + 60 * STEP)) <= STEP
    no_change = np.cumsum(np.full(120, 2.0 * STEP))
    no_change[50:] -= no_change[49]
    assert Detector().detect(points(no_change), counter=True) is None


def test_a_series_that_started_inside_the_window_is_judged_on_its_own_points() -> None:
    late = T0 + 40 * STEP  # a new pod: no points for the first 20 minutes
    assert (
        Detector().detect(points(np.full(80, 3.0) + np.random.default_rng(2).normal(0, 0.05, 80), t0=late))
        is None
    )
    shift = Detector().detect(points([3.0] * 40 + [9.0] * 40, t0=late))
    assert shift is not None and shift.onset == datetime.fromtimestamp(late + 40 * STEP, UTC)


def read_of(values: dict[str, list[float]]) -> TelemetryRead:
    return TelemetryRead(
        selector="{}", start=datetime.fromtimestamp(T0, UTC), end=datetime.fromtimestamp(T0 + 120 * STEP, UTC),
        step_s=STEP, signals=[SignalRead(signal=k, query="q", series=[Series(points=points(v))]) for k, v in values.items()],
    )  # fmt: skip


def test_moved_signals_are_ordered_by_onset_and_say_whether_it_is_bad() -> None:
    from bot.telemetry import moved_signals

    cat = Catalogue.model_validate({"signals": [
        {"name": "kv_cache_usage", "title": "KV cache usage", "promql": "x{selector}", "kind": "saturation", "bad": "up", "unit": "ratio"},
        {"name": "eval_pass_ratio", "title": "Eval pass rate", "promql": "y{selector}", "kind": "quality", "bad": "down", "unit": "ratio"},
        {"name": "request_rate", "promql": "z{selector}", "kind": "traffic", "bad": "up", "unit": "/s"},
        {"name": "quiet", "promql": "q{selector}", "kind": "errors", "bad": "up"},
    ]})  # fmt: skip
    read = read_of({
        "kv_cache_usage": [0.55] * 70 + [0.98] * 50,
        "eval_pass_ratio": [0.9] * 90 + [0.6] * 30,
        "request_rate": [100.0] * 50 + [30.0] * 70,
        "quiet": [1.0] * 120,
    })  # fmt: skip
    moved = moved_signals(read, cat)
    assert [m.signal for m in moved] == ["request_rate", "kv_cache_usage", "eval_pass_ratio"]
    assert [m.bad for m in moved] == [False, True, True]
    assert moved[1].kind is SignalKind.SATURATION and (moved[1].before, moved[1].after) == (0.55, 0.98)


def test_one_line_per_moved_signal() -> None:
    onset = datetime(2026, 12, 6, 14, 2, tzinfo=UTC)
    m = MovedSignal(signal="kv_cache_usage", title="KV cache usage", kind=SignalKind.SATURATION, unit="ratio",
                    onset=onset, before=0.55, after=0.98, bad=True, score=12.0)  # fmt: skip
    assert (
        describe(m, onset + timedelta(minutes=3))
        == "KV cache usage 0.55 -> 0.98 from 14:02, 3 min before the ticket"
    )
    ttft = m.model_copy(update={"title": "TTFT p95", "unit": "seconds", "before": 0.35, "after": 4.2})
    assert (
        describe(ttft, onset - timedelta(minutes=2))
        == "TTFT p95 350 ms -> 4.2 s from 14:02, 2 min after the ticket"
    )
    gpu = m.model_copy(update={"title": "GPU memory used", "unit": "MiB", "before": 40960.0, "after": 79872.0,
                               "labels": {"Hostname": "gpu-7"}})  # fmt: skip
    assert describe(gpu) == "GPU memory used (Hostname=gpu-7) 40.0 GiB -> 78.0 GiB from 14:02"
