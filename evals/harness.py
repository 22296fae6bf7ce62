"""The eval harness: replay labelled incidents through the product's pipeline, with no look-ahead.

Leakage is ruled out by construction:
- each case is triaged as a Ticket built from triage-time fields only (title, first update, service, time);
- a past incident's outcome (labels, resolution, later text) reaches a case only if it was known when the case
  opened: resolved before it, by the one rule of `bot.visibility` (`Replay`). Retrieval (what the LLM and the draft
  see, the neighbours' vote, the slots kept for fixes) filters the store by it, the classifier is trained on the
  incidents it lets through, the majority baseline counts them, and a case's verdict reaches the LLM's tally only
  once the case itself is resolved. The case itself is never retrieved.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot.config import Settings
from bot.intake.files import InputError
from bot.models import HistoricalIncident, LabelDecision, TriageDraft
from bot.store.embeddings import get_embedder
from bot.store.factory import open_history
from bot.store.vectors import VectorStore
from bot.taxonomy import MITIGATION
from bot.triage.decision import LLMAgreement
from bot.triage.llm import build_chat_model
from bot.triage.pipeline import Triager
from bot.triage.trainer import Trainer
from bot.triage.vote import decide
from evals import actions, metrics
from evals.after_the_fact import hindsight
from evals.cases import LLM_METHODS, METHODS, CaseResult, EvalConfig, Replay, Verdict
from evals.datasets import Dataset
from evals.summary import summarise, write_cases

SPLITS = ("test", "validation")


CASES = ("all", "with-action")


def select_cases(
    ds: Dataset,
    test_fraction: float,
    limit: int | None,
    split: str = "test",
    validation_fraction: float = 0.2,
    keep: Callable[[HistoricalIncident], bool] | None = None,
) -> list[HistoricalIncident]:
    """The most recent `test_fraction` of labelled incidents (with text to triage), or with `split="validation"` the
    `validation_fraction` just older than those, those `keep` keeps, thinned evenly to `limit`."""
    if split not in SPLITS:
        raise InputError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    labelled = sorted((i for i in ds.incidents if i.labels and i.body.strip()), key=lambda i: i.created_at)
    cut = int(len(labelled) * (1 - test_fraction))
    if split == "validation":
        test = labelled[max(0, cut - int(len(labelled) * validation_fraction)) : cut]
    else:
        test = labelled[cut:]
    if keep is not None:
        test = [i for i in test if keep(i)]
    if limit and limit < len(test):
        test = [test[int(j * len(test) / limit)] for j in range(limit)]
    if not test:
        raise InputError(
            f"dataset {ds.name} ({ds.source}): the {split} split is empty (no labelled incidents)"
        )
    return test


def eval_store(ds: Dataset, settings: Settings, like: VectorStore | None = None) -> VectorStore:
    """All of the dataset in one collection, cached on disk by content and by the delay baked into each record's
    `visible_ts`; queries filter by time. `like`: a store of the same records (other labels) whose vectors are
    copied instead of embedding again."""
    key = f"visible_ts:{settings.unresolved_visible_after_h}" + "".join(
        i.model_dump_json() for i in ds.incidents
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    cache = settings.model_copy(update={"chroma_path": settings.data_dir / "eval-cache"})
    store = open_history(cache, collection=f"eval-{ds.name}-{digest}")
    if store.count() != len(ds.incidents):
        vectors = None
        if like is not None:
            incs, vecs = like.all()
            row = {inc.id: j for j, inc in enumerate(incs)}
            vectors = vecs[[row[i.id] for i in ds.incidents]]
        store.upsert(ds.incidents, embeddings=vectors)
    return store


def labels_only_on(ds: Dataset, ids: frozenset[str]) -> Dataset:
    """The dataset as history in which only `ids` carry labels (a cold start): the rest stay, unlabelled."""
    return replace(
        ds, incidents=[i if i.id in ids else i.model_copy(update={"labels": {}}) for i in ds.incidents]
    )


def majority_labels(
    history: list[HistoricalIncident], before: datetime, field_name: str, replay: Replay
) -> list[str]:
    counts = Counter(
        lab for i in history if replay.known(i, before) for lab in i.labels.get(field_name, [])[:1]
    )  # first label per incident, of the incidents whose labels were known by then
    return [counts.most_common(1)[0][0]] if counts else []


def _labels(d: LabelDecision, multi: bool) -> list[str]:
    return d.labels if multi and d.labels else [d.label]


def run_eval(
    ds: Dataset, settings: Settings, cfg: EvalConfig, console: Console | None = None
) -> dict[str, Any]:
    console = console or Console(stderr=True)
    unknown = set(cfg.methods) - set(METHODS)
    if unknown:
        raise InputError(f"unknown method(s): {', '.join(sorted(unknown))}; use {', '.join(METHODS)}")
    if cfg.cases not in CASES:
        raise InputError(f"--cases {cfg.cases!r}: use one of {', '.join(CASES)}")
    settings = settings.model_copy(update={"retrieval_k": cfg.k})
    if cfg.unresolved_delay_h is not None:
        settings = settings.model_copy(update={"unresolved_visible_after_h": cfg.unresolved_delay_h})
    replay = Replay(cfg.visibility, timedelta(hours=settings.unresolved_visible_after_h))
    tax, vocabulary = actions.with_vocabulary(ds.taxonomy, settings.taxonomy_path)
    ds = replace(ds, taxonomy=tax)
    store = eval_store(ds, settings)
    needs_llm = bool(LLM_METHODS & set(cfg.methods))
    model = build_chat_model(settings) if needs_llm else None
    if needs_llm and model is None:
        raise InputError("LLM methods need an LLM: set INCIBOT_LLM_BACKEND to local, openai or azure")
    trainer = Trainer(ds.taxonomy, None, None, k=cfg.k, target_precision=settings.target_precision)
    # every record's action once (the trainer remembers them): the answer key, and the majority baseline's counts
    known_actions = dict(
        zip([i.id for i in ds.incidents], trainer.actions_of(ds.incidents) or [], strict=False)
    )
    keep = (lambda i: bool(known_actions.get(i.id))) if cfg.cases == "with-action" else None
    cases = select_cases(ds, cfg.test_fraction, cfg.limit, cfg.split, cfg.validation_fraction, keep)
    past = ds  # the history as the bot holds it; the cases (their gold labels) come from `ds`
    if cfg.labelled_ids is not None:
        past = labels_only_on(ds, cfg.labelled_ids)
        store = eval_store(past, settings, like=store)
    history = store.all() if settings.learned_decision else ([], None)  # read once, cut per retraining
    train_s = _train(trainer, history, cases[0].created_at, replay) if settings.learned_decision else None
    triager = Triager(settings, store, model, taxonomy=ds.taxonomy, trainer=trainer)
    embedder = get_embedder()
    results: list[CaseResult] = []
    pending_left = 0
    total = len(cases) * cfg.repeat
    with Progress(
        TextColumn(f"eval {ds.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("cases", total=total)
        for rep in range(cfg.repeat):
            trainer.agreement = LLMAgreement()  # each repeat learns the LLM's agreement afresh
            if rep and settings.learned_decision:  # and starts from a model of its first case's past again
                _train(trainer, history, cases[0].created_at, replay)
            trained_on = sum(1 for inc in history[0] if replay.known(inc, cases[0].created_at))
            # verdicts given, not yet arrived (their case still open)
            pending: list[tuple[datetime, Verdict]] = []
            for case in cases:
                pending = _deliver(triager, pending, case.created_at)
                if settings.learned_decision and cfg.retrain_every:
                    seen = sum(1 for inc in history[0] if replay.known(inc, case.created_at))
                    if seen - trained_on >= cfg.retrain_every:
                        _train(trainer, history, case.created_at, replay)
                        trained_on = seen
                r, verdict = _run_case(case, rep, ds, triager, cfg, embedder, replay, known_actions, past)
                results.append(r)
                if verdict is not None and gives_verdict(case.id, cfg.verdict_rate):
                    pending.append((_verdict_time(case, cfg, replay), verdict))
                bar.advance(task)
            pending_left = len(pending)
    try:
        out = summarise(ds, cfg, results, settings)
    except Exception:
        # the cases took minutes to hours (the LLM): kept whatever goes wrong in scoring them
        folder = cfg.out / ds.name
        folder.mkdir(parents=True, exist_ok=True)
        write_cases(folder / "cases.partial.jsonl", results)
        console.print(f"[red]scoring failed; the cases are kept in {folder / 'cases.partial.jsonl'}[/red]")
        raise
    out["report"]["classifier"] = {"status": trainer.status, "train_s": train_s}
    first = [r for r in results if r.rep == 0]
    out["report"]["action"] = actions.summarise(
        first, list(cfg.methods), settings.hypothesis_coverage, vocabulary
    )
    out["report"]["visibility"] = {
        "rule": "resolved_at, else created_at + delay" if cfg.visibility else "created_at (leaky: rule off)",
        "unresolved_delay_h": settings.unresolved_visible_after_h,
        "verdicts": "when the case resolves"
        if cfg.verdict_delay_h is None
        else f"{cfg.verdict_delay_h} h after the case opened",
        "verdicts_not_arrived_by_last_case": pending_left,
        "verdict_rate": cfg.verdict_rate,
    }
    # The say the LLM earned by the end of the (last) run: [kept, predicted, n] and the odds ratio per situation.
    book = trainer.agreement
    out["report"]["llm_witness"] = {
        k: {"tally": v, "odds_ratio": round(book.odds_ratio(*v), 3)} for k, v in sorted(book.counts.items())
    }
    return out


def gives_verdict(case_id: str, rate: float) -> bool:
    """Whether the engineer gives a verdict on this case: a fixed share `rate` of cases, the same ones every run."""
    if rate >= 1:
        return True
    h = int.from_bytes(hashlib.sha256(f"verdict:{case_id}".encode()).digest()[:8], "big")
    return h / 2**64 < rate


def _verdict_time(case: HistoricalIncident, cfg: EvalConfig, replay: Replay) -> datetime:
    """When the engineer's verdict on a case reaches the bot: when it resolves, or `verdict_delay_h` after it opened."""
    if cfg.verdict_delay_h is not None:
        return case.created_at + timedelta(hours=cfg.verdict_delay_h)
    return replay.known_from(case)


