"""Would a learned fusion rank better than the fixed one? Leave-one-week-out and held-apart checks.

    python -m benchmarks.learned_fusion [--weeks 30] [--seed 2026] [--questions SET]
        [--train-questions SET ...] [--model trees|logistic] [--save]

Per week, default settings, each question with its date (the per-week protocol of
benchmarks.retrieval, reusing its indexes under .cache/indexes). Every candidate the two
retrievers return (vector and BM25, before fusion) is described by a few cheap features
(the two normalized scores the fixed fusion adds up, the cosine, how the chunk's article
does as a whole, the chunk's place in its article, the article's age, the share of the
question's words in the chunk and in its title); a model (boosted trees or a logistic
regression) learns from the other weeks which candidates hold the gold answer and ranks this
week's candidates by it. With --train-questions the models learn from that set's weeks instead
(for example the weeks in neither the development nor the held-out set; repeat the option to
learn from several sets), so every scored week is out of sample. All orders then go through the
same diversity pass, so the rows differ only in the score.

With --save the --model fitted on the training weeks (--train-questions, else the scored weeks)
becomes assistant/fusion_model.json, which the setting fusion=learned ranks with (the features
are computed by assistant.retrieval, so training and serving share one definition).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from llama_index.core.schema import NodeWithScore
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from assistant.cli import quiet_libraries
from assistant.evaluation.scoring import contains_answer
from assistant.retrieval import (
    FUSION_FEATURES, FUSION_MODEL_FILE, NewsRetriever, candidate_features, diversify, fuse_candidates, fusion_logits,
    load_fusion_model, model_arrays,
)
from assistant.settings import Settings
from assistant.store import NewsStore

from .common import machine, publish
from .tune_retrieval import DevelopmentWeeks, add_week_options, development_weeks


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


def table_row(name: str, metrics: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{metrics[k]:.3f}" for k in ("hit@1", "hit@5", "hit@10", "mrr@10")) + " |"


def logistic():
    # Standardized features, so the coefficients printed below compare with each other.
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))


def trees():
    # Shallow trees can let one feature decide how much another counts, which a weighted sum cannot.
    # Depth 2, 300 rounds at rate 0.05: the simpler of the two settings that scored alike in
    # exploratory runs (BENCHMARKS.md, "Ranking tried"). All rows train: early stopping would hold
    # out a random tenth of the candidates, not of the weeks.
    return HistGradientBoostingClassifier(max_depth=2, learning_rate=0.05, max_iter=300, l2_regularization=1.0,
                                          early_stopping=False, random_state=0)


MODELS = {"trees": trees, "logistic": logistic}


def fit(make, questions: list[Question]):
    return make().fit(np.vstack([q.features for q in questions]), np.concatenate([q.labels for q in questions]))


def leave_one_week_out(make, questions: list[Question]) -> list[np.ndarray]:
    scores: list[np.ndarray | None] = [None] * len(questions)
    for week in sorted({q.week for q in questions}):
        fitted = fit(make, [q for q in questions if q.week != week])
        for i, q in enumerate(questions):
            if q.week == week:
                scores[i] = fitted.decision_function(q.features)
    return scores


def export(fitted, questions: list[Question]) -> dict:
    """The fitted model as plain numbers for fusion_model.json (the serving side walks them with numpy)."""
    if isinstance(fitted, HistGradientBoostingClassifier):
        # scikit-learn has no public export of these trees: read its predictors' node arrays, then
        # check below that assistant.retrieval's walk of them gives scikit-learn's own scores.
        out = {"kind": "trees", "baseline": float(np.ravel(fitted._baseline_prediction)[0]), "trees": []}
        for (predictor,) in fitted._predictors:
            nodes = predictor.nodes
            out["trees"].append({
                "feature": [-1 if leaf else int(f) for leaf, f in zip(nodes["is_leaf"], nodes["feature_idx"])],
                "threshold": [float(x) for x in nodes["num_threshold"]],
                "left": [int(x) for x in nodes["left"]], "right": [int(x) for x in nodes["right"]],
                "value": [float(x) for x in nodes["value"]], "depth": int(nodes["depth"].max())})
    else:
        scaler, regression = fitted
        out = {"kind": "logistic", "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
               "coef": regression.coef_[0].tolist(), "intercept": float(regression.intercept_[0])}
    served = model_arrays(out)
    features = np.vstack([q.features for q in questions])
    gap = np.abs(fusion_logits(served, features) - fitted.decision_function(features)).max()
    if gap > 1e-6:
        raise SystemExit(f"the exported model scores differently from scikit-learn's (by {gap}); not saved")
    return out


def what_matters(fitted) -> list[str]:
    """Markdown rows: the logistic regression's coefficients, or each feature's share of the trees' split gain."""
    if isinstance(fitted, HistGradientBoostingClassifier):
        gain = np.zeros(len(FUSION_FEATURES))
        for (predictor,) in fitted._predictors:
            splits = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            np.add.at(gain, splits["feature_idx"], splits["gain"])
        return ["Share of the trees' split gain per feature (the model fitted on the training weeks):", "",
                "| feature | share of gain |", "|---|---:|",
                *[f"| {name} | {value:.3f} |" for name, value in zip(FUSION_FEATURES, gain / gain.sum())]]
    return ["Coefficients of the logistic regression fitted on the training weeks (standardized features, C=0.1):", "",
            "| feature | coefficient |", "|---|---:|",
            *[f"| {name} | {value:+.2f} |" for name, value in zip(FUSION_FEATURES, fitted[1].coef_[0])]]


