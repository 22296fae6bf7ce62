"""The command line: `incibot triage`, `incibot history import|search`, `incibot demo`, `incibot bench`."""

from __future__ import annotations

import getpass
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer import _click  # typer 0.29 vendors click: its usage errors are these classes, not click's
from typer.core import TyperGroup

# Nothing of the bot at the top: every command, `--help` and a usage error included, pays for what is imported
# here (pydantic-settings alone is a third of a second). Each command imports what it uses; langchain,
# chromadb, scikit-learn and Presidio load only in those that need them (tests/test_cli_startup.py guards it).
if TYPE_CHECKING:
    from bot.config import Settings
    from bot.models import Context, Ticket
    from bot.store.vectors import VectorStore
    from bot.taxonomy import Taxonomy

out = Console()
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def _usage_errors() -> Iterator[None]:
    """A usage error as the README promises every error, one line on stderr and exit 2, instead of typer's boxed
    panel under the usage."""
    try:
        yield
    except _click.exceptions.NoArgsIsHelpError:
        raise  # `incibot` alone: the help is the answer
    except _click.exceptions.UsageError as e:
        hint = f" (see {e.ctx.command_path} --help)" if e.ctx else ""
        msg = " ".join(e.format_message().split())
        err.print(f"[red]error:[/red] {escape(msg)}{escape(hint)}", highlight=False)
        raise typer.Exit(2) from None


