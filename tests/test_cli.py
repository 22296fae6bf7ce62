"""The command line on bad input: one clear line, non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import benchmarks.core as bench_core
from bot.cli import app
from bot.config import Settings
from bot.store.demo import demo_history
from bot.store.factory import open_history
from tests.conftest import TEST_ENV
from tests.helpers import REPO

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_LLM_BACKEND", "none")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def first_use(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The first `incibot triage` on a fresh install, as scripts and cron jobs run it (a process of its own), made
    once for the module: the fresh-install test checks it, and other triage tests start from what it leaves (the
    demo history seeded, the classifier trained and saved) instead of seeding again."""
    data = tmp_path_factory.mktemp("first-use") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")} | TEST_ENV
    env |= {"INCIBOT_DATA_DIR": str(data), "INCIBOT_LLM_BACKEND": "none"}
    cmd = [sys.executable, "-m", "bot", "triage", "Elevated error rates and timeouts on chat completions for gpt-4o",
           "--json", "--no-llm"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    return data, done


@pytest.fixture(scope="module")
def first_used(first_use: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    data, done = first_use
    assert done.returncode == 0, done.stderr[-2000:]
    return data


@pytest.fixture
def used_before(first_used: Path) -> None:
    """This test's data directory (the conftest's INCIBOT_DATA_DIR) starts as a copy of `first_used`."""
    shutil.copytree(first_used, Settings().data_dir)


def assert_one_line_error(code: int, output: str, needle: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], output


def test_triage_text_seeds_demo_history_trains_and_exits_cleanly(
    first_use: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """A fresh install, in a process of its own, so an abort at exit shows (a daemon trainer still in native code at
    exit was exit 134), with learned labels, not "Other 0% from default"."""
    from bot.taxonomy import Taxonomy
    from bot.triage.trainer import trainer_for

    data, done = first_use
    assert done.returncode == 0, done.stderr[-2000:]
    draft = json.loads(done.stdout)
    assert draft["kind"] == "retrieval-only" and len(draft["similar"]) >= 3 and draft["playbook"]["id"]
    sources = {f: d["source"] for f, d in draft["labels"].items()}
    assert "default" not in sources.values() and "classifier" in sources.values(), sources
    assert "first use of this history: classifier trained on" in done.stderr
    settings = Settings(data_dir=data)  # the saved model: the next run loads it instead of training again
    assert trainer_for(settings, open_history(settings), Taxonomy.load(settings.taxonomy_path)).load()


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


def test_one_megabyte_ticket_is_triaged(tmp_path: Path, used_before: None) -> None:
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


def test_import_help_names_every_format() -> None:
    from bot.intake.files import FORMATS

    code, output = run("history", "import", "--help")  # written out there: the help loads no bot module
    assert code == 0 and all(f in output for f in FORMATS), output


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


STATUSPAGE_API = {  # what GET /api/v2/incidents.json answers: the page block first
    "page": {"id": "01JMYB483C404VMPCW726E8MET", "name": "OpenAI", "url": "https://status.openai.com",
             "time_zone": "America/Los_Angeles", "updated_at": "2025-01-23T17:42:12.785-08:00"},
    "incidents": [{"id": f"sp{i}", "name": f"Incident {i} with Copilot", "impact": "minor",
                   "created_at": "2024-04-01T00:00:00Z", "components": [{"name": "Copilot"}],
                   "incident_updates": [{"status": "investigating", "body": "We are investigating.",
                                         "created_at": "2024-04-01T00:00:00Z"}]} for i in range(2)],
}  # fmt: skip


def test_statuspage_api_response_pretty_printed(tmp_path: Path) -> None:
    p = tmp_path / "incidents.json"
    p.write_text(json.dumps(STATUSPAGE_API, indent=2))  # as `curl ... | jq .` leaves it
    assert p.read_text().index('"incidents"') > 200  # past where the reader used to look for it
    code, output = run("history", "import", str(p), "--format", "statuspage", "--collection", "spp")
    assert code == 0, output
    assert "imported 2 incidents" in output


@pytest.mark.parametrize(
    "text",
    [
        json.dumps([{"id": "a", "title": "API errors"}, {"id": "b", "title": "Login failures"}], indent=2),
        json.dumps({"id": "a", "title": "API errors"}, indent=2) + "\n",  # one record, pretty-printed
        '{"id": "a", "title": "API errors"}\n\n{"id": "b", "title": "Login failures"}\n',  # JSONL
    ],
)
def test_history_file_is_a_document_or_jsonl(tmp_path: Path, text: str) -> None:
    from bot.intake.files import read_history

    p = tmp_path / "h.json"
    p.write_text(text)
    assert [i.id for i in read_history(p, "jsonl")] == ["a", "b"][: text.count('"id"')]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # JSONL with a bad second line
        ('{"id": "a", "title": "x"}\n{"id": "b", "title": \n', "line 2 is not valid JSON"),
        # a document: where it breaks, not "line 1"
        ('{\n  "incidents": [\n    {"id": "a",}\n  ]\n}\n', "not valid JSON (line 3, column"),
        ('{\n  "id": "a"\n}\n}\n', "not valid JSON (line 4, column 1: Extra data)"),
        ('{"page": {}, "incidents": {"id": "a"}}', '"incidents" is not a list'),
        ("  \n", "no records"),
    ],
)
def test_bad_history_file_says_where(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "h.json"
    p.write_text(text)
    assert_one_line_error(*run("history", "import", str(p), "--collection", "bad"), needle)


def test_import_says_when_the_demo_history_is_missing_and_adds_it_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.store.demo

    demo = demo_history()[:5]  # embedding all of it is the seeding tests' job
    monkeypatch.setattr(bot.store.demo, "demo_history", lambda: demo)
    p = tmp_path / "h.jsonl"
    p.write_text(json.dumps({"id": "mine-1", "title": "GPU capacity exhausted", "resolution": "scaled out"}))
    code, output = run("history", "import", str(p))  # the default collection of a new data dir
    assert code == 0 and "1 in total" in output, output
    assert "holds no demo history: --with-demo adds it" in output
    code, output = run("history", "import", str(p), "--with-demo")
    assert code == 0 and "(5 of them the demo history)" in output and "6 in total" in output, output
    assert "holds no demo history" not in output
    assert open_history(Settings(), None).get([demo[0].id])[0].title == demo[0].title


def test_usage_errors_are_one_line_with_exit_2() -> None:
    code, output = run("history", "search", "errors", "-k", "0")
    assert_one_line_error(code, output, "error: Invalid value for '-k'")
    assert output.strip().endswith("history search --help)") and "╭" not in output
    assert_one_line_error(*run("triage", "--bogus", "x"), "error: No such option: --bogus")
    assert_one_line_error(*run("nonsense"), "error: No such command 'nonsense'")
    assert_one_line_error(*run("--bogus"), "error: No such option: --bogus")
    code, output = run()  # `incibot` alone: the help, as before
    assert "Usage:" in output and "triage" in output


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"INCIBOT_PORT": "abc"}, "error: INCIBOT_PORT='abc': Input should be a valid integer"),
        (
            {"INCIBOT_PORT": "abc", "INCIBOT_RETRIEVAL_K": "0"},
            "INCIBOT_RETRIEVAL_K='0': Input should be greater than or equal to 1; INCIBOT_PORT='abc': Input "
            "should be a valid integer",
        ),
        ({"INCIBOT_CHANNEL_ROUTES": "openai=C1"}, "error: INCIBOT_CHANNEL_ROUTES='openai=C1': expected JSON"),
        ({"INCIBOT_LLM_BACKEND": "gpt"}, "INCIBOT_LLM_BACKEND='gpt': Input should be 'local', 'openai'"),
    ],
)
def test_a_bad_setting_names_the_variable_value_and_expectation(env: dict[str, str], needle: str) -> None:
    code, output = run("history", "search", "errors", env=env)
    assert_one_line_error(code, output, needle)


