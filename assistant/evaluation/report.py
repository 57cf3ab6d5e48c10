"""report.md and a self-contained report.html with plots: score by question source,
hit@k curve, latency histogram, and the failures with their cited passages."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path

from .scoring import METRIC_KEYS

MAX_FAILURES = 50


def _plots(records: list[dict]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    plots: dict[str, bytes] = {}
    ok = [r for r in records if not r.get("error")]

    # Score by question source.
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in ok:
        by_source[r.get("source") or "unknown"].append(r)
    if by_source:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = sorted(by_source)
        series = [("hit@5", lambda r: r.get("hit_rank") is not None and r["hit_rank"] <= 5, "answer_article_ids"),
                  ("context hit", lambda r: bool(r.get("context_hit")), "answer_article_ids"),
                  ("answer correct", lambda r: bool(r.get("correct")), "answer")]
        width = 0.8 / len(series)
        for i, (label, good, needs) in enumerate(series):
            values = []
            for name in names:
                pool = [r for r in by_source[name] if r.get(needs) is not None and r.get(needs) != []
                        and r.get("answerable", True)]
                values.append(sum(1 for r in pool if good(r)) / len(pool) if pool else 0.0)
            ax.bar([x + i * width for x in range(len(names))], values, width, label=label)
        ax.set_xticks([x + width for x in range(len(names))], [f"{n}\n({len(by_source[n])})" for n in names])
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of questions")
        ax.set_title("Scores by question source")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        plots["by_source"] = _png(fig)

    # hit@k curve over questions with gold articles.
    scored = [r for r in ok if r.get("answer_article_ids") and r.get("answerable", True)]
    if scored:
        ks = list(range(1, 11))
        curve = [sum(1 for r in scored if r.get("hit_rank") and r["hit_rank"] <= k) / len(scored) for k in ks]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(ks, curve, marker="o")
        ax.set_xlabel("k (retrieved chunks)")
        ax.set_ylabel("hit@k")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_title(f"hit@k ({len(scored)} questions)")
        plots["hit_at_k"] = _png(fig)

    # Latency histogram.
    latencies = [r["timings"]["total_s"] for r in ok if "total_s" in r.get("timings", {})]
    if latencies:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(latencies, bins=min(30, max(5, len(latencies) // 3)))
        ax.set_xlabel("seconds per question (retrieve + generate)")
        ax.set_ylabel("questions")
        ax.set_title("Latency")
        plots["latency"] = _png(fig)
    return plots


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _failures(records: list[dict]) -> list[dict]:
    failed = []
    for r in records:
        if r.get("error"):
            failed.append(r)
        elif r.get("answerable", True) and r.get("correct") is False:
            failed.append(r)
        elif not r.get("answerable", True) and r.get("refused") is False:
            failed.append(r)
        elif r.get("correct") is None and r.get("answer_article_ids") and not (r.get("hit_rank") or 0) <= 5:
            failed.append(r)  # retrieval-only runs: gold not in the top 5
    return failed


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_report(out: Path, records: list[dict], metrics: dict) -> None:
    plots = _plots(records)
    for name, png in plots.items():
        (out / f"{name}.png").write_bytes(png)
    failures = _failures(records)

    md = ["# Evaluation report", "", "| metric | value |", "|---|---:|"]
    md += [f"| {key} | {_fmt(metrics.get(key))} |" for key in METRIC_KEYS]
    md += [""] + [f"![{name}]({name}.png)" for name in plots] + ["", f"## Failures ({len(failures)})", ""]
    for r in failures[:MAX_FAILURES]:
        md.append(f"- **{r['id']}** {r['question']}  ")
        md.append(f"  gold: {', '.join(r.get('answers') or []) or 'unanswerable'}; "
                  f"given: {r.get('answer') or r.get('error') or '(retrieval only)'}")
        for c in r.get("citations") or []:
            md.append(f"  - [{c['n']}] {c['title']}: {' '.join(c['text'].split())[:300]}")
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")

    e = html.escape
    rows = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(metrics.get(k)))}</td></tr>" for k in METRIC_KEYS)
    images = "".join(
        f'<figure><img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
        for name, png in plots.items()
    )
    items = []
    for r in failures[:MAX_FAILURES]:
        cites = "".join(f"<li>[{c['n']}] <b>{e(c['title'])}</b>: {e(' '.join(c['text'].split())[:400])}</li>"
                        for c in r.get("citations") or [])
        items.append(
            f"<li><b>{e(r['id'])}</b> {e(r['question'])}<br>gold: {e(', '.join(r.get('answers') or []) or 'unanswerable')}"
            f"<br>given: {e(str(r.get('answer') or r.get('error') or '(retrieval only)'))}<ul>{cites}</ul></li>"
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:2px 8px}}
figure{{display:inline-block;margin:0.5em}}img{{max-width:100%}}li{{margin-bottom:0.6em}}</style></head>
<body><h1>Evaluation report</h1><table>{rows}</table>{images}
<h2>Failures ({len(failures)})</h2><ol>{''.join(items)}</ol></body></html>"""
    (out / "report.html").write_text(page, encoding="utf-8")


def compare_runs(dir_a: Path, dir_b: Path) -> str:
    """Metric differences (B - A) and the questions whose outcome flipped."""
    import json

    def load(folder: Path):
        metrics_path, results_path = folder / "metrics.json", folder / "results.jsonl"
        if not metrics_path.exists() or not results_path.exists():
            from ..errors import AssistantError

            raise AssistantError(f"{folder} is not an evaluation output folder (no metrics.json / results.jsonl)")
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        records = {}
        for line in results_path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            records[record["id"]] = record
        return metrics, records

    (metrics_a, records_a), (metrics_b, records_b) = load(dir_a), load(dir_b)
    lines = [f"{'metric':22} {'A':>10} {'B':>10} {'B-A':>10}"]
    for key in METRIC_KEYS:
        a, b = metrics_a.get(key), metrics_b.get(key)
        delta = f"{b - a:+.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else ""
        lines.append(f"{key:22} {_fmt(a):>10} {_fmt(b):>10} {delta:>10}")

    def outcome(r: dict):
        if r.get("correct") is not None:
            return bool(r["correct"])
        if not r.get("answerable", True) and r.get("refused") is not None:
            return bool(r["refused"])
        if r.get("hit_rank") is not None or r.get("answer_article_ids"):
            return bool(r.get("hit_rank") and r["hit_rank"] <= 5)
        return None

    flips = []
    for qid in sorted(set(records_a) & set(records_b)):
        a, b = outcome(records_a[qid]), outcome(records_b[qid])
        if a is not None and b is not None and a != b:
            flips.append(f"  {'fixed' if b else 'broke'}  {qid}  {records_b[qid]['question'][:90]}")
    lines.append("")
    lines.append(f"{len(flips)} questions flipped (correct answer, refusal where unanswerable, or hit@5 in retrieval-only runs):")
    lines.extend(flips)
    return "\n".join(lines)