class _Group(TyperGroup):
    """The top-level group: usage errors as one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: _click.Context | None = None, **extra: Any
    ) -> _click.Context:
        with _usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: _click.Context) -> Any:
        with _usage_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Group, no_args_is_help=True, add_completion=False, help="Incident triage for GenAI cloud services."
)
history_app = typer.Typer(no_args_is_help=True, help="The history of past incidents (Chroma).")
app.add_typer(history_app, name="history")
feedback_app = typer.Typer(no_args_is_help=True, help="Engineers' confirmations and corrections.")
app.add_typer(feedback_app, name="feedback")
# Failures that mean the input or the setup is wrong (one line, exit 2), named by their module rather than
# imported: importing them would load langchain, chromadb and scikit-learn for every command. An error whose
# module was never imported cannot have been raised. tests/test_cli_startup.py checks each name resolves.
KNOWN_ERRORS: dict[str, tuple[str, ...]] = {
    "bot.intake.files": ("InputError",),
    "bot.watch.mode": ("ModeRefused",),
    "bot.watch.report": ("ReportError",),
    "bot.triage.prepare": ("TicketError",),
    "bot.store.vectors": ("HistoryError",),
    "bot.taxonomy": ("TaxonomyError",),
    "bot.triage.playbooks": ("PlaybookError",),
    "bot.triage.llm": ("LLMConfigError",),
    "pydantic": ("ValidationError",),
    "pydantic_settings": ("SettingsError",),  # a setting's JSON that does not parse
}
F = TypeVar("F", bound=Callable[..., Any])


def known_error(e: BaseException) -> bool:
    if isinstance(e, FileNotFoundError):
        return True
    return any(
        (module := sys.modules.get(name)) is not None
        and isinstance(e, tuple(getattr(module, c) for c in classes))
        for name, classes in KNOWN_ERRORS.items()
    )


def _debug() -> bool:
    return os.environ.get("INCIBOT_DEBUG", "") not in ("", "0")


def one_line_errors(fn: F) -> F:
    """Known failures print one line and exit 2; anything else one line and exit 1 (INCIBOT_DEBUG=1: the traceback
    first, for either)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from bot.config import settings_error_message, unknown_env_warnings

        # here, not in the group: `--help` needs no settings; `doctor` reports them as lines of its own
        for warning in unknown_env_warnings() if fn.__name__ != "doctor" else []:
            err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, _click.ClickException):
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as e:
            if _debug():
                traceback.print_exc()
            if known_error(e):
                msg = settings_error_message(e) or (str(e).splitlines() or [type(e).__name__])[0]
                err.print(f"[red]error:[/red] {escape(msg)}", highlight=False)
                raise typer.Exit(2) from None
            err.print(
                f"[red]unexpected error:[/red] {type(e).__name__}: {escape(str(e)[:300])}", highlight=False
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def clean_text(text: str) -> str:
    """Arguments with undecodable bytes arrive with surrogate escapes; turn them into U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def open_store(settings: Settings, collection: str | None = None, seed: bool = True) -> VectorStore:
    from bot.store.demo import seed_if_empty
    from bot.store.factory import open_history

    store = open_history(settings, collection)
    if seed and (added := seed_if_empty(store)):
        err.print(f"[dim]history was empty: imported {added} demo incidents into {settings.chroma_dir}[/dim]")
    return store


def _has_database(settings: Settings) -> bool:
    """The bot's database is configured or exists: a terminal triage reads it but never creates it."""
    return settings.database_url is not None or Path(settings.db_url.removeprefix("sqlite:///")).is_file()


def _mode_allows_llm(settings: Settings) -> bool:
    """`incibot mode retrieval-only` is the fleet's rollback of the LLM: a terminal triage honours it too, where
    the bot has a database (no database, no switch: the LLM is on). Says so on stderr when it turns the LLM off."""
    if not _has_database(settings):
        return True
    from bot.models import Mode
    from bot.store.factory import open_sql
    from bot.watch.mode import ModeSwitch

    try:
        change = ModeSwitch(open_sql(settings).watch, settings.admin_user_ids).current()
    except Exception as e:  # the triage stands without it, as the bot drafts with the LLM when never switched
        err.print(
            f"[yellow]drafting mode unknown, the bot's database is unavailable ({type(e).__name__})[/yellow]"
        )
        return True
    if change is None or change.mode != Mode.RETRIEVAL_ONLY:
        return True
    err.print(
        f"[yellow]retrieval-only mode (set by {escape(change.user_id)} at {change.created_at:%Y-%m-%d %H:%M} UTC): "
        "the LLM is off; `incibot mode llm` turns it back on[/yellow]",
        highlight=False,
    )
    return False


def _context(settings: Settings, ticket: Ticket, raw: Ticket | None = None) -> Context | None:
    """Why now, from the bot's database (recent changes to the ticket's service, what else fires there), when
    there is one: a terminal triage never creates it, and a failed lookup only costs the section. The metrics
    (`prometheus_url`) are read inline, database or not, for the service as `raw` (unredacted) names it."""
    from bot.delivery.context import ContextLookup, TelemetryLookup, with_telemetry
    from bot.store.factory import open_sql

    telemetry = TelemetryLookup(settings)
    if not _has_database(settings):
        return with_telemetry(None, telemetry.read(raw or ticket), settings)
    try:
        store = open_sql(settings)
    except Exception as e:  # the triage stands without it
        err.print(f"[yellow]no context: the bot's database is unavailable ({type(e).__name__})[/yellow]")
        return with_telemetry(None, telemetry.read(raw or ticket), settings)
    lookup = ContextLookup(settings, store.changes, telemetry)
    return lookup.for_ticket(ticket, settings.channel_for(ticket.service), raw)


def _triage_and_show(settings: Settings, ticket: Ticket, as_json: bool, use_llm: bool) -> None:
    from bot.delivery.terminal import render
    from bot.triage.pipeline import Triager
    from bot.triage.prepare import require_text

    require_text(ticket)  # refuse empty input before loading anything
    logging.getLogger("incibot.model_server").setLevel(logging.CRITICAL)  # the draft says why the LLM failed
    store = open_store(settings)
    # A one-shot command trains in the foreground when no model is saved yet: its only draft needs it, and the
    # model is saved for the next run (a background training would still be running at exit).
    triager = Triager.from_settings(settings, store, train_now=True)
    if triager.trainer.trainings:
        err.print(f"[dim]first use of this history: classifier {escape(triager.trainer.status)}[/dim]")
    shown = ticket
    if ticket.service and (settings.redact_in_slack or settings.redact_in_history):  # as stored by the bot
        shown = ticket.model_copy(update={"service": triager.redactor.redact(ticket.service).text})
    # the context first: it is evidence for the decision as well as a section of the post
    draft = triager.triage(ticket, use_llm=use_llm, context=_context(settings, shown, ticket))
    if draft.llm.status == "unavailable":
        why = escape(draft.llm.error or "")
        err.print(f"[yellow]LLM unavailable, retrieval-only draft:[/yellow] {why}", highlight=False)
    if as_json:
        # `telemetry` on top as well: what the metrics showed is read by scripts without knowing the draft's shape
        dumped = draft.model_dump(mode="json")
        out.print_json(data=dumped | {"telemetry": (dumped.get("context") or {}).get("telemetry")})
    else:
        render(draft, triager.taxonomy, settings.confident_at, out)


@app.command()
@one_line_errors
def triage(
    text: Annotated[str | None, typer.Argument(help="Incident text ('-' reads standard input).")] = None,
    ticket: Annotated[Path | None, typer.Option("--ticket", help="A ticket JSON file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the draft as JSON.")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Retrieval-only draft.")] = False,
    service: Annotated[str | None, typer.Option(help="Service or provider the ticket is about.")] = None,
) -> None:
    """Classify an incident, find similar past incidents, draft the first triage step and a playbook."""
    from bot.config import Settings
    from bot.intake.files import InputError, read_ticket
    from bot.models import Ticket

    if (text is None) == (ticket is None):
        raise InputError("give either incident TEXT or --ticket FILE")
    settings = Settings()
    if ticket is not None:
        t = read_ticket(ticket)
    else:
        raw = sys.stdin.read() if text == "-" else text
        t = Ticket(id="cli", title="", text=clean_text(raw or ""), service=service, source="cli")
    _triage_and_show(settings, t, as_json, use_llm=not no_llm and _mode_allows_llm(settings))


@app.command()
@one_line_errors
def demo(no_llm: Annotated[bool, typer.Option("--no-llm")] = False) -> None:
    """Triage a sample ticket against the bundled demo history (offline, no keys)."""
    from bot.config import Settings
    from bot.store.demo import SAMPLE_TICKET

    settings = Settings()
    out.print(f"[bold]Sample ticket:[/bold] {SAMPLE_TICKET.title}\n{SAMPLE_TICKET.text}\n")
    _triage_and_show(
        settings, SAMPLE_TICKET, as_json=False, use_llm=not no_llm and _mode_allows_llm(settings)
    )


@history_app.command("import")
@one_line_errors
def history_import(
    file: Annotated[
        Path | None,
        typer.Argument(help="The file (--format), or the folder of post-mortems (--from markdown)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl or statuspage (README: History import).")
    ] = "jsonl",
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Read a tool's history instead of a file: markdown (a folder), pagerduty, opsgenie, jira or "
            "incidentio (their APIs; docs/history.md). Resumes where an interrupted import stopped.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="With --from: only incidents opened since this date (2024-01-31).")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(help="With --from: the YAML mapping of the source's labels onto the taxonomy's."),
    ] = None,
    collection: Annotated[str | None, typer.Option(help="Collection name (default from settings).")] = None,
    with_demo: Annotated[
        bool, typer.Option("--with-demo", help="Also import the bundled demo history (public incidents).")
    ] = False,
) -> None:
    """Import incidents (idempotent upsert by id). The whole file is validated before anything is written."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bot.config import Settings
    from bot.intake.files import InputError, read_history
    from bot.store.demo import demo_history
    from bot.taxonomy import Taxonomy

    settings = Settings()
    if source is not None:
        _import_from(settings, source, file, since, mapping, collection, with_demo)
        return
    if file is None:
        raise InputError(
            "history import needs a FILE (with --format), or --from markdown|pagerduty|opsgenie|jira|incidentio"
        )
    incidents = read_history(file, fmt)
    # Not seeded: after this import the collection is not empty, so first use would never add the demo
    # history either; it comes on request, and the output says when the collection has none.
    store = open_store(settings, collection, seed=False)
    demo = demo_history()
    if with_demo:  # one upsert; the file's record wins over a demo record with the same id
        incidents = list({i.id: i for i in [*demo, *incidents]}.values())
    with Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
    ) as bar:
        task = bar.add_task("import", total=len(incidents))
        written = store.upsert(incidents, progress=lambda n: bar.advance(task, n))
    with_ = f" ({len(demo)} of them the demo history)" if with_demo else ""
    out.print(f"imported {written} incidents{with_} into '{store.name}' ({store.count()} in total)")
    if not with_demo and not store.get([i.id for i in demo]):
        out.print(f"'{store.name}' holds no demo history: --with-demo adds it ({len(demo)} incidents)")
    if settings.learned_decision:
        _retrain(settings, store, Taxonomy.load(settings.taxonomy_path))


def _import_from(
    settings: Settings,
    source: str,
    path: Path | None,
    since: str | None,
    mapping: Path | None,
    collection: str | None,
    with_demo: bool,
) -> None:
    """`history import --from`: the mapping and options checked first, then page by page (bot/intake/importers)."""
    from datetime import datetime

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.clock import aware
    from bot.intake.files import InputError
    from bot.intake.importers import ImportOptions, importer
    from bot.intake.importers.mapping import LabelMapping
    from bot.intake.importers.run import Outcome, run_import
    from bot.store.demo import demo_history
    from bot.taxonomy import Taxonomy

    imp = importer(source)
    if imp.needs_path and path is None:
        raise InputError(f"--from {source} needs the PATH of the folder to read")
    try:
        start = aware(datetime.fromisoformat(since)) if since else None
    except ValueError as e:
        raise InputError(f"--since takes a date or time such as 2024-01-31 (got {since!r})") from e
    taxonomy = Taxonomy.load(settings.taxonomy_path)
    labels = LabelMapping.load(mapping, taxonomy) if mapping else LabelMapping()  # refused before any write
    options = ImportOptions(settings=settings, mapping=labels, since=start, path=path)
    store = open_store(settings, collection, seed=False)
    if with_demo:
        store.upsert(demo_history())
    with Progress(
        TextColumn(f"importing from {source}"), BarColumn(), TextColumn("{task.completed} records"),
        TimeElapsedColumn(), console=err,
    ) as bar:  # fmt: skip
        task = bar.add_task("import", total=None)
        report = run_import(imp, options, store, progress=lambda n: bar.advance(task, n))
    counts = ", ".join(f"{o.value} {report.counts[o]}" for o in Outcome)
    resumed = f" (resumed at {report.resumed_from})" if report.resumed_from else ""
    out.print(
        f"{source}{resumed}: {counts}; '{store.name}' holds {store.count()} incidents",
        highlight=False,
        soft_wrap=True,
    )
    for reason, n in report.reasons().most_common():
        out.print(f"skipped {n}: {escape(reason)}", highlight=False, soft_wrap=True)
    for s in report.skipped[:100]:
        out.print(f"  {escape(s.id)}: {escape(s.reason)}", highlight=False, soft_wrap=True)
    if len(report.skipped) > 100:
        out.print(f"  ... and {len(report.skipped) - 100} more", highlight=False, soft_wrap=True)
    if settings.learned_decision and report.counts[Outcome.IMPORTED]:
        _retrain(settings, store, taxonomy)


@history_app.command("search")
@one_line_errors
def history_search(
    text: str,
    k: Annotated[int, typer.Option("-k", min=1, max=50)] = 5,
    service: Annotated[str | None, typer.Option(help="Only incidents of this service.")] = None,
    collection: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the history for incidents similar to TEXT."""
    from bot.config import Settings
    from bot.intake.files import InputError

    settings = Settings()
    text = clean_text(text)
    if not text.strip():
        raise InputError("search text is empty")
    store = open_store(settings, collection)
    from bot.triage.pipeline import Triager

    # As triage searches: the text cut, redacted and embedded by the same preparation.
    triager = Triager(settings, store, None)
    hits = triager.search(text, k, service=service)
    # What fixed each: the same extraction the Slack post and `incibot triage` show.
    fixes = triager.mitigations.of_history([h.incident for h in hits])
    if as_json:
        out.print_json(
            data=[
                {"score": round(h.score, 4), **h.incident.model_dump(mode="json"),
                 "fix": f.model_dump(mode="json") if f else None}
                for h, f in zip(hits, fixes, strict=True)
            ]
        )  # fmt: skip
        return
    if not hits:
        out.print("no incidents found")
    from bot.triage.mitigation import fix_text

    for h, f in zip(hits, fixes, strict=True):
        inc = h.incident
        fix = fix_text(f, triager.taxonomy, 200)
        out.print(
            f"[bold]{h.score:.2f}[/bold] {inc.title} [dim]({inc.id}, {inc.service}, {inc.created_at:%Y-%m-%d})[/dim]"
        )
        out.print(f"     fixed by: {fix}", highlight=False)


def _fields_asked(taxonomy: Taxonomy, field: list[str] | None) -> list[str]:
    """The --field options given (default: every field of the taxonomy), each known to the taxonomy."""
    from bot.intake.files import InputError

    fields = list(dict.fromkeys(field or taxonomy.fields))
    unknown = [f for f in fields if f not in taxonomy.fields]
    if unknown:
        raise InputError(f"--field {unknown[0]!r}: the taxonomy has {', '.join(taxonomy.fields)}")
    return fields


def _retrain(settings: Settings, store: VectorStore, taxonomy: Taxonomy) -> None:
    """Retrain the history's classifier in the foreground, after the history changed, and say how it went."""
    from bot.triage.trainer import trainer_for

    trainer = trainer_for(settings, store, taxonomy)
    trainer.train_now()
    out.print(f"classifier: {escape(trainer.status)}", highlight=False, soft_wrap=True)


@history_app.command("label")
@one_line_errors
def history_label(
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="The field to label (repeatable; default: every field of the taxonomy)."
        ),
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many incidents to ask about.")] = 20,
    collection: Annotated[str | None, typer.Option(help="Collection name (default from settings).")] = None,
) -> None:
    """Label the unlabelled past incidents that teach the classifier most (active learning), then retrain."""
    from bot.config import Settings
    from bot.intake.files import InputError
    from bot.taxonomy import Taxonomy
    from bot.triage.active import cv_accuracy, features, to_label

    settings = Settings()
    taxonomy = Taxonomy.load(settings.taxonomy_path)
    fields = _fields_asked(taxonomy, field)
    store = open_store(settings, collection, seed=False)
    history, vectors = store.all()
    if not history:
        raise InputError(f"the history '{store.name}' is empty: `incibot history import` first")
    X = features(history, vectors)
    before = {f: cv_accuracy(history, vectors, taxonomy, f, X=X) for f in fields}
    rows, probs = to_label(history, vectors, taxonomy, fields, n)
    if not rows:
        out.print(f"every incident of '{store.name}' with text is labelled for {', '.join(fields)}")
        return
    written, stop = 0, False
    for count, r in enumerate(rows, 1):
        inc = history[r]
        _show_for_label(inc, count, len(rows), probs.guess(r))
        answers: dict[str, list[str]] = {}
        for f in [f for f in fields if not inc.labels.get(f)]:
            answer = _ask_label(taxonomy, f)
            if answer is None:  # quit: what was answered so far for this incident is still written
                stop = True
                break
            if answer:
                answers[f] = answer
        # as a verdict's labels reach the history: the incident upserted with them (HistoryFeeder)
        if answers:
            who = f"cli:{getpass.getuser()}"  # kept by a re-import of the source (importers/run.py)
            store.upsert([inc.model_copy(update={"labels": {**inc.labels, **answers}, "labelled_by": who})])
            written += 1
        if stop:
            break
    out.print(f"labelled {written} incident{'s' * (written != 1)} in '{store.name}'")
    if not written:
        return
    history, vectors = store.all()
    X = features(history, vectors)
    for f in fields:
        after = cv_accuracy(history, vectors, taxonomy, f, X=X)
        out.print(
            f"{f}: cross-validated accuracy {_cv_text(before[f])} -> {_cv_text(after)}",
            highlight=False,
            soft_wrap=True,
        )
    if settings.learned_decision:
        _retrain(settings, store, taxonomy)


