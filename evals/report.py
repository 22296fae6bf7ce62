"""The eval report: a score table on the terminal; metrics.json, summary.md, cases.jsonl and plots on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evals.actions import markdown_lines
from evals.cases import CaseResult
from evals.summary import write_cases


def score_table(report: dict[str, Any]) -> list[list[str]]:
    """Rows of method x field: accuracy / macro-F1 (and within-one for ordinal fields); multi-label fields show
    exact-set accuracy, then the top-label-in-gold accuracy in brackets."""
    fields = sorted({f for per in report["scores"].values() for f in per})
    rows = [["method", *fields]]
    for method, per in report["scores"].items():
        row = [method]
        for f in fields:
            s = per.get(f)
            if not s:
                row.append("-")
                continue
            acc = f"{s['accuracy']:.2f}"
            if "top_in_gold" in s:
                acc += f" (top {s['top_in_gold']:.2f})"
            cell = f"{acc} / {s['macro_f1']:.2f}"
            if "within_one" in s:
                cell += f" (±1: {s['within_one']:.2f})"
            if "accuracy_over_repeats" in s:
                cell += f" [sd {s['accuracy_over_repeats']['std']:.2f}]"
            row.append(cell)
        rows.append(row)
    return rows


def print_table(report: dict[str, Any], console: Console) -> None:
    rows = score_table(report)
    t = Table(
        title=f"{report['dataset']}: accuracy / macro-F1 ({report['cases']} cases, model {report['model']});"
        " multi-label: exact-set accuracy (top label in gold)"
    )
    for h in rows[0]:
        t.add_column(h)
    for row in rows[1:]:
        t.add_row(*row)
    console.print(t)
    r = report["retrieval"]
    console.print(
        f"retrieval hit@{report['k']} {r['hit_at_k']:.2f}, MRR {r['mrr']:.2f}; "
        f"tokens/triage {report['tokens_per_triage']:.0f}; skipped {report['skipped']['count']}"
    )


def markdown(report: dict[str, Any]) -> str:
    rows = score_table(report)
    lines = [
        f"# Eval: {report['dataset']}",
        "",
        f"- source: {report['source']}",
        f"- taxonomy: {report['taxonomy']}; model: {report['model']}; cases: {report['cases']} x {report['repeat']};"
        f" history: {report['history_size']}; k = {report['k']}",
        f"- skipped labels/records: {report['skipped']['count']} (listed in metrics.json), of which records"
        f" without a readable opening time: {report['skipped'].get('undated', 0)}",
        *_history_lines(report),
        "",
        "Accuracy / macro-F1 per method and field. Multi-label fields: exact-set accuracy (in brackets: the top"
        " label is a gold one) / macro-F1 over the labels present in the gold of the scored cases (per label"
        " present or absent); single-label fields: accuracy / macro-F1 over the labels in gold.",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(r) + " |" for r in rows[1:]),
        "",
        f"- retrieval: hit@{report['k']} {report['retrieval']['hit_at_k']:.3f}, MRR {report['retrieval']['mrr']:.3f}",
        *_hindsight_lines(report),
    ]
    if report["mitigation"]["n"]:
        m = report["mitigation"]
        lines.append(
            f"- mitigation vs. real resolution ({m['n']} cases): cosine {m['cosine']:.3f}, ROUGE-L {m['rouge_l']:.3f}"
        )
    for m, fit in _by_method(report.get("playbook_fit")).items():
        if fit.get("n"):
            lines.append(f"- playbook fits gold root cause ({m}): {fit['rate']:.3f} ({fit['n']} cases)")
    for m, a in _by_method(report.get("playbook_agreement")).items():
        if a.get("n"):
            lo, hi = a.get("interval") or [0.0, 1.0]
            lines.append(
                f"- playbook agrees with the real resolution's ({m}): {a['rate']:.3f} [{lo:.2f}, {hi:.2f}]"
                f" ({a['n']} cases whose resolution maps to a playbook, of {a.get('with_resolution', '?')} with one)"
            )
    lines += markdown_lines({**(report.get("action") or {}), "label_sets": report.get("label_sets")})
    for method, f, c in _calibration_entries(report):
        lines.append(_calibration_line(method, f, c))
        if isinstance(c.get("exact_set"), dict):
            lines.append(_calibration_line(method, f, c["exact_set"]))
    for m, v in report["llm_validity"].items():
        lines.append(
            f"- structured output ({m}): valid first try {v['valid_first_try']:.3f}, after repair {v['valid_after_repair']:.3f}"
        )
    for key, w in (report.get("llm_witness") or {}).items():
        kept, predicted, n = w["tally"]
        lines.append(
            f"- LLM's say, {key}: kept {kept} of {n} (predicted {predicted:.1f}), odds ratio {w['odds_ratio']:.2f}"
        )
    lines.append(f"- tokens per triage: {report['tokens_per_triage']:.0f}")
    for m, p in report["latency_s"].items():
        lines.append(f"- latency {m}: p50 {p['p50']:.3f}s, p95 {p['p95']:.3f}s")
    if report.get("cold_start"):
        from evals.cold_start import markdown as cold_start_markdown

        lines.append(cold_start_markdown(report["cold_start"]))
    return "\n".join(lines) + "\n"


def _hindsight_lines(report: dict[str, Any]) -> list[str]:
    """Accuracy on all cases and on those whose triage-time text states no cause, fix or end."""
    atf = report.get("after_the_fact")
    if not isinstance(atf, dict):
        return []
    lines = [
        f"- triage-time text already states the outcome (evals/after_the_fact.py) in {atf['flagged']} of"
        f" {report['cases']} cases ({', '.join(f'{k} {v}' for k, v in sorted(atf['by_kind'].items())) or 'none'});"
        " accuracy on all cases -> on the others:"
    ]
    for m, per in atf["scores_unflagged"].items():
        cells = [
            f"{f} {report['scores'][m][f]['accuracy']:.2f} -> {s['accuracy']:.2f} (n {s['n']})"
            for f, s in per.items()
            if f in report["scores"].get(m, {})
        ]
        if cells:
            lines.append(f"  - {m}: " + "; ".join(cells))
    return lines


def _history_lines(report: dict[str, Any]) -> list[str]:
    """How the history was replayed (what a case could see) and which records were merged as one incident."""
    lines = [
        f"- split: {report.get('split', 'test')}; ticket fields: {report.get('ticket_fields', 'published')}"
        " (published: what the source published with the incident; text: title and text only)"
    ]
    if report.get("case_selection", "all") != "all":
        lines.append(f"- cases: {report['case_selection']} only (the label figures are of those cases alone)")
    vis = report.get("visibility")
    if isinstance(vis, dict):
        lines.append(
            f"- history visible to a case: {vis.get('rule')}; delay {vis.get('unresolved_delay_h')} h;"
            f" verdicts arrive {vis.get('verdicts')}, on {vis.get('verdict_rate', 1.0):.0%} of cases"
        )
    dup = report.get("duplicates")
    if isinstance(dup, dict) and dup.get("groups"):
        lines.append(
            f"- duplicates merged before the split: {dup['records_merged']} records into {dup['groups']} incidents"
            " (listed in metrics.json)"
        )
    return lines


def _by_method(entry: Any) -> dict[str, dict[str, Any]]:
    """{method: {...}}; an older flat {"n", "rate"} report was the combined method's."""
    if not isinstance(entry, dict):
        return {}
    if "n" in entry:
        return {"combined": entry}
    return {m: v for m, v in entry.items() if isinstance(v, dict)}


