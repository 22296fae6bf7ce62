"""Keeps the learned decision current: loaded at start, retrained off the posting path when history changes.

Any number of retrain requests while a training runs (a feedback flood) give one more training, not one each.
Until a model exists (or when the file is corrupt or stale), `current` is None and the vote decides: the draft
says so. The newest model is swapped in atomically; a triage in flight keeps the one it started with.

The training thread is not a daemon: the interpreter waits for it at exit, so a short-lived process never dies
with it inside native code (an abort, exit 134), and the model it was writing is saved. A one-shot command trains
in the foreground instead (`Triager.from_settings(train_now=True)`); the bot's first posts wait for the first
training, up to `first_training_wait_s` (`wait_first`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Settings
from bot.models import HistoricalIncident, Verdict
from bot.taxonomy import MITIGATION, Taxonomy
from bot.triage.decision import LLMAgreement
from bot.triage.evidence import EvidenceBook
from bot.triage.learned import LearnedModel, ModelFileError, load, save, train
from bot.triage.mitigation import MitigationExtractor

if TYPE_CHECKING:
    from bot.store.vectors import VectorStore

log = logging.getLogger("incibot")
HistorySource = Callable[[], tuple[list[HistoricalIncident], np.ndarray]]
VerdictSource = Callable[[], list[Verdict]]
AGREEMENT_WINDOW = 5000  # newest verdicts the LLM's agreement is counted on (it follows model changes too)


class Trainer:
    def __init__(
        self,
        taxonomy: Taxonomy,
        path: Path | None,
        source: HistorySource | None,
        *,
        k: int = 5,
        target_precision: float = 0.85,
        verdicts: VerdictSource | None = None,
    ) -> None:
        self.taxonomy, self.path, self.source, self.verdicts = taxonomy, path, source, verdicts
        self.k, self.target_precision = k, target_precision
        self.current: LearnedModel | None = None
        self.status = "not trained yet"
        self.trainings = 0
        self.agreement = LLMAgreement()
        self.evidence = EvidenceBook()  # the why-now features' measured worth (bot/triage/evidence.py)
        self.recount()
        self._wanted = threading.Event()
        self._first_done = threading.Event()  # a first training attempt ended (or a model was loaded)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = threading.Lock()
        self._extractor: MitigationExtractor | None = None
        self._actions: dict[str, str | None] = {}  # incident fingerprint -> its action (text mapping is slow)

    def actions_of(self, history: list[HistoricalIncident]) -> list[str | None] | None:
        """Each incident's mitigation action (labels, verdict, else its resolution text), None for the taxonomy
        without a vocabulary. Remembered per incident and outcome: retraining maps only what is new."""
        if self.taxonomy.mitigation is None:
            return None
        keys = [_fingerprint(i) for i in history]
        todo = [(k, i) for k, i in zip(keys, history, strict=True) if k not in self._actions]
        if todo:
            if self._extractor is None:
                self._extractor = MitigationExtractor(self.taxonomy)
            fixes = self._extractor.of_history([i for _, i in todo])
            self._actions.update({k: f.action if f else None for (k, _), f in zip(todo, fixes, strict=True)})
        return [self._actions[k] for k in keys]

    def load(self) -> bool:
        """The model on disk, if it fits this taxonomy; else None and the reason in `status`."""
        if self.path is None:
            return False
        try:
            self.current = load(self.path, self.taxonomy)
            self.status = f"loaded {self.path.name}: {self.current.describe()}"
            self._first_done.set()
            return True
        except FileNotFoundError:
            self.status = "no model file yet"
        except ModelFileError as e:
            self.status = f"{e}; the vote decides until it is retrained"
            log.warning("%s", self.status)
        return False

    def recount(self) -> None:
        """The LLM's agreement and the evidence book counted afresh from the stored verdicts (all replicas' and before a restart).
        A verdict observed in memory while this reads may be counted twice until the next recount: harmless."""
        if self.verdicts is None:
            return
        try:
            verdicts = list(self.verdicts())
            self.agreement = LLMAgreement.from_verdicts(verdicts)
            self.evidence = EvidenceBook.from_verdicts(verdicts)
        except SQLAlchemyError as e:  # database down: keep counting in memory, recount at the next training
            log.warning("LLM agreement not recounted, database unavailable: %s", e)

    def set(self, model: LearnedModel) -> None:
        self.current = model
        self.status = f"trained on {model.n_history} incidents in {model.train_s:.1f}s: {model.describe()}"
        self._first_done.set()

    def wait_first(self, timeout: float) -> bool:
        """Block until a model exists or the first training attempt has ended, at most `timeout` seconds; True at
        once when no training is under way. False: it is still training (the vote decides meanwhile)."""
        with self._state:
            training = self._thread is not None
        if self.current is not None or not training:
            return True
        return self._first_done.wait(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background training to end (shutdown, tests)."""
        with self._state:
            t = self._thread
        if t is not None:
            t.join(timeout)

    def train_now(
        self, history: list[HistoricalIncident] | None = None, vectors: np.ndarray | None = None
    ) -> LearnedModel | None:
        """Train synchronously (history import, tests, evals) from the given history or the source."""
        if history is None or vectors is None:
            if self.source is None:
                return None
            history, vectors = self.source()
        with self._lock:  # one training at a time per process
            model = train(history, vectors, self.taxonomy, k=self.k, target_precision=self.target_precision,
                          actions=self.actions_of(history))  # fmt: skip
            self.trainings += 1
            if self.path is not None:
                save(model, self.path)
            self.set(model)
            self.recount()
        log.info("classifier %s", self.status)
        return model

    def request(self) -> None:
        """Retrain soon, in the background; coalesces with any request already waiting."""
        with self._state:
            self._wanted.set()
            if self._thread is None:
                if self.current is None:
                    self.status = "training the classifier (first start): the vote decides until it is done"
                # not a daemon: exit waits for it (a daemon thread killed in native code aborts the process)
                self._thread = threading.Thread(target=self._run, name="incibot-trainer", daemon=False)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._state:  # checked and cleared under the lock, so no request slips between
                if not self._wanted.is_set():
                    self._thread = None
                    return
                self._wanted.clear()
            try:
                self.train_now()
            except Exception as e:  # a failed training keeps the previous model: never fatal for posting
                self.status = f"retraining failed, previous model kept: {e}"
                log.exception("classifier retraining failed")
            finally:
                self._first_done.set()


def _fingerprint(inc: HistoricalIncident) -> str:
    said = [inc.id, inc.source, inc.resolution, inc.labels.get(MITIGATION, [])]
    return hashlib.sha256(repr(said).encode()).hexdigest()[:24]


def trainer_for(
    settings: Settings, store: VectorStore, taxonomy: Taxonomy, verdicts: VerdictSource | None = None
) -> Trainer:
    """The trainer of a history collection: its model file sits beside the history, named after both;
    `verdicts` (the database's) are what the LLM's agreement is counted on."""
    return Trainer(
        taxonomy,
        settings.model_dir / f"{store.name}-{taxonomy.name}.joblib",
        store.all,
        k=settings.retrieval_k,
        target_precision=settings.target_precision,
        verdicts=verdicts,
    )
