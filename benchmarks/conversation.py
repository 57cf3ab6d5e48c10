"""Questions asked in a conversation: a change of subject must keep its retrieval.

    python -m benchmarks.conversation [--questions .cache/sets/dev-30w-seed2026.jsonl] [--first-weeks 12]

Each development question is asked twice, in the same run: alone, and in a chat right after the
week's previous question (whose gold answer stands in for the assistant's reply), so that it goes
through the follow-up rewrite as in the chat UI and `chat`: the default model's condense step and
the checks on its rewrite (NewsAssistant.condense). Quiz questions stand on their own, so a rewrite
step that works leaves their ranking and context where they are. The table also counts what the
rewrite step searched for, and how long the rewrite took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from assistant.answer import AS_ASKED, REWRITTEN, WITH_LAST_QUESTION, NewsAssistant
from assistant.chunking import counting_tokenizer, embedding_model
from assistant.cli import quiet_libraries
from assistant.evaluation.scoring import compute_metrics, quantile

from .common import fmt_metric, machine, publish
from .tune_retrieval import REPO, development_weeks, retrieval_record

METRICS = ("hit@1", "hit@5", "hit@10", "mrr@10", "context_hit")
# Table labels of what the rewrite step searched for (Standalone.searched_as).
SEARCHED_AS = {AS_ASKED: "as asked", REWRITTEN: "the model's rewrite", WITH_LAST_QUESTION: "previous question + question"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, default=Path(".cache/sets/dev-30w-seed2026.jsonl"))
    parser.add_argument("--first-weeks", type=int, default=12, help="the first N weeks of the set, by date")
    args = parser.parse_args()
    quiet_libraries()
    dev = development_weeks(REPO / args.questions if not args.questions.is_absolute() else args.questions)
    weeks = dev.weeks[: args.first_weeks]
    alone, in_chat, searched, rewrite_s = [], [], dict.fromkeys(SEARCHED_AS.values(), 0), []
    for week in weeks:
        engine = NewsAssistant(dev.indexes[week])
        tokenizer = counting_tokenizer(embedding_model(dev.indexes[week]))
        questions = [q for q in dev.questions if q.week == week]
        for previous, q in zip(questions, questions[1:]):
            started = time.perf_counter()
            standalone = engine.condense(q.question, [(previous.question, f"{previous.answers[0]}.")])
            rewrite_s.append(time.perf_counter() - started)
            searched[SEARCHED_AS[standalone.searched_as]] += 1
            alone.append(retrieval_record(q, engine.retrieve(q.question, as_of=q.date), tokenizer))
            in_chat.append(retrieval_record(q, engine.retrieve(standalone.question, as_of=q.date), tokenizer))
        print(f"{week}: {len(alone)} questions", file=sys.stderr, flush=True)

    rows = {"asked alone": compute_metrics(alone), "asked after the week's previous question (chat)": compute_metrics(in_chat)}
    lines = [
        "## Follow-up rewrite: a change of subject in a conversation",
        "",
        f"Command: `python -m benchmarks.conversation --questions {args.questions} --first-weeks {args.first_weeks}`  ",
        f"Machine: {machine()}  ",
        f"Questions: {len(alone)} questions with `answer_article_ids` of the first {len(weeks)} weeks of "
        f"`{args.questions}` ({', '.join(weeks)}), each but the first of its week asked alone and, in the same "
        "run, in a chat right after the week's previous question (its gold answer as the reply), through the "
        "default model's rewrite and its checks. Each question with its own date; ranking and context as in the "
        "per-week retrieval table.",
        "",
        "| asked | " + " | ".join(METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    lines += [f"| {name} | " + " | ".join(fmt_metric(m[k]) for k in METRICS) + " |" for name, m in rows.items()]
    lines += ["", "| searched for, in the chat | questions |", "|---|---:|"]
    lines += [f"| {kind} | {n} |" for kind, n in searched.items()]
    lines += ["", f"The rewrite (one call of the model per question) took {quantile(rewrite_s, 0.5):.2f} s "
              f"at the median, {quantile(rewrite_s, 0.95):.2f} s at p95."]
    publish("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
