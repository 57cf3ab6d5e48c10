"""Development question sets drawn from the shared RealTimeQA data by a fixed seed.

    python -m benchmarks.question_sets --weeks 20 --seed 2026 --out .cache/sets/dev-20w.jsonl

Writes the questions of N randomly chosen weeks that have `answer_article_ids`
(so retrieval can be scored), and prints the chosen weeks. With
`--unanswerable`, also writes as many unanswerable questions: questions from a
week at least 300 days away, re-assigned to a chosen week, whose gold answers
appear in none of that week's articles (`"answerable": false`). With
`--exclude-weeks-of SET` (repeatable) the weeks of other sets are left out: the held-out
check of tuned settings is

    python -m benchmarks.question_sets --weeks 16 --seed 7 \
        --exclude-weeks-of .cache/sets/dev-30w-seed2026.jsonl --out .cache/sets/heldout-seed7.jsonl

and every third of the 30 weeks by date (131 questions, a spread subset for sweeps that rebuild
every week's index, such as chunk sizes) is

    python -m benchmarks.question_sets --weeks 30 --seed 2026 --every-nth-week 3 --out .cache/sets/dev-10w-every3.jsonl

The weeks in neither of the first two (training data for a learned ranking, so that both
scored sets stay out of sample) are

    python -m benchmarks.question_sets --weeks 80 --seed 2026 \
        --exclude-weeks-of .cache/sets/dev-30w-seed2026.jsonl \
        --exclude-weeks-of .cache/sets/heldout-seed7.jsonl --out .cache/sets/other-39w.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "realtimeqa"


def load_questions() -> list[dict]:
    return [json.loads(line) for line in (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def choose_weeks(questions: list[dict], n: int, seed: int) -> list[str]:
    # A seeded shuffle, then the first n: a smaller set is a subset of a larger one
    # with the same seed, so their per-week indexes share the embedding cache.
    weeks = sorted({q["week"] for q in questions if q["answer_article_ids"]})
    random.Random(seed).shuffle(weeks)
    return sorted(weeks[:n])


def week_texts(questions: list[dict], weeks: list[str]) -> dict[str, str]:
    from assistant.evaluation.scoring import fold

    wanted = {w: {i for q in questions if q["week"] == w for i in q["article_ids"]} for w in weeks}
    all_ids = set().union(*wanted.values())
    texts: dict[str, str] = {}
    with gzip.open(DATA / "articles.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            article = json.loads(line)
            if article["id"] in all_ids:
                texts[article["id"]] = fold(f"{article.get('title') or ''} {article.get('text') or ''}")
    return {w: " " + " ".join(texts.get(i, "") for i in ids) + " " for w, ids in wanted.items()}


def unanswerable(questions: list[dict], weeks: list[str], count: int, seed: int) -> list[dict]:
    from assistant.evaluation.scoring import fold

    rng = random.Random(seed + 1)
    corpus = week_texts(questions, weeks)
    pool = [q for q in questions if q["answers"] and all(len(fold(a)) >= 3 for a in q["answers"])]
    rng.shuffle(pool)
    out, per_week = [], {w: 0 for w in weeks}
    target = -(-count // len(weeks))
    used: set[str] = set()
    # First pass spreads the questions evenly over the weeks; a second pass, with no per-week
    # cap, fills what the even spread could not (some weeks reject many candidates).
    for cap in (target, count):
        for q in pool:
            if len(out) >= count:
                break
            if q["id"] in used:
                continue
            asked = date.fromisoformat(q["date"])
            for week in rng.sample(weeks, len(weeks)):
                week_day = date(int(week[:4]), int(week[4:6]), int(week[6:]))
                if per_week[week] >= cap or abs((week_day - asked).days) < 300:
                    continue
                if any(f" {fold(a)} " in corpus[week] for a in q["answers"]):
                    continue
                week_date = next(x["date"] for x in questions if x["week"] == week)
                out.append({"id": f"unanswerable/{week}/{q['id']}", "week": week, "date": week_date,
                            "source": "unanswerable", "question": q["question"], "choices": q["choices"],
                            "answers": q["answers"], "article_ids": [], "answer_article_ids": [],
                            "answerable": False})
                per_week[week] += 1
                used.add(q["id"])
                break
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--unanswerable", action="store_true")
    parser.add_argument("--exclude-weeks-of", type=Path, action="append", default=[], metavar="SET",
                        help="leave out the weeks of this question set (repeatable; a held-out set for checking tuned settings)")
    parser.add_argument("--every-nth-week", type=int, default=1, metavar="N",
                        help="keep every N-th of the chosen weeks by date, from the first: a subset spread over "
                             "the same period, for sweeps that rebuild every week's index")
    args = parser.parse_args()
    if args.every_nth_week < 1:
        parser.error("--every-nth-week must be 1 or more")
    questions = load_questions()
    weeks = choose_weeks(questions, args.weeks, args.seed)
    if args.exclude_weeks_of:
        from assistant.evaluation.questions import load_questions as load_set

        taken = {q.week for path in args.exclude_weeks_of for q in load_set(path)}
        weeks = [w for w in weeks if w not in taken]
    weeks = weeks[::args.every_nth_week]
    chosen = [q for q in questions if q["week"] in weeks and q["answer_article_ids"]]
    # The per-week index is built from all of that week's questions' articles, as in the issue's protocol.
    week_articles = {w: sorted({i for q in questions if q["week"] == w for i in q["article_ids"]}) for w in weeks}
    for q in chosen:
        q["article_ids"] = week_articles[q["week"]]
    if args.unanswerable:
        extra = unanswerable(questions, weeks, len(chosen), args.seed)
        for q in extra:
            q["article_ids"] = week_articles[q["week"]]
        chosen += extra
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in chosen), encoding="utf-8")
    print(f"{len(chosen)} questions from weeks {', '.join(weeks)} -> {args.out}", file=sys.stderr)
    print(" ".join(weeks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
