"""Block Kit messages and modals, built by small pure functions from a TriageDraft.

Slack limits: 3,000 characters per section text, 150 per header, 50 blocks per message, 100 options per select.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.delivery.context import Line, metrics_lines
from bot.delivery.context import lines as why_now
from bot.models import (
    FixEvidence,
    LabelBatch,
    LabelCandidate,
    MitigationHypotheses,
    RecentChange,
    SimilarIncident,
    TelemetrySummary,
    Ticket,
    TriageDraft,
)
from bot.taxonomy import MITIGATION, Category, Taxonomy
from bot.triage.evidence import describe as describe_evidence
from bot.triage.hypotheses import headline, hypothesis_text, set_text
from bot.triage.mitigation import fix_text, past_fixes, without_fix
from bot.triage.ttm import ttm_line

if TYPE_CHECKING:
    from bot.watch.report import Report

SECTION_LIMIT = 3000
MAX_BLOCKS = 50

# Block Kit ids: the buttons under a draft and the modals they open (the listeners register on these).
CONFIRM, CORRECT, REJECT = "confirm", "correct", "reject"
CORRECT_SUBMIT, REJECT_SUBMIT = "correct_submit", "reject_submit"
# `/triage label`: the button beside each past incident and its modal. The modal's private_metadata is
# HISTORY_PREFIX + the history incident's id: a past incident of the vector history, not a ticket key.
LABEL, LABEL_SUBMIT, HISTORY_PREFIX = "label_history", "label_history_submit", "history:"
LABEL_DEFAULT, LABEL_MAX = 10, 20  # a batch fits one message (a block each) and one sitting


def clip(text: str, limit: int = SECTION_LIMIT, more: str | None = None) -> str:
    if len(text) <= limit:
        return text
    tail = f"… <{more}|full text>" if more else "… (truncated)"
    return text[: limit - len(tail)] + tail


def escape(text: str) -> str:
    """Untrusted text shown as text: no mentions, links or markup injected by a ticket."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def section(text: str, more: str | None = None) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, more=more)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text)}]}


def _kind_line(draft: TriageDraft, stage: str) -> str:
    if stage == "retrieval":
        return ":hourglass_flowing_sand: *Retrieval draft* (similar incidents only); the LLM draft will replace it."
    if draft.kind == "llm":
        return f":robot_face: *LLM draft* ({draft.llm.model}, combined with similar incidents)"
    why = f" ({escape(draft.llm.error[:200])})" if draft.llm.error else ""
    return (
        f":warning: *Retrieval-only draft*: the LLM answer was {draft.llm.status}{why}; "
        "labels come from similar incidents."
    )


# Square brackets: a redaction placeholder ([IP_ADDRESS_1]) broke the URL, so it is shown, not linked.
_PLAIN_URL = re.compile(r"^https?://[^\s<>|\[\]]+$")


def link(url: str, label: str) -> str:
    """A sender's URL as a Slack link if it is a plain http(s) URL; anything else is shown as text, unclickable."""
    if _PLAIN_URL.match(url):
        return f"<{escape(url)}|{escape(label)}>"
    return escape(f"{label}: {url}")


def context_lines(lines: list[Line]) -> str:
    """Why-now lines (bot/delivery/context.py) as mrkdwn: text escaped, each URL a link."""
    return "\n".join(
        ":mag: " + "".join(escape(t) + (" " + link(u, "link") if u else "") for t, u in line)
        for line in lines
    )


def metrics_section(summary: TelemetrySummary, changes: list[RecentChange] | None = None) -> dict[str, Any]:
    """ "What the metrics show": one line per moved signal, earliest first (bad moves marked), or that nothing
    moved; then what could not be read. `changes`: the recent changes, when they were looked up."""
    shown = metrics_lines(summary, changes)
    lines = [
        f"{':small_red_triangle:' if m.bad else ':small_blue_diamond:'} {escape(line)}"
        for m, line in zip(summary.moved, shown, strict=False)
    ]
    lines += [f"• {escape(line)}" for line in shown[len(summary.moved) :]]
    return section("*What the metrics show*\n" + "\n".join(lines))