def _deliver(
    triager: Triager, pending: list[tuple[datetime, Verdict]], t: datetime
) -> list[tuple[datetime, Verdict]]:
    """Record, in the order they arrived, the verdicts that arrived before `t`; the rest stay pending."""
    for _, (draft, gold, fix) in sorted((p for p in pending if p[0] < t), key=lambda p: p[0]):
        triager.record_verdict(draft, gold, fix)
    return [p for p in pending if p[0] >= t]


def _train(
    trainer: Trainer, history: tuple[list[HistoricalIncident], Any], cut: datetime, replay: Replay
) -> float | None:
    """The learned decision as the bot trains it, on the incidents whose labels were known at `cut`."""
    incs, vecs = history
    keep = [i for i, inc in enumerate(incs) if replay.known(inc, cut)]
    model = trainer.train_now([incs[i] for i in keep], vecs[keep])
    return round(model.train_s, 2) if model else None


def _run_case(
    case: HistoricalIncident,
    rep: int,
    ds: Dataset,
    triager: Triager,
    cfg: EvalConfig,
    embedder,  # type: ignore[no-untyped-def]
    replay: Replay,
    known_actions: dict[str, str | None] | None = None,
    past: Dataset | None = None,
) -> tuple[CaseResult, Verdict | None]:
    """One case through the bot's own `Triager.triage` (redaction, retrieval, validation, decision,
    abstention), and the engineer's verdict as the bot would record it (delivered by the caller once it arrives).
    `past`: the history as the bot holds it, when its labels differ from `ds`'s (a cold start)."""
    tax = ds.taxonomy
    past = past or ds
    ticket = case.ticket()
    text = triager.preparer.text(ticket)
    r = CaseResult(
        id=case.id,
        rep=rep,
        created_at=case.created_at.isoformat(),
        input=text[:500],
        gold={f: v for f, v in case.labels.items() if f in tax.fields},
        hindsight=[str(h) for h in hindsight(text)],
    )
    w = triager.settings.llm_weight
    multi = {f: tax.fields[f].multi_label for f in tax.fields}
    methods = set(cfg.methods)

    seen = replay.store_filter(case.created_at)
    verdict: Verdict | None = None
    known_actions = known_actions or {}
    r.action_gold = known_actions.get(case.id)
    labelled = tax.mitigation is not None and tax.normalise(
        MITIGATION, next(iter(case.labels.get(MITIGATION, [])), "")
    )
    r.action_source = "label" if labelled else "text"
    if "majority" in methods:
        r.pred["majority"] = {
            f: majority_labels(past.incidents, case.created_at, f, replay) for f in tax.fields
        }
        if tax.mitigation is not None:
            r.action["majority"] = actions.majority_actions(
                known_actions, ds.incidents, replay.known, case.created_at
            )
    if {"knn", "classifier"} & methods or not {"llm+retrieval", "combined"} & methods:
        plain = triager.triage(ticket, use_llm=False, before=case.created_at, visible_at=seen)
        _retrieved(r, ds, case, plain)
        if "knn" in methods:
            votes = {f: decide(f, tax, None, d.retrieval_votes, w) for f, d in plain.labels.items()}
            _record(r, "knn", votes, multi, plain.latency_s)
            if plain.mitigation is not None:
                r.action["knn"] = actions.from_votes(plain.mitigation.votes)
        if "classifier" in methods:
            _record(r, "classifier", plain.labels, multi, plain.latency_s)
            if plain.mitigation is not None:
                r.action["classifier"] = actions.from_draft(plain.mitigation)
            _playbook(r, "classifier", case, plain, triager)
    if "llm" in methods and triager.drafter:
        res = triager.drafter.draft(triager.redactor.redact(text).text, [])
        r.llm_status["llm"] = res.usage.status
        if res.usage.error:
            r.llm_error["llm"] = res.usage.error
        r.latency_s["llm"] = res.usage.latency_s
        r.pred["llm"] = {
            f: _labels(decide(f, tax, getattr(res.answer, f, None), {}, w), multi[f]) for f in tax.fields
        }
    if {"llm+retrieval", "combined"} & methods and triager.drafter:
        draft = triager.triage(ticket, use_llm=True, before=case.created_at, visible_at=seen)
        _retrieved(r, ds, case, draft)
        r.llm_status["llm+retrieval"] = draft.llm.status
        if draft.llm.error:
            r.llm_error["llm+retrieval"] = draft.llm.error
        r.tokens = draft.llm.prompt_tokens + draft.llm.completion_tokens
        if "llm+retrieval" in methods:
            own = {f: decide(f, tax, d.llm_label, {}, w) for f, d in draft.labels.items()}
            _record(r, "llm+retrieval", own, multi, draft.latency_s, confidence=False)
        if "combined" in methods:
            _record(r, "combined", draft.labels, multi, draft.latency_s)
            if draft.mitigation is not None:
                r.action["combined"] = actions.from_draft(draft.mitigation)
            _playbook(r, "combined", case, draft, triager)
            _mitigation(r, case, draft, embedder)
        # The engineer's verdict, as the bot records it (labels, and the fix as the real resolution tells it): the
        # LLM's measured agreement is its weight next time, once the verdict has arrived.
        verdict = (
            draft,
            r.gold,
            triager.playbook_choice.fix_playbook(case.resolution),
        )  # the mapper caches it
    return r, verdict


