"""Sorting by token count, padding by hand and embedding a repeated text once change no vector: each equals the
text embedded alone, and the tokenizer's own padding (as the embedder padded before), within float tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from bot.store import embeddings
from bot.store.embeddings import get_embedder

TEXTS = [
    "ChatGPT returns 500 errors for many users",
    "",
    "x " * 400,  # past MAX_TOKENS: truncated
    "Latency",
    "ChatGPT returns 500 errors for many users",  # a repeat
    "Image generation is degraded: blurry images since the deploy at 14:05 UTC, EU and US regions. " * 3,
    "GPU capacity exhausted; 429s for API customers",
    "Latency",
]


def _reference(texts: list[str]) -> np.ndarray:
    """One text at a time, padded by the tokenizer itself (no padding at all with one text)."""
    e = get_embedder()
    tok = e.tokenizer.__class__.from_str(e.tokenizer.to_str())
    tok.enable_truncation(embeddings.MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    out = []
    for t in texts:
        enc = tok.encode_batch([t or " "])
        ids = np.array([x.ids for x in enc], dtype=np.int64)
        mask = np.array([x.attention_mask for x in enc], dtype=np.int64)
        (hidden,) = e.session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        pooled = hidden[0].mean(axis=0)
        out.append(pooled / np.linalg.norm(pooled))
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize(("batch", "window"), [(1, 4096), (3, 5), (64, 2), (64, 4096)])
def test_batched_sorted_and_deduplicated_equal_each_text_alone(
    batch: int, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "BATCH", batch)
    monkeypatch.setattr(embeddings, "WINDOW", window)
    got = get_embedder().embed(TEXTS)
    assert got.shape == (len(TEXTS), embeddings.DIM) and got.dtype == np.float32
    assert got == pytest.approx(_reference(TEXTS), abs=2e-5)
    assert np.array_equal(got[0], got[4]) and np.array_equal(got[3], got[7])
    assert np.linalg.norm(got, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)


def test_order_is_the_caller_s() -> None:
    e = get_embedder()
    fwd, rev = e.embed(TEXTS), e.embed(TEXTS[::-1])
    assert rev[::-1] == pytest.approx(fwd, abs=2e-5)
    assert e.embed([]).shape == (0, embeddings.DIM)
