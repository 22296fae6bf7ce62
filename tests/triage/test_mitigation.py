"""Past fixes as actions: the sentence that says what was done and its mitigation action, else "no fix recorded"."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from bot.config import Settings
from bot.models import HistoricalIncident, SimilarIncident
from bot.store.demo import SAMPLE_TICKET, demo_history
from bot.taxonomy import MITIGATION, Taxonomy, TaxonomyError
from bot.triage.drafting import answer_model
from bot.triage.mitigation import NO_FIX, MitigationError, MitigationExtractor, check_action, fix_text
from bot.triage.playbooks import PlaybookLibrary

VOCABULARY = ["rollback", "fix_forward", "config_change", "restart", "scale_out", "traffic_shift", "load_shed",
              "infra_repair", "data_repair", "self_recovered", "other"]  # fmt: skip
# Status lines that must never be shown as how an incident was fixed: a status lead, or only "X is back to normal".
BOILERPLATE = re.compile(
    r"^(error rates are|the issue has been|this incident has been|we are (investigating|monitoring|continuing))"
    r"|^[\w.-]+( [\w.-]+){0,3} (is|are) (now )?(operating normally|returning to normal|back to normal)\.?$",
    re.IGNORECASE,
)


@cache
def taxonomy() -> Taxonomy:
    return Taxonomy.load(Settings().taxonomy_path)


@cache
def extractor() -> MitigationExtractor:
    return MitigationExtractor(taxonomy())


def test_default_vocabulary_has_descriptions_and_existing_playbooks() -> None:
    tax = taxonomy()
    assert tax.mitigation is not None and tax.mitigation.ids == VOCABULARY
    library = PlaybookLibrary.load(Settings().playbooks_dir)
    assert tax.unknown_playbooks(library.ids) == []
    for action, cat in tax.mitigation.categories.items():
        assert cat.description and cat.playbooks, action


def test_mitigation_is_not_a_predicted_field() -> None:
    """The LLM's schema, the decision and the Correct modal iterate `fields`: the action is not among them."""
    tax = taxonomy()
    assert MITIGATION not in tax.fields and MITIGATION in tax.label_fields
    assert "mitigation:" not in tax.describe().split("\n")[0]
    assert MITIGATION not in answer_model(tax, ["general-investigation"]).model_fields
    assert tax.is_valid(MITIGATION, "rollback") and tax.normalise(MITIGATION, "ROLLBACK") == "rollback"


@pytest.mark.parametrize(
    ("text", "action"),
    [("Error rates are elevated. At 14:32 UTC engineers rolled back the faulty deployment to the previous build. "
      "ChatGPT is operating normally.", "rollback"),
     ("We rerouted traffic around the unhealthy region. All services are operating normally.", "traffic_shift"),
     ("Engineers scaled out the cluster with additional instances. Latency is back to normal.", "scale_out"),
     ("We corrected the misconfiguration in the load balancer. The issue has been resolved.", "config_change"),
     ("We throttled the requests from the abusive client and blocked abusive traffic.", "load_shed")],
)  # fmt: skip
def test_the_sentence_that_says_what_was_done_and_its_action(text: str, action: str) -> None:
    fix = extractor().summary(text)
    assert fix is not None and fix.action == action, fix
    assert not BOILERPLATE.search(fix.sentence), fix.sentence


def test_the_last_thing_done_is_the_fix() -> None:
    """Updates are in time order: a fix first deployed, then a rollback "to fully resolve" it: the rollback."""
    fix = extractor().summary(
        "As of 3:01p pacific a fix has been identified and is in the process of being deployed. As of 6:09p pacific "
        "we are in the process of rolling back changes to fully resolve the elevated errors in the API."
    )
    assert fix is not None and fix.action == "rollback" and "rolling back" in fix.sentence


def test_when_is_taken_from_the_sentence_or_its_timeline_stamp() -> None:
    fix = extractor().summary("Impact began at 10:00 UTC.\n10:40 UTC - We rolled back the faulty release.")
    assert fix is not None and fix.action == "rollback" and fix.when == "10:40 UTC"
    assert fix_text(fix, taxonomy()) == "Rollback: We rolled back the faulty release. (10:40 UTC)"


@pytest.mark.parametrize(
    "text",
    ["Error rates are returning to normal.\nChatGPT is operating normally.",  # the demo's first neighbour
     "We have identified the issue and are working on a fix. We are continuing to monitor.",
     "Wir haben die fehlerhafte Bereitstellung zurückgesetzt und der Dienst läuft wieder normal.",  # German
     "La mise à jour a été annulée et le service fonctionne à nouveau normalement.",  # French
     "14:05 UTC\n14:40 UTC - 15:10 UTC\n2024-03-05 10:00",  # only timestamps
     "Customers may restart their clients to recover. We will roll back the release tomorrow.",  # not done
     "", "   "],
)  # fmt: skip
def test_no_fix_recorded(text: str) -> None:
    assert extractor().summary(text) is None
    assert fix_text(None) == NO_FIX


def test_demo_history_never_shows_a_status_line_as_a_fix() -> None:
    history = demo_history()
    fixes = extractor().of_history(history)
    shown = [(i.id, f.sentence) for i, f in zip(history, fixes, strict=True) if f is not None and f.sentence]
    assert shown, "the demo history has fixes to show"
    assert [x for x in shown if BOILERPLATE.search(x[1])] == []
    assert BOILERPLATE.search("ChatGPT is operating normally.") and BOILERPLATE.search(
        "Error rates are returning to normal."
    )


