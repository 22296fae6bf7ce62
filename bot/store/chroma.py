"""The history in Chroma: an embedded PersistentClient in `chroma_dir`, or a Chroma server when `chroma_host` is
set. Only `factory.py` names this class; the rest of the bot sees a `VectorStore`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.store.embeddings import MODEL_ID, get_embedder
from bot.store.vectors import HistoryError, Hit, embed_text
from bot.visibility import visible_from

READ_PAGE = 5000  # incidents per read of the whole history


@register_embedding_function
class ChromaMiniLM(EmbeddingFunction[Documents]):
    """The same model as a Chroma embedding function, so a collection can embed its own queries."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        return list(get_embedder().embed(list(input)))

    @staticmethod
    def name() -> str:
        return "incibot-minilm-int8"

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_ID}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaMiniLM:
        return ChromaMiniLM()

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine"]


def _metadata(inc: HistoricalIncident, unresolved_delay: timedelta) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "title": inc.title[:500],
        "source": inc.source,
        "created_ts": int(inc.created_at.timestamp()),
        # when its labels and fix became known (bot/visibility.py): what `search(visible_at=...)` filters on
        "visible_ts": int(visible_from(inc, unresolved_delay).timestamp()),
        "record": inc.model_dump_json(exclude={"raw"}),
    }
    # Chroma metadata values must be scalars; None is not allowed.
    for key, value in (("service", inc.service), ("component", inc.component), ("link", inc.link)):
        if value:
            meta[key] = value
    for field, labels in inc.labels.items():
        if labels:
            meta[f"label_{field}"] = ",".join(labels)
    return meta


def _where(s: Settings) -> str:
    return f"Chroma server {s.chroma_host}:{s.chroma_port}" if s.chroma_host else str(s.chroma_dir)


class ChromaHistory:
    """A `VectorStore` in one Chroma collection; an incident's full record rides in its metadata."""

    def __init__(self, settings: Settings, collection: str | None = None) -> None:
        self.settings = settings
        self.name = collection or settings.collection
        self.client = self._client(settings)
        try:
            self.collection = self.client.get_or_create_collection(
                self.name, embedding_function=ChromaMiniLM(), metadata={"hnsw:space": "cosine"}
            )
        except Exception as e:  # chromadb raises many types for a broken store
            raise HistoryError(f"cannot open collection {self.name!r} in {self._where()}: {e}") from e

    def _where(self) -> str:
        return _where(self.settings)

    @staticmethod
    def _client(settings: Settings) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        try:
            if settings.chroma_host:
                return chromadb.HttpClient(
                    host=settings.chroma_host,
                    port=settings.chroma_port,
                    ssl=settings.chroma_ssl,
                    settings=chroma_settings,
                )
            path = settings.chroma_dir
            if path.exists() and not path.is_dir():
                raise HistoryError(f"history store path {path} is a file, not a directory")
            path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except HistoryError:
            raise
        except Exception as e:
            raise HistoryError(
                f"cannot open the history store at {_where(settings)}: {e}. "
                "If the directory is corrupt, move it aside and run `incibot history import` again."
            ) from e

    def count(self) -> int:
        try:
            return self.collection.count()
        except Exception as e:
            raise HistoryError(f"cannot read the history store at {self._where()}: {e}") from e

    def upsert(
        self,
        incidents: Sequence[HistoricalIncident],
        progress: Callable[[int], None] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> int:
        """Insert or replace incidents by id, in batches. Returns how many were written."""
        try:
            batch = min(self.settings.import_batch_size, self.client.get_max_batch_size())
        except Exception as e:  # a Chroma server down or unreachable
            raise HistoryError(f"cannot write to the history store at {self._where()}: {e}") from e
        written = 0
        delay = timedelta(hours=self.settings.unresolved_visible_after_h)
        for start in range(0, len(incidents), batch):
            chunk = incidents[start : start + batch]
            docs = [embed_text(i, self.settings.max_text_chars) for i in chunk]
            vecs = embeddings[start : start + batch] if embeddings is not None else get_embedder().embed(docs)
            try:
                self.collection.upsert(
                    ids=[i.id for i in chunk],
                    documents=docs,
                    embeddings=[v for v in vecs],
                    metadatas=[_metadata(i, delay) for i in chunk],
                )
            except Exception as e:
                raise HistoryError(f"cannot write to the history store at {self._where()}: {e}") from e
            written += len(chunk)
            if progress:
                progress(len(chunk))
        return written

    def get(self, ids: Iterable[str]) -> list[HistoricalIncident]:
        try:
            res = self.collection.get(ids=list(ids), include=["metadatas"])
        except Exception as e:
            raise HistoryError(f"cannot read the history store at {self._where()}: {e}") from e
        return [HistoricalIncident.model_validate_json(m["record"]) for m in res["metadatas"] or []]

    def all(self) -> tuple[list[HistoricalIncident], np.ndarray]:
        """Every incident with its stored vector (for training: no re-embedding)."""
        incs: list[HistoricalIncident] = []
        vecs: list[np.ndarray] = []
        # In pages: one get of the whole collection fails past ~32k incidents in the embedded store (SQLite's
        # limit on variables in one statement).
        while True:
            try:
                res = self.collection.get(
                    include=["metadatas", "embeddings"], limit=READ_PAGE, offset=len(incs)
                )
            except Exception as e:
                raise HistoryError(f"cannot read the history store at {self._where()}: {e}") from e
            page = [HistoricalIncident.model_validate_json(m["record"]) for m in res["metadatas"] or []]
            if not page:
                break
            incs += page
            vecs.append(np.asarray(res["embeddings"], dtype=np.float32))
            if len(page) < READ_PAGE:
                break
        if not incs:
            return [], np.zeros((0, 0), dtype=np.float32)
        return incs, np.concatenate(vecs)

    def search(
        self,
        query: str | np.ndarray,
        k: int = 5,
        *,
        service: str | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        visible_at: datetime | None = None,
        exclude_ids: Iterable[str] = (),
    ) -> list[Hit]:
        """Top-k by cosine similarity, best first, with optional metadata filters. Records written before
        `visible_ts` existed have none and never pass a `visible_at` filter (only replays of history pass one)."""
        vec = get_embedder().embed([query])[0] if isinstance(query, str) else query
        exclude = set(exclude_ids)
        clauses: list[dict[str, Any]] = []
        if service:
            clauses.append({"service": service})
        if since:
            clauses.append({"created_ts": {"$gte": int(since.timestamp())}})
        if before:
            clauses.append({"created_ts": {"$lt": int(before.timestamp())}})
        if visible_at:
            clauses.append({"visible_ts": {"$lt": int(visible_at.timestamp())}})
        where = clauses[0] if len(clauses) == 1 else ({"$and": clauses} if clauses else None)
        try:
            # No count() first: Chroma returns what there is when asked for more (a count was ~11 ms at 100k).
            res = self.collection.query(
                query_embeddings=[vec],
                n_results=k + len(exclude),
                where=where,
                include=["metadatas", "distances", "embeddings"],
            )
        except Exception as e:
            raise HistoryError(f"search failed in {self._where()}: {e}") from e
        hits: list[Hit] = []
        for id_, meta, dist, emb in zip(
            res["ids"][0], res["metadatas"][0], res["distances"][0], res["embeddings"][0], strict=True
        ):
            if id_ in exclude:
                continue
            inc = HistoricalIncident.model_validate(json.loads(meta["record"]))
            hits.append(Hit(inc, 1.0 - float(dist), np.asarray(emb, dtype=np.float32)))
        return hits[:k]

    def delete_collection(self) -> None:
        self.client.delete_collection(self.name)