@history_app.command("prelabel")
@one_line_errors
def history_prelabel(
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="Incidents missing a label in this field (repeatable; default: every field)."
        ),
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="How many incidents to ask the LLM about.")] = 200,
    measure: Annotated[
        int,
        typer.Option(
            "--measure",
            min=0,
            help="Labelled incidents asked first: the overlap the pre-labels' weight is measured on.",
        ),
    ] = 50,
    local: Annotated[
        bool,
        typer.Option("--local", help="Use the bundled local model anyway (slow; expect a weight near 0)."),
    ] = False,
    collection: Annotated[str | None, typer.Option(help="Collection name (default from settings).")] = None,
) -> None:
    """Pre-label past incidents with the configured LLM (kept apart from engineers' labels), then retrain: they
    weigh what their measured agreement with the engineers' labels earns (docs/history.md)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from bot.config import Settings
    from bot.intake.files import InputError
    from bot.taxonomy import Taxonomy
    from bot.triage.llm import LLMConfigError, build_chat_model
    from bot.triage.prelabelling import Outcome, PreLabeller, prelabel
    from bot.triage.prelabels import measure as agreement

    settings = Settings()
    if settings.llm_backend == "none" or (settings.llm_backend == "local" and not local):
        raise LLMConfigError(
            "history prelabel wants a capable OpenAI-compatible endpoint (INCIBOT_LLM_BACKEND=openai with "
            "INCIBOT_OPENAI_BASE_URL and INCIBOT_OPENAI_MODEL, or azure)"
            + ("; --local uses the bundled model anyway" if settings.llm_backend == "local" else "")
        )
    taxonomy = Taxonomy.load(settings.taxonomy_path)
    fields = _fields_asked(taxonomy, field)
    store = open_store(settings, collection, seed=False)
    if not store.count():
        raise InputError(f"the history '{store.name}' is empty: `incibot history import` first")
    model = build_chat_model(settings)
    assert model is not None  # llm_backend none was refused above
    logging.getLogger("incibot.model_server").setLevel(logging.CRITICAL)  # failures are counted in the report
    labeller = PreLabeller(settings, model, taxonomy)
    with Progress(
        TextColumn(f"pre-labelling with {escape(labeller.model)}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=err,
    ) as bar:  # fmt: skip
        task = bar.add_task("prelabel", total=None)
        step = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
        report = prelabel(store, labeller, fields, n, measure, step)
    counts = ", ".join(f"{o.value} {report.counts[o]}" for o in Outcome)
    out.print(f"{escape(report.model)} on '{store.name}': {counts}", highlight=False, soft_wrap=True)
    for inc_id, why in report.failures:
        out.print(f"  {escape(inc_id)}: {escape(why)}", highlight=False, soft_wrap=True)
    if report.stopped:
        out.print("stopped, the endpoint keeps failing: run the same command again later", highlight=False)
    history, _ = store.all()
    for f in fields:
        said = agreement(history, taxonomy, f).get(report.model)
        if said is not None:
            out.print(f"{f}: {escape(said.describe())}", highlight=False, soft_wrap=True)
    if settings.learned_decision and report.counts[Outcome.LABELLED]:
        _retrain(settings, store, taxonomy)


def _cv_text(cv: tuple[float, int] | str) -> str:
    return cv if isinstance(cv, str) else f"{cv[0]:.3f} ({cv[1]} labelled)"


def _show_for_label(inc: Any, count: int, total: int, guesses: list[Any]) -> None:
    """One incident as an engineer labels it: what was known at triage time, the fix, the classifier's guess."""
    out.print(
        f"\n[bold][{count}/{total}] {escape(inc.title or '(no title)')}[/bold] "
        f"[dim]({escape(inc.id)}, {escape(inc.service or '-')}, {inc.created_at:%Y-%m-%d})[/dim]"
    )
    if inc.text.strip():
        out.print(escape(inc.text.strip()[:800]), highlight=False)
    if inc.resolution.strip():
        out.print(f"[dim]resolution:[/dim] {escape(inc.resolution.strip()[:400])}", highlight=False)
    for g in guesses:
        odds = ", ".join(f"{label} {p:.0%}" for label, p in g.ranked)
        out.print(f"[dim]classifier's guess, {g.field}:[/dim] {escape(odds)}", highlight=False)


