"""Replacing a file atomically, safe when several writers (replicas, trainings) replace it at once."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write` fills a temporary file of its own beside `path`, which then replaces `path` in one step: a reader
    sees the old file or the new one, never half of one, and two writers never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """An operator-edited YAML file's data, or `error` in one line naming `what` and the file: missing, or not YAML."""
    import yaml  # only the commands that read such a file pay for it

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise error(f"{what} not found: {path}") from e
    except yaml.YAMLError as e:
        raise error(f"{what} {path} is not valid YAML: {' '.join(str(e).split())}") from e
