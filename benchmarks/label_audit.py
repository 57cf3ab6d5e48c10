"""What the per-week gold labels hold, and the retrieval metrics split by it.

    python -m benchmarks.label_audit --questions .cache/sets/dev-30w-seed2026.jsonl [--publish]

A question's answer articles (`answer_article_ids`) are those of its week whose title or text
contains a gold answer anywhere, so a chunk-level hit can be a passage about the question's story
or a coincidence ("NATO" in a 2017 piece on Russian hacking, for a 2023 cyberattack).
Each question gets the first class that fits, from the passages that hold a gold answer (the
sentence with one sentence either side, in an answer article):

- on story: such a passage shares at least ON_STORY_SHARE of the question's content words
  (stemmed), in an article published by the question's day (plus the as-of grace);
- quiz page: the gold answer stands beside all of the question's choices (a quiz that repeats the
  question with its options: a hit, but one that cannot tell which option is right);
- after the question: the passages on the story were published after the question's day, which
  the as-of rule hides;
- elsewhere: the gold answer occurs only in passages about something else.

Then this project's default retrieval and the llama-index default pipeline are run on the same
questions (retrieval only, the per-week protocol of `benchmarks.retrieval`, same run) and their
metrics are given per class. The classes use only the question, its gold answers and the articles'
text and dates, never what either pipeline retrieved.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from assistant.cli import quiet_libraries
from assistant.articles import Article
from assistant.context import split_sentences
from assistant.evaluation.questions import Question, load_questions
from assistant.evaluation.runner import load_articles
from assistant.evaluation.scoring import compute_metrics, contains_answer
from assistant.settings import Settings
from assistant.text import content_words, stems

from .baselines import default_settings
from .common import RTQA_ARTICLES, fmt_metric, machine, publish
from .retrieval import CACHE, run

# A passage on the question's story shares at least this share of the question's content words. A
# word count, not a reading: of 24 development questions drawn near it (shares 0.15-0.45) and read by
# hand, about a third were on the wrong side, in both directions (a title-only article on the story at
# 0.27; a year-old article on another Covid figure at 0.43), so the classes' sizes hold roughly, not
# question by question.
ON_STORY_SHARE = 0.3
QUIZ_REACH = 6  # sentences (a quiz page puts each option on its own line) around the gold answer
CLASSES = ("on story", "quiz page", "after the question", "elsewhere")
COLUMNS = ("hit@1", "hit@5", "mrr@10", "article_hit@5", "context_hit")


def classify(question: Question, articles: dict[str, Article], grace_days: int) -> str:
    """The question's class (one of CLASSES), from its answer articles (``articles``: id -> article)."""
    asked = stems(content_words(question.question))
    choices = [c for c in question.choices if c.strip()]
    latest = question.date + dt.timedelta(days=grace_days)
    found: set[str] = set()
    for article_id in question.answer_article_ids:
        article = articles.get(article_id)
        if article is None:
            continue
        later = bool(article.published) and dt.date.fromisoformat(article.published) > latest
        sentences = split_sentences(f"{article.title}\n{article.text}")
        for i, sentence in enumerate(sentences):
            if not contains_answer(sentence, question.answers):
                continue
            around = " ".join(sentences[max(0, i - QUIZ_REACH): i + QUIZ_REACH + 1])
            if len(choices) > 1 and all(contains_answer(around, [c]) for c in choices):
                found.add("quiz page")
                continue
            passage = " ".join(sentences[max(0, i - 1): i + 2])
            share = len(asked & stems(content_words(passage))) / (len(asked) or 1)
            if share >= ON_STORY_SHARE:
                found.add("after the question" if later else "on story")
    return next((c for c in CLASSES[:3] if c in found), "elsewhere")


def records(name: str) -> dict[str, dict]:
    """The per-question records a `benchmarks.retrieval.run` wrote, by question id."""
    path = CACHE / "bench-retrieval" / name / "results.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def records_of_run(name: str, questions: Path, settings: Settings, baseline: bool = False) -> dict[str, dict]:
    """Retrieval only, per week (`benchmarks.retrieval.run`), and that run's records by question id."""
    run(name, questions, RTQA_ARTICLES, True, settings, baseline=baseline)
    return records(name)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--publish", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()
    quiet_libraries()
    questions = [q for q in load_questions(args.questions) if q.answer_article_ids]
    articles = load_articles(RTQA_ARTICLES)
    base = Settings(embed_cache_dir=CACHE)
    classes = {q.id: classify(q, articles, base.as_of_grace_days) for q in questions}

    ours = records_of_run("audit-hybrid", args.questions, base)
    theirs = records_of_run("audit-baseline", args.questions, default_settings(base), baseline=True)
    weeks = sorted({q.week for q in questions})
    lines = [
        "## Retrieval by what the gold labels hold, per week",
        "",
        f"Command: `python -m benchmarks.label_audit --questions {args.questions}"
        f"{' --publish' if args.publish else ''}` "
        "(both pipelines retrieval only, per week, in the same run)  ",
        f"Machine: {machine()}  ",
        f"Questions: the {len(questions)} questions with `answer_article_ids` of {len(weeks)} development weeks "
        f"({', '.join(weeks)}), each asked with its own date. Classes (first that fits; `benchmarks/label_audit.py` "
        "says how): **on story**, a passage holding a gold answer (its sentence and one either side) shares at "
        f"least {ON_STORY_SHARE:.0%} of the question's content words, in an article published by the question's day "
        f"(+{base.as_of_grace_days}); **quiz page**, the gold answer stands beside all of the question's choices "
        "(a quiz repeating the question); **after the question**, the on-story passages were published later "
        "than the question's day, which the as-of rule hides; **elsewhere**, the gold answer occurs only in "
        "passages about something else. Ours: default settings; llama-index: its default pipeline (1,024-token "
        "chunks, top 10; context = its query engine's top 2).",
        "",
        "| class | n | share | " + " | ".join(f"{c} ours / llama-index" for c in COLUMNS) + " |",
        "|---|---:|---:|" + "---:|" * len(COLUMNS),
    ]
    for name in (*CLASSES, "all"):
        ids = [i for i, c in classes.items() if name in (c, "all")]
        if not ids:
            continue
        a = compute_metrics([ours[i] for i in ids if i in ours])
        b = compute_metrics([theirs[i] for i in ids if i in theirs])
        cells = " | ".join(f"{fmt_metric(a.get(c))} / {fmt_metric(b.get(c))}" for c in COLUMNS)
        lines.append(f"| {name} | {len(ids)} | {len(ids) / len(classes):.3f} | {cells} |")
    section = "\n".join(lines)
    if args.publish:
        publish(section)
    else:
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
