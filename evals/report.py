"""The eval report: a score table on the terminal; metrics.json, summary.md, cases.jsonl and plots on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evals.harness import CaseResult, write_cases


def score_table(report: dict[str, Any]) -> list[list[str]]:
    """Rows of method x field: accuracy / macro-F1 (and within-one for ordinal fields)."""
    fields = sorted({f for per in report["scores"].values() for f in per})
    rows = [["method", *fields]]
    for method, per in report["scores"].items():
        row = [method]
        for f in fields:
            s = per.get(f)
            if not s:
                row.append("-")
                continue
            cell = f"{s['accuracy']:.2f} / {s['macro_f1']:.2f}"
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
        title=f"{report['dataset']}: accuracy / macro-F1 ({report['cases']} cases, model {report['model']})"
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
        f"- skipped labels/records: {report['skipped']['count']} (listed in metrics.json)",
        "",
        "Accuracy / macro-F1 per method and field (multi-label fields: exact-set accuracy / macro-F1):",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(r) + " |" for r in rows[1:]),
        "",
        f"- retrieval: hit@{report['k']} {report['retrieval']['hit_at_k']:.3f}, MRR {report['retrieval']['mrr']:.3f}",
    ]
    if report["mitigation"]["n"]:
        m = report["mitigation"]
        lines.append(
            f"- mitigation vs. real resolution ({m['n']} cases): cosine {m['cosine']:.3f}, ROUGE-L {m['rouge_l']:.3f}"
        )
    if report["playbook_fit"]["n"]:
        lines.append(
            f"- playbook fits gold root cause: {report['playbook_fit']['rate']:.3f} ({report['playbook_fit']['n']} cases)"
        )
    for f, c in report["calibration"].items():
        conf = c["confident"]
        lines.append(
            f"- calibration {f}: ECE {c['ece']:.3f}; when confident (>= {conf['threshold']}): "
            f"accuracy {conf['accuracy']:.3f} on {conf['coverage']:.0%} of cases"
        )
    for m, v in report["llm_validity"].items():
        lines.append(
            f"- structured output ({m}): valid first try {v['valid_first_try']:.3f}, after repair {v['valid_after_repair']:.3f}"
        )
    lines.append(f"- tokens per triage: {report['tokens_per_triage']:.0f}")
    for m, p in report["latency_s"].items():
        lines.append(f"- latency {m}: p50 {p['p50']:.3f}s, p95 {p['p95']:.3f}s")
    return "\n".join(lines) + "\n"


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
    return written


def write_report(report: dict[str, Any], cases: list[CaseResult], out: Path) -> Path:
    folder = out / report["dataset"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    (folder / "summary.md").write_text(markdown(report))
    write_cases(folder / "cases.jsonl", cases)
    plots(report, folder)
    return folder
