"""The command line on bad input: one clear line, non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import benchmarks.core as bench_core
from bot.cli import app
from bot.config import Settings
from bot.store.demo import demo_history
from bot.store.factory import open_history

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_LLM_BACKEND", "none")


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, needle: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], output


def test_triage_text_seeds_demo_history_and_prints_a_draft() -> None:
    code, output = run("triage", "Elevated error rates and timeouts on chat completions for gpt-4o", "--json")
    assert code == 0, output
    draft = json.loads(output[output.index("{") :])
    assert draft["kind"] == "retrieval-only" and len(draft["similar"]) >= 3
    assert draft["labels"]["symptom"]["label"] and draft["playbook"]["id"]


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(text: str) -> None:
    assert_one_line_error(*run("triage", text), "no title or text")


def test_ticket_file_not_json(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text("{not json")
    assert_one_line_error(*run("triage", "--ticket", str(p)), "not valid JSON")


def test_ticket_file_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_bytes(b'{"title": "GPU \xff\xfe errors"}')
    assert_one_line_error(*run("triage", "--ticket", str(p)), "not UTF-8")


def test_ticket_file_too_big(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"title": "x", "text": "y" * 3_000_000}))
    assert_one_line_error(*run("triage", "--ticket", str(p)), "more than")


def test_one_megabyte_ticket_is_triaged(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(
        json.dumps({"id": "big", "title": "GPU capacity errors", "text": "429 capacity exceeded. " * 45_000})
    )
    code, output = run("triage", "--ticket", str(p), "--json")
    assert code == 0 and '"ticket_id": "big"' in output


def test_ticket_file_wrong_shape(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text("[1, 2]")
    assert_one_line_error(*run("triage", "--ticket", str(p)), "must be a JSON object")


def test_missing_ticket_file(tmp_path: Path) -> None:
    assert_one_line_error(*run("triage", "--ticket", str(tmp_path / "nope.json")), "cannot read")


def test_unknown_import_format(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    p.write_text("{}\n")
    assert_one_line_error(*run("history", "import", str(p), "--format", "csv"), "unknown import format")


def test_bad_record_writes_nothing(tmp_path: Path) -> None:
    good = {"id": "a", "title": "API errors", "resolution": "rolled back"}
    p = tmp_path / "h.jsonl"
    p.write_text(json.dumps(good) + "\n" + json.dumps({"title": "no id"}) + "\n")
    assert_one_line_error(*run("history", "import", str(p), "--collection", "col1"), "record 2")
    assert open_history(Settings(), "col1").count() == 0  # validated before any write


def test_import_is_idempotent_and_searchable(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    recs = [{"id": f"i{i}", "title": t, "resolution": "r", "service": s}
            for i, (t, s) in enumerate([("GPU capacity exhausted", "a"), ("Login failures", "b")])]  # fmt: skip
    p.write_text("\n".join(json.dumps(r) for r in recs))
    for _ in range(2):
        code, output = run("history", "import", str(p), "--collection", "col2")
        assert code == 0 and "2 in total" in output, output
    code, output = run("history", "search", "out of GPUs", "-k", "1", "--collection", "col2", "--json")
    assert code == 0 and json.loads(output)[0]["id"] == "i0"
    code, output = run("history", "search", "out of GPUs", "--service", "b", "--collection", "col2", "--json")
    assert [r["id"] for r in json.loads(output)] == ["i1"]


def test_statuspage_import(tmp_path: Path) -> None:
    doc = {"incidents": [{"id": "abc", "name": "Elevated errors on Copilot", "impact": "major",
           "created_at": "2023-01-01T00:00:00Z", "components": [{"name": "Copilot"}],
           "incident_updates": [
               {"status": "investigating", "body": "We are investigating reports of errors.", "created_at": "2023-01-01T00:00:00Z"},
               {"status": "resolved", "body": "We rolled back a <b>faulty deploy</b> and errors recovered.", "created_at": "2023-01-01T01:00:00Z"}]}]}  # fmt: skip
    p = tmp_path / "sp.json"
    p.write_text(json.dumps(doc))
    code, output = run("history", "import", str(p), "--format", "statuspage", "--collection", "spg")
    assert code == 0, output
    inc = open_history(Settings(), "spg").get(["statuspage:abc"])[0]
    assert inc.labels == {"severity": ["sev2"]} and inc.service == "Copilot"
    assert inc.text == "We are investigating reports of errors." and "faulty deploy" in inc.resolution
    assert "faulty deploy" not in inc.body  # the resolution is never part of the triage-time text


def test_corrupt_store_is_one_line(tmp_path: Path) -> None:
    d = Settings().chroma_dir
    d.mkdir(parents=True)
    (d / "chroma.sqlite3").write_bytes(b"garbage" * 1000)
    assert_one_line_error(*run("history", "search", "errors"), "cannot open the history store")


def test_config_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "incibot.yaml"
    cfg.write_text("retrieval_k: 2\nllm_backend: none\n")
    monkeypatch.setenv("INCIBOT_CONFIG", str(cfg))
    monkeypatch.delenv("INCIBOT_LLM_BACKEND")
    assert Settings().retrieval_k == 2
    code, output = run("triage", "ChatGPT is down for everyone", "--json")
    assert code == 0 and len(json.loads(output[output.index("{") :])["similar"]) == 2


def test_undecodable_argument_bytes_become_replacement_characters() -> None:
    from bot.cli import clean_text

    raw = b"GPU \xff errors".decode("utf-8", "surrogateescape")  # how Python hands over such argv bytes
    assert clean_text(raw) == "GPU \ufffd errors"


def test_bench_triage_only_at_a_tiny_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # bench-results/ is written in the working directory
    code, output = run("bench", "--triage-only", "--history", "150", "--quick")
    assert code == 0, output
    result = json.loads((tmp_path / "bench-results" / "bench-triage-150-quick.json").read_text())
    core = result["core"]
    assert core["sizes"] == [150] and core["vectors"]["embedded_for_real"] == 150
    assert core["training"]["150"]["n"] == 150 and core["training"]["150"]["train_s"] > 0
    assert core["triage"]["150"]["overhead_excl_llm_ms"]["p50"] > 0
    assert "triage_with_llm" not in core  # INCIBOT_LLM_BACKEND=none
    assert "bot overhead, LLM off" in output


@pytest.mark.parametrize("history", ["many", "10"])
def test_bench_history_sizes_are_checked(history: str) -> None:
    assert_one_line_error(*run("bench", "--triage-only", "--history", history), "--history")


def test_bench_history_vectors_perturb_later_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    base = demo_history()[:20]
    monkeypatch.setattr(bench_core, "demo_history", lambda: base)
    settings = Settings(seed_demo_history=False, llm_backend="none")
    vectors, info = bench_core.history_vectors(settings, 200)
    assert vectors.shape == (200, 384) and info["embedded_for_real"] == 120 and info["perturbed"] == 80
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # Copy 6 repeats the first sentence of copy 1: close to it, as close as a real later copy, not equal.
    cos = np.sum(vectors[120:140] * vectors[20:40], axis=1)
    assert np.all(cos < 0.99999) and abs(float(cos.mean()) - info["real_copy_cos"]) < 0.01