def _sender_lines(ticket: Ticket, draft: TriageDraft | None, taxonomy: Taxonomy | None) -> list[str]:
    """The sender's severity (and whether the draft agrees), its links, and which occurrence this is."""
    lines = []
    if ticket.severity:
        said = ", ".join(f"{s.name} {s.value}" for s in ticket.severity)
        mapped = ticket.sender_label
        title = (
            (lambda x: taxonomy.fields["severity"].categories[x].title or x) if taxonomy else (lambda x: x)
        )
        line = f":rotating_light: {escape(ticket.source)} says {escape(said)}" + (
            f" ({escape(title(mapped))})" if mapped else ""
        )
        drafted = draft.label("severity") if draft else None
        if mapped and drafted and drafted != mapped:
            line += f"; the draft says {escape(title(drafted))}: check which is right"
        lines.append(line)
    links = ([link(ticket.link, f"{ticket.source} incident")] if ticket.link else []) + [
        link(x.url, x.label) for x in ticket.links
    ]
    if links:
        lines.append(":link: " + "  |  ".join(links))
    if ticket.occurrence > 1:
        prev = f" (previous: `{escape(ticket.previous_key)}`)" if ticket.previous_key else ""
        lines.append(f":repeat: Fired again after it resolved: occurrence {ticket.occurrence}{prev}")
    return lines


def draft_blocks(
    key: str,
    ticket: Ticket,
    draft: TriageDraft,
    taxonomy: Taxonomy,
    stage: str,
    status_line: str | None = None,
    group_count: int = 0,
    resolved: bool = False,
) -> list[dict[str, Any]]:
    raw_link = (ticket.raw or {}).get("html_url") if isinstance(ticket.raw, dict) else None
    more = ticket.link or (raw_link if isinstance(raw_link, str) else None)
    title = ticket.title or ticket.text[:120] or ticket.id
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(f"Triage: {title}", 150)}},
        context(
            f"{_kind_line(draft, stage)}  |  `{escape(key)}`"
            + (f"  |  service *{escape(ticket.service)}*" if ticket.service else "")
        ),
    ]
    if sender := _sender_lines(ticket, draft, taxonomy):
        blocks.append(context("\n".join(sender)))
    if resolved:
        blocks.append(context(f":white_check_mark: Resolved in {escape(ticket.source)} (see the thread)"))
    if group_count:
        blocks.append(
            context(f":link: *{group_count} more ticket(s)* look like this incident; listed in the thread.")
        )
    if draft.warnings:
        blocks.append(context("\n".join(f":warning: {escape(w)}" for w in draft.warnings)))
    if draft.context is not None and (why := context_lines(why_now(draft.context))):
        blocks.append(context(why))
    if draft.context is not None and draft.context.telemetry is not None:
        ctx = draft.context
        blocks.append(metrics_section(ctx.telemetry, ctx.changes if ctx.service else None))
    if ticket.text:
        blocks.append(section("> " + escape(ticket.text[:600]).replace("\n", "\n> "), more=more))
    if draft.privacy_exposure:
        blocks.append(section(f":rotating_light: *Possible personal-data exposure* ({escape(draft.privacy_reason or '')}): "
                              "top priority, privacy incident response."))  # fmt: skip
    fields = []
    for name, d in draft.labels.items():
        cat = taxonomy.fields[name].categories.get(d.label)
        shown = ", ".join(
            taxonomy.fields[name].categories[x].title or x
            for x in (d.labels or [d.label])
            if x in taxonomy.fields[name].categories
        )
        if d.abstained and d.candidates:
            # Below the field's threshold: a guess would send the on-call down the wrong path; ask instead.
            cats = taxonomy.fields[name].categories
            shown = (
                "not sure: " + " or ".join(cats[x].title or x if x in cats else x for x in d.candidates) + "?"
            )
            if taxonomy.fields[name].ordinal and (span := set_text(d, taxonomy.fields[name])):
                shown = f"not sure: {span}"  # a range says more than "A or B?" on an ordered scale
        note = f"; vote: {d.fallback}" if d.fallback and d.source in ("retrieval", "default") else ""
        if d.evidence:  # why-now features whose measured worth moved this label
            note += f"; why now: {describe_evidence(d.evidence)}"
        fields.append({"type": "mrkdwn", "text": clip(f"*{taxonomy.fields[name].title or name}*\n{shown or (cat.title if cat else d.label)} "
                                                      f"({d.confidence:.0%}, {d.source}{escape(note)[:120]})", 2000)})  # fmt: skip
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    if (m := draft.mitigation) is not None:
        blocks.append(section(mitigation_text(m)))
    blocks.append(section(f"*First triage step* ({draft.triage_step_source})\n{escape(draft.triage_step)}"))
    if (
        draft.ttm is not None
    ):  # only from an estimator set in `ttm_estimator`, which the eval showed beats the median
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(ttm_line(draft.ttm))}]}
        )
    steps = "\n".join(
        f"{n}. {s.action}" + (f" _Check: {s.check}_" if s.check else "")
        for n, s in enumerate(draft.playbook.steps, 1)
    )
    blocks.append(
        section(
            f"*Playbook: {draft.playbook.title}* (`{draft.playbook.id}`, {draft.playbook.source})\n"
            + (f"_{escape(draft.playbook.reason)}_\n" if draft.playbook.reason else "")
            + steps
        )
    )
    if draft.similar:
        lines = []
        for s in draft.similar:
            if s.fix is None:
                continue  # in one line below the fixes
            # the sentence that says what was done, never a status line
            lines.append(f"• {_linked(s)} ({s.score:.2f}): {escape(fix_text(s.fix, taxonomy))}")
        if unfixed := without_fix(draft.similar, lambda s: f"{_linked(s)} ({s.score:.2f})"):
            lines.append(f"• {unfixed}")
        blocks.append(section("*Similar past incidents*\n" + "\n".join(lines)))
    else:
        blocks.append(section("*Similar past incidents*\nnone found in the history"))
    blocks.append(
        context(
            f"tokens {draft.llm.prompt_tokens}+{draft.llm.completion_tokens}, triage {draft.latency_s:.1f}s"
        )
    )
    if status_line:
        blocks.append(context(status_line))
    blocks.append({
        "type": "actions",
        "block_id": "feedback",
        "elements": [
            {"type": "button", "action_id": CONFIRM, "style": "primary", "value": key, "text": {"type": "plain_text", "text": "Confirm"}},
            {"type": "button", "action_id": CORRECT, "value": key, "text": {"type": "plain_text", "text": "Correct"}},
            {"type": "button", "action_id": REJECT, "style": "danger", "value": key, "text": {"type": "plain_text", "text": "Reject"}},
        ],
    })  # fmt: skip
    return blocks[:MAX_BLOCKS]