def _retrieved(r: CaseResult, ds: Dataset, case: HistoricalIncident, draft: TriageDraft) -> None:
    r.retrieved = [s.id for s in draft.similar]
    r.relevant = [ds.relevant(case, s) for s in draft.similar]


def _record(
    r: CaseResult,
    method: str,
    labels: dict[str, LabelDecision],
    multi: dict[str, bool],
    latency_s: float,
    confidence: bool = True,
) -> None:
    r.pred[method] = {f: _labels(d, multi[f]) for f, d in labels.items()}
    r.latency_s[method] = latency_s
    if confidence:
        r.confidence[method] = {f: d.confidence for f, d in labels.items()}
        r.abstained[method] = {f: d.abstained for f, d in labels.items()}
        r.label_sets[method] = {f: d.label_set for f, d in labels.items() if d.set_coverage is not None}


def _playbook(
    r: CaseResult, method: str, case: HistoricalIncident, draft: TriageDraft, triager: Triager
) -> None:
    """The method's chosen playbook, whether its scope lists the gold root cause, and (once) the playbook the
    case's real resolution maps to: agreement is scored per method where that exists."""
    r.playbook[method] = draft.playbook.id
    tax = triager.taxonomy
    gold_rc = case.labels.get("root_cause")
    pb = triager.playbooks.get(draft.playbook.id)
    if gold_rc and pb:
        r.playbook_fit[method] = tax.to_default("root_cause", gold_rc[0]) in pb.applies_to.get(
            "root_cause", []
        )
    r.has_resolution = bool(case.resolution.strip())
    r.playbook_real = triager.playbook_choice.fix_playbook(case.resolution)


def _mitigation(r: CaseResult, case: HistoricalIncident, draft: TriageDraft, embedder) -> None:  # type: ignore[no-untyped-def]
    if case.resolution.strip():
        drafted = "\n".join([s.action for s in draft.playbook.steps] + draft.playbook.adapted_notes)
        v = embedder.embed([case.resolution[:2000], drafted[:2000]])
        r.mitigation_cosine = float(np.dot(v[0], v[1]))
        r.mitigation_rouge_l = metrics.rouge_l(case.resolution[:2000], drafted[:2000])
