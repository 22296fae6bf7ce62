"""The metrics source: the signal catalogue loads, and with `prometheus_url` the server answers every catalogue
query (read only: `query_range` over the last five minutes for a service that matches nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from bot.clock import utcnow
from bot.config import Settings
from bot.doctor.report import Check, fail, first_line, ok, warn
from bot.telemetry import Catalogue, build_source

PROBE_SERVICE = "incibot-doctor"  # a service no metric carries: the queries are checked, no data is read


def checks(settings: Settings) -> Iterator[Check]:
    if not settings.prometheus_url:
        yield ok("metrics", "off (INCIBOT_PROMETHEUS_URL unset): posts carry no metrics section")
        return
    try:
        catalogue = Catalogue.load(settings.signals_path)
    except Exception as e:
        yield fail("signal catalogue", first_line(e), "fix the file or INCIBOT_SIGNALS_PATH")
        return
    yield ok("signal catalogue", f"{settings.signals_path} ({len(catalogue.signals)} signals)")
    source = build_source(settings)
    assert source is not None
    now = utcnow()
    read = source.read(catalogue.signals, catalogue.selector(PROBE_SERVICE), now - timedelta(minutes=5), now,
                       timedelta(seconds=settings.telemetry_step_s))  # fmt: skip
    if read.error or len(read.errors) == len(catalogue.signals):
        why = read.error or next(iter(read.errors.values()), "no answer")
        yield fail("prometheus", f"{settings.prometheus_url}: {why}"[:300],
                   "check INCIBOT_PROMETHEUS_URL (the API's base URL) and its token, basic auth or headers")  # fmt: skip
        return
    if read.errors:
        bad = "; ".join(f"{name}: {why}" for name, why in list(read.errors.items())[:3])
        more = f" and {len(read.errors) - 3} more" if len(read.errors) > 3 else ""
        yield warn("prometheus", f"{len(read.errors)} of {len(catalogue.signals)} queries refused: {bad}{more}"[:400],
                   "fix those entries of the catalogue (they are skipped on every ticket)")  # fmt: skip
        return
    yield ok("prometheus", f"{settings.prometheus_url}: all {len(catalogue.signals)} catalogue queries accepted "
                           f"in {read.elapsed_s:.2f} s")  # fmt: skip
