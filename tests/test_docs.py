"""The docs cannot drift from the code: the generated parts match what `scripts/gen_docs.py` writes now, every
setting is described, every link and anchor resolves, the README stays a front door, and measured figures name
their command and machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import PROJECT_ROOT, Settings
from scripts import gen_docs

DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"
PAGES = [README, PROJECT_ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("path", sorted({p for p, _ in gen_docs.PARTS.values()}), ids=lambda p: p.name)
def test_generated_docs_are_what_the_code_generates(path: Path) -> None:
    committed, generated = gen_docs.generate()[path]
    assert committed == generated, f"{path.name} is out of date: run .venv/bin/python -m scripts.gen_docs"


def test_the_check_mode_fails_on_stale_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "senders.md"
    stale.write_text((DOCS / "senders.md").read_text().replace("`pagerduty`", "`pagerdooty`"))
    parts = {**gen_docs.PARTS, "alert-senders": (stale, gen_docs.alert_senders)}
    monkeypatch.setattr(gen_docs, "PARTS", {k: v for k, v in parts.items() if k == "alert-senders"})
    assert gen_docs.main(["--check"]) == 1
    assert gen_docs.main([]) == 0 and gen_docs.main(["--check"]) == 0
    assert "`pagerduty`" in stale.read_text()


def test_every_setting_is_in_the_reference_with_a_description() -> None:
    reference = (DOCS / "configuration.md").read_text()
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \| `INCIBOT_\w+` \|.*\| (.*) \|$", reference, re.M)}
    assert set(rows) == set(Settings.model_fields)
    assert not [name for name, description in rows.items() if not description.strip()]
    assert set(gen_docs.DESCRIPTIONS) <= set(Settings.model_fields), "a description of a setting that is gone"


def test_the_reference_shows_real_defaults_and_hides_secrets() -> None:
    reference = (DOCS / "configuration.md").read_text()

    def row(name: str) -> str:
        return next(line for line in reference.splitlines() if line.startswith(f"| `{name}` |"))

    assert "| `8000` |" in row("chroma_port") and "| `false` |" in row("chroma_ssl")
    assert "| `2024-10-21` |" in row("azure_api_version")
    assert "| secret | unset |" in row("slack_bot_token")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name if p.parent == DOCS else f"../{p.name}")
def test_every_link_and_anchor_resolves(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name}: {target}: no such file"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: {target}: no such heading in {dest.name}"


def test_the_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 250
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("./scripts/demo.sh ")
    assert first_block.splitlines()[1].startswith("./scripts/test.sh ")
    assert text.index("```sh") < text.index("\n## "), "the two commands come first"


# A figure that was measured: a duration, memory, a percentile. Settings and limits ("over 1 MB", "30 min since")
# are not measurements; they sit in prose, not in a table with a "measured by" column or beside "p50".
MEASURED = re.compile(r"\bp(50|95)\b.*\d\s?ms|\d\s?(GB|MB) (idle|at idle)")


def test_every_measured_figure_names_its_command_and_machine() -> None:
    for page in PAGES:
        for block in re.split(r"\n\s*\n", page.read_text()):
            lines = block.splitlines()
            header = lines[0] if lines and lines[0].startswith("|") else ""
            if "measured by" in header:  # a table of figures: each row names its command and machine
                col = [c.strip() for c in header.strip("|").split("|")].index("measured by")
                for row in lines[2:]:
                    cell = [c.strip() for c in row.strip("|").split("|")][col]
                    assert "`" in cell or "the same" in cell, f"{page.name}: {row}: no command"
                    assert "core" in cell or "the same" in cell, f"{page.name}: {row}: no machine"
            elif MEASURED.search(block):
                assert "`" in block and "core" in block, f"{page.name}: a figure without command or machine"
