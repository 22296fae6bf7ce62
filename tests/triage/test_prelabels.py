"""LLM pre-labels of the history (`bot/triage/prelabels.py`, `prelabelling.py`): asked through the triage's own
prompt and checks from an OpenAI-compatible stand-in on 127.0.0.1, kept apart from the engineers' labels, and
weighing in training what their measured agreement with those labels earns."""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier
from sklearn.multiclass import OneVsRestClassifier

from bot.config import Settings
from bot.models import HistoricalIncident, PreLabels
from bot.taxonomy import Taxonomy
from bot.triage.classifier import FieldClassifier, PreLabelRows
from bot.triage.learned import LearnedModel, train
from bot.triage.llm import build_chat_model
from bot.triage.prelabelling import Outcome, PreLabeller, prelabel
from bot.triage.prelabels import measure, prelabel_rows, prelabel_weight
from testkit.emulators import OpenAIEmulator
from testkit.memory_history import MemoryHistory
from tests.conftest import T0
from tests.helpers import REPO, external, schema_answer

TAX = Taxonomy.load(REPO / "taxonomies" / "genai.yaml")
KINDS = ["errors", "latency", "unavailability", "throttling_capacity", "quality_degradation"]
# Each kind has many words of its own: a few labelled incidents see few of them, many pre-labelled ones most.
WORDS = {k: [f"k{j}w{w}" for w in range(40)] for j, k in enumerate(KINDS)}
FILLER = [
    "users",
    "report",
    "trouble",
    "on",
    "the",
    "service",
    "since",
    "this",
    "morning",
    "we",
    "are",
    "investigating",
    "the",
    "cause",
]
_TICKET = re.compile(r"<ticket>\s*(.*?)\s*</ticket>", re.S)


def history(n: int, every: int, seed: int = 0, start: int = 0) -> list[HistoricalIncident]:
    """`n` incidents of the KINDS in turn, two of their kind's words each; every `every`-th one labelled."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        words = [*rng.sample(WORDS[kind], 2), *rng.sample(FILLER, 5)]
        rng.shuffle(words)
        out.append(
            HistoricalIncident(
                id=f"p{start + i}",
                title=f"incident {start + i}",
                text=" ".join(words),
                created_at=T0 + timedelta(hours=start + i),
                labels={"symptom": [kind]} if i % every == 0 else {},
            )
        )
    return out


def kind_of(text: str) -> str:
    return KINDS[int(re.search(r"\bk(\d)w", text).group(1))]  # type: ignore[union-attr]


def asked(request: dict[str, Any]) -> str:
    """The ticket text the stand-in was sent."""
    first = next(
        m["content"] for m in request["messages"] if m["role"] == "user"
    )  # a repair prompt follows it
    return _TICKET.findall(first)[-1]


def answer(label: Callable[[str], str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A stand-in answer: the schema's first value everywhere (a constant labeller), `label(ticket)` as symptom."""
    return lambda request: schema_answer(
        request["tools"][0]["function"]["parameters"], symptom=label(asked(request))
    )


def agreeing(text: str) -> str:
    """Right nine times in ten."""
    return KINDS[0] if zlib.crc32(text.encode()) % 10 == 0 else kind_of(text)


def random_kind(text: str) -> str:
    return KINDS[zlib.crc32(text.encode()) % len(KINDS)]


@pytest.fixture
def endpoint() -> Iterator[OpenAIEmulator]:
    emu = OpenAIEmulator(answer(agreeing))
    yield emu
    emu.close()


def noise(n: int, seed: int = 0) -> np.ndarray:
    """Vectors that say nothing, and little: the words, not an embedding, carry the kinds here."""
    vecs = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True) * 0.01


def store_of(settings: Settings, incs: list[HistoricalIncident]) -> MemoryHistory:
    store = MemoryHistory(settings)
    store.upsert(incs, embeddings=noise(len(incs)))
    return store


def labeller(settings: Settings, emu: OpenAIEmulator) -> PreLabeller:
    s = external(settings, emu, llm_retries=1)
    model = build_chat_model(s)
    assert model is not None
    return PreLabeller(s, model, TAX)


# ---- the weight --------------------------------------------------------------------------------------------


def pre(inc: HistoricalIncident, label: str, model: str = "m") -> HistoricalIncident:
    return inc.model_copy(update={"llm_labels": PreLabels(model=model, labels={"symptom": [label]})})


