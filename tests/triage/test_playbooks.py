"""Playbook files: the required situations are covered, every playbook names real taxonomy categories, and a broken
file is reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.taxonomy import Taxonomy
from bot.triage.playbooks import PlaybookError, PlaybookLibrary, load_playbook


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
