"""The bot as a real `incibot serve` process over HTTP on 127.0.0.1 against the Slack emulator: a 1,000-ticket
storm in one minute (nothing lost or doubled, the storm grouped). Killed mid-burst and restarted:
test_crash_storm.py (a file each, so that the two xdist workers share them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.serving import bench_storm

pytestmark = pytest.mark.e2e


def test_storm_of_1000_tickets_in_a_minute_is_grouped_nothing_lost_or_doubled(tmp_path: Path) -> None:
    r = bench_storm(tmp_path, "storm", 1000, 60.0)
    print("\nstorm:", json.dumps(r))
    assert r["accepted"] == 1000 and r["refused"] == 0
    assert r["lost"] == 0 and r["duplicated"] == 0
    assert r["thread_replies"] > 0 and r["grouped_tickets"] > 500  # grouping visible in the recorded calls
    assert r["top_level_posts"] + r["grouped_tickets"] == 1000
    assert r["peak_rss_mb"] < 1500
