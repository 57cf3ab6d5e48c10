"""Run a question set through the engine and write results.jsonl, metrics.json and the report.

Corpora: the current index (default), one temporary index of ``--articles``, or
with ``--per-week`` one fresh temporary index per quiz week built from that
week's questions' ``article_ids``. Temporary indexes reuse an on-disk embedding
cache, so a second run spends its time on questions, not on embedding.

Runs resume: every finished question is appended (and flushed) to
results.jsonl at once; rerunning the same command with the same ``--out`` skips
questions already there.
"""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..answer import NewsAssistant, Retrieval
from ..articles import Article, ArticleLoader
from ..citations import strip_citations
from ..chunking import counting_tokenizer, embedding_model
from ..errors import AssistantError
from ..settings import Settings
from ..store import NewsStore
from .questions import Question, load_questions
from .scoring import (
    METRIC_KEYS, compute_metrics, contains_answer, first_article_rank, first_hit_rank, pick_choice, token_f1,
)

RESULTS = "results.jsonl"
COMPLETE_MARK = ".complete"
INDEX_KEYS = ("chunk_tokens", "chunk_overlap", "embed_model")  # settings that change what is indexed
METRICS = "metrics.json"


@dataclass
class EvalOptions:
    questions: Path
    out: Path
    articles: Path | None = None
    per_week: bool = False
    retrieval_only: bool = False
    choices: bool = False
    limit: int | None = None
    workers: int = 1
    cache_dir: Path = Path(".cache")
    index_cache: Path | None = None  # keep per-corpus indexes here and reuse them in later runs
    show_progress: bool = True


# An engine factory gives, for a settings object (its index), something with
# retrieve() and answer() like NewsAssistant: benchmarks plug in baselines here.
EngineFactory = Callable[[Settings], NewsAssistant]


def run_evaluation(settings: Settings, options: EvalOptions, engine_factory: EngineFactory | None = None,
                   index_builder: Callable[[Settings, list[Article]], None] | None = None) -> dict:
    from tqdm import tqdm

    questions = load_questions(options.questions)
    if options.limit:
        questions = questions[: options.limit]
    if not questions:
        raise AssistantError(f"{options.questions}: no questions")
    if options.per_week and not options.articles:
        raise AssistantError("--per-week needs --articles FILE (the articles to build each week's index from)")
    options.out.mkdir(parents=True, exist_ok=True)
    results_path = options.out / RESULTS
    done = _finished_ids(results_path)
    remaining = [q for q in questions if q.id not in done]
    settings = settings.model_copy(update={"embed_cache_dir": settings.embed_cache_dir or options.cache_dir})
    engine_factory = engine_factory or (lambda s: NewsAssistant(s))
    index_builder = index_builder or build_index

    groups = corpus_groups(remaining, options)
    articles = load_articles(options.articles) if options.articles and remaining else {}
    writer = _ResultWriter(results_path)
    progress = tqdm(total=len(questions), initial=len(questions) - len(remaining), unit="question", desc="eval",
                    disable=not options.show_progress, file=sys.stderr)
    try:
        for label, group in groups:
            if not group:
                continue
            progress.set_description(f"eval {label}: indexing" if options.articles else "eval")
            with CorpusIndex(settings, options, group, articles, index_builder, label) as group_settings:
                progress.set_description(f"eval {label}")
                engine = engine_factory(group_settings)
                engine.warm_up()  # load time is not question time: a server pays it at start
                tokenizer = counting_tokenizer(embedding_model(group_settings))

                def work(question: Question, engine=engine, tokenizer=tokenizer) -> None:
                    writer.write(_evaluate_one(engine, tokenizer, question, options))
                    progress.update(1)

                # As the server does (app.py): the loaded indexes leave the garbage collector's
                # view, so that no full collection over them lands on a timed question; this
                # group's engine goes back to it afterwards, to be freed.
                gc.collect()
                gc.freeze()
                try:
                    if options.workers > 1:
                        with ThreadPoolExecutor(max_workers=options.workers) as pool:
                            list(pool.map(work, group))
                    else:
                        for question in group:
                            work(question)
                finally:
                    gc.unfreeze()
    finally:
        progress.close()
        writer.close()

    records = _read_records(results_path, {q.id for q in questions})
    metrics = compute_metrics(records)
    metrics["settings"] = {
        "retrieval_only": options.retrieval_only, "choices": options.choices, "per_week": options.per_week,
        "llm_backend": settings.llm_backend, "llm_model": settings.llm_model,
    }
    (options.out / METRICS).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    from .report import write_report

    write_report(options.out, records, metrics)
    return metrics


# -- corpora -----------------------------------------------------------------
def corpus_groups(questions: list[Question], options: EvalOptions) -> list[tuple[str, list[Question]]]:
    if not options.per_week:
        return [("all", questions)]
    weeks: dict[str, list[Question]] = {}
    for q in questions:
        if not q.week:
            raise AssistantError(f"question {q.id} has no 'week'; --per-week needs it")
        weeks.setdefault(q.week, []).append(q)
    return sorted(weeks.items())


def load_articles(path: Path) -> dict[str, Article]:
    loader = ArticleLoader()
    articles = {a.id: a for a in loader.load([path])}
    if not articles:
        raise AssistantError(f"{path}: no articles loaded")
    return articles


