"""Would a learned fusion rank better than the fixed one? A leave-one-week-out check.

    python -m benchmarks.learned_fusion [--weeks 30] [--seed 2026] [--questions SET]

Per week, default settings, each question with its date (the per-week protocol of
benchmarks.retrieval, reusing its indexes under .cache/indexes). Every candidate the two
retrievers return (vector and BM25, before fusion) is described by a few cheap features
(the two normalized scores the default fusion adds up, the cosine, how the chunk's article
does as a whole, the chunk's place in its article, the article's age, the share of the
question's words in the chunk and in its title); a logistic regression learns from the
other weeks which candidates hold the gold answer and ranks this week's candidates by it.
Both orders then go through the same diversity pass, so the rows differ only in the score.

A research check for the ranking step, not a setting: it ships only if the held-out gain
pays for a trained model the project would then have to maintain (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np
from llama_index.core.schema import NodeWithScore
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from assistant.chunking import chunk_position
from assistant.cli import quiet_libraries
from assistant.context import content_words
from assistant.evaluation.scoring import contains_answer
from assistant.retrieval import NewsRetriever, apply_recency, day_number, diversify, fuse_scores
from assistant.settings import Settings
from assistant.store import NewsStore

from .common import machine, publish
from .tune_retrieval import add_week_options, development_weeks

FEATURES = (
    "vector score, min-max within its list (0 if absent)",
    "BM25 score, min-max within its list (0 if absent)",
    "cosine (the list's lowest if absent)",
    "found by both retrievers",
    "best vector score among its article's candidates",
    "best BM25 score among its article's candidates",
    "1 / (1 + its article's rank by vector score)",
    "1 / (1 + its article's rank by BM25 score)",
    "log(1 + its article's chunks among the candidates)",
    "log(1 + position in its article)",
    "log(1 + article age in days at the question's date)",
    "share of the question's content words in the chunk",
    "share of the question's content words in the title",
)
UNDATED_AGE_DAYS = 365  # as apply_recency: an undated article counts as one default half-life old


@dataclass
class Question:
    week: str
    nodes: list[NodeWithScore]  # the union of both retrievers' candidates
    default_scores: np.ndarray  # the production fusion's scores (relative_score + recency)
    features: np.ndarray
    labels: np.ndarray  # 1 where the chunk's text holds a gold answer


def describe(question: str, as_of, vector: list[NodeWithScore], keyword: list[NodeWithScore]):
    """Candidates and their feature rows; written out here because the production fusion only
    needs two of these numbers and has no reason to compute the rest."""
    def normalized(ranking):
        values = [n.score or 0.0 for n in ranking]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        return {n.node.node_id: ((v - low) / (high - low) if high > low else 1.0) for n, v in zip(ranking, values)}

    vec_norm, kw_norm = normalized(vector), normalized(keyword)
    cosine = {n.node.node_id: n.score or 0.0 for n in vector}
    lowest_cosine = min(cosine.values(), default=0.0)
    nodes = list({n.node.node_id: n for n in [*vector, *keyword]}.values())
    article = {n.node.node_id: n.node.metadata.get("article_id") or n.node.node_id for n in nodes}
    best_vec: dict[str, float] = {}
    best_kw: dict[str, float] = {}
    count: dict[str, int] = {}
    for n in nodes:
        a, i = article[n.node.node_id], n.node.node_id
        best_vec[a] = max(best_vec.get(a, 0.0), vec_norm.get(i, 0.0))
        best_kw[a] = max(best_kw.get(a, 0.0), kw_norm.get(i, 0.0))
        count[a] = count.get(a, 0) + 1
    vec_rank = {a: r for r, a in enumerate(sorted(best_vec, key=best_vec.get, reverse=True))}
    kw_rank = {a: r for r, a in enumerate(sorted(best_kw, key=best_kw.get, reverse=True))}
    asked = content_words(question) or {""}
    today = day_number(as_of)
    rows = []
    for n in nodes:
        i, a, meta = n.node.node_id, article[n.node.node_id], n.node.metadata
        published = int(meta.get("published_day", -1))
        age = UNDATED_AGE_DAYS if published < 0 else max(0, today - published)
        position = chunk_position(i)
        rows.append([
            vec_norm.get(i, 0.0), kw_norm.get(i, 0.0), cosine.get(i, lowest_cosine), float(i in vec_norm and i in kw_norm),
            best_vec[a], best_kw[a], 1 / (1 + vec_rank[a]), 1 / (1 + kw_rank[a]), math.log1p(count[a]),
            math.log1p(position[1] if position else 0), math.log1p(age),
            len(asked & content_words(n.node.get_content())) / len(asked),
            len(asked & content_words(meta.get("title") or "")) / len(asked),
        ])
    return nodes, np.array(rows, dtype=float)


def collect(settings_by_week: dict[str, Settings], questions) -> list[Question]:
    out = []
    for week, week_settings in settings_by_week.items():
        retriever = NewsRetriever(week_settings, NewsStore(week_settings))
        for q in (q for q in questions if q.week == week):
            found = retriever.candidates(q.question, as_of=q.date)
            nodes, features = describe(q.question, q.date, found.vector, found.keyword)
            # The production order, computed by the production functions on the same candidates.
            fused = fuse_scores([found.vector, found.keyword], [week_settings.vector_weight, 1 - week_settings.vector_weight])
            apply_recency(fused, q.date, week_settings.recency_half_life_days)
            default = {n.node.node_id: n.score for n in fused}
            out.append(Question(week, nodes, np.array([default[n.node.node_id] for n in nodes]), features,
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
    args = parser.parse_args()
    quiet_libraries()
    dev = development_weeks(args)
    settings = dev.settings
    questions = collect(dev.indexes, dev.questions)

    rows = {
        "default fusion (min-max scores, vector weight 0.5, 365-day recency)": ranking_metrics(
            questions, [q.default_scores for q in questions], settings),
        "learned fusion, each week ranked by a model of the other weeks": ranking_metrics(
            questions, leave_one_week_out(questions), settings),
    }
    everything = model().fit(np.vstack([q.features for q in questions]), np.concatenate([q.labels for q in questions]))
    rows["learned fusion fitted on all these weeks (in-sample: an upper bound, not a result)"] = ranking_metrics(
        questions, [everything.decision_function(q.features) for q in questions], settings)
    coefficients = everything[-1].coef_[0]

    lines = [
        "## Ranking tried: a learned fusion (leave one week out)",
        "",
        f"Command: `python -m benchmarks.learned_fusion{dev.flags}`  ",
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
    lines += [f"| {name} | {value:+.2f} |" for name, value in zip(FEATURES, coefficients)]
    publish("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