def test_a_bad_setting_in_the_config_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "incibot.yaml"
    cfg.write_text("retrieval_kk: 2\n")
    monkeypatch.setenv("INCIBOT_CONFIG", str(cfg))
    assert_one_line_error(
        *run("history", "search", "errors"),
        f"retrieval_kk (in {cfg}) is not a setting; did you mean retrieval_k?",
    )


def test_unknown_incibot_variable_warns_with_the_closest_name() -> None:
    env = {"INCIBOT_SLACK_BOT_TOKNE": "xoxb-1", "INCIBOT_DEBUG": "", "INCIBOT_TEST_WORKERS": "2",
           "INCIBOT_CHANNEL_ROUTES__openai": "C1", "INCIBOT_ZZZ": "1"}  # fmt: skip
    code, output = run("triage", "", env=env)
    assert code == 2
    warnings = [ln for ln in output.splitlines() if ln.startswith("warning:")]
    assert warnings == [
        "warning: INCIBOT_SLACK_BOT_TOKNE is not a setting; did you mean INCIBOT_SLACK_BOT_TOKEN?",
        "warning: INCIBOT_ZZZ is not a setting",
    ], output


def test_every_variable_the_project_reads_is_a_setting_or_allowed() -> None:
    import re

    from bot.config import PROJECT_ROOT, unknown_env_warnings

    read = set()  # the code that reads variables (tests set misspelt ones on purpose)
    for folder in ("bot", "scripts", "benchmarks", "evals", "testkit"):
        for f in (PROJECT_ROOT / folder).rglob("*"):
            if f.suffix in (".py", ".sh") and f.is_file():
                read |= set(re.findall(r"\b(INCIBOT_[A-Z0-9_]*[A-Z0-9])\b", f.read_text(errors="replace")))
    assert "INCIBOT_LOCAL_LLM" in read and "INCIBOT_DEBUG" in read
    assert unknown_env_warnings(dict.fromkeys(read, "1")) == []