class CorpusIndex:
    """Context manager giving the settings of the index a group of questions is asked against."""

    def __init__(self, settings, options, group, articles, index_builder, label):
        self.settings, self.options, self.group = settings, options, group
        self.articles, self.index_builder, self.label = articles, index_builder, label
        self.tmp: str | None = None

    def __enter__(self) -> Settings:
        if not self.options.articles:
            NewsStore(self.settings)  # fail early, with the one-line error, if there is no index
            return self.settings
        if self.options.per_week:
            wanted = dict.fromkeys(i for q in self.group for i in q.article_ids)
            chosen = [self.articles[i] for i in wanted if i in self.articles]
        else:
            chosen = list(self.articles.values())
        if self.options.index_cache is None:
            self.tmp = tempfile.mkdtemp(prefix=f"eval-{self.label}-")
            settings = self.settings.model_copy(update={"index_dir": Path(self.tmp), "chroma_host": None})
            self.index_builder(settings, chosen)
            return settings
        # Kept indexes: the same articles, chunking and builder give the same index, so reuse it.
        folder = self.options.index_cache / index_key(self.settings, self.label, [a.id for a in chosen],
                                                       self.index_builder.__name__)
        settings = self.settings.model_copy(update={"index_dir": folder, "chroma_host": None})
        if not (folder / COMPLETE_MARK).exists():
            shutil.rmtree(folder, ignore_errors=True)
            self.index_builder(settings, chosen)
            (folder / COMPLETE_MARK).touch()
        return settings

    def __exit__(self, *exc) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def index_key(settings: Settings, label: str, article_ids: list[str], builder: str) -> str:
    recipe = [builder, {k: str(getattr(settings, k)) for k in INDEX_KEYS}, sorted(article_ids)]
    if settings.embed_backend != "torch":  # appended, so fp32 indexes kept from before keep their keys
        recipe.append(settings.embed_backend)
    return f"{label}-{hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]}"


def build_index(settings: Settings, articles: list[Article]) -> None:
    NewsStore(settings, create=True).ingest(articles, show_progress=False)


# -- one question --------------------------------------------------------------
def _evaluate_one(engine, tokenizer, q: Question, options: EvalOptions) -> dict:
    record: dict = {
        "id": q.id, "question": q.question, "week": q.week, "date": q.date.isoformat() if q.date else None,
        "source": q.source, "answers": q.answers, "choices": q.choices, "answerable": q.answerable,
        "answer_article_ids": q.answer_article_ids, "error": None,
    }
    try:
        retrieval: Retrieval = engine.retrieve(q.question, as_of=q.date)
        chunk_texts = [n.node.get_content() for n in retrieval.ranked]
        record["retrieved"] = retrieval.retrieved_ids
        record["hit_rank"] = first_hit_rank(chunk_texts[:10], q.answers) if q.answers else None
        record["article_rank"] = (first_article_rank(retrieval.chunk_article_ids[:10], q.answer_article_ids)
                                  if q.answer_article_ids else None)
        context = retrieval.context  # a property that joins the sources: build it once
        record["context"] = context  # what the model read: the first thing to look at in a failure
        record["context_hit"] = contains_answer(context, q.answers) if q.answers else None
        record["context_tokens"] = len(tokenizer.tokenize(context)) if context else 0
        record["timings"] = {"retrieve_s": retrieval.retrieve_s, "rank_s": getattr(retrieval, "rank_s", retrieval.retrieve_s),
                             "select_s": getattr(retrieval, "select_s", 0.0)}
        record["best_similarity"] = getattr(retrieval, "best_similarity", None)
        record["relevance"] = getattr(retrieval, "relevance", None)
        if options.retrieval_only:
            return record
        answer = engine.answer(retrieval)
        plain = strip_citations(answer.answer)
        record.update({
            "answer": answer.answer,
            "refused": answer.refused,
            "quoted": answer.quoted,
            "retried": answer.retried,
            "citations": [c.__dict__ for c in answer.citations],
            "checks": [c.as_dict() for c in answer.checks],  # each sentence as the model wrote it and as checked
            "timings": answer.timings,
            "correct": contains_answer(plain, q.answers) if q.answers else None,
            "f1": token_f1(plain, q.answers) if q.answers else None,
            "citation_supported": any(contains_answer(f"{c.title}\n{c.text}", q.answers) for c in answer.citations)
            if q.answers else None,
        })
        if options.choices and q.choices:
            picked = engine.answer(retrieval, choices=q.choices)
            choice = pick_choice(picked.answer, q.choices)
            record.update({"mc_answer": picked.answer, "mc_pick": choice,
                           "mc_correct": choice is not None and choice in q.answers})
    except AssistantError as exc:
        record["error"] = str(exc)
    except Exception as exc:  # one failing question must not end a long run
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


# -- results file ----------------------------------------------------------------
class _ResultWriter:
    def __init__(self, path: Path):
        self._handle = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        # ASCII escapes: article text (now kept as "context") may hold U+2028 or U+0085, which
        # str.splitlines() would take for line ends when the results are read back.
        line = json.dumps(record)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _finished_ids(path: Path) -> set[str]:
    """Ids already answered; a half-written last line (killed mid-write) is cut off."""
    if not path.exists():
        return set()
    good_lines, ids = [], set()
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        # Errored questions are dropped so a rerun tries them again.
        if line.endswith("\n") and not record.get("error") and record.get("id") not in ids:
            good_lines.append(line)
            ids.add(record["id"])
    path.write_text("".join(good_lines), encoding="utf-8")
    return ids


def _read_records(path: Path, wanted: set[str]) -> list[dict]:
    records = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["id"] in wanted:
                records[record["id"]] = record
    return list(records.values())


def metrics_table(metrics: dict) -> str:
    return "\n".join(f"{key:22} {metrics.get(key)}" for key in METRIC_KEYS)