def test_weight_is_zero_unmeasured_near_zero_at_chance_and_high_when_it_agrees() -> None:
    incs = history(160, every=4)
    rng = random.Random(1)
    unmeasured = [pre(i, kind_of(i.text)) if not i.labels else i for i in incs]
    assert measure(unmeasured, TAX, "symptom")["m"].weight == 0.0  # only unlabelled ones: nothing measured
    good = [pre(i, kind_of(i.text)) for i in incs]
    said = measure(good, TAX, "symptom")["m"]
    assert (said.n, said.agree, said.used) == (40, 40, 120)
    assert (
        said.weight > 0.75
    )  # 40 of 40 shrunk by 10 pseudo-observations at chance: not quite an engineer's 1
    noisy = [pre(i, rng.choice(KINDS)) for i in incs]
    assert measure(noisy, TAX, "symptom")["m"].weight < 0.15
    majority = [pre(i, "errors") for i in incs]  # one label for everything: right at exactly its base rate
    assert measure(majority, TAX, "symptom")["m"].weight == 0.0
    # more agreeing overlap earns more; chance agreement earns nothing however much of it there is
    assert prelabel_weight(20, 20, 0.2) < prelabel_weight(80, 80, 0.2) < 1.0
    assert prelabel_weight(40, 200, 0.2) == 0.0
    # each model is measured on its own record
    two = [
        pre(i, kind_of(i.text), "good") if n // 4 % 2 else pre(i, "errors", "bad") for n, i in enumerate(incs)
    ]
    book = measure(two, TAX, "symptom")
    assert book["good"].weight > 0.6 and book["bad"].weight == 0.0


def test_a_pre_label_never_replaces_an_engineers_label() -> None:
    incs = [pre(i, "latency") for i in history(60, every=2)]
    rows, _ = prelabel_rows(incs, TAX, "symptom")
    assert all(not labs for labs, inc in zip(rows.labels, incs, strict=True) if inc.labels)
    assert all(w == 0 for w, inc in zip(rows.weights, incs, strict=True) if inc.labels)


# ---- the command's core: asking, storing, resuming, failing ------------------------------------------------


def test_prelabels_are_stored_apart_with_the_model_resumed_and_failures_write_nothing(
    settings: Settings, endpoint: OpenAIEmulator
) -> None:
    incs = history(30, every=3)  # 10 labelled
    bad = incs[13]  # an unlabelled incident the stand-in answers off the taxonomy, twice (the repair too)
    endpoint.reply = answer(lambda text: "no-such-label" if bad.text in text else agreeing(text))
    store = store_of(settings, incs)
    endpoint.failures = [(500, {})]  # the first incident asked: the endpoint fails past the retries
    report = prelabel(store, labeller(settings, endpoint), ["symptom"], n=100, measure=5)
    got = [
        report.counts[o] for o in (Outcome.LABELLED, Outcome.INVALID, Outcome.UNAVAILABLE, Outcome.SKIPPED)
    ]
    assert got == [23, 1, 1, 0]
    assert {i for i, _ in report.failures} >= {bad.id}
    after = {i.id: i for i in store.all()[0]}
    assert after[bad.id].llm_labels is None and after[bad.id].labels == {}
    failed = next(i for i, why in report.failures if i != bad.id)
    assert after[failed].llm_labels is None
    # the labelled incidents asked are 5 of the 10, spread over time; every unlabelled one with an answer
    done = [i for i in after.values() if i.llm_labels is not None]
    assert failed == incs[0].id and sum(1 for i in done if i.labels) == 4
    for i in done:
        assert i.llm_labels.model == "emulated" and set(i.llm_labels.labels) == set(TAX.fields)
        assert i.labels == next(x.labels for x in incs if x.id == i.id)  # the engineers' untouched
    # the same run again asks only what is not done: the failures (the stand-in now answers them)
    endpoint.reply = answer(agreeing)
    before = len(endpoint.bodies)
    again = prelabel(store, labeller(settings, endpoint), ["symptom"], n=100, measure=5)
    assert again.counts[Outcome.LABELLED] == 2 and again.counts[Outcome.SKIPPED] == 23
    assert len(endpoint.bodies) - before == 2


def test_ticket_text_is_redacted_for_an_external_endpoint(
    settings: Settings, endpoint: OpenAIEmulator
) -> None:
    incs = history(3, every=100)  # the first labelled, the others asked
    incs[1] = incs[1].model_copy(
        update={"text": incs[1].text + " contact jane.doe@example.com tenant tnt-0a1b2c3d"}
    )
    prelabel(store_of(settings, incs), labeller(settings, endpoint), ["symptom"], n=10, measure=0)
    sent = b"".join(endpoint.bodies)
    assert b"jane.doe@example.com" not in sent and b"tnt-0a1b2c3d" not in sent


# ---- training ----------------------------------------------------------------------------------------------


def accuracy(model: LearnedModel, test: list[HistoricalIncident]) -> float:
    d = model.fields["symptom"]
    vecs = noise(len(test), seed=5)
    hits = [
        d.clf.classes[int(np.argmax(model.proba("symptom", model.features(i.body, i.service, i.source, v))))]
        == i.labels["symptom"][0]
        for i, v in zip(test, vecs, strict=True)
    ]
    return float(np.mean(hits))


def trained(store: MemoryHistory) -> LearnedModel:
    incs, vecs = store.all()
    return train(incs, vecs, TAX, k=5, target_precision=0.85)