def _linked(s: SimilarIncident) -> str:
    return f"<{s.link}|{escape(s.title)}>" if s.link else escape(s.title)


def mitigation_text(m: MitigationHypotheses) -> str:
    """What may fix it: each hypothesis with its odds and evidence (similar incidents linked), or no clear precedent."""

    def linked(e: FixEvidence) -> str:
        return f"<{e.link}|{escape(e.title)}>" if e.link else escape(e.title)

    lines = [f"*What may fix it* ({escape(headline(m))})"]
    lines += [f"• {hypothesis_text(h, linked)}" for h in m.hypotheses]
    return clip("\n".join(lines))


def group_reply(members: list[tuple[str, Ticket]], total: int) -> tuple[str, list[dict[str, Any]]]:
    """The thread reply that lists tickets grouped into an open incident: text and blocks."""
    lines = [
        f"• `{escape(key)}` {escape((t.title or t.text)[:70])}"
        + (f" ({escape(t.service)})" if t.service else "")
        for key, t in members
    ]
    head = f":link: {len(members)} more ticket(s) grouped into this incident ({total} so far)"
    return clip(head, 300), [section(f"*{head}*\n" + "\n".join(lines))]


def update_reply(key: str, update: Ticket) -> tuple[str, list[dict[str, Any]]]:
    """A thread reply with news about the incident `key` (new alerts, a note, a priority change, its resolution)."""
    head = f"*{escape(update.title or 'Update')}*  |  `{escape(key)}`"
    out = [section(head + ("\n" + escape(update.text) if update.text else ""))]
    if sender := _sender_lines(update, None, None):
        out.append(context("\n".join(sender)))
    return clip(escape(f"{update.title or 'Update'} ({key})"), 300), out


def fallback_text(ticket: Ticket, draft: TriageDraft) -> str:
    """The notification text (shown where blocks are not)."""
    labels = ", ".join(f"{f}={d.label}" for f, d in draft.labels.items())
    return clip(escape(f"Triage: {ticket.title or ticket.text[:100]} ({labels})"), 3000)


def similar_blocks(similar: list[Any]) -> list[dict[str, Any]]:
    if not similar:
        return [section("No similar incidents in the history.")]
    fixes = past_fixes([h.incident for h in similar])
    lines = [f"• {escape(h.incident.title)} ({h.score:.2f}): {escape(fix_text(f, limit=200))}"
             for h, f in zip(similar, fixes, strict=True)]  # fmt: skip
    return [section("*Similar past incidents*\n" + "\n".join(lines))]


