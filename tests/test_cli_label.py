"""`incibot history label`: the incidents active learning picks, labelled in the terminal by number, written to the
history as a verdict's labels are, then the classifier retrained and its cross-validated accuracy before -> after."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import Settings
from bot.store.factory import open_history
from bot.taxonomy import Taxonomy
from bot.triage.active import to_label
from tests.conftest import incident

runner = CliRunner()
CAUSES = {"errors": "deployment", "latency": "external_traffic", "unavailability": "infrastructure"}
TEXTS = {
    "errors": "Elevated 500 errors on chat completions, failing requests",
    "latency": "Slow responses and timeouts on the completions API, high latency",
    "unavailability": "Service down and unreachable, login failures for all users",
}


@pytest.fixture(autouse=True)
def _no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIBOT_LLM_BACKEND", "none")
    monkeypatch.setenv("INCIBOT_SEED_DEMO_HISTORY", "false")


def _history() -> None:
    """30 labelled incidents of three kinds (enough to train), and 6 unlabelled ones, in the default collection."""
    incs = []
    for i in range(36):
        kind = list(TEXTS)[i % 3]
        labels = {"symptom": [kind], "root_cause": [CAUSES[kind]], "severity": ["sev2"]} if i < 30 else {}
        incs.append(incident(i, f"{kind} incident {i}", f"{TEXTS[kind]} (region {i % 5})", labels=labels))
    open_history(Settings()).upsert(incs)


def _labels(ids: list[str]) -> dict[str, dict[str, list[str]]]:
    return {i.id: i.labels for i in open_history(Settings()).get(ids)}


def test_label_writes_answers_retrains_and_shows_the_accuracy_move() -> None:
    _history()
    settings = Settings()
    incs, vecs = open_history(settings).all()
    tax = Taxonomy.load(settings.taxonomy_path)
    rows, _ = to_label(incs, vecs, tax, ["symptom"], 3)  # the order the command asks in
    first, second, third = (incs[r] for r in rows)
    errors = tax.fields["symptom"].ids.index("errors") + 1
    # the first: a number out of range, then a valid one; the second skipped; quit at the third
    result = runner.invoke(
        app, ["history", "label", "--field", "symptom", "-n", "3"], input=f"99\n{errors}\ns\nq\n"
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "[1/3]" in out and "[3/3]" in out and first.title in out
    assert "classifier's guess, symptom:" in out and "%" in out  # its odds beside each incident
    assert "give a number from 1 to" in out  # 99 asked again
    assert "labelled 1 incident in" in out
    assert "symptom: cross-validated accuracy" in out and "(30 labelled) ->" in out and "(31 labelled)" in out
    assert "classifier: trained on 36 incidents" in out
    got = _labels([first.id, second.id, third.id])
    assert got[first.id] == {"symptom": ["errors"]}  # only what was asked: the rest stays unlabelled
    assert got[second.id] == {} and got[third.id] == {}
    labelled = open_history(settings).get([first.id])[0]
    # who labelled it, which a re-import of the source keeps
    assert labelled.labelled_by is not None and labelled.labelled_by.startswith("cli:")
    assert (settings.model_dir / f"{settings.collection}-{tax.name}.joblib").is_file()


def test_label_keeps_other_fields_and_asks_each_field_missing() -> None:
    _history()
    incs, _ = open_history(Settings()).all()
    # every field not given: one incident, asked symptom, root cause and severity in turn
    result = runner.invoke(app, ["history", "label", "-n", "1"], input="1\ns\n2\n")
    assert result.exit_code == 0, result.output
    asked = [i for i in incs if i.title in result.output and not i.labels]
    assert len(asked) == 1
    tax = Taxonomy.load(Settings().taxonomy_path)
    expect = {"symptom": [tax.fields["symptom"].ids[0]], "severity": [tax.fields["severity"].ids[1]]}
    assert _labels([asked[0].id])[asked[0].id] == expect
    assert "root_cause: cross-validated accuracy" in result.output and "(30 labelled) -> " in result.output
    assert (
        "severity: cross-validated accuracy one class only (sev2) -> one class only (sev2)" in result.output
    )


def test_label_quit_at_once_writes_nothing() -> None:
    _history()
    result = runner.invoke(app, ["history", "label", "--field", "symptom", "-n", "2"], input="q\n")
    assert result.exit_code == 0, result.output
    assert "labelled 0 incidents" in result.output and "cross-validated" not in result.output
    assert all(not labs for i, labs in _labels([f"h{i}" for i in range(30, 36)]).items())


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--field", "colour"], "--field 'colour'"), ([], "is empty")],
)
def test_label_bad_input_is_one_line(args: list[str], needle: str) -> None:
    if "--field" in args:
        _history()
    result = runner.invoke(app, ["history", "label", *args])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
