"""Retry policy shared by the Slack and LLM clients: honour the server's Retry-After, else back off exponentially."""

from __future__ import annotations

from typing import Any

from tenacity import RetryCallState, wait_exponential

MAX_RETRY_AFTER_S = 60.0


def retry_after(e: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After on a 429/503), if it said."""
    response: Any = getattr(e, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value is not None else None
    except (TypeError, ValueError):
        return None


def status_code(e: BaseException | None) -> int:
    response: Any = getattr(e, "response", None)
    return int(getattr(response, "status_code", 0) or getattr(e, "status_code", 0) or 0)


def wait_retry_after(multiplier: float = 0.5, max_s: float = 30.0) -> Any:
    backoff = wait_exponential(multiplier=multiplier, max=max_s)

    def wait(state: RetryCallState) -> float:
        e = state.outcome.exception() if state.outcome else None
        asked = retry_after(e)
        return asked if asked is not None else backoff(state)

    return wait