HELP = (
    "*/triage <incident text>*: triage free text here (similar incidents, classification, first step, playbook)\n"
    "*/triage similar <text>*: list similar past incidents\n"
    "*/triage mode llm|retrieval-only*: switch the LLM on or off on every replica (admins only)\n"
    "*/triage changes <service>*: recent deploys, configuration, flag and model changes to a service\n"
    f"*/triage label [n]*: label the n past incidents (default {LABEL_DEFAULT}, at most {LABEL_MAX}) the "
    "classifier would learn most from\n"
    "*/triage help*: this help"
)


def correct_modal(key: str, draft: TriageDraft | None, taxonomy: Taxonomy) -> dict[str, Any]:
    decided = draft.labels if draft is not None else {}
    # Not sure: the likeliest candidates first, nothing preselected, so the engineer picks.
    likely = {f: d.candidates for f, d in decided.items() if d.abstained}
    inputs = _label_inputs(taxonomy, {f: d.label for f, d in decided.items()}, likely)
    return _modal(CORRECT_SUBMIT, key, "Correct the triage", "Save", inputs)


def label_modal(c: LabelCandidate, taxonomy: Taxonomy) -> dict[str, Any]:
    """The Correct modal for a past incident of the history (`/triage label`), its labels so far preselected."""
    head = context(
        f"*{escape(c.title or c.id)}*  |  {_when_where(c)}" + (f"\n{escape(c.excerpt)}" if c.excerpt else "")
    )
    inputs = _label_inputs(taxonomy, {f: v[0] for f, v in c.labels.items() if v}, {})
    return _modal(LABEL_SUBMIT, HISTORY_PREFIX + c.id, "Label a past incident", "Save", [head, *inputs])


