"""Scoring: answer matching (SQuAD-style folding), per-question scores, and the metrics table."""

from __future__ import annotations

import re
import statistics
import string
import unicodedata
from collections import Counter
from typing import Iterable

from ..answer import LETTERS

HIT_KS = (1, 5, 10)
_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "«": '"', "»": '"', "–": "-", "—": "-"})
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")

METRIC_KEYS = (
    "n", "n_answerable", "n_unanswerable", "hit@1", "hit@5", "hit@10", "mrr@10", "article_hit@5",
    "context_hit", "context_tokens", "answer_accuracy", "answer_f1", "mc_accuracy", "citation_support",
    "refusal_unanswerable", "refusal_answerable", "latency_p50_s", "latency_p95_s", "first_token_p50_s", "tokens_per_s",
    "retrieval_p50_s", "retrieval_p95_s",
)


def fold(text: str) -> str:
    """Lowercase, unify quotes and dashes, drop punctuation and English articles, squeeze spaces."""
    text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES).lower()
    text = _PUNCT.sub(" ", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """True when a folded gold answer appears in the folded text as whole words."""
    haystack = f" {fold(text)} "
    return any(f" {gold} " in haystack for gold in (fold(a) for a in answers) if gold)


def token_f1(prediction: str, answers: Iterable[str]) -> float:
    """Best SQuAD token F1 between the prediction and any gold answer."""
    predicted = fold(prediction).split()
    best = 0.0
    for answer in answers:
        gold = fold(answer).split()
        common = Counter(predicted) & Counter(gold)
        same = sum(common.values())
        if not same or not predicted or not gold:
            continue
        precision, recall = same / len(predicted), same / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def pick_choice(reply: str, choices: list[str]) -> str | None:
    """Which choice a multiple-choice reply picked: a leading letter, else the one choice it names."""
    match = re.match(r"\s*\(?([A-H])\b[.):]?", reply or "")
    if match and LETTERS.index(match.group(1)) < len(choices):
        return choices[LETTERS.index(match.group(1))]
    named = [c for c in choices if fold(c) and f" {fold(c)} " in f" {fold(reply)} "]
    return named[0] if len(named) == 1 else None


def first_hit_rank(chunk_texts: list[str], answers: list[str]) -> int | None:
    for rank, text in enumerate(chunk_texts, start=1):
        if contains_answer(text, answers):
            return rank
    return None


def first_article_rank(chunk_article_ids: list[str], answer_article_ids: list[str]) -> int | None:
    """Rank of the first chunk that comes from one of the question's answer articles. Unlike hit_rank it
    does not depend on how the answer is worded (a chunk saying "May 6, 2023" for gold "6 May 2023" is no
    hit), nor credit a chunk where the answer's word only happens to occur (gold "FALSE")."""
    gold = set(answer_article_ids)
    return next((rank for rank, article in enumerate(chunk_article_ids, start=1) if article in gold), None)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile (0.5, 0.95) of the values, rounded to 3 decimals; None without values."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 3)


def compute_metrics(records: list[dict]) -> dict:
    """The metrics table from results.jsonl records; a metric the data cannot give is None."""
    ok = [r for r in records if not r.get("error")]
    answerable = [r for r in ok if r.get("answerable", True)]
    unanswerable = [r for r in ok if not r.get("answerable", True)]
    scored = [r for r in answerable if r.get("answer_article_ids")]
    generated = [r for r in ok if r.get("answer") is not None]
    gold_answered = [r for r in answerable if r.get("answers") and r.get("answer") is not None]
    with_choice = [r for r in answerable if r.get("mc_pick") is not None or r.get("mc_correct") is not None]
    correct = [r for r in gold_answered if r.get("correct")]

    metrics: dict = {
        "n": len(records),
        "n_answerable": sum(1 for r in records if r.get("answerable", True)),
        "n_unanswerable": sum(1 for r in records if not r.get("answerable", True)),
        "n_errors": len(records) - len(ok),
    }
    for k in HIT_KS:
        metrics[f"hit@{k}"] = _mean([1.0 if r["hit_rank"] and r["hit_rank"] <= k else 0.0 for r in scored])
    metrics["mrr@10"] = _mean([1.0 / r["hit_rank"] if r["hit_rank"] and r["hit_rank"] <= 10 else 0.0 for r in scored])
    with_article_rank = [r for r in scored if "article_rank" in r]  # results from before the key have none
    metrics["article_hit@5"] = _mean([1.0 if r["article_rank"] and r["article_rank"] <= 5 else 0.0
                                      for r in with_article_rank])
    metrics["context_hit"] = _mean([1.0 if r["context_hit"] else 0.0 for r in scored])
    metrics["context_tokens"] = _mean([float(r["context_tokens"]) for r in ok if r.get("context_tokens") is not None])
    metrics["answer_accuracy"] = _mean([1.0 if r["correct"] else 0.0 for r in gold_answered])
    metrics["answer_f1"] = _mean([r["f1"] for r in gold_answered])
    metrics["mc_accuracy"] = _mean([1.0 if r["mc_correct"] else 0.0 for r in with_choice])
    metrics["citation_support"] = _mean([1.0 if r["citation_supported"] else 0.0 for r in correct])
    metrics["refusal_unanswerable"] = _mean([1.0 if r["refused"] else 0.0 for r in unanswerable if r.get("answer") is not None])
    metrics["refusal_answerable"] = _mean([1.0 if r["refused"] else 0.0 for r in answerable if r.get("answer") is not None])
    latencies = [r["timings"]["total_s"] for r in generated if "total_s" in r.get("timings", {})]
    metrics["latency_p50_s"] = quantile(latencies, 0.50)
    metrics["latency_p95_s"] = quantile(latencies, 0.95)
    ranking = [r["timings"]["rank_s"] for r in ok if "rank_s" in r.get("timings", {})]
    metrics["retrieval_p50_s"] = quantile(ranking, 0.50)
    metrics["retrieval_p95_s"] = quantile(ranking, 0.95)
    first_tokens = [r["timings"]["first_token_s"] for r in generated if "first_token_s" in r.get("timings", {})]
    metrics["first_token_p50_s"] = quantile(first_tokens, 0.50)
    # Decoding speed: tokens over the time after the first token (prompt processing excluded).
    tokens = sum(r["timings"].get("answer_tokens", 0.0) for r in generated)
    seconds = sum(max(0.0, r["timings"].get("generate_s", 0.0) - r["timings"].get("first_token_s", 0.0))
                  for r in generated)
    metrics["tokens_per_s"] = round(tokens / seconds, 2) if seconds > 0 and tokens > 0 else None
    return metrics
