"""Calibrate the relevance gate (settings min_relevance, relevance_cosine_weight) on development
weeks with as many unanswerable questions as answerable ones.

    python -m benchmarks.question_sets --weeks 20 --seed 2026 --unanswerable --out .cache/sets/dev-20w-u.jsonl
    python -m benchmarks.calibrate_refusal --questions .cache/sets/dev-20w-u.jsonl

Retrieval only (no model): for each cosine weight and threshold, the share of answerable
questions the gate would refuse and the share of unanswerable ones it would catch. The model
can still refuse what passes the gate, so pick a threshold that leaves room for that.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from assistant.answer import NewsAssistant, blend_relevance, question_coverage
from assistant.cli import quiet_libraries
from assistant.evaluation.questions import load_questions
from assistant.settings import Settings

from .common import REPO
from .tune_retrieval import week_indexes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--weights", default="1.0,0.8,0.667,0.5")
    parser.add_argument("--thresholds", default="0.40,0.42,0.44,0.46,0.48,0.50")
    args = parser.parse_args()
    quiet_libraries()
    settings = Settings(embed_cache_dir=REPO / ".cache", context_mode="chunks")  # selection is not needed here
    questions = load_questions(args.questions)
    features = []  # (answerable, best cosine, coverage)
    for week, week_settings in week_indexes(settings, args.questions, REPO / ".cache" / "indexes").items():
        engine = NewsAssistant(week_settings)
        for q in (q for q in questions if q.week == week):
            ranked = engine.retriever.retrieve(q.question, as_of=q.date)
            coverage = question_coverage(q.question, ranked.nodes)
            features.append((q.answerable, ranked.best_similarity, coverage))
    answerable = [f for f in features if f[0]]
    unanswerable = [f for f in features if not f[0]]
    print(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable questions")
    print("| cosine weight | min_relevance | refused, answerable | refused, unanswerable |")
    print("|---:|---:|---:|---:|")
    for weight in (float(w) for w in args.weights.split(",")):
        for threshold in (float(t) for t in args.thresholds.split(",")):
            def refused(rows):
                return sum(1 for _, cos, cov in rows if blend_relevance(cos, cov, weight) < threshold) / (len(rows) or 1)
            print(f"| {weight:.3f} | {threshold:.2f} | {refused(answerable):.3f} | {refused(unanswerable):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