def test_debug_prints_the_traceback_of_a_known_error_too(tmp_path: Path) -> None:
    code, output = run("triage", "--ticket", str(tmp_path / "nope.json"), env={"INCIBOT_DEBUG": "1"})
    assert code == 2 and "Traceback" in output and "InputError" in output
    assert output.strip().splitlines()[-1].startswith("error: ")


def test_report_says_cli_triages_are_not_counted(tmp_path: Path) -> None:
    code, output = run("report", "--out", str(tmp_path / "report"))
    assert code == 0, output
    assert (
        "0 triages" in output
        and "(CLI triages are not recorded; only tickets the bot served are counted)" in output
    )
    assert "CLI triages are not recorded" in (tmp_path / "report" / "report.md").read_text()


def test_cli_triage_honours_the_drafting_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.cli

    asked: list[bool] = []
    monkeypatch.setattr(bot.cli, "_triage_and_show", lambda s, t, as_json, use_llm: asked.append(use_llm))
    db = Settings().data_dir / "incibot.db"
    assert run("triage", "GPU errors")[0] == 0 and asked == [True]
    assert not db.exists()  # no database, no switch: nothing created to read it
    assert run("mode", "retrieval-only")[0] == 0
    code, output = run("triage", "GPU errors")
    assert code == 0 and asked[-1] is False
    assert "retrieval-only mode (set by cli:" in output and "`incibot mode llm` turns it back on" in output
    assert run("demo")[0] == 0 and asked[-1] is False
    assert run("mode", "llm")[0] == 0
    code, output = run("triage", "GPU errors")
    assert code == 0 and asked[-1] is True and "retrieval-only" not in output
    assert run("triage", "GPU errors", "--no-llm")[0] == 0 and asked[-1] is False


@pytest.mark.parametrize(("host", "note"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("10.1.2.3", False)])  # fmt: skip
def test_serve_says_slack_cannot_reach_a_loopback_host(
    monkeypatch: pytest.MonkeyPatch, host: str, note: bool
) -> None:
    import uvicorn

    import bot.server
    import bot.triage.model_server

    class Service:
        def start(self) -> None: ...
        def stop(self) -> None: ...

    monkeypatch.setattr(bot.server, "create", lambda settings, http_slack: (Service(), None, None))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    monkeypatch.setattr(bot.triage.model_server, "stop_all", lambda: None)
    code, output = run("serve", env={"INCIBOT_HOST": host, "INCIBOT_SLACK_SIGNING_SECRET": "s"})
    assert code == 0, output
    assert (f"Slack cannot reach {host}" in output) is note, output
    assert ("INCIBOT_HOST=0.0.0.0" in output) is note


def test_corrupt_store_is_one_line(tmp_path: Path) -> None:
    d = Settings().chroma_dir
    d.mkdir(parents=True)
    (d / "chroma.sqlite3").write_bytes(b"garbage" * 1000)
    assert_one_line_error(*run("history", "search", "errors"), "cannot open the history store")


def test_config_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, used_before: None) -> None:
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
    monkeypatch.chdir(tmp_path)  # the default, bench-results/, would be written in the working directory
    code, output = run(
        "bench", "--triage-only", "--history", "150", "--quick", "--out", str(tmp_path / "res")
    )
    assert code == 0, output
    assert not (tmp_path / "bench-results").exists()
    result = json.loads((tmp_path / "res" / "bench-triage-150-quick.json").read_text())
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