def _calibration_entries(report: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, field, entry) from report["calibration"] = {method: {field: {...}}}; malformed parts skipped."""
    entries = []
    for method, per in (report.get("calibration") or {}).items():
        if not isinstance(per, dict):
            continue
        if "ece" in per:  # an older flat {field: {"ece", ...}} report: no method level
            entries.append(("", str(method), per))
            continue
        entries.extend((str(method), str(f), c) for f, c in per.items() if isinstance(c, dict) and c)
    return entries


def _calibration_line(method: str, field: str, c: dict[str, Any]) -> str:
    parts = []
    if isinstance(c.get("ece"), int | float):
        parts.append(f"ECE {c['ece']:.3f}")
    sel = c.get("selective")
    if isinstance(sel, dict) and "coverage" in sel:
        text = f"answered {sel['coverage']:.0%} of cases (not abstained)"
        if "accuracy" in sel:
            text += f" at accuracy {sel['accuracy']:.3f}"
        iv = sel.get("interval")
        if isinstance(iv, list | tuple) and len(iv) == 2:
            text += f" [{iv[0]:.2f}, {iv[1]:.2f}]"
        parts.append(text)
    if "n" in c:
        parts.append(f"n {c['n']}")
    name = f"{method}/{field}" if method else field
    if c.get("correct_if"):
        name += f" (right = {c['correct_if']})"
    return f"- calibration {name}: " + ("; ".join(parts) if parts else "no data")


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def calibration_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """Per method a reliability diagram and a risk-coverage curve, one line per field; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_method: dict[str, dict[str, dict[str, Any]]] = {}
    for method, f, c in _calibration_entries(report):
        if method:
            per_method.setdefault(method, {})[f] = c
    written = []
    for method, per in per_method.items():
        rel = {f: c for f, c in per.items() if c.get("reliability")}
        if rel:
            fig, ax = plt.subplots(figsize=(5, 4.5))
            ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
            for f, c in _curves(rel):
                pts = c["reliability"]
                label = f"{f} (ECE {c['ece']:.2f})" if isinstance(c.get("ece"), int | float) else f
                (line,) = ax.plot(
                    [p["confidence"] for p in pts],
                    [p["accuracy"] for p in pts],
                    marker="o",
                    linestyle="--" if "exact set" in f else "-",
                    label=label,
                )
                for pt in pts:  # how many cases each point stands on
                    ax.annotate(
                        str(pt.get("n", "")),
                        (pt["confidence"], pt["accuracy"]),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                        color=line.get_color(),
                    )
            title = f"{report.get('dataset', '')} reliability ({method})"
            written.append(
                _save(
                    plt,
                    fig,
                    ax,
                    ("mean confidence", 1.0),
                    title,
                    out / f"reliability-{_safe_name(method)}.png",
                )
            )
        rc = {f: c for f, c in per.items() if c.get("risk_coverage")}
        if rc:
            fig, ax = plt.subplots(figsize=(5, 4.5))
            for f, c in _curves(rc):
                pts = c["risk_coverage"]
                ax.plot(
                    [p["coverage"] for p in pts],
                    [p["accuracy"] for p in pts],
                    marker=".",
                    linestyle="--" if "exact set" in f else "-",
                    label=f,
                )
            ax.axhline(0.85, color="black", linestyle=":", linewidth=1, label="target precision")
            title = f"{report.get('dataset', '')} risk-coverage ({method})"
            written.append(
                _save(
                    plt,
                    fig,
                    ax,
                    ("coverage (share answered)", 1.02),
                    title,
                    out / f"risk-coverage-{_safe_name(method)}.png",
                )
            )
    return written


