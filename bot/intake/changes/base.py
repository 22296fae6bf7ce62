"""What every change sender's parser produces (a ChangeEvent, or Ignored with the reason), the `ChangeSender`
record the registry holds. The readers for untrusted JSON (timestamps included) are the alert senders'
(`bot/intake/senders/base.py`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.config import AuthScheme
from bot.intake.senders.base import WebhookError
from bot.models import ChangeEvent


@dataclass(frozen=True)
class Ignored:
    """A delivery that records no change (a ping, a deploy still running, a member invited): answered 200."""

    reason: str


Parsed = ChangeEvent | Ignored


@dataclass(frozen=True)
class ChangeSender:
    """One change sender, served at `/webhooks/change/<name>` (the generic format at `/webhooks/change`). `auth`
    is its default; the operator's `webhook_auth` replaces it per name."""

    name: str
    parse: Callable[
        [dict[str, Any], Mapping[str, str]], Parsed
    ]  # (payload, headers) -> event, or WebhookError
    auth: tuple[AuthScheme, ...]


def make_change(**kw: Any) -> ChangeEvent:
    """A ChangeEvent, or a WebhookError (422) naming the first invalid field. Text fields are cut to the model's
    limits first: a long commit title is not a reason to lose the change."""
    for name, limit in (("summary", 500), ("author", 200), ("environment", 200)):
        if isinstance(kw.get(name), str):
            kw[name] = kw[name][:limit]
    try:
        return ChangeEvent.model_validate(kw)
    except ValidationError as e:
        err = e.errors()[0]
        raise WebhookError(f"invalid field {'.'.join(map(str, err['loc']))}: {err['msg']}") from e