def _ask_label(taxonomy: Any, field: str) -> list[str] | None:
    """The engineer's label(s) for one field, by number: [] to skip, None to quit."""
    fld = taxonomy.fields[field]
    ids = fld.ids
    many = " (several: 1,3)" if fld.multi_label else ""
    out.print(f"[bold]{escape(fld.title or field)}[/bold]{many}")
    for j, c in enumerate(ids, 1):
        out.print(f"  {j:>2} {escape(c)}: {escape(fld.categories[c].title)}", highlight=False)
    while True:
        raw = typer.prompt("number, s to skip, q to quit", default="s", show_default=False).strip().lower()
        if raw in ("q", "quit"):
            return None
        if raw in ("s", "skip", ""):
            return []
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if all(p.isdigit() and 1 <= int(p) <= len(ids) for p in parts) and (
            fld.multi_label or len(parts) == 1
        ):
            return list(dict.fromkeys(ids[int(p) - 1] for p in parts))
        out.print(f"  give a number from 1 to {len(ids)}{', comma separated' if fld.multi_label else ''}")


@app.command("eval")
@one_line_errors
def eval_cmd(
    dataset: Annotated[str, typer.Option("--dataset", help="A dataset name or a canonical JSONL file.")],
    method: Annotated[
        list[str] | None, typer.Option("--method", help="all (default), or methods; repeatable.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=50)] = 5,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N cases (evenly spread).")
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1)] = 1,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("eval-results"),
    taxonomy: Annotated[Path | None, typer.Option("--taxonomy", help="Taxonomy of a JSONL dataset.")] = None,
    datasets_root: Annotated[
        Path | None, typer.Option("--datasets-root", help="Default: ../shared/datasets.")
    ] = None,
    test_fraction: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Most recent share used as cases.")
    ] = 0.3,
    unresolved_delay: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Hours after which an incident with no resolved time joins the history (default 168).",
        ),
    ] = None,
    verdict_delay: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Hours after a case opened when its verdict arrives (default: when it resolves)."
        ),
    ] = None,
    keep_duplicates: Annotated[
        bool,
        typer.Option(
            "--keep-duplicates", help="Do not merge records of the same incident (to measure their effect)."
        ),
    ] = False,
    leaky_history: Annotated[
        bool,
        typer.Option(
            "--leaky-history",
            help="Cut history by opening time only, showing fixes of incidents still open (to measure the leak).",
        ),
    ] = False,
    verdict_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of cases an engineer gives a verdict on.")
    ] = 1.0,
    split: Annotated[
        str,
        typer.Option(
            help="test (the most recent --test-fraction, reported) or validation (the 20% just before it, "
            "for design choices)."
        ),
    ] = "test",
    ticket_fields: Annotated[
        str,
        typer.Option(
            help="published (the fields the source published: provider, component, product) or text "
            "(title and text only, for every method)."
        ),
    ] = "published",
    cases: Annotated[
        str,
        typer.Option(
            help="all (every case of the split) or with-action (only those whose own mitigation action is "
            "known: the action's figures, with the LLM, at a fraction of the run)."
        ),
    ] = "all",
    label_budget: Annotated[
        str | None,
        typer.Option(
            help="Cold start: replay as if only N history incidents carried labels (chosen from those known at "
            "the first case); a curve with 10,20,50,100,200,all. Scores the classifier method only."
        ),
    ] = None,
    label_strategy: Annotated[
        str,
        typer.Option(
            help="With --label-budget: active (typical incidents, then uncertain ones, as `history label` picks), random, "
            "or both, comma separated."
        ),
    ] = "active,random",
    label_seeds: Annotated[
        int,
        typer.Option(
            min=1, max=20, help="With --label-budget: draws per strategy, averaged (random varies most)."
        ),
    ] = 1,
) -> None:
    """Score every method on labelled incident history, replayed as it was visible when each case opened."""
    from bot.config import Settings
    from bot.intake.files import InputError

    try:
        from evals import datasets
        from evals.harness import METHODS, EvalConfig, run_eval
        from evals.report import print_table, write_report
    except ModuleNotFoundError as e:
        raise InputError(
            f"incibot eval needs the repository checkout and the eval extra ({e.name} is missing)"
        ) from e

    methods = METHODS if not method or "all" in method else tuple(dict.fromkeys(method))
    ds = datasets.load(
        dataset,
        datasets_root or datasets.DEFAULT_ROOT,
        taxonomy,
        merge=not keep_duplicates,
        ticket_fields=ticket_fields,
    )
    if ds.skipped:
        err.print(f"[yellow]{len(ds.skipped)} labels or records skipped[/yellow], first: {ds.skipped[0]}")
    cfg = EvalConfig(
        methods=methods,
        k=k,
        limit=limit,
        repeat=repeat,
        test_fraction=test_fraction,
        out=out_dir,
        visibility=not leaky_history,
        unresolved_delay_h=unresolved_delay,
        verdict_delay_h=verdict_delay,
        verdict_rate=verdict_rate,
        split=split,
        cases=cases,
    )
    if label_budget is not None:
        from evals.cold_start import markdown as cold_start_markdown
        from evals.cold_start import parse_budgets, parse_strategies, run_cold_start

        budgets, strategies = parse_budgets(label_budget), parse_strategies(label_strategy)
        result = run_cold_start(ds, Settings(), cfg, budgets, strategies, err, label_seeds)
        folder = write_report(result["report"], result["cases"], out_dir)
        out.print(cold_start_markdown(result["report"]["cold_start"]), highlight=False, soft_wrap=True)
        out.print(f"report written to {folder} (learning-curve.png)")
        return
    result = run_eval(ds, Settings(), cfg, err)
    folder = write_report(result["report"], result["cases"], out_dir)
    print_table(result["report"], out)
    out.print(f"report written to {folder}")


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name
        return host.lower() in ("localhost", "localhost.localdomain")


