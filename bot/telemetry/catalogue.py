"""The signal catalogue operators edit (taxonomies/signals.yaml): PromQL templates per signal, and how a ticket's
service becomes a label selector.

The service comes from ticket text, which anyone who can open a ticket controls. It only ever enters PromQL as
an escaped string literal (`promql_string`); the selectors an operator writes in the YAML are trusted as written.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from bot.fileio import read_yaml
from bot.telemetry.models import Direction, SignalKind

SELECTOR = "{selector}"  # the whole selector, braces included: `metric{selector}`
MATCHERS = "{matchers}"  # the matchers alone, to add to others: `metric{code=~"5..", {matchers}}`
# Rate-like functions: a template without one over a `_total` metric reads a raw counter (resets to handle).
_RATE = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv|resets|changes)\s*\(")
_COUNTER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*_(total|count|sum)\b")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class CatalogueError(ValueError):
    """A signal catalogue that cannot be used; one line naming the file and the entry."""


def promql_string(value: str) -> str:
    """`value` as a double-quoted PromQL string literal (Go escapes): nothing in it can end the literal."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate cannot be sent as UTF-8
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class Signal(BaseModel):
    name: str
    title: str = ""  # shown on the post; default: the name
    promql: str
    kind: SignalKind
    bad: Direction
    unit: str = ""
    counter: bool | None = (
        None  # a raw counter (resets handled by the detector); None: guessed from the query
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a name is lower case letters, digits and underscores")
        return v

    @field_validator("promql")
    @classmethod
    def _template(cls, v: str) -> str:
        if SELECTOR not in v and MATCHERS not in v:
            raise ValueError(f"the promql template needs a {SELECTOR} or {MATCHERS} placeholder")
        return v.strip()

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ")

    @property
    def is_counter(self) -> bool:
        if self.counter is not None:
            return self.counter
        return bool(_COUNTER.search(self.promql)) and not _RATE.search(self.promql)

    def render(self, selector: str) -> str:
        """The query for one service; `selector` is a whole `{...}` selector built by `Catalogue.selector`."""
        return self.promql.replace(SELECTOR, selector).replace(MATCHERS, selector[1:-1])


class Catalogue(BaseModel):
    label: str = "service"  # the label a ticket's service is matched on by default
    selectors: dict[str, str] = Field(default_factory=dict)  # service -> its own `{...}` selector
    signals: list[Signal]

    @field_validator("selectors")
    @classmethod
    def _selectors(cls, v: dict[str, str]) -> dict[str, str]:
        for service, sel in v.items():
            s = sel.strip()
            if not (s.startswith("{") and s.endswith("}")) or len(s) < 3:
                raise ValueError(
                    f"selector of {service!r} must look like '{{label=\"value\", ...}}', got {sel!r}"
                )
        return {k: s.strip() for k, s in v.items()}

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        names = [s.name for s in self.signals]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"signal names must be unique: {', '.join(dup)}")
        return self

    def selector(self, service: str) -> str:
        """The label selector for a ticket's service: the operator's, else `{<label>="<service>"}` escaped."""
        if service in self.selectors:
            return self.selectors[service]
        return "{" + f"{self.label}={promql_string(service)}" + "}"

    def get(self, name: str) -> Signal | None:
        return next((s for s in self.signals if s.name == name), None)

    @classmethod
    def load(cls, path: str | Path) -> Catalogue:
        path = Path(path)
        data = read_yaml(path, "signal catalogue", CatalogueError)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise CatalogueError(f"signal catalogue {path}: {_first_error(e, data)}") from e


def _first_error(e: ValidationError, data: object) -> str:
    """The first problem, with the entry it is in named (`signals[3] (ttft_p95).kind: ...`)."""
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"]]
    where = ".".join(loc) or "the file"
    if len(loc) >= 2 and loc[0] == "signals" and loc[1].isdigit() and isinstance(data, dict):
        entries = data.get("signals") or []
        i = int(loc[1])
        name = entries[i].get("name") if i < len(entries) and isinstance(entries[i], dict) else None
        where = f"signals[{i}]" + (f" ({name})" if name else "") + "".join(f".{p}" for p in loc[2:])
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"
