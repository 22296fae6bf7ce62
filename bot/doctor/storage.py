"""The SQL store (reachable, schema at the newest migration) and the history (an embedded Chroma directory, or a
Chroma server's heartbeat). Read only: the doctor creates and migrates nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Settings
from bot.doctor.configuration import writable
from bot.doctor.report import Check, fail, first_line, ok, warn
from bot.store.migrations import current, head

TIMEOUT_S = 5


def database(settings: Settings) -> Iterator[Check]:
    url = make_url(settings.db_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.exists():
            if why := writable(path.parent):
                yield fail("database", f"{shown}: {why}", "set INCIBOT_DATA_DIR or INCIBOT_DATABASE_URL")
            else:
                yield ok(
                    "database", f"{shown} not created yet: the first `serve` (or `mode`, `report`) creates it"
                )
            return
    # psycopg waits for a dead host for minutes by default
    args = {"connect_timeout": TIMEOUT_S} if url.get_backend_name() == "postgresql" else {}
    engine = create_engine(url, connect_args=args)
    t0 = time.perf_counter()
    try:
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        ms = (time.perf_counter() - t0) * 1000
        revision, newest = current(engine), head()
    except SQLAlchemyError as e:
        cause = first_line(e.orig) if getattr(e, "orig", None) is not None else first_line(e)
        yield fail("database", f"{shown} unreachable: {cause}",
                   "start the server, or correct INCIBOT_DATABASE_URL (host, port, user, password, database)")  # fmt: skip
        return
    finally:
        engine.dispose()
    yield ok("database", f"{shown} answered in {ms:.0f} ms")
    if revision == newest:
        yield ok("migrations", f"schema at the newest revision ({newest})")
    elif revision is None:
        yield warn("migrations", "no schema yet (a new database)",
                   "nothing to do: `incibot serve` creates it at start (one replica at a time)")  # fmt: skip
    elif _known(revision):
        yield warn("migrations", f"schema at {revision}, newest {newest}",
                   "nothing to do: `incibot serve` upgrades it at start (one replica at a time)")  # fmt: skip
    else:
        yield fail("migrations", f"schema at {revision}, a revision this version does not know (newest {newest})",
                   "a newer incibot migrated this database: run that version, or restore a backup")  # fmt: skip


def _known(revision: str) -> bool:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bot.store.migrations import HERE

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return ScriptDirectory.from_config(cfg).get_revision(revision) is not None


def chroma(settings: Settings) -> Check:
    if not settings.chroma_host:
        if why := writable(settings.chroma_dir):
            return fail(
                "chroma",
                f"embedded, {why}",
                "set INCIBOT_DATA_DIR (or INCIBOT_CHROMA_PATH) to a writable directory",
            )
        state = "exists" if (settings.chroma_dir / "chroma.sqlite3").is_file() else "created on first use"
        return ok("chroma", f"embedded in {settings.chroma_dir} ({state})")
    base = f"{'https' if settings.chroma_ssl else 'http'}://{settings.chroma_host}:{settings.chroma_port}"
    t0 = time.perf_counter()
    problem = ""
    for path in ("/api/v2/heartbeat", "/api/v1/heartbeat"):  # Chroma 1.x, then older servers
        try:
            r = httpx.get(base + path, timeout=TIMEOUT_S)
        except httpx.HTTPError as e:
            problem = first_line(e)
            break  # not a version question: the server is not there
        if r.status_code == 200:
            return ok(
                "chroma",
                f"server {base} answered its heartbeat in {(time.perf_counter() - t0) * 1000:.0f} ms",
            )
        problem = f"{path} answered HTTP {r.status_code}"
    return fail("chroma", f"server {base} unreachable: {problem}",
                "start it (`chroma run --host 0.0.0.0`), or correct INCIBOT_CHROMA_HOST, _PORT, _SSL")  # fmt: skip
