"""End-to-end evaluation on development weeks with the default model, beside the
llama-index default pipeline's retrieval metrics measured in the same run.

    python -m benchmarks.eval_weeks [--weeks 20] [--seed 2026] [--unanswerable N] [--model NAME] [--every K]

Per-week protocol with `python -m assistant eval ... --per-week --choices`; the
outputs (results.jsonl, metrics.json, report.md/html with plots) stay in
eval-runs/dev-<weeks>w/ for reading.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from assistant.cli import quiet_libraries
from assistant.evaluation.runner import EvalOptions, run_evaluation
from assistant.evaluation.scoring import METRIC_KEYS
from assistant.settings import Settings

from .baselines import DefaultPipeline, build_default_index, default_settings
from .common import REPO, RTQA_ARTICLES, fmt_metric, machine, publish

CACHE = REPO / ".cache"
RETRIEVAL_KEYS = ("hit@1", "hit@5", "hit@10", "mrr@10", "context_hit", "context_tokens")



def split_answerable(records: list) -> tuple[list, list]:
    """Question records (dicts or their JSON lines), answerable ones first, unanswerable ones second."""
    def answerable(r) -> bool:
        return (json.loads(r) if isinstance(r, str) else r).get("answerable", True)

    return [r for r in records if answerable(r)], [r for r in records if not answerable(r)]


def development_set(weeks: int, seed: int, unanswerable: int) -> tuple[Path, list[str]]:
    """The question file of ``weeks`` development weeks (seed ``seed``), with up to ``unanswerable``
    unanswerable questions after the answerable ones, and the weeks it holds."""
    questions = CACHE / "sets" / f"dev-{weeks}w-seed{seed}{'-u' if unanswerable else ''}.jsonl"
    command = [sys.executable, "-m", "benchmarks.question_sets", "--weeks", str(weeks), "--seed", str(seed),
               "--out", str(questions)] + (["--unanswerable"] if unanswerable else [])
    picked = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    if unanswerable:
        answerable, others = split_answerable(questions.read_text(encoding="utf-8").splitlines())
        questions.write_text("\n".join(answerable + others[:unanswerable]) + "\n", encoding="utf-8")
    return questions, picked


def baseline_answers(questions: Path, n: int, out: Path, settings: Settings, resume: bool) -> tuple[dict, dict, int]:
    """The default query engine answering an evenly spread subset; ours re-scored on the same ids."""
    from assistant.evaluation.scoring import compute_metrics

    records = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines()]
    picked = []
    for group in split_answerable(records):
        step = max(1, len(group) // n) if group else 1
        picked += group[::step][:n]
    subset_file = questions.with_name(questions.stem + f"-baseline{n}.jsonl")
    subset_file.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    base_out = out.with_name(out.name + "-llamaindex-default-answers")
    if not resume:
        shutil.rmtree(base_out, ignore_errors=True)
    base = run_evaluation(default_settings(settings), EvalOptions(
        questions=subset_file, out=base_out, articles=RTQA_ARTICLES, per_week=True,
        cache_dir=CACHE, index_cache=CACHE / "indexes"),
        engine_factory=DefaultPipeline, index_builder=build_default_index)
    ids = {r["id"] for r in picked}
    ours = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    return compute_metrics([r for r in ours if r["id"] in ids]), base, len(picked)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--unanswerable", type=int, default=0, help="add up to N unanswerable questions")
    parser.add_argument("--model", default=None, help="packaged model (default: the settings' default)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--baseline-answers", type=int, default=0, metavar="N",
                        help="also let the llama-index default query engine answer N answerable and N unanswerable "
                             "questions (evenly spread; about 30 s each on 2 cores), compared with ours on the same ones")
    parser.add_argument("--every", type=int, default=1, metavar="K",
                        help="only every K-th answerable and every K-th unanswerable question (a first look at a slow "
                             "model; the section says so)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run instead of starting afresh")
    args = parser.parse_args()
    quiet_libraries()
    questions, weeks = development_set(args.weeks, args.seed, args.unanswerable)
    if args.every > 1:
        answerable, unanswerable = split_answerable(questions.read_text(encoding="utf-8").splitlines())
        kept = answerable[:: args.every] + unanswerable[:: args.every]
        questions = questions.with_name(f"{questions.stem}-every{args.every}.jsonl")
        questions.write_text("\n".join(kept) + "\n", encoding="utf-8")

    settings = Settings(embed_cache_dir=CACHE, **({"llm_model": args.model} if args.model else {}))
    out = args.out or REPO / "eval-runs" / (f"dev-{args.weeks}w{'-' + args.model if args.model else ''}"
                                            f"{f'-every{args.every}' if args.every > 1 else ''}")
    if not args.resume:
        shutil.rmtree(out, ignore_errors=True)
    cached_before = set((CACHE / "indexes").glob("*"))
    started = time.perf_counter()
    ours = run_evaluation(settings, EvalOptions(
        questions=questions, out=out, articles=RTQA_ARTICLES, per_week=True, choices=True,
        cache_dir=CACHE, index_cache=CACHE / "indexes"))
    wall = time.perf_counter() - started
    built = len(set((CACHE / "indexes").glob("*")) - cached_before)  # week indexes this run had to build first
    base_out = out.with_name(out.name + "-llamaindex-default-retrieval")
    if not args.resume:
        shutil.rmtree(base_out, ignore_errors=True)
    baseline = run_evaluation(default_settings(settings), EvalOptions(
        questions=questions, out=base_out, articles=RTQA_ARTICLES, per_week=True, retrieval_only=True,
        cache_dir=CACHE, index_cache=CACHE / "indexes"),
        engine_factory=DefaultPipeline, index_builder=build_default_index)
    subset = None
    if args.baseline_answers:
        subset = baseline_answers(questions, args.baseline_answers, out, settings, args.resume)

    cli = (f"python -m assistant eval {questions.relative_to(REPO)} --out {out.relative_to(REPO)} "
           f"--articles ../shared/data/realtimeqa/articles.jsonl.gz --per-week --choices --keep-indexes .cache/indexes")
    this = "python -m benchmarks.eval_weeks" + (f" --weeks {args.weeks}" if args.weeks != 20 else "") + (
        f" --unanswerable {args.unanswerable}" if args.unanswerable else "") + (f" --model {args.model}" if args.model else "") + (
        f" --baseline-answers {args.baseline_answers}" if args.baseline_answers else "") + (
        f" --every {args.every}" if args.every > 1 else "")
    sampled = f", 1 in {args.every} questions" if args.every > 1 else ""
    lines = [
        f"## End-to-end evaluation on {args.weeks} development weeks ({settings.llm_model}{sampled})",
        "",
        f"Command: `{this}` (runs `{cli}`, then the baseline's retrieval in the same process)  ",
        f"Machine: {machine()}  ",
        f"Questions: {ours['n_answerable']} with `answer_article_ids` from weeks {', '.join(weeks)} (seed {args.seed}"
        + (f"; 1 in {args.every} of them, in file order" if args.every > 1 else "") + ")"
        + (f", plus {ours['n_unanswerable']} unanswerable ones (questions from weeks at least 300 days away whose "
           "answers appear in none of the week's articles)" if ours.get("n_unanswerable") else "")
        + f". Wall time {wall / 60:.1f} min for the whole run ("
        + (f"including building {built} of the {len(weeks)} week indexes, not cached before; the rest is "
           if built else "indexes kept from earlier runs, so it is almost all ")
        + "question answering: open answer + multiple-choice pick per question).",
        "",
        "| metric | this project | llama-index defaults (retrieval only) |",
        "|---|---:|---:|",
    ]
    for key in METRIC_KEYS:
        lines.append(f"| {key} | {fmt_metric(ours.get(key))} | {fmt_metric(baseline.get(key)) if key in RETRIEVAL_KEYS else ''} |")
    if subset:
        ours_sub, base_sub, n_sub = subset
        lines += ["", (f"The llama-index default query engine (top 2 chunks, default prompt, same model) answering {n_sub} "
                       "of these questions (evenly spread over the answerable and the unanswerable ones), beside this "
                       "project on the same questions in the same run. The default engine has no refusal sentence, so "
                       "its refusal rates are 0 by construction; it has no citation check either."), "",
                  "| metric (same subset) | this project | llama-index default query engine |", "|---|---:|---:|"]
        for key in ("n_answerable", "n_unanswerable", "context_hit", "context_tokens", "answer_accuracy",
                    "refusal_unanswerable", "latency_p50_s", "latency_p95_s", "first_token_p50_s"):
            lines.append(f"| {key} | {fmt_metric(ours_sub.get(key))} | {fmt_metric(base_sub.get(key))} |")
    lines += ["", f"Report with plots and failures: `{out.relative_to(REPO)}/report.html` (not committed; rerun to get it).", ""]
    publish("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
