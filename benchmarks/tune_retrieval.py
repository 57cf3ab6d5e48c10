"""Tune retrieval settings on development weeks without rebuilding indexes per setting.

    python -m benchmarks.tune_retrieval --questions .cache/sets/dev-30w.jsonl \
        --set recency_half_life_days=7,30,0 --set vector_weight=0.3,0.5,0.7

Builds one persistent index per week under .cache/weeks/ (reused between runs;
chunking settings are part of the folder name), then scores every combination
of the given settings with the retrieval metrics of the evaluator.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

from assistant.answer import NewsAssistant
from assistant.articles import ArticleLoader
from assistant.cli import _quiet_libraries
from assistant.evaluation.questions import load_questions
from assistant.evaluation.scoring import compute_metrics, contains_answer, first_hit_rank
from assistant.settings import Settings
from assistant.store import NewsStore

REPO = Path(__file__).resolve().parent.parent
ARTICLES = REPO.parent / "shared" / "data" / "realtimeqa" / "articles.jsonl.gz"
INDEX_KEYS = ("chunk_tokens", "chunk_overlap", "embed_model")


def week_indexes(settings: Settings, questions, root: Path) -> dict[str, Settings]:
    tag = hashlib.sha256(json.dumps({k: str(getattr(settings, k)) for k in INDEX_KEYS}).encode()).hexdigest()[:8]
    by_week: dict[str, set[str]] = {}
    for q in questions:
        by_week.setdefault(q.week, set()).update(q.article_ids)
    articles = None
    out = {}
    for week, ids in sorted(by_week.items()):
        week_settings = settings.model_copy(update={"index_dir": root / f"{week}-{tag}"})
        if not (week_settings.index_dir / "docstore.json").exists():
            if articles is None:
                articles = {a.id: a for a in ArticleLoader().load([ARTICLES])}
            print(f"indexing week {week} ({len(ids)} articles)", file=sys.stderr, flush=True)
            NewsStore(week_settings, create=True).ingest([articles[i] for i in sorted(ids) if i in articles])
        out[week] = week_settings
    return out


def score(settings_by_week: dict[str, Settings], questions, overrides: dict) -> dict:
    records = []
    for week, week_settings in settings_by_week.items():
        engine = NewsAssistant(week_settings.model_copy(update=overrides))
        tokenizer = engine.retriever.index._embed_model._model.tokenizer
        for q in (q for q in questions if q.week == week):
            retrieval = engine.retrieve(q.question, as_of=q.date)
            texts = [n.node.get_content() for n in retrieval.ranked]
            records.append({
                "id": q.id, "answerable": True, "answers": q.answers, "answer_article_ids": q.answer_article_ids,
                "hit_rank": first_hit_rank(texts[:10], q.answers),
                "context_hit": contains_answer(retrieval.context, q.answers),
                "context_tokens": len(tokenizer.tokenize(retrieval.context)),
                "timings": {"retrieve_s": retrieval.retrieve_s},
            })
    metrics = compute_metrics(records)
    return {k: metrics[k] for k in ("hit@1", "hit@5", "hit@10", "mrr@10", "context_hit", "context_tokens")}


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--set", action="append", default=[], help="name=v1,v2,... (retrieval settings)")
    parser.add_argument("--index-set", action="append", default=[], help="name=value (chunking settings)")
    parser.add_argument("--root", type=Path, default=REPO / ".cache" / "weeks")
    args = parser.parse_args()
    _quiet_libraries()
    base = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.index_set)}
    settings = Settings(embed_cache_dir=REPO / ".cache", **base)
    questions = [q for q in load_questions(args.questions) if q.answer_article_ids]
    indexes = week_indexes(settings, questions, args.root)
    grid = [(name, [parse_value(v) for v in values.split(",")])
            for name, values in (item.split("=", 1) for item in args.set)]
    names = [name for name, _ in grid]
    for combo in itertools.product(*[values for _, values in grid]) if grid else [()]:
        overrides = dict(zip(names, combo))
        print(json.dumps({**base, **overrides, **score(indexes, questions, overrides)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
