"""Start-up cost of the command line: `incibot --help`, a usage error and `incibot mode` load none of the heavy
libraries. The time itself is measured by hand (hyperfine): a timed test would be flaky on a busy CI machine,
so this guards what made it slow (3.7 s and 370 MB before any command did anything)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import PROJECT_ROOT

HEAVY = ("chromadb", "langchain_core", "langchain_openai", "sklearn", "presidio_analyzer", "onnxruntime", "torch",
         "spacy", "openai", "matplotlib")  # fmt: skip


def imported(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime <args>` in a clean environment; the top-level modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIBOT_")}
    env["INCIBOT_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    modules = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return proc, modules


@pytest.mark.parametrize(
    ("args", "code", "also"),
    [
        (["-c", "import bot.cli"], 0, ("pydantic_settings", "pydantic")),
        # no settings to read for these: they stay near the cost of typer itself
        (["-m", "bot", "--help"], 0, ("pydantic_settings", "pydantic")),
        # a usage error (typer itself loads pydantic to check `-k`)
        (["-m", "bot", "history", "search", "errors", "-k", "0"], 2, ("pydantic_settings",)),
        (["-m", "bot", "mode"], 0, ()),
    ],
)
def test_commands_start_without_the_heavy_libraries(
    args: list[str], code: int, also: tuple[str, ...], tmp_path: Path
) -> None:
    proc, modules = imported(args, tmp_path)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "bot" in modules  # the measurement works
    assert not modules & {*HEAVY, *also}, sorted(modules & {*HEAVY, *also})


def test_known_errors_name_exception_classes() -> None:
    """The CLI names the errors it shows as one line by module and class, without importing them: each must
    resolve, or a rename would turn a one-line error into "unexpected error"."""
    from bot.cli import KNOWN_ERRORS

    for module, classes in KNOWN_ERRORS.items():
        for name in classes:
            cls = getattr(importlib.import_module(module), name)
            assert isinstance(cls, type) and issubclass(cls, Exception), (module, name)