def test_agreeing_prelabels_raise_held_out_accuracy_and_random_ones_do_not_lower_it(
    settings: Settings, endpoint: OpenAIEmulator
) -> None:
    incs = history(400, every=8)  # 50 labelled: each sees a few of its kind's words
    test = history(150, every=1, seed=9, start=5000)
    base = trained(store_of(settings, incs))
    store = store_of(settings, incs)
    report = prelabel(store, labeller(settings, endpoint), ["symptom"], n=400, measure=50)
    assert report.counts[Outcome.LABELLED] == 400
    good = trained(store)
    said = good.prelabels["symptom"][0]
    assert said.n == 50 and said.weight > 0.6 and good.fields["symptom"].clf.n_pre == 350
    assert "350 LLM pre-labels (emulated) at weight" in good.describe()
    # the folds are scored on the engineers' labels only: as many out-of-fold rows as without pre-labels
    assert good.fields["symptom"].oof_n == base.fields["symptom"].oof_n
    endpoint.reply = answer(random_kind)
    store = store_of(settings, incs)
    prelabel(store, labeller(settings, endpoint), ["symptom"], n=400, measure=50)
    noise = trained(store)
    assert noise.prelabels["symptom"][0].weight < 0.15
    a_base, a_good, a_noise = accuracy(base, test), accuracy(good, test), accuracy(noise, test)
    assert a_good >= a_base + 0.1, (a_base, a_good)
    assert a_noise >= a_base - 0.05, (a_base, a_noise)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped epochs, as the bot fits
def test_without_prelabels_the_fit_is_what_it_was() -> None:
    incs = history(120, every=1)
    vecs = noise(len(incs))
    ref = train(incs, vecs, TAX, k=5, target_precision=0.85)
    X = ref.featurizer.transform([f"{i.body} " for i in incs], vecs)  # any rows will do for comparing
    labels = [i.labels["symptom"] for i in incs]
    # the classifier as it was fitted before pre-labels existed: the same estimator, no weights, no routing
    old = OneVsRestClassifier(
        SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=10, tol=1e-3, average=True, random_state=0),
        n_jobs=1,
    ).fit(X, [lab[0] for lab in labels])
    new = FieldClassifier.fit("symptom", False, X, labels)
    assert np.array_equal(old.predict_proba(X), new.proba(X))
    unused = FieldClassifier.fit(
        "symptom", False, X, labels, PreLabelRows([[]] * len(incs), [0.0] * len(incs))
    )
    assert np.array_equal(new.proba(X), unused.proba(X))
    # pre-labels that earn nothing (a constant label, on labelled incidents only) leave the whole model as it was
    with_pre = train([pre(i, "latency") for i in incs], vecs, TAX, k=5, target_precision=0.85)
    for f, d in ref.fields.items():
        assert np.array_equal(d.clf.proba(X), with_pre.fields[f].clf.proba(X))
        assert d.threshold == with_pre.fields[f].threshold


def test_an_engineers_label_given_meanwhile_is_kept(settings: Settings, endpoint: OpenAIEmulator) -> None:
    incs = history(2, every=100)
    store = store_of(settings, incs)
    target = incs[1]

    def engineer_labels_it_while_the_llm_answers(text: str) -> str:
        store.upsert([target.model_copy(update={"labels": {"severity": ["sev1"]}})], embeddings=noise(1))
        return agreeing(text)

    endpoint.reply = answer(engineer_labels_it_while_the_llm_answers)
    report = prelabel(store, labeller(settings, endpoint), ["severity"], n=5, measure=0)
    assert report.counts[Outcome.LABELLED] == 2
    now = store.get([target.id])[0]
    assert now.labels == {"severity": ["sev1"]} and now.llm_labels is not None


MULTI = """
name: multi
fields:
  symptom:
    title: Symptom
    multi_label: true
    categories:
      ERROR: {title: Errors, description: Requests fail.}
      DELAY: {title: Delay, description: Latency.}
      UNAVIL: {title: Unavailability, description: Down.}
"""


def test_multi_label_counts_each_label_the_model_named(tmp_path: Path) -> None:
    (tmp_path / "multi.yaml").write_text(MULTI)
    tax = Taxonomy.load(tmp_path / "multi.yaml")
    gold = [["ERROR", "DELAY"], ["UNAVIL"], ["ERROR"], ["DELAY"]] * 10

    def said(llm: list[list[str]]) -> list[HistoricalIncident]:
        return [
            HistoricalIncident(id=f"m{n}", title="t", labels={"symptom": g},
                               llm_labels=PreLabels(model="m", labels={"symptom": x}))
            for n, (g, x) in enumerate(zip(gold, llm, strict=True))
        ]  # fmt: skip

    exact = measure(said(gold), tax, "symptom")["m"]
    assert (exact.n, exact.agree) == (50, 50) and exact.weight > 0.7
    # one right label and one wrong one each time: half its labels agree, about what chance gives
    half = measure(said([[g[0], "UNAVIL" if g[0] != "UNAVIL" else "DELAY"] for g in gold]), tax, "symptom")[
        "m"
    ]
    assert (half.n, half.agree) == (80, 40) and half.weight < exact.weight / 2
