"""Follow-ups that lean on the conversation: does the rewrite find what the user means?

    python -m benchmarks.follow_ups [--questions .cache/sets/dev-30w-seed2026.jsonl] [--pairs benchmarks/follow_ups.jsonl]

benchmarks/follow_ups.jsonl holds hand-written two-turn exchanges over the development weeks: a
first question that brings up a story, then a follow-up a reader would ask next, which only makes
sense after it ("Why is Texas Pete hot sauce being sued?" -> "So where is it actually made?"). Each
follow-up asks for the fact of one development question (its "id"), so that question's gold answer
scores the follow-up's retrieval. The "kind" says how the follow-up leans: "pronoun" (a pronoun
for what the first question named), "reply" (a pronoun for what only the answer to the first
question names: "Which actor died this week at 77?" -> "What show was he best known for?") and
"elliptical" (no pronoun at all: "To which country?", "And best supporting actress?").

The chat before the follow-up is as in the chat UI: an unrelated question of the same week (its gold
answer as the reply), then the first question with the assistant's real answer. The follow-up is
then searched several ways, each with its week's date: as the chat does it now
(NewsAssistant.condense, which shows the model the last CONDENSE_TURNS exchanges), with the
rewrite shown only the last exchange, as asked (no rewrite), always glued to the previous question
(the rewrite's fallback), and, for reference, the development question itself, which names
everything. The exchanges were written without looking at retrieval results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from assistant.answer import NewsAssistant, with_last_question
from assistant.chunking import counting_tokenizer, embedding_model
from assistant.cli import quiet_libraries
from assistant.evaluation.scoring import compute_metrics, quantile

from .common import fmt_metric, machine, publish
from .conversation import SEARCHED_AS
from .tune_retrieval import REPO, development_weeks, retrieval_record

METRICS = ("hit@1", "hit@5", "hit@10", "mrr@10", "article_hit@5", "context_hit")
PAIRS = Path("benchmarks/follow_ups.jsonl")
KINDS = ("pronoun", "reply", "elliptical")  # how a follow-up leans on the conversation (see above)
WAYS = {
    "chat": "the follow-up in the chat, as now (the rewrite sees up to 3 exchanges)",
    "last_exchange": "the rewrite sees only the last exchange",
    "as_asked": "the follow-up as asked, no rewrite",
    "glued": "previous question + follow-up, always",
    "reference": "for reference: the development question itself (names everything)",
}


def load_pairs(path: Path) -> list[dict]:
    """The exchanges of a follow-up file; a line without the four keys or with an unknown kind is an error."""
    pairs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for number, pair in enumerate(pairs, start=1):
        if set(pair) != {"id", "kind", "first", "follow_up"} or pair["kind"] not in KINDS:
            raise SystemExit(f"{path}: exchange {number} needs exactly id, kind ({', '.join(KINDS)}), first, follow_up")
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, default=Path(".cache/sets/dev-30w-seed2026.jsonl"))
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--details", type=Path, help="also write each follow-up's rewrites and ranks here (JSONL)")
    args = parser.parse_args()
    quiet_libraries()
    dev = development_weeks(REPO / args.questions if not args.questions.is_absolute() else args.questions)
    by_id = {q.id: q for q in dev.questions}
    pairs = load_pairs(REPO / args.pairs)
    missing = [p["id"] for p in pairs if p["id"] not in by_id]
    if missing:
        raise SystemExit(f"{len(missing)} follow-ups ask questions that are not in {args.questions}: {missing[:3]}")
    records = {way: [] for way in WAYS}
    searched = {"chat": Counter(), "last_exchange": Counter()}
    rewrite_s, details = [], []
    weeks = sorted({by_id[p["id"]].week for p in pairs})
    for week in weeks:
        engine = NewsAssistant(dev.indexes[week])
        tokenizer = counting_tokenizer(embedding_model(dev.indexes[week]))
        for pair in (p for p in pairs if by_id[p["id"]].week == week):
            q = by_id[pair["id"]]
            # An unrelated earlier exchange, as a real chat has: the week's first other question.
            other = next(o for o in dev.questions if o.week == week and o.id != q.id and o.answers != q.answers)
            first_answer = engine.ask(pair["first"], as_of=q.date).answer
            history = [(other.question, f"{other.answers[0]}."), (pair["first"], first_answer)]
            started = time.perf_counter()
            rewrites = {"chat": engine.condense(pair["follow_up"], history)}
            rewrite_s.append(time.perf_counter() - started)
            rewrites["last_exchange"] = engine.condense(pair["follow_up"], history[-1:])
            searches = {way: rewrite.question for way, rewrite in rewrites.items()}
            searches["as_asked"] = pair["follow_up"]
            searches["glued"] = with_last_question(pair["first"], pair["follow_up"])
            searches["reference"] = q.question
            detail = {"id": q.id, "kind": pair["kind"], "first_answer": first_answer, "searched": searches}
            for way, text in searches.items():
                record = retrieval_record(q, engine.retrieve(text, as_of=q.date), tokenizer) | {"kind": pair["kind"]}
                records[way].append(record)
                detail[f"{way}_rank"] = record["hit_rank"]
            for way in searched:
                searched[way][SEARCHED_AS[rewrites[way].searched_as]] += 1
            details.append(detail)
            print(f"{q.id} [{pair['kind']}] {pair['follow_up']!r} -> {searches['chat']!r} "
                  f"(rank {detail['chat_rank']}, as asked {detail['as_asked_rank']})", file=sys.stderr, flush=True)
    if args.details:
        args.details.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in details), encoding="utf-8")

    lines = [
        "## Follow-ups that lean on the conversation",
        "",
        f"Command: `python -m benchmarks.follow_ups --questions {args.questions} --pairs {args.pairs}`  ",
        f"Machine: {machine()}  ",
        f"Follow-ups: {len(pairs)} hand-written two-turn exchanges over {len(weeks)} development weeks of "
        f"`{args.questions}` (`{args.pairs}`; " + ", ".join(f"{n} {k}" for k, n in Counter(p['kind'] for p in pairs).items())
        + "), each after an unrelated exchange of the same week; the first question is answered by the default "
        "model, and the follow-up is scored with the gold answer of the development question it asks. "
        "All rows in the same run, each follow-up with its week's date; ranking and context as in the per-week table.",
        "",
        "| follow-up searched as | " + " | ".join(METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for way, label in WAYS.items():
        m = compute_metrics(records[way])
        lines.append(f"| {label} | " + " | ".join(fmt_metric(m[k]) for k in METRICS) + " |")
    lines += ["", "In the chat, by kind of follow-up:", "", "| kind | follow-ups | " + " | ".join(METRICS) + " |",
              "|---|---:|" + "---:|" * len(METRICS)]
    for kind in dict.fromkeys(p["kind"] for p in pairs):
        kind_records = [r for r in records["chat"] if r["kind"] == kind]
        m = compute_metrics(kind_records)
        lines.append(f"| {kind} | {len(kind_records)} | " + " | ".join(fmt_metric(m[k]) for k in METRICS) + " |")
    lines += ["", "| what the rewrite step searched for | rewrite sees up to 3 exchanges | only the last |", "|---|---:|---:|"]
    for kind in SEARCHED_AS.values():
        lines.append(f"| {kind} | {searched['chat'][kind]} | {searched['last_exchange'][kind]} |")
    lines += ["", f"The rewrite (as in the chat) took {quantile(rewrite_s, 0.5):.2f} s at the median, "
              f"{quantile(rewrite_s, 0.95):.2f} s at p95."]
    publish("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
