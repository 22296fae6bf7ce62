"""The history in Chroma: an embedded PersistentClient in `chroma_dir`, or a Chroma server when `chroma_host` is
set. Only `factory.py` names this class; the rest of the bot sees a `VectorStore`."""

from __future__ import annotations

import atexit
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from bot.config import Settings
from bot.models import HistoricalIncident
from bot.store.embeddings import MODEL_ID, get_embedder
from bot.store.exact import REFRESH_S, ServiceIndex
from bot.store.vectors import HistoryError, Hit, embed_text
from bot.visibility import visible_from

READ_PAGE = 5000  # incidents per read of the whole history
# A service's first filtered search goes to Chroma while its index is read in the background (tests: False).
BACKGROUND_BUILD = True
INDEX_PAGE = 1000  # incidents per read of a service's index: a process that exits waits for one page at most
_exiting = threading.Event()
_builders: set[threading.Thread] = set()


@atexit.register
def _stop_builders() -> None:
    """A thread still inside Chroma when the interpreter shuts down crashes it (a segfault): stop them first."""
    _exiting.set()
    for t in list(_builders):
        t.join(30)


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
        # Searches filtered by service run exactly in memory (bot/store/exact.py), one index per service searched.
        self._by_service: dict[str, ServiceIndex] = {}
        self._index_lock = threading.Lock()
        self._writes = 0  # upserts by this process: an index read while one ran is not kept
        self._building: set[str] = set()  # services whose index is being read in the background

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
            metas = [_metadata(i, delay) for i in chunk]
            try:
                self.collection.upsert(
                    ids=[i.id for i in chunk],
                    documents=docs,
                    embeddings=[v for v in vecs],
                    metadatas=metas,
                )
            except Exception as e:
                raise HistoryError(f"cannot write to the history store at {self._where()}: {e}") from e
            self._indexed(chunk, vecs, metas)
            written += len(chunk)
            if progress:
                progress(len(chunk))
        return written

    def _indexed(self, chunk: Sequence[HistoricalIncident], vecs: Any, metas: list[dict[str, Any]]) -> None:
        """Keep the service indexes built so far in step with what this process just wrote."""
        with self._index_lock:
            self._writes += 1
            if not self._by_service:
                return
            ids = [i.id for i in chunk]
            for index in self._by_service.values():
                index.drop(i for i, m in zip(ids, metas, strict=True) if m.get("service") != index.service)
            rows: dict[str, list[int]] = {}
            for j, m in enumerate(metas):
                if m.get("service") in self._by_service:
                    rows.setdefault(m["service"], []).append(j)
            arr = np.asarray(vecs, dtype=np.float32)
            for service, js in rows.items():
                self._by_service[service].put([ids[j] for j in js], arr[js], [metas[j] for j in js])

    def index_service(self, service: str) -> ServiceIndex:
        """Read one service's vectors into its in-memory index now (a search builds it in the background)."""
        with self._index_lock:
            writes = self._writes
        fresh = ServiceIndex(service, time.monotonic())
        offset = 0
        while True:  # in pages, as `all` (SQLite's limit on variables in one statement)
            if _exiting.is_set():
                raise HistoryError("the process is exiting")
            try:
                res = self.collection.get(
                    where={"service": service},
                    include=["embeddings", "metadatas"],
                    limit=INDEX_PAGE,
                    offset=offset,
                )
            except Exception as e:
                raise HistoryError(f"search failed in {self._where()}: {e}") from e
            ids = res["ids"] or []
            if ids:
                fresh.put(list(ids), np.asarray(res["embeddings"], dtype=np.float32), list(res["metadatas"]))
            offset += len(ids)
            if len(ids) < INDEX_PAGE:
                break
        with self._index_lock:
            if self._writes == writes:
                self._by_service[service] = fresh
            # else this process wrote while it was read: the next search reads it again
        return fresh

    def _service_index(self, service: str) -> ServiceIndex | None:
        """The service's index if built (rebuilt in the background once older than `REFRESH_S`); None while the
        first build runs in the background (the search goes to Chroma meanwhile): at 100,000 incidents reading
        one service's ~14,000 vectors takes seconds, longer than a search should wait."""
        with self._index_lock:
            index = self._by_service.get(service)
            if index is not None and time.monotonic() - index.built_at < REFRESH_S:
                return index
            if not BACKGROUND_BUILD:
                index = None
            elif service not in self._building and not _exiting.is_set():
                self._building.add(service)
                t = threading.Thread(target=self._build, args=(service,), daemon=True, name="history-index")
                _builders.add(t)
                t.start()
        return index if index is not None or BACKGROUND_BUILD else self.index_service(service)

    def _build(self, service: str) -> None:
        try:
            self.index_service(service)
        except HistoryError:
            pass  # the store is failing: searches go to Chroma and say so; the next one tries again
        finally:
            with self._index_lock:
                self._building.discard(service)
            _builders.discard(threading.current_thread())

    def _search_service(
        self,
        vec: np.ndarray,
        k: int,
        service: str,
        since: datetime | None,
        before: datetime | None,
        visible_at: datetime | None,
        exclude: set[str],
    ) -> list[Hit] | None:
        """Exact, from the service's index; None when it is not built yet."""
        index = self._service_index(service)
        if index is None:
            return None
        with self._index_lock:
            top = index.search(
                vec,
                k,
                since=int(since.timestamp()) if since else None,
                before=int(before.timestamp()) if before else None,
                visible_at=int(visible_at.timestamp()) if visible_at else None,
                exclude=exclude,
            )
        if not top:
            return []
        try:
            res = self.collection.get(ids=[t[0] for t in top], include=["metadatas"])
        except Exception as e:
            raise HistoryError(f"search failed in {self._where()}: {e}") from e
        records = dict(zip(res["ids"], res["metadatas"] or [], strict=True))
        return [
            Hit(HistoricalIncident.model_validate(json.loads(records[id_]["record"])), score, emb)
            for id_, score, emb in top
            if id_ in records  # deleted by another process since the index was built
        ]

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
        if (
            service
            and (hits := self._search_service(vec, k, service, since, before, visible_at, exclude))
            is not None
        ):
            return hits
        clauses: list[dict[str, Any]] = [{"service": service}] if service else []
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
        with self._index_lock:
            self._by_service.clear()