def _label_inputs(
    taxonomy: Taxonomy, initial: dict[str, str], likely: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """A select per taxonomy field (`likely` labels grouped first, else `initial` preselected), the optional
    action that fixed it and the free-text fix: what `listeners/views/form.py` reads back."""
    blocks = []
    for name, fld in taxonomy.fields.items():
        options = _options(fld.categories)
        element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
        first = [o for c in likely.get(name, []) for o in options if o["value"] == c]
        if first:
            rest = [o for o in options if o not in first]
            del element["options"]
            element["option_groups"] = [
                {"label": {"type": "plain_text", "text": "Likely"}, "options": first}
            ] + ([{"label": {"type": "plain_text", "text": "Other"}, "options": rest}] if rest else [])
        elif chosen := next((o for o in options if o["value"] == initial.get(name)), None):
            element["initial_option"] = chosen
        blocks.append(
            {
                "type": "input",
                "block_id": f"label_{name}",
                "label": {"type": "plain_text", "text": fld.title or name},
                "element": element,
            }
        )
    if taxonomy.mitigation is not None:  # the action, stored with the verdict's labels (labels.mitigation)
        options = _options(taxonomy.mitigation.categories)
        element = {"type": "static_select", "action_id": "value", "options": options}
        if chosen := next((o for o in options if o["value"] == initial.get(MITIGATION)), None):
            element["initial_option"] = chosen
        blocks.append({"type": "input", "block_id": MITIGATION, "optional": True,
                       "label": {"type": "plain_text", "text": "What fixed it (action)"},
                       "element": element})  # fmt: skip
    blocks.append(_text_input("fix", "What actually fixed it", optional=True))
    return blocks


def _options(categories: Mapping[str, Category]) -> list[dict[str, Any]]:
    """A select's options, one per category (Slack takes at most 100)."""
    return [{"text": {"type": "plain_text", "text": clip(c.title or cid, 75)}, "value": cid}
            for cid, c in list(categories.items())[:100]]  # fmt: skip


def _when_where(c: LabelCandidate) -> str:
    return f"{c.created_at:%Y-%m-%d}" + (f"  |  service *{escape(c.service)}*" if c.service else "")


def label_batch_message(batch: LabelBatch, taxonomy: Taxonomy) -> tuple[str, list[dict[str, Any]]]:
    """`/triage label`: the past incidents to label, each with what was known at triage time, the classifier's
    guess and a Label button (its value: the incident's id). Text and blocks."""
    n = len(batch.candidates)
    head = "Label this past incident" if n == 1 else f"Label these {n} past incidents"
    # as bot/triage/active.py chooses: typical incidents of what no label covers while labels are few, then the
    # ones the classifier is least sure of
    out = [section(f"*{head}*\nChosen to teach the classifier most: while labels are few, the most typical "
                   "incidents no label covers yet; after that, those it is least sure of. Each label you give "
                   "retrains it.")]  # fmt: skip
    if batch.no_guess:  # a field without a classifier yet (too few labels): no guess to show for it
        why = "; ".join(f"{_title(taxonomy, f)} ({reason})" for f, reason in batch.no_guess.items())
        out.append(context(f"No guess yet for {escape(why)}"))
    for i, c in enumerate(batch.candidates):
        lines = [f"*{escape(c.title or c.id)}*  |  {_when_where(c)}"]
        if c.excerpt:
            lines.append("> " + escape(c.excerpt))
        if guess := _guess_text(c, taxonomy):
            lines.append(f"_Guess:_ {guess}")
        button = {
            "type": "button",
            "action_id": LABEL,
            "value": c.id,
            "text": {"type": "plain_text", "text": "Label"},
        }
        out.append({"type": "section", "block_id": f"label-{i}", "text": {"type": "mrkdwn", "text": clip("\n".join(lines))},
                    "accessory": button})  # fmt: skip
    return head, out[:MAX_BLOCKS]


def _title(taxonomy: Taxonomy, f: str) -> str:
    fld = taxonomy.fields.get(f)
    return (fld.title if fld else None) or f


def _guess_text(c: LabelCandidate, taxonomy: Taxonomy) -> str:
    """The classifier's likeliest label of each field the incident lacks, with its probability."""
    parts = []
    for f, gs in c.guesses.items():
        fld = taxonomy.fields.get(f)
        if not gs or fld is None or c.labels.get(f):
            continue
        cat = fld.categories.get(gs[0].label)
        label = (cat.title if cat else None) or gs[0].label
        parts.append(f"{_title(taxonomy, f)} {label} ({gs[0].probability:.0%})")
    return escape(", ".join(parts))


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (mrkdwn `text`, escaped by the caller), with a Close button."""
    return {"type": "modal", "title": {"type": "plain_text", "text": clip(title, 24)},
            "close": {"type": "plain_text", "text": "Close"}, "blocks": [section(text)]}  # fmt: skip


def reject_modal(key: str) -> dict[str, Any]:
    return _modal(
        REJECT_SUBMIT, key, "Reject the draft", "Reject", [_text_input("reason", "Why is it wrong?")]
    )


def _text_input(block_id: str, label: str, optional: bool = False) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 2900},
    }


def _modal(
    callback_id: str, key: str, title: str, submit: str, blocks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": key,  # the ticket key (or HISTORY_PREFIX + id): the submission needs nothing else
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "blocks": blocks,
    }


def view_values(view: dict[str, Any]) -> dict[str, str]:
    """block_id -> submitted value, for our modals' inputs (selects and text)."""
    out: dict[str, str] = {}
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    for block_id, actions in (values if isinstance(values, dict) else {}).items():
        v = actions.get("value") if isinstance(actions, dict) else None
        if not isinstance(v, dict):
            continue
        option = v.get("selected_option")
        chosen = option.get("value") if isinstance(option, dict) else None
        value = chosen or v.get("value")
        out[block_id] = value if isinstance(value, str) else ""
    return out


def home_view(r: Report) -> dict[str, Any]:
    """The Home tab: the report's figures for the last days (`bot/watch/report.py`)."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.0%}"

    cost = (
        "unknown (no price for " + ", ".join(r.unpriced_models) + ")"
        if r.unpriced_models
        else ("n/a" if r.cost_per_triage is None else f"${r.cost_per_triage:.4f}")
    )
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(r.verdicts.items())) or "none yet"
    rows = "\n".join(
        f"• *{escape(a.field)}* by `{escape(a.model)}`: {pct(a.rate)} of {a.n}" for a in r.acceptance
    )
    corrected = "\n".join(
        f"• {escape(f)}: {escape(a)} → {escape(b)} ({n}×)" for f, a, b, n in r.corrections[:8]
    )
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "incibot: the last 7 days"}},
        section(
            f"*Triages:* {r.triages}   *Verdicts:* {verdicts}\n"
            f"*Confident labels kept:* {pct(r.confident_precision)} of {r.confident_n}\n"
            f"*Latency:* p50 {r.latency_p50_s or 0:.2f} s, p95 {r.latency_p95_s or 0:.2f} s   *Cost per triage:* {cost}"
        ),
        section("*Acceptance by field and model*\n" + (rows or "No verdicts yet.")),
    ]
    if corrected:
        out.append(section("*Corrected most*\n" + corrected))
    return {"type": "home", "blocks": out}
