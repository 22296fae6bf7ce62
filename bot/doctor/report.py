"""One line per check: what was checked, OK / WARN / FAIL, what was found and, unless OK, what to do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"  # works, but not as an operator would want (open webhooks, loopback only, not created yet)
    FAIL = "FAIL"  # `incibot serve` would not work as configured: the doctor exits non-zero


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "slack scopes"
    status: Status
    detail: str  # what was found
    fix: str = ""  # what to do about it (WARN and FAIL)

    def line(self) -> str:
        text = f"{self.status.value:<4}  {self.name:<22} {self.detail}"
        return f"{text} -> {self.fix}" if self.fix and self.status is not Status.OK else text


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def first_line(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line (drivers put hints on later lines)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