def test_demo_post_shows_actions_not_boilerplate(settings: Settings, store: object) -> None:
    """The demo ticket's post: its neighbours' fixes are action sentences or "no fix recorded"."""
    from bot.delivery.slack.blocks import draft_blocks
    from bot.triage.pipeline import Triager

    store.upsert(demo_history())  # type: ignore[attr-defined]
    triager = Triager(settings, store, None)  # type: ignore[arg-type]
    draft = triager.triage(SAMPLE_TICKET, use_llm=False)
    blocks = draft_blocks("k", SAMPLE_TICKET, draft, triager.taxonomy, "llm")
    similar = next(
        b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Similar")
    )
    assert "Error rates are returning to normal" not in similar
    assert "operating normally" not in similar
    for line in similar.split("\n")[1:]:  # the ones without a fix are counted in one line
        assert re.match(r"• \d of \d records? no fix: ", line) or re.search(
            r"\): [A-Z][a-z ]+( \(.*\))?: ", line
        ), line
    assert NO_FIX not in similar
    assert all("operating normally" not in n for n in draft.playbook.adapted_notes)


def test_no_fix_anywhere_in_the_history() -> None:
    similar = [
        SimilarIncident(id=f"s{i}", title="t", score=0.9, resolution=r)
        for i, r in enumerate(["We are investigating.", "The issue has been resolved.", ""])
    ]
    assert [s.fix for s in extractor().annotate(similar)] == [None, None, None]


def test_labels_then_verdict_then_text() -> None:
    text = "We rolled back the faulty deployment."
    ex = extractor()
    by_label, by_verdict, by_text = ex.of_incidents(
        [{MITIGATION: ["restart"]}, {}, {}], [text, text, text], [None, "scale_out", None]
    )
    assert (by_label.action, by_label.source, by_label.sentence) == ("restart", "label", "")  # type: ignore[union-attr]
    assert (by_verdict.action, by_verdict.source) == ("scale_out", "verdict")  # type: ignore[union-attr]
    assert (by_text.action, by_text.source, by_text.sentence) == ("rollback", "text", text)  # type: ignore[union-attr]
    verdict = HistoricalIncident(
        id="v", title="t", labels={MITIGATION: ["restart"]}, source="feedback:correct"
    )
    assert ex.of_history([verdict])[0].source == "verdict"  # type: ignore[union-attr]


def test_a_verdict_outside_the_vocabulary_is_a_clear_error_and_loses_nothing() -> None:
    with pytest.raises(
        MitigationError, match=r"unknown mitigation action 'reboot_everything': use one of rollback"
    ):
        check_action(taxonomy(), "reboot_everything")
    assert check_action(taxonomy(), "Rollback") == "rollback"
    # Stored before the vocabulary changed: the unknown action is skipped, the text still says what was done.
    fix = extractor().of_incidents([{}], ["Engineers restarted the servers."], ["reboot_everything"])[0]
    assert fix is not None and fix.action == "restart" and fix.source == "text"


def _edited_taxonomy(tmp_path: Path, edit: dict) -> Taxonomy:
    data = yaml.safe_load(Settings().taxonomy_path.read_text(encoding="utf-8"))
    data["mitigation"]["categories"] = edit
    path = tmp_path / "tax.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return Taxonomy.load(path)


def test_a_vocabulary_edit_takes_effect_on_reload(tmp_path: Path) -> None:
    tax = _edited_taxonomy(
        tmp_path,
        {"revert": {"title": "Revert", "description": "Reverted.", "keywords": ["rolled back", "reverted"],
                    "playbooks": ["deployment-halt"]},
         "other": {"description": "Anything else."}},
    )  # fmt: skip
    ex = MitigationExtractor(tax)
    fix = ex.summary("We rolled back the faulty deployment.")
    assert fix is not None and fix.action == "revert"
    # A label of the old vocabulary is not trusted: the text decides.
    assert ex.of_incidents([{MITIGATION: ["rollback"]}], ["We rolled back it all."])[0].action == "revert"  # type: ignore[union-attr]
    with pytest.raises(MitigationError):
        check_action(tax, "rollback")


def test_an_eval_taxonomy_whose_actions_map_to_no_playbook(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text(
        "name: evalset\nfields:\n  severity:\n    categories: {sev1: {}, sev2: {}}\n"
        "mitigation:\n  categories:\n    rollback: {description: Rolled back., keywords: [rolled back]}\n"
        "    other: {description: Other.}\n",
        encoding="utf-8",
    )
    tax = Taxonomy.load(path)
    assert tax.playbooks_for("rollback") == [] and tax.playbooks_for("nope") == []
    assert tax.unknown_playbooks(["deployment-halt"]) == []
    fix = MitigationExtractor(tax).summary("We rolled back the release.")
    assert fix is not None and fix.action == "rollback"
    assert tax.normalise(MITIGATION, "rollback") == "rollback" and not tax.is_valid(MITIGATION, "restart")


def test_a_taxonomy_without_mitigation_extracts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nfields:\n  severity:\n    categories: {sev1: {}}\n", encoding="utf-8")
    tax = Taxonomy.load(path)
    assert MitigationExtractor(tax).summary("We rolled back the release.") is None
    with pytest.raises(MitigationError, match="no mitigation vocabulary"):
        check_action(tax, "rollback")


def test_mitigation_cannot_be_both_a_field_and_the_section(tmp_path: Path) -> None:
    path = tmp_path / "both.yaml"
    path.write_text(
        "name: both\nfields:\n  mitigation:\n    categories: {a: {}}\nmitigation:\n    categories: {a: {}}\n",
        encoding="utf-8",
    )
    with pytest.raises(TaxonomyError, match="both a label field and the mitigation section"):
        Taxonomy.load(path)
