"""Would a learned fusion rank better than the fixed one? A leave-one-week-out check.

    python -m benchmarks.learned_fusion [--weeks 30] [--seed 2026] [--questions SET] [--save]

Per week, default settings, each question with its date (the per-week protocol of
benchmarks.retrieval, reusing its indexes under .cache/indexes). Every candidate the two
retrievers return (vector and BM25, before fusion) is described by a few cheap features
(the two normalized scores the fixed fusion adds up, the cosine, how the chunk's article
does as a whole, the chunk's place in its article, the article's age, the share of the
question's words in the chunk and in its title); a logistic regression learns from the
other weeks which candidates hold the gold answer and ranks this week's candidates by it.
Both orders then go through the same diversity pass, so the rows differ only in the score.

With --save the model fitted on all the weeks becomes assistant/fusion_model.json, which the
setting fusion=learned ranks with (the features are computed by assistant.retrieval, so
training and serving share one definition).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np
from llama_index.core.schema import NodeWithScore
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from assistant.cli import quiet_libraries
from assistant.evaluation.scoring import contains_answer
from assistant.retrieval import (
    FUSION_FEATURES, FUSION_MODEL_FILE, NewsRetriever, candidate_features, diversify, fuse_candidates, fusion_logits,
    load_fusion_model,
)
from assistant.settings import Settings
from assistant.store import NewsStore

from .common import machine, publish
from .tune_retrieval import add_week_options, development_weeks


@dataclass
class Question:
    week: str
    nodes: list[NodeWithScore]  # the union of both retrievers' candidates
    fixed_scores: np.ndarray  # the fixed fusion's scores (fusion=relative_score, with its recency)
    features: np.ndarray  # one row of FUSION_FEATURES per candidate
    labels: np.ndarray  # 1 where the chunk's text holds a gold answer


def collect(settings_by_week: dict[str, Settings], questions) -> list[Question]:
    out = []
    for week, week_settings in settings_by_week.items():
        retriever = NewsRetriever(week_settings, NewsStore(week_settings))
        fixed_settings = week_settings.model_copy(update={"fusion": "relative_score"})
        for q in (q for q in questions if q.week == week):
            found = retriever.candidates(q.question, as_of=q.date)
            nodes, features = candidate_features(q.question, q.date, found.vector, found.keyword)
            # The fixed fusion's order, computed by the function retrieval serves with, on the same candidates.
            fixed = {n.node.node_id: n.score for n in fuse_candidates(fixed_settings, q.question, found, q.date)}
            out.append(Question(week, nodes, np.array([fixed[n.node.node_id] for n in nodes]), features,
                                np.array([contains_answer(n.node.get_content(), q.answers) for n in nodes], dtype=int)))
        print(f"week {week}: {sum(q.week == week for q in out)} questions", file=sys.stderr, flush=True)
    return out


def ranking_metrics(questions: list[Question], scores: list[np.ndarray], settings: Settings) -> dict[str, float]:
    """hit@1/5/10 and MRR@10 of each order after the production diversity pass."""
    ranks = []
    for q, s in zip(questions, scores):
        ordered = sorted((NodeWithScore(node=n.node, score=float(v)) for n, v in zip(q.nodes, s)),
                         key=lambda n: n.score, reverse=True)
        top = diversify(ordered, settings.max_chunks_per_article, settings.duplicate_jaccard, 0, 10)
        label = {n.node.node_id: y for n, y in zip(q.nodes, q.labels)}
        ranks.append(next((r for r, n in enumerate(top, start=1) if label[n.node.node_id]), None))
    n = len(ranks)
    out = {f"hit@{k}": sum(1 for r in ranks if r and r <= k) / n for k in (1, 5, 10)}
    out["mrr@10"] = sum(1 / r for r in ranks if r) / n
    return out


def model():
    # Standardized features, so the coefficients printed below compare with each other.
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))


def leave_one_week_out(questions: list[Question]) -> list[np.ndarray]:
    scores: list[np.ndarray | None] = [None] * len(questions)
    for week in sorted({q.week for q in questions}):
        train = [q for q in questions if q.week != week]
        fitted = model().fit(np.vstack([q.features for q in train]), np.concatenate([q.labels for q in train]))
        for i, q in enumerate(questions):
            if q.week == week:
                scores[i] = fitted.decision_function(q.features)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser()
    add_week_options(parser)
    parser.add_argument("--save", action="store_true",
                        help=f"write the model fitted on all these weeks to {FUSION_MODEL_FILE.name} (fusion=learned)")
    args = parser.parse_args()
    quiet_libraries()
    dev = development_weeks(args)
    settings = dev.settings
    questions = collect(dev.indexes, dev.questions)

    rows = {
        "fixed fusion (`fusion=relative_score`: min-max scores, vector weight 0.5, 365-day recency)": ranking_metrics(
            questions, [q.fixed_scores for q in questions], settings),
        "learned fusion, each week ranked by a model of the other weeks": ranking_metrics(
            questions, leave_one_week_out(questions), settings),
    }
    shipped = load_fusion_model(FUSION_MODEL_FILE) if FUSION_MODEL_FILE.exists() and not args.save else None
    if shipped is not None:
        # Before --save overwrites it: the model fusion=learned serves. On weeks it was trained on
        # this row is in-sample; on other weeks (for example a held-out set) it is the real test.
        trained_on = set(json.loads(FUSION_MODEL_FILE.read_text(encoding="utf-8"))["weeks"])
        overlap = "trained on these weeks: in-sample" if trained_on & set(dev.weeks) else "trained on none of these weeks"
        rows[f"the shipped model (`fusion=learned`, {FUSION_MODEL_FILE.name}; {overlap})"] = ranking_metrics(
            questions, [fusion_logits(shipped, q.features) for q in questions], settings)
    everything = model().fit(np.vstack([q.features for q in questions]), np.concatenate([q.labels for q in questions]))
    rows["learned fusion fitted on all these weeks (in-sample: an upper bound, not a result)"] = ranking_metrics(
        questions, [everything.decision_function(q.features) for q in questions], settings)
    scaler, regression = everything
    coefficients = regression.coef_[0]
    if args.save:
        FUSION_MODEL_FILE.write_text(json.dumps({
            "trained_by": f"python -m benchmarks.learned_fusion{dev.flags} --save",
            "weeks": dev.weeks, "features": list(FUSION_FEATURES),
            "mean": scaler.mean_.round(6).tolist(), "scale": scaler.scale_.round(6).tolist(),
            "coef": coefficients.round(6).tolist(), "intercept": round(float(regression.intercept_[0]), 6),
        }, indent=1) + "\n", encoding="utf-8")

    lines = [
        "## Ranking tried: a learned fusion (leave one week out)" + (f", {args.questions.stem}" if args.questions else ""),
        "",
        f"Command: `python -m benchmarks.learned_fusion{dev.flags}{' --save' if args.save else ''}`  ",
        f"Machine: {machine()}  ",
        f"Questions: the {len(questions)} questions with `answer_article_ids` of {len(dev.weeks)} RealTimeQA development "
        f"weeks {dev.chosen}: {', '.join(dev.weeks)}; default settings (no windows), each question with its date. Candidates: the "
        f"union of both retrievers' top {settings.candidates}; a chunk is positive when its text holds a gold answer. "
        "Both orders go through the same diversity pass; hit@k as in the retrieval table.",
        "",
        "| ranking | hit@1 | hit@5 | hit@10 | mrr@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[k]:.3f}" for k in ("hit@1", "hit@5", "hit@10", "mrr@10")) + " |")
    lines += ["", "Coefficients of the model fitted on all weeks (standardized features, logistic regression, C=0.1):", "",
              "| feature | coefficient |", "|---|---:|"]
    lines += [f"| {name} | {value:+.2f} |" for name, value in zip(FUSION_FEATURES, coefficients)]
    publish("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
