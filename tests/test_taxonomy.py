"""The taxonomy file: fields, categories, aliases, and clear errors for a broken one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.taxonomy import Taxonomy, TaxonomyError


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
