"""Where answers are lost: how often the gold answer is in each larger slice of what retrieval found.

    python -m benchmarks.reach [--weeks 30] [--seed 2026] [--questions SET]

Per week, default settings, each question with its date (the per-week protocol of
benchmarks.retrieval, reusing its indexes under .cache/indexes). For every question the
gold answer is looked for in: the top 1 / 5 / 10 ranked chunks (their text, as the
evaluator's hit@k; then with the title each chunk is shown under), what the model
reads, the whole text of the top 1 / 2 / 3 / 5 articles of the ranking, and every
article of the week. The step between two rows is what that stage loses; the token
column is what giving the model that slice would cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from assistant.answer import NewsAssistant
from assistant.chunking import counting_tokenizer, embedding_model
from assistant.cli import quiet_libraries
from assistant.evaluation.runner import load_articles
from assistant.evaluation.scoring import contains_answer

from .common import RTQA_ARTICLES, machine, publish
from .tune_retrieval import add_week_options, development_weeks

CHUNK_KS = (1, 5, 10)
ARTICLE_KS = (1, 2, 3, 5)


def slices(retrieval, articles: dict, week_article_ids: list[str]) -> dict[str, str]:
    """Every slice's text, keyed by the table row it is counted in."""
    ranked = retrieval.ranked
    out = {}
    for k in CHUNK_KS:
        out[f"top {k} chunk{'s' if k > 1 else ''}, text only (hit@{k})"] = "\n".join(
            n.node.get_content() for n in ranked[:k])
    for k in CHUNK_KS:
        out[f"top {k} chunk{'s' if k > 1 else ''}, text and the title shown above it"] = "\n".join(
            f"{n.node.metadata.get('title', '')}\n{n.node.get_content()}" for n in ranked[:k])
    out["what the model reads (default context)"] = retrieval.context
    order = list(dict.fromkeys(n.node.metadata.get("article_id") for n in ranked))
    for k in ARTICLE_KS:
        out[f"whole text of the top {k} article{'s' if k > 1 else ''}"] = "\n".join(
            f"{articles[a].title}\n{articles[a].text}" for a in order[:k] if a in articles)
    out["every article of the week"] = "\n".join(
        f"{articles[a].title}\n{articles[a].text}" for a in week_article_ids if a in articles)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    add_week_options(parser)
    args = parser.parse_args()
    quiet_libraries()
    dev = development_weeks(args.questions, args.weeks, args.seed)
    questions, weeks = dev.questions, dev.weeks
    articles = load_articles(RTQA_ARTICLES)

    found: dict[str, list[bool]] = {}
    tokens: dict[str, list[int]] = {}
    for week, week_settings in dev.indexes.items():
        engine = NewsAssistant(week_settings)
        tokenizer = counting_tokenizer(embedding_model(week_settings))
        for q in (q for q in questions if q.week == week):
            retrieval = engine.retrieve(q.question, as_of=q.date)
            for row, text in slices(retrieval, articles, q.article_ids).items():
                found.setdefault(row, []).append(contains_answer(text, q.answers))
                if not row.startswith("every"):  # a whole week is never a context
                    tokens.setdefault(row, []).append(len(tokenizer.tokenize(text)))
        print(f"week {week} done", file=sys.stderr, flush=True)

    lines = [
        "## Where answers are lost: the gold answer in each slice of what retrieval found",
        "",
        f"Command: `python -m benchmarks.reach{dev.flags}`  ",
        f"Machine: {machine()}  ",
        f"Questions: the {len(questions)} questions with `answer_article_ids` of {len(weeks)} RealTimeQA development "
        f"weeks {dev.chosen}: {', '.join(weeks)}; default settings, each question with its date. "
        "Each row: the share of questions whose gold answer (folded) is in that slice, and the slice's mean "
        "length in MiniLM tokens, i.e. what handing it to the model would cost.",
        "",
        "| the gold answer is looked for in | share of questions | mean tokens |",
        "|---|---:|---:|",
    ]
    for row, hits in found.items():
        mean_tokens = f"{statistics.mean(tokens[row]):,.0f}" if row in tokens else "n/a"
        lines.append(f"| {row} | {sum(hits) / len(hits):.3f} | {mean_tokens} |")
    publish("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