def main() -> int:
    parser = argparse.ArgumentParser()
    add_week_options(parser)
    parser.add_argument("--train-questions", type=Path, metavar="SET", action="append", default=[],
                        help="train on this set's weeks (none of them scored) instead of leaving one scored week out; "
                             "repeat to train on several sets")
    parser.add_argument("--model", choices=sorted(MODELS), default="trees", help="the model --save writes")
    parser.add_argument("--save", action="store_true",
                        help=f"write --model fitted on the training weeks to {FUSION_MODEL_FILE.name} (fusion=learned)")
    args = parser.parse_args()
    quiet_libraries()
    dev = development_weeks(args.questions, args.weeks, args.seed)
    settings = dev.settings
    questions = collect(dev.indexes, dev.questions)
    if args.train_questions:
        train = merged([development_weeks(path) for path in args.train_questions])
        if set(train.weeks) & set(dev.weeks):
            raise SystemExit("the training set shares weeks with the scored set")
        training = collect(train.indexes, train.questions)
    else:
        train, training = dev, questions

    rows = {
        "fixed fusion (`fusion=relative_score`: min-max scores, vector weight 0.5, 365-day recency)": ranking_metrics(
            questions, [q.fixed_scores for q in questions], settings),
    }
    for name, make in MODELS.items():
        rows[f"{name}, each week ranked by a model of the other scored weeks"] = ranking_metrics(
            questions, leave_one_week_out(make, questions), settings)
    fitted = {name: fit(make, training) for name, make in MODELS.items()}
    if args.train_questions:
        for name, model in fitted.items():
            rows[f"{name}, trained on the {len(train.weeks)} weeks of {named(args.train_questions)} (none of these)"] = (
                ranking_metrics(questions, [model.decision_function(q.features) for q in questions], settings))
    shipped = load_fusion_model(FUSION_MODEL_FILE) if FUSION_MODEL_FILE.exists() and not args.save else None
    if shipped is not None:
        # Before --save overwrites it: the model fusion=learned serves. On weeks it was trained on
        # this row is in-sample; on other weeks (for example a held-out set) it is the real test.
        overlap = "trained on these weeks: in-sample" if set(shipped["weeks"]) & set(dev.weeks) else "trained on none of these weeks"
        rows[f"the shipped model (`fusion=learned`, {FUSION_MODEL_FILE.name}, {shipped['kind']}; {overlap})"] = (
            ranking_metrics(questions, [fusion_logits(shipped, q.features) for q in questions], settings))
    if args.save:
        FUSION_MODEL_FILE.write_text(json.dumps({
            "trained_by": f"python -m benchmarks.learned_fusion{flags(args, dev)} --save",
            "weeks": train.weeks, "features": list(FUSION_FEATURES), **export(fitted[args.model], training),
        }) + "\n", encoding="utf-8")

    trained = (f"the {len(training)} questions of {named(args.train_questions)} ({len(train.weeks)} weeks, none of them "
               "scored)" if args.train_questions else
               "the other scored weeks (leave one week out); the model `--save` writes is fitted on all of them")
    lines = [
        "## Ranking: learned fusion" + (f", trained on {' + '.join(p.stem for p in args.train_questions)}"
                                        if args.train_questions else "")
        + (f", scored on {args.questions.stem}" if args.questions else ""),
        "",
        f"Command: `python -m benchmarks.learned_fusion{flags(args, dev)}{' --save' if args.save else ''}`  ",
        f"Machine: {machine()}  ",
        f"Questions: the {len(questions)} questions with `answer_article_ids` of {len(dev.weeks)} RealTimeQA development "
        f"weeks {dev.chosen}: {', '.join(dev.weeks)}; default settings (no windows), each question with its date. Candidates: the "
        f"union of both retrievers' top {settings.candidates}; a chunk is positive when its text holds a gold answer. "
        f"Models learn from {trained}. All orders go through the same diversity pass; hit@k as in the retrieval table.",
        "",
        "| ranking | hit@1 | hit@5 | hit@10 | mrr@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, metrics in rows.items():
        lines.append(table_row(name, metrics))
    if args.train_questions:
        # Which model to ship is chosen here, on the training weeks alone (leave one of them out),
        # so the scored weeks above stay untouched by the choice.
        lines += ["", f"Model choice, on the training weeks only: each of the {len(train.weeks)} weeks of "
                  f"{named(args.train_questions)} ranked by a model of the other {len(train.weeks) - 1}.", "",
                  "| ranking (training weeks, leave one week out) | hit@1 | hit@5 | hit@10 | mrr@10 |",
                  "|---|---:|---:|---:|---:|"]
        choice = {"fixed fusion": ranking_metrics(training, [q.fixed_scores for q in training], settings)}
        for name, make in MODELS.items():
            choice[name] = ranking_metrics(training, leave_one_week_out(make, training), settings)
        for name, metrics in choice.items():
            lines.append(table_row(name, metrics))
    lines += ["", *what_matters(fitted[args.model])]
    publish("\n".join(lines) + "\n")
    return 0


def merged(sets: list[DevelopmentWeeks]) -> DevelopmentWeeks:
    """Several question sets' weeks as one training set (their weeks must not repeat)."""
    weeks = [w for s in sets for w in s.weeks]
    if len(set(weeks)) < len(weeks):
        raise SystemExit("the training sets share weeks")
    return replace(sets[0], questions=[q for s in sets for q in s.questions], weeks=sorted(weeks),
                   indexes={w: v for s in sets for w, v in s.indexes.items()},
                   flags="".join(s.flags for s in sets), chosen=" and ".join(s.chosen for s in sets))


def named(paths: list[Path]) -> str:
    return " and ".join(f"`{p}`" for p in paths)


def flags(args: argparse.Namespace, dev: DevelopmentWeeks) -> str:
    return dev.flags + "".join(f" --train-questions {path}" for path in args.train_questions) + (
        f" --model {args.model}" if args.model != "trees" else "")


if __name__ == "__main__":
    sys.exit(main())
