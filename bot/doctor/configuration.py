"""The configuration itself: the settings load, no INCIBOT_* variable is misspelt, the operator's files and the data
directory are usable."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bot.config import CONFIG_ENV, ENV_NOT_SETTINGS, Settings, settings_error_message, unknown_env_warnings
from bot.doctor.report import Check, fail, first_line, ok, warn
from bot.taxonomy import Taxonomy


def load(environ: Mapping[str, str] | None = None) -> tuple[Settings | None, list[Check]]:
    """The settings (None if they do not load) and the checks on them: the CLI's own messages for a bad value
    (the variable, the value, what is expected) and for a variable that is no setting (the closest name)."""
    environ = os.environ if environ is None else environ
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as e:
        message = settings_error_message(e, environ) or first_line(e)
        return None, [
            fail("configuration", message, "correct it (docs/configuration.md lists every setting)")
        ]
    except (OSError, ValueError) as e:  # an INCIBOT_CONFIG file that is missing or not YAML
        return None, [fail("configuration", first_line(e), f"correct {CONFIG_ENV} or the file it names")]
    n = sum(1 for k in environ if k.upper().startswith("INCIBOT_") and k.upper() not in ENV_NOT_SETTINGS)
    source = f"environment and {environ[CONFIG_ENV]}" if environ.get(CONFIG_ENV) else "environment"
    checks = [ok("configuration", f"settings load ({n} INCIBOT_* settings in the {source})")]
    for line in unknown_env_warnings(environ):
        checks.append(warn("configuration", f"{line.split(';')[0]}: ignored",
                           line.split("; ", 1)[1] if "; " in line else "remove it (docs/configuration.md)"))  # fmt: skip
    return settings, checks


def files(settings: Settings) -> Iterator[Check]:
    """The taxonomy, playbooks and prompts operators edit: a broken one stops every draft."""
    try:
        taxonomy = Taxonomy.load(settings.taxonomy_path)
        yield ok("taxonomy", f"{settings.taxonomy_path} ({', '.join(taxonomy.fields)})")
    except Exception as e:  # any way it fails to load, it is reported here rather than on the first ticket
        yield fail("taxonomy", first_line(e), "fix the file or INCIBOT_TAXONOMY_PATH")
    else:
        yield from _priors(settings, taxonomy)
    books = sorted(settings.playbooks_dir.glob("*.md")) if settings.playbooks_dir.is_dir() else []
    if books:
        yield ok("playbooks", f"{len(books)} in {settings.playbooks_dir}")
    else:
        yield fail(
            "playbooks", f"no playbooks (*.md) in {settings.playbooks_dir}", "fix INCIBOT_PLAYBOOKS_DIR"
        )
    missing = [n for n in ("system.md", "triage.md", "repair.md") if not (settings.prompts_dir / n).is_file()]
    if missing:
        yield fail(
            "prompts", f"missing in {settings.prompts_dir}: {', '.join(missing)}", "fix INCIBOT_PROMPTS_DIR"
        )
    else:
        yield ok("prompts", str(settings.prompts_dir))


def _priors(settings: Settings, taxonomy: Taxonomy) -> Iterator[Check]:
    """The evidence priors (odds per label for a deploy, an alert, a moved signal), checked against the taxonomy."""
    from bot.triage.evidence import load_priors

    path = str(settings.evidence_priors_path or "")
    if path in ("", "."):
        yield ok("evidence priors", "none: why-now evidence weighs nothing until verdicts show its relation")
        return
    try:
        priors = load_priors(path, taxonomy)
        yield ok("evidence priors", f"{path} ({len(priors.features)} features)")
    except Exception as e:
        yield fail("evidence priors", first_line(e), "fix the file or INCIBOT_EVIDENCE_PRIORS_PATH")


def writable(path: Path) -> str | None:
    """None if `path` is (or can be made as) a writable directory, else why not; creates nothing."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return f"{path}: no existing parent"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def data_dir(settings: Settings) -> Check:
    """The learned model, the local model server's log and (by default) the database and Chroma live there."""
    why = writable(settings.data_dir)
    if why:
        return fail("data dir", why, "set INCIBOT_DATA_DIR to a directory this user can write")
    state = "exists" if settings.data_dir.is_dir() else "created on first use"
    return ok("data dir", f"{settings.data_dir} ({state})")
