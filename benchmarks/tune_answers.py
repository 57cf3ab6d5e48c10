"""Answer settings tried with the model on the same development questions, side by side.

    python -m benchmarks.tune_answers [--model NAME] [--every 2] --set context_budget_tokens=330,450,700 [--publish]

The answering counterpart of tune_retrieval: every combination of the given
settings answers the same answerable questions (every K-th of the 20-week
development set, open answers only, no multiple choice), one after the other in
this process, so latencies compare on the same machine state. The row with the
settings' defaults is the baseline of the others. With --publish the table goes
into BENCHMARKS.md under a title naming the model and the settings tried.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from assistant.cli import quiet_libraries
from assistant.evaluation.runner import EvalOptions, run_evaluation
from assistant.settings import Settings

from .common import REPO, RTQA_ARTICLES, fmt_metric, machine, publish
from .eval_weeks import CACHE, development_set, split_answerable
from .tune_retrieval import setting_grid, with_overrides

COLUMNS = ("answer_accuracy", "context_hit", "context_tokens", "citation_support", "refusal_answerable",
           "latency_p50_s", "latency_p95_s", "first_token_p50_s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="packaged model (default: the settings' default)")
    parser.add_argument("--weeks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--every", type=int, default=2, metavar="K", help="every K-th answerable question")
    parser.add_argument("--offset", type=int, default=0, metavar="J",
                        help="start at the J-th answerable question (0..K-1): another slice of the same set")
    parser.add_argument("--set", action="append", default=[], required=True, help="name=v1,v2,... (settings)")
    parser.add_argument("--publish", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()
    quiet_libraries()
    questions, weeks = development_set(args.weeks, args.seed, 0)
    answerable, _ = split_answerable(questions.read_text(encoding="utf-8").splitlines())
    if not 0 <= args.offset < args.every:
        parser.error("--offset must be between 0 and --every - 1")
    slice_name = f"every{args.every}" + (f"-from{args.offset}" if args.offset else "")
    subset = questions.with_name(f"{questions.stem}-answerable-{slice_name}.jsonl")
    subset.write_text("\n".join(answerable[args.offset :: args.every]) + "\n", encoding="utf-8")

    base = Settings(embed_cache_dir=CACHE, **({"llm_model": args.model} if args.model else {}))
    names, combinations = setting_grid(args.set)
    rows = []
    started = time.perf_counter()
    for overrides in combinations:
        label = "-".join(f"{k}={v}" for k, v in overrides.items())
        out = REPO / "eval-runs" / "tune-answers" / base.llm_model / slice_name / label
        shutil.rmtree(out, ignore_errors=True)
        metrics = run_evaluation(with_overrides(base, overrides), EvalOptions(
            questions=subset, out=out, articles=RTQA_ARTICLES, per_week=True,
            cache_dir=CACHE, index_cache=CACHE / "indexes"))
        results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
        row = {**overrides, **{k: metrics.get(k) for k in ("n", *COLUMNS)},
               "second_tries": sum(1 for r in results if r.get("retried"))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    wall = time.perf_counter() - started

    if args.publish:
        defaults = {name: getattr(base, name) for name in names}
        this = "python -m benchmarks.tune_answers" + (f" --model {args.model}" if args.model else "") + (
            f" --every {args.every}" if args.every != 2 else "") + (
            f" --offset {args.offset}" if args.offset else "") + "".join(f" --set {s}" for s in args.set) + " --publish"
        lines = [
            f"## Answer settings tried: {', '.join(names)} ({base.llm_model})",
            "",
            f"Command: `{this}` (all rows in the same run, one after the other)  ",
            f"Machine: {machine()}  ",
            (f"Questions: 1 in {args.every} of the {len(answerable)} answerable questions"
             f"{f' (starting at position {args.offset + 1})' if args.offset else ''} of {args.weeks} development "
             f"weeks ({', '.join(weeks)}; seed {args.seed}), in file order: {rows[0]['n']} questions, open answers "
             f"only. Defaults: {', '.join(f'{k}={v}' for k, v in defaults.items())}. Wall time {wall / 60:.1f} min."),
            "",
            "| " + " | ".join([*names, *COLUMNS, "second_tries"]) + " |",
            "|" + "---:|" * (len(names) + len(COLUMNS) + 1),
        ]
        for row in rows:
            cells = [f"{row[n]}{' (default)' if row[n] == defaults[n] else ''}" for n in names]
            cells += [fmt_metric(row.get(k)) for k in (*COLUMNS, "second_tries")]
            lines.append("| " + " | ".join(cells) + " |")
        publish("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