@app.command()
@one_line_errors
def serve(
    socket_mode: Annotated[
        bool, typer.Option("--socket-mode", help="Slack over Socket Mode (app-level token).")
    ] = False,
) -> None:
    """Run the bot: ticket webhooks and Slack (HTTP mode, or Socket Mode with --socket-mode)."""
    import uvicorn

    from bot.config import Settings
    from bot.intake.files import InputError
    from bot.server import create
    from bot.triage.model_server import stop_all

    settings = Settings()
    if socket_mode and not settings.slack_app_token:
        raise InputError("--socket-mode needs INCIBOT_SLACK_APP_TOKEN (xapp-...)")
    if not socket_mode and not settings.slack_signing_secret:
        raise InputError("HTTP mode needs INCIBOT_SLACK_SIGNING_SECRET (or use --socket-mode)")
    service, slack_app, server = create(settings, http_slack=not socket_mode)
    service.start()
    if socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(slack_app, settings.slack_app_token.get_secret_value()).connect()  # type: ignore[union-attr]
    err.print(f"incibot listening on http://{settings.host}:{settings.port} (webhooks: /webhooks/<format>)")
    if not socket_mode and _is_loopback(settings.host):
        err.print(
            f"[yellow]Slack cannot reach {settings.host}, nor can remote webhook senders: behind a TLS proxy, set "
            "INCIBOT_HOST=0.0.0.0 (or use --socket-mode)[/yellow]",
            highlight=False,
        )
    try:
        uvicorn.run(server, host=settings.host, port=settings.port, log_level="warning")
    finally:
        service.stop()
        stop_all()  # the local model server goes with the bot


