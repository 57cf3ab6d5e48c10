"""Tune retrieval settings on development weeks without rebuilding indexes per setting.

    python -m benchmarks.tune_retrieval --questions .cache/sets/dev-30w.jsonl \
        --set recency_half_life_days=7,30,0 --set vector_weight=0.3,0.5,0.7 [--as-of 2026-12-06]

Builds one index per week under .cache/indexes/ (the evaluator's --keep-indexes
folders, reused between runs and by `eval --keep-indexes .cache/indexes`), then scores every combination
of the given settings with the retrieval metrics of the evaluator. Each question is asked as of
its own date, or with --as-of as of one day for all (a user asking an older archive today).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.answer import NewsAssistant
from assistant.chunking import counting_tokenizer, embedding_model
from assistant.cli import quiet_libraries
from assistant.evaluation.questions import load_questions
from assistant.evaluation.runner import CorpusIndex, EvalOptions, build_index, corpus_groups, load_articles
from assistant.evaluation.scoring import compute_metrics, contains_answer, first_article_rank, first_hit_rank
from assistant.settings import Settings

REPO = Path(__file__).resolve().parent.parent
ARTICLES = REPO.parent / "shared" / "data" / "realtimeqa" / "articles.jsonl.gz"


def week_indexes(settings: Settings, questions_path: Path, root: Path) -> dict[str, Settings]:
    """Per-week indexes kept under ``root`` by the evaluator's own machinery (built once, then reused)."""
    options = EvalOptions(questions=questions_path, out=root, articles=ARTICLES, per_week=True, index_cache=root)
    questions = load_questions(questions_path)
    articles = None
    out = {}
    for week, group in corpus_groups(questions, options):
        if articles is None:
            articles = load_articles(ARTICLES)
        print(f"week {week}", file=sys.stderr, flush=True)
        with CorpusIndex(settings, options, group, articles, build_index, week) as week_settings:
            out[week] = week_settings
    return out


def add_week_options(parser: argparse.ArgumentParser) -> None:
    """Which development weeks a per-week benchmark runs on (the options reach and learned_fusion share)."""
    parser.add_argument("--weeks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--questions", type=Path, help="a question set with weeks (instead of --weeks/--seed)")


@dataclass
class DevelopmentWeeks:
    questions: list  # those with answer_article_ids
    weeks: list[str]
    settings: Settings  # the defaults, with the evaluator's embedding cache
    indexes: dict[str, Settings]  # week -> the settings of its kept index
    flags: str  # the options as given, for the command line written beside a table
    chosen: str  # how the weeks were chosen, in words


def development_weeks(questions: Path | None = None, weeks: int = 30, seed: int = 2026) -> DevelopmentWeeks:
    """The weeks of a question set (``questions``), else ``weeks`` chosen by ``seed`` (the options of
    ``add_week_options``): their questions with answer articles, and their indexes (built once, then reused)."""
    from .retrieval import make_sets  # imported here: benchmarks.retrieval is a heavier module

    questions_path = questions or make_sets(weeks, seed)[0]
    answerable = [q for q in load_questions(questions_path) if q.answer_article_ids]
    settings = Settings(embed_cache_dir=REPO / ".cache")
    indexes = week_indexes(settings, questions_path, REPO / ".cache" / "indexes")
    if questions:
        flags, chosen = f" --questions {questions}", f"from `{questions}`"
    else:
        flags = (f" --weeks {weeks}" if weeks != 30 else "") + (f" --seed {seed}" if seed != 2026 else "")
        chosen = f"chosen by seed {seed} (by default the weeks of the per-week retrieval table)"
    return DevelopmentWeeks(answerable, sorted({q.week for q in answerable}), settings, indexes, flags, chosen)


def score(settings_by_week: dict[str, Settings], questions, overrides: dict, as_of: dt.date | None = None) -> dict:
    records = []
    for week, week_settings in settings_by_week.items():
        engine = NewsAssistant(with_overrides(week_settings, overrides))
        tokenizer = counting_tokenizer(embedding_model(week_settings))
        for q in (q for q in questions if q.week == week):
            records.append(retrieval_record(q, engine.retrieve(q.question, as_of=as_of or q.date), tokenizer))
    metrics = compute_metrics(records)
    out = {k: metrics[k] for k in ("hit@1", "hit@5", "hit@10", "mrr@10", "context_hit", "context_tokens")}
    # Sentence selection's time per question (choosing what the model reads), which some settings trade for context_hit.
    out["select_p50_s"] = round(statistics.median(r["timings"]["select_s"] for r in records), 3) if records else None
    # The quote fallback's sentence (shown when the model gives no answer although retrieval matched):
    # how often it holds a gold answer, over the questions past the relevance gate.
    quoted = [r["quote_hit"] for r in records if r["quote_hit"] is not None]
    out["quote_hit"] = round(sum(quoted) / len(quoted), 3) if quoted else None
    return out


def retrieval_record(q, retrieval, tokenizer) -> dict:
    """One question's retrieval as the evaluator's metrics read it (compute_metrics)."""
    texts = [n.node.get_content() for n in retrieval.ranked]
    return {
        "id": q.id, "answerable": True, "answers": q.answers, "answer_article_ids": q.answer_article_ids,
        "hit_rank": first_hit_rank(texts[:10], q.answers),
        "article_rank": first_article_rank(retrieval.chunk_article_ids[:10], q.answer_article_ids),
        "context_hit": contains_answer(retrieval.context, q.answers),
        "context_tokens": len(tokenizer.tokenize(retrieval.context)),
        "quote_hit": contains_answer(retrieval.quote[1], q.answers) if retrieval.quote else None,
        "timings": {"retrieve_s": retrieval.retrieve_s, "select_s": retrieval.select_s},
    }


def with_overrides(settings: Settings, overrides: dict) -> Settings:
    """``settings`` with the --set values, validated: model_copy(update=...) would take any value as
    given ("false" as a truthy string, a misspelt name as a new attribute) and change nothing."""
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise SystemExit(f"unknown setting(s): {', '.join(unknown)}")
    return Settings.model_validate({**settings.model_dump(), **overrides})


def parse_value(text: str):
    # Typed values for the tables and labels; with_overrides validates them against the settings.
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def setting_grid(items: list[str]) -> tuple[list[str], list[dict]]:
    """``name=v1,v2,...`` items as (names, every combination of their values as overrides)."""
    grid = [(name, [parse_value(v) for v in values.split(",")])
            for name, values in (item.split("=", 1) for item in items)]
    names = [name for name, _ in grid]
    return names, [dict(zip(names, combo)) for combo in itertools.product(*[values for _, values in grid])]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], help="name=v1,v2,... (retrieval settings)")
    parser.add_argument("--index-set", action="append", default=[], help="name=value (chunking settings)")
    parser.add_argument("--root", type=Path, default=REPO / ".cache" / "indexes")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None,
                        help="ask every question as of this day (YYYY-MM-DD) instead of its own date")
    args = parser.parse_args()
    quiet_libraries()
    base = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.index_set)}
    settings = Settings(embed_cache_dir=REPO / ".cache", **base)
    questions = [q for q in load_questions(args.questions) if q.answer_article_ids]
    indexes = week_indexes(settings, args.questions, args.root)
    for overrides in setting_grid(args.set)[1]:
        print(json.dumps({**base, **overrides, **score(indexes, questions, overrides, args.as_of)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