def _curves(per_field: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(legend name, entry) per field, and for a multi-label field its exact-set entry too, each named by what
    counts as right."""
    out = []
    for f, c in per_field.items():
        sub = c.get("exact_set")
        if isinstance(sub, dict) and sub.get("reliability"):
            out.append((f"{f}, top in gold", c))
            out.append((f"{f}, exact set", sub))
        else:
            out.append((f, c))
    return out


def _save(plt: Any, fig: Any, ax: Any, x: tuple[str, float], title: str, path: Path) -> Path:
    """Accuracy (y) against x[0] on the unit square (y up to x[1]), titled, legend, written to `path`."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, x[1])
    ax.set_xlabel(x[0])
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plots(report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fields = sorted({f for per in report["scores"].values() for f in per})
    methods = list(report["scores"])
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(fields) * max(1, len(methods)) / 3, 4))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        vals = [report["scores"][m].get(f, {}).get("accuracy", 0) for f in fields]
        ax.bar([x + i * width for x in range(len(fields))], vals, width, label=m)
    ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(fields))], fields)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report['dataset']}: accuracy per method")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / "scores.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    written.append(p)
    for f, s in report["scores"].get("combined", {}).items():
        if "confusion" not in s:
            continue
        labels, matrix = s["confusion"]["labels"], s["confusion"]["matrix"]
        fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(labels), 1.2 + 0.5 * len(labels)))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(f"{report['dataset']} {f} (combined)")
        fig.tight_layout()
        p = out / f"confusion-{f}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    written.extend(calibration_plots(report, out))
    return written


def write_report(report: dict[str, Any], cases: list[CaseResult], out: Path) -> Path:
    folder = out / report["dataset"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    (folder / "summary.md").write_text(markdown(report))
    write_cases(folder / "cases.jsonl", cases)
    plots(report, folder)
    if report.get("cold_start"):
        from evals.cold_start import learning_curve

        learning_curve(report["cold_start"], report["dataset"], folder / "learning-curve.png")
    return folder
