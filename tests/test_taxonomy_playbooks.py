from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.taxonomy import Taxonomy, TaxonomyError
from bot.triage.playbooks import PlaybookError, PlaybookLibrary, load_playbook


def test_default_taxonomy_has_genai_categories() -> None:
    tax = Taxonomy.load(Settings().taxonomy_path)
    assert {"symptom", "root_cause", "severity"} <= set(tax.fields)
    assert {"quality_degradation", "throttling_capacity", "privacy_safety_exposure"} <= set(
        tax.fields["symptom"].ids
    )
    assert tax.fields["severity"].ordinal and tax.fields["severity"].ids[0] == "sev1"  # most severe first


def test_other_taxonomies_load_the_same_way(tmp_path: Path) -> None:
    p = tmp_path / "cloud.yaml"
    p.write_text(
        "name: cloud\nfields:\n  symptom:\n    multi_label: true\n    categories: {ERROR: {}, UNAVIL: {}}\n"
        "aliases:\n  symptom: {UNVAIL: UNAVIL}\n"
    )
    tax = Taxonomy.load(p)
    assert tax.normalise("symptom", "unvail") == "UNAVIL"  # case varies in the datasets
    assert tax.normalise("symptom", "UNVAIL") == "UNAVIL"
    assert tax.normalise("symptom", "error") == "ERROR"
    assert tax.normalise("symptom", "UNKNOWN") is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("name: x\nfields: {}\n: :", "not valid YAML"),
        ("name: x\nfields:\n  s:\n    categories: {}\n", "invalid"),
    ],
)
def test_bad_taxonomy_gives_clear_error(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(content)
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy.load(p)


def test_playbooks_cover_required_situations_and_reference_real_categories() -> None:
    s = Settings()
    lib = PlaybookLibrary.load(s.playbooks_dir)
    tax = Taxonomy.load(s.taxonomy_path)
    assert len(lib.ids) >= 8
    for required in ("model-rollback", "config-revert", "traffic-control", "gpu-capacity", "dependency-failover",
                     "quality-safety-regression", "privacy-incident-response", "deployment-halt"):  # fmt: skip
        assert required in lib.ids
    for pb in lib.by_id.values():
        assert pb.first_check and all(step.check for step in pb.steps), pb.id
        for field, cats in pb.applies_to.items():
            assert set(cats) <= set(tax.fields[field].ids), (pb.id, field)
    privacy = lib.get("privacy-incident-response")
    assert privacy is not None and privacy.steps[0].action.lower().startswith("stop the spread")


def test_broken_playbook_is_reported_with_its_path(tmp_path: Path) -> None:
    p = tmp_path / "bad.md"
    p.write_text("---\nid: Bad Id\ntitle: x\n---\nno steps\n")
    with pytest.raises(PlaybookError, match=r"bad\.md"):
        load_playbook(p)
