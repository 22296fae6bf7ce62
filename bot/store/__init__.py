"""Store: what the stages persist. SQL (`sql.py`, `schema.py`, `tickets.py`, `watch.py`, `migrations/`): tickets,
verdicts, the work queue, mode changes; the vector history (`vectors.py`: the `VectorStore` interface; `chroma.py`:
its Chroma implementation) with its embedding model (`embeddings.py`); `factory.py` builds both.
May import: the shared modules only.
"""