@feedback_app.command("export")
@one_line_errors
def feedback_export(
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write.")] = Path("feedback.jsonl"),
) -> None:
    """Write confirmed and corrected incidents as labelled JSONL (the eval harness's canonical format)."""
    from bot.config import Settings
    from bot.fileio import replace_atomically
    from bot.store.factory import open_sql

    settings = Settings()
    incidents = open_sql(settings).export()
    text = "".join(i.model_dump_json() + "\n" for i in incidents)
    replace_atomically(out_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))  # never half an export
    out.print(f"wrote {len(incidents)} labelled incidents to {out_file}")


@app.command()
@one_line_errors
def mode(
    word: Annotated[
        str | None, typer.Argument(help="llm or retrieval-only; leave out to show the mode.")
    ] = None,
) -> None:
    """Show or switch the drafting mode of every replica: retrieval-only turns the LLM off (the rollback)."""
    import getpass

    from bot.config import Settings
    from bot.store.factory import open_sql
    from bot.watch.mode import ModeSwitch

    settings = Settings()
    switch = ModeSwitch(open_sql(settings).watch, settings.admin_user_ids)
    if word is None:
        change = switch.current()
        out.print(f"mode {change.mode} (set by {change.user_id} at {change.created_at:%Y-%m-%d %H:%M} UTC)"
                  if change else "mode llm (never switched)")  # fmt: skip
        return
    change = switch.set(word, f"cli:{getpass.getuser()}", admin_check=False)  # the operator's own shell
    out.print(f"mode {change.mode}: in force on every replica within {settings.mode_ttl_s:.0f} s")


