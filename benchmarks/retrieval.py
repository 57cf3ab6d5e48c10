"""Retrieval benchmark: this project's hybrid retrieval, its parts alone, and the plain
llama-index default pipeline, on the same development weeks and questions, in one run.

    python -m benchmarks.retrieval [--weeks 30] [--seed 2026] [--only per-week|archive] [--encoder-check]

Per-week protocol: each week's questions (those with answer_article_ids) are asked
against a fresh index of that week's articles (kept under .cache/indexes and
reused across runs). Whole-archive protocol: one index of all those weeks'
articles, every question asked with its own date.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from assistant.cli import quiet_libraries
from assistant.evaluation.runner import EvalOptions, run_evaluation
from assistant.settings import Settings

from .baselines import DefaultPipeline, build_default_index, default_settings
from .common import REPO, RTQA_ARTICLES, fmt_metric, machine, publish

CACHE = REPO / ".cache"
COLUMNS = ("hit@1", "hit@5", "hit@10", "mrr@10", "article_hit@5", "context_hit", "context_tokens", "retrieval_p50_s", "retrieval_p95_s")


def make_sets(weeks: int, seed: int) -> tuple[Path, Path, list[str]]:
    questions = CACHE / "sets" / f"dev-{weeks}w-seed{seed}.jsonl"
    out = subprocess.run([sys.executable, "-m", "benchmarks.question_sets", "--weeks", str(weeks), "--seed", str(seed),
                          "--out", str(questions)], cwd=REPO, capture_output=True, text=True, check=True)
    week_list = out.stdout.split()
    archive = CACHE / "sets" / f"archive-{weeks}w-seed{seed}.jsonl"
    if not archive.exists():
        wanted = {i for line in questions.read_text(encoding="utf-8").splitlines() for i in json.loads(line)["article_ids"]}
        import gzip

        with gzip.open(RTQA_ARTICLES, "rt", encoding="utf-8") as handle, open(archive, "w", encoding="utf-8") as out_file:
            for line in handle:
                if json.loads(line)["id"] in wanted:
                    out_file.write(line)
    return questions, archive, week_list


def run(name: str, questions: Path, articles: Path, per_week: bool, settings: Settings, baseline: bool = False) -> dict:
    out = CACHE / "bench-retrieval" / name
    if out.exists():
        import shutil

        shutil.rmtree(out)  # a benchmark measures afresh (indexes are kept, answers are not)
    options = EvalOptions(questions=questions, out=out, articles=articles, per_week=per_week, retrieval_only=True,
                          cache_dir=CACHE, index_cache=CACHE / "indexes")
    print(f"== {name}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    if baseline:
        metrics = run_evaluation(settings, options, engine_factory=DefaultPipeline, index_builder=build_default_index)
    else:
        metrics = run_evaluation(settings, options)
    metrics["wall_s"] = time.perf_counter() - started
    return metrics



def table(rows: list[tuple[str, dict]]) -> list[str]:
    lines = ["| pipeline | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, metrics in rows:
        lines.append(f"| {name} | " + " | ".join(fmt_metric(metrics.get(c)) for c in COLUMNS) + " |")
    return lines


def encoder_delta(rows: list[tuple[str, dict]]) -> str:
    """One line: the int8 default minus the fp32 encoder (first two rows), metric by metric."""
    int8, fp32 = rows[0][1], rows[1][1]
    parts = [f"{key} {int8[key] - fp32[key]:+.3f}" for key in ("hit@1", "hit@5", "hit@10", "mrr@10", "context_hit")]
    return ("int8 ONNX encoder (default) minus fp32 torch, same run: " + ", ".join(parts)
            + f" (one question of {int8.get('n', 0)} is {1 / max(int8.get('n', 1), 1):.3f}).")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", choices=("per-week", "archive"), default=None,
                        help="measure one of the two protocols (each is its own BENCHMARKS.md section)")
    parser.add_argument("--encoder-check", action="store_true",
                        help="add a row with the fp32 encoder beside the int8 default (embeds every index again "
                             "with it: about an hour per protocol on 2 cores)")
    args = parser.parse_args()
    quiet_libraries()
    questions, archive, weeks = make_sets(args.weeks, args.seed)
    n_questions = len(questions.read_text(encoding="utf-8").splitlines())
    n_archive = len(archive.read_text(encoding="utf-8").splitlines())
    base = Settings(embed_cache_dir=CACHE)
    # The ranking ablations use windows (better ranking) with the top 3 windows whole as context.
    chunks = base.model_copy(update={"context_mode": "chunks", "window_chunks": 1, "context_top_k": 3})
    command = "python -m benchmarks.retrieval" + (f" --weeks {args.weeks}" if args.weeks != 30 else "") + (
        f" --seed {args.seed}" if args.seed != 2026 else "") + (f" --only {args.only}" if args.only else "") + (
        " --encoder-check" if args.encoder_check else "")
    fp32 = base.model_copy(update={"embed_backend": "torch"})
    fixed = base.model_copy(update={"fusion": "relative_score"})
    about = (f"Machine: {machine()}  \n"
             f"Questions: the {n_questions} questions with `answer_article_ids` of {len(weeks)} RealTimeQA development "
             f"weeks chosen by seed {args.seed}: {', '.join(weeks)}. A hit is a retrieved chunk (with windows: the "
             "chunk with its neighbours) containing a gold answer (folded); `article_hit@5` is a top-5 chunk from one of "
             "the question's answer articles, whatever its wording; `context_hit` is a gold answer in the exact "
             "text the model is given, `context_tokens` its mean length (MiniLM tokenizer); `retrieval_p*` is ranking "
             "time per question (no LLM, no sentence selection).")
    if args.only in (None, "per-week"):
        per_week = [
            ("this project, default settings (context: selected sentences, 450-token budget)",
             run("hybrid", questions, RTQA_ARTICLES, True, base)),
            *([("the same with the fp32 encoder (`embed_backend=torch`; the default is int8 ONNX)",
                run("hybrid-fp32", questions, RTQA_ARTICLES, True, fp32))] if args.encoder_check else []),
            ("the same with the fixed fusion (`fusion=relative_score`: min-max scores 0.5/0.5, 365-day recency)",
             run("hybrid-fixed", questions, RTQA_ARTICLES, True, fixed)),
            ("this project with windows (`window_chunks=1`), context = top 3 windows whole",
             run("hybrid-chunks", questions, RTQA_ARTICLES, True, chunks)),
            ("windows with the fixed fusion (`fusion=relative_score`), context = top 3 windows whole",
             run("hybrid-chunks-fixed", questions, RTQA_ARTICLES, True, chunks.model_copy(update={"fusion": "relative_score"}))),
            ("vector only (`retrieval_mode=vector`, windows, top 3 as context)",
             run("vector", questions, RTQA_ARTICLES, True, chunks.model_copy(update={"retrieval_mode": "vector"}))),
            ("BM25 only (`retrieval_mode=bm25`, windows, top 3 as context)",
             run("bm25", questions, RTQA_ARTICLES, True, chunks.model_copy(update={"retrieval_mode": "bm25"}))),
            ("hybrid with rank fusion (`fusion=rrf`, windows, top 3 as context)",
             run("hybrid-rrf", questions, RTQA_ARTICLES, True, chunks.model_copy(update={"fusion": "rrf"}))),
            ("hybrid without windows (`window_chunks=0`, the default ranking; top 5 chunks as context)",
             run("hybrid-nowindow", questions, RTQA_ARTICLES, True,
                 chunks.model_copy(update={"window_chunks": 0, "context_top_k": 5}))),
            ("llama-index defaults (1,024-token chunks, top 10; context = its query engine's top 2)",
             run("baseline", questions, RTQA_ARTICLES, True, default_settings(base), baseline=True)),
        ]
        publish("\n".join([
            "## Retrieval on development weeks, per week",
            "",
            f"Command: `{command}` (all rows measured in the same run; `--only per-week` reruns just this table; "
            "a fresh index of each week's articles)  ",
            about, "", *table(per_week), "", *([encoder_delta(per_week), ""] if args.encoder_check else []),
        ]))
    if args.only in (None, "archive"):
        archive_rows = [
            ("this project, default settings, each question with its date",
             run("archive-hybrid", questions, archive, False, base)),
            *([("the same with the fp32 encoder (`embed_backend=torch`)",
                run("archive-hybrid-fp32", questions, archive, False, fp32))] if args.encoder_check else []),
            ("the same with the fixed fusion (`fusion=relative_score`: min-max scores 0.5/0.5, 365-day recency)",
             run("archive-fixed", questions, archive, False, fixed)),
            ("this project with windows, context = top 3 windows whole",
             run("archive-chunks", questions, archive, False, chunks)),
            ("this project with windows, without dates (`recency_half_life_days=0`, no as-of exclusion)",
             run("archive-nodate", questions, archive, False,
                 chunks.model_copy(update={"recency_half_life_days": 0.0, "as_of_grace_days": 100000}))),
            ("llama-index defaults", run("archive-baseline", questions, archive, False, default_settings(base), baseline=True)),
        ]
        publish("\n".join([
            f"## Retrieval over the whole archive: one index of {n_archive:,} articles",
            "",
            f"Command: `{command}` (all rows measured in the same run; `--only archive` reruns just this table)  ",
            f"Index: all articles of the {len(weeks)} weeks below in one store, "
            f"{weeks[0][:4]}-{weeks[0][4:6]} to {weeks[-1][:4]}-{weeks[-1][4:6]}; every question is asked with its own "
            "date (as-of: later articles excluded, older ones discounted).  ",
            about, "", *table(archive_rows), "", *([encoder_delta(archive_rows), ""] if args.encoder_check else []),
        ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