@app.command()
@one_line_errors
def report(
    since: Annotated[str, typer.Option("--since", help="How far back: 7d, 24h, 90m.")] = "7d",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.md and the plots.")] = Path(
        "report"
    ),
) -> None:
    """Write a report a manager can read: triages, acceptance, confident-label precision, latency, cost."""
    from bot.config import Settings
    from bot.store.factory import open_sql
    from bot.watch.metrics import known_prices
    from bot.watch.report import NOT_RECORDED, build, parse_since, write

    settings = Settings()
    r = build(open_sql(settings), parse_since(since), known_prices(settings), settings.confident_at)
    files = write(r, out_dir)
    out.print(
        f"{r.triages} triages, {sum(r.verdicts.values())} verdicts; wrote " + ", ".join(map(str, files))
    )
    out.print(f"({NOT_RECORDED})", highlight=False)


@app.command()
@one_line_errors
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Smaller sizes, fewer repeats.")] = False,
    backends: Annotated[
        bool,
        typer.Option(
            "--backends",
            help="Only the search, on the embedded Chroma and on a Chroma server (`chroma run`, started on "
            "127.0.0.1 for the run), side by side: 1k and 10k incidents (--quick: 1k).",
        ),
    ] = False,
    replicas: Annotated[
        str | None,
        typer.Option(
            "--replicas",
            help="Only the serving burst against N `incibot serve` processes on one PostgreSQL and one Chroma "
            "server (started for the run), e.g. --replicas 1,2: webhook -> first post p50/p95, posts/s.",
        ),
    ] = None,
    triage_only: Annotated[
        bool,
        typer.Option(
            "--triage-only",
            help="Only retrieval, retraining and the triage overhead (LLM off, plus 3 triages with it on) at "
            "--history incidents, without embedding them all: later copies of the embedded base incidents get "
            "perturbed vectors (search cost is by count and dimension).",
        ),
    ] = False,
    history: Annotated[
        str,
        typer.Option("--history", help="With --triage-only: history sizes, e.g. 10000,100000."),
    ] = "100000",
    context: Annotated[
        bool,
        typer.Option(
            "--context",
            help="Only the post's context lookup (recent changes, concurrent alerts) at 100,000 stored changes "
            "and 10,000 open tickets on SQLite: p50/p95 (--quick: 10,000 and 1,000).",
        ),
    ] = False,
    telemetry: Annotated[
        bool,
        typer.Option(
            "--telemetry",
            help="Only a ticket's metrics read (the default catalogue from a local Prometheus, backfilled with "
            "1,600 series) and what moved: p50/p95 against telemetry_budget_s (--quick: 10 reads).",
        ),
    ] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the JSON results.")] = Path(
        "bench-results"
    ),
) -> None:
    """Measure import, retrieval, triage, webhook-to-Slack latency, a burst and memory; prints a table, writes JSON."""
    from bot.intake.files import InputError

    try:
        from benchmarks.run import (
            run,
            run_backends,
            run_context,
            run_replicas,
            run_telemetry,
            run_triage_only,
        )
    except ModuleNotFoundError as e:
        raise InputError(f"incibot bench needs the repository checkout ({e.name} is missing)") from e

    if context:
        run_context(quick=quick, console=out, out_dir=out_dir)
        return
    if telemetry:
        run_telemetry(quick=quick, console=out, out_dir=out_dir)
        return

    if triage_only:
        try:
            sizes = sorted({int(x) for x in history.split(",")})
        except ValueError as e:
            raise InputError(f"--history takes sizes like 10000,100000 (got {history!r})") from e
        if not sizes or min(sizes) < 100:
            raise InputError(f"--history sizes must be at least 100 (got {history!r})")
        run_triage_only(sizes, quick=quick, console=out, out_dir=out_dir)
        return
    if replicas:
        try:
            counts = [int(x) for x in replicas.split(",")]
        except ValueError as e:
            raise InputError(f"--replicas takes counts like 1,2 (got {replicas!r})") from e
        run_replicas(counts, quick=quick, console=out, out_dir=out_dir)
        return
    (run_backends if backends else run)(quick=quick, console=out, out_dir=out_dir)


@app.command()
@one_line_errors
def doctor(
    llm: Annotated[
        bool,
        typer.Option("--llm", help="Also start the bundled model and time a completion (takes a while)."),
    ] = False,
) -> None:
    """Check the configuration and every configured connection: one line each, OK / WARN / FAIL and the fix."""
    from bot.doctor import main as run_doctor

    raise typer.Exit(run_doctor(out, run_llm=llm))


def main() -> None:  # pragma: no cover
    app()
