"""Command line: ``python -m assistant [--index DIR] {ingest,ask,chat,remove,stats,eval} ...``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from .errors import AssistantError
from .settings import Settings, env_name


REMOVE_LISTED = 20
NOTHING_MATCHED = "No indexed article matches the filters (--since, --until, --site, --as-of)."
NEW_CONVERSATION = "/new"  # a chat line that forgets the conversation so far


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m assistant", description="Question answering over news articles, with citations.")
    parser.add_argument("--index", metavar="DIR", help=f"index folder (default: {env_name('index_dir')} or ./index)")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add or update articles (files or folders)")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")

    ask = commands.add_parser("ask", help="answer a question with citations")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    add_filter_options(ask)

    ask.add_argument("--as-of", type=_date, default=dt.date.today(),
                     help="the day the question is asked (default today); later articles are ignored")

    chat = commands.add_parser(
        "chat", help="a conversation: questions from standard input, one per line, follow-ups use the earlier turns",
        description=f"Reads questions from standard input, one per line (a prompt when it is a terminal), and "
                    f"answers each with the conversation so far, so a follow-up such as 'and Honda?' is made "
                    f"standalone first. A line '{NEW_CONVERSATION}' starts a new conversation; end of input ends.")
    chat.add_argument("--json", action="store_true",
                      help="one JSON object per question, as `ask --json` prints (an error: question and error)")
    add_filter_options(chat)
    chat.add_argument("--as-of", type=_date, default=None,
                      help="the day the questions are asked (default: today, taken per question)")

    ev = commands.add_parser(
        "eval", help="answer and score a question set",
        usage="python -m assistant eval QUESTIONS --out DIR [options]\n       python -m assistant eval compare DIR_A DIR_B",
    )
    ev.add_argument("target", nargs="+", metavar="QUESTIONS", help="question file (RealTimeQA JSONL, JSONL or CSV), or: compare DIR_A DIR_B")
    ev.add_argument("--out", type=Path, help="output folder (rerun with the same folder to resume)")
    ev.add_argument("--articles", type=Path, help="index this article file into a temporary store first")
    ev.add_argument("--per-week", action="store_true", help="one fresh index per quiz week from its questions' article_ids")
    ev.add_argument("--retrieval-only", action="store_true", help="skip generation; retrieval metrics only")
    ev.add_argument("--choices", action="store_true", help="also ask each question as multiple choice")
    ev.add_argument("--limit", type=int, help="first N questions only")
    ev.add_argument("--workers", type=int, default=1, help="questions answered in parallel")
    ev.add_argument("--cache", type=Path, default=Path(".cache"), help="embedding cache folder (default .cache)")
    ev.add_argument("--keep-indexes", type=Path, metavar="DIR",
                    help="keep the temporary indexes in DIR and reuse them when the same articles come again")

    remove = commands.add_parser(
        "remove", help="remove articles from the index",
        description="Remove the articles matching every criterion given: ids, published before a date, sites.",
    )
    remove.add_argument("ids", nargs="*", metavar="ARTICLE_ID", help="article ids (as `stats --articles` lists them)")
    remove.add_argument("--before", type=_date, help="only articles published before this date")
    remove.add_argument("--site", action="append", default=[], help="only articles from this site (repeatable)")
    remove.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    stats = commands.add_parser("stats", help="what the index holds")
    stats.add_argument("--json", action="store_true")
    stats.add_argument("--articles", action="store_true", help="list the articles (id, published, site, title)")
    return parser


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_date, help="only articles published on or after this date")
    parser.add_argument("--until", type=_date, help="only articles published on or before this date")
    parser.add_argument("--site", action="append", default=[], help="only articles from this site (repeatable)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        overrides = {"index_dir": args.index} if args.index else {}
        settings = Settings(**overrides)
        status = COMMANDS[args.command](settings, args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is handled below
        return status
    except BrokenPipeError:
        # The reader went away (`stats --articles | head`): stop quietly, as other command-line
        # tools do. Python flushes stdout again at exit; pointing it at devnull keeps that quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what the shell reports for a tool stopped by a closed pipe
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def cmd_ingest(settings: Settings, args) -> int:
    from .articles import ArticleLoader
    from .store import NewsStore

    loader = ArticleLoader(max_article_bytes=settings.max_article_bytes)
    articles = list(loader.load(args.paths))
    if not articles and len(loader.problems) <= 1:
        reason = str(loader.problems[0]) if loader.problems else "no article files found"
        raise AssistantError(f"nothing to ingest: {reason}")
    for problem in loader.problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    for note in loader.notes:
        print(f"warning: {note}", file=sys.stderr)
    if not articles:
        raise AssistantError(f"nothing to ingest: all {len(loader.problems)} inputs were skipped (see warnings)")
    store = NewsStore(settings, create=True)
    report = store.ingest(articles, show_progress=not args.quiet)
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(report.summary())
    return 0


def cmd_ask(settings: Settings, args) -> int:
    from .answer import NewsAssistant

    answer_and_print(NewsAssistant(settings), args.question, _filters(args), args.as_of, args.json, args.stream)
    return 0


def cmd_chat(settings: Settings, args) -> int:
    from .answer import NewsAssistant

    assistant = NewsAssistant(settings)
    filters = _filters(args)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"Ask about the indexed articles. '{NEW_CONVERSATION}' starts a new conversation; Ctrl-D ends.",
              file=sys.stderr)
    history: list[tuple[str, str]] = []
    failed = False
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        question = line.strip()
        if not question:
            continue
        if question == NEW_CONVERSATION:
            history = []
            continue
        # A bad question (too long, say) fails its own turn, not the conversation.
        try:
            answer = answer_and_print(assistant, question, filters, args.as_of or dt.date.today(), args.json,
                                      stream=not args.json, history=history)
        except AssistantError as exc:
            failed = True
            print(f"error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"question": question, "error": str(exc)}, ensure_ascii=False), flush=True)
            continue
        history.append(answer.exchange)
        if not args.json:
            print(flush=True)  # a blank line between turns
    if interactive:
        print(file=sys.stderr)
    return 1 if failed else 0


def _filters(args):
    from .retrieval import RetrievalFilters

    return RetrievalFilters.asked(args.since, args.until, args.site)


def answer_and_print(assistant, question: str, filters, as_of: dt.date, as_json: bool, stream: bool,
                     history: list[tuple[str, str]] | None = None):
    """Answer one question (with the conversation's ``history``, if any) and print it as ``ask`` does:
    the JSON object, or the answer (streamed as it is generated) with its sources."""
    if stream and not as_json:
        streamed: list[str] = []

        def show(text: str) -> None:
            streamed.append(text)
            print(text, end="", flush=True)

        answer = assistant.ask(question, filters=filters, as_of=as_of, on_token=show, history=history)
        shown = "".join(streamed).strip()
        if not shown:
            print(answer.answer, end="")  # answered without the model (nothing relevant found)
        elif answer.answer.startswith(shown):
            print(answer.answer[len(shown):], end="")  # e.g. a citation added after the check
        else:
            print(f"\n(final) {answer.answer}", end="")
        print()
    else:
        answer = assistant.ask(question, filters=filters, as_of=as_of, history=history)
    if as_json:
        print(json.dumps(answer.as_dict(), ensure_ascii=False), flush=True)
        return answer
    if not stream:
        print(answer.answer)
    if answer.nothing_matched:
        print(NOTHING_MATCHED)
    if answer.citations:
        print()
        for c in answer.citations:
            print(f"[{c.n}] {article_line(c)}")
    if answer.closest_articles:
        print("\nClosest articles (not enough to answer):")
        for c in answer.closest_articles:
            print(f"- {article_line(c)}")
    return answer


def article_line(c) -> str:
    """'title (site, date, url)', each part only when known."""
    about = ", ".join(x for x in (c.site, c.published, c.url) if x)
    return f"{c.title or c.article_id}{f' ({about})' if about else ''}"


def cmd_remove(settings: Settings, args) -> int:
    from .store import ArticleSelection, NewsStore

    store = NewsStore(settings)
    selection = ArticleSelection(ids=tuple(args.ids), sites=tuple(args.site),
                                 published_before=args.before.isoformat() if args.before else None)
    chosen = store.select_articles(selection)
    missing = sorted(set(args.ids) - {row["id"] for row in chosen})
    if not chosen:
        raise AssistantError("no article in the index matches"
                             + (f" (ids not found: {', '.join(missing)})" if missing else "") + "; nothing removed")
    for article_id in missing:
        print(f"warning: no article '{article_id}' in the index matches", file=sys.stderr)
    # A dry run lists everything (that is its point); a real removal names the first few.
    shown = chosen if args.dry_run else chosen[:REMOVE_LISTED]
    for row in shown:
        print(f"{'would remove' if args.dry_run else 'removing'}: {row['id']}  {row['published'] or '-'}  {row['title']}")
    if len(chosen) > len(shown):
        print(f"... and {len(chosen) - len(shown)} more")
    if args.dry_run:
        print(f"{len(chosen)} articles would be removed")
        return 0
    chunks = store.remove([row["id"] for row in chosen])
    print(f"removed {len(chosen)} articles ({chunks} chunks)")
    return 0


def cmd_stats(settings: Settings, args) -> int:
    from .store import NewsStore

    store = NewsStore(settings)
    if args.articles:
        rows = store.articles()
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        else:
            for row in rows:
                print(f"{row['id']}\t{row['published'] or '-'}\t{row['site'] or '-'}\t{row['title']}")
        return 0
    stats = store.stats()
    if args.json:
        print(json.dumps(stats.as_dict()))
        return 0
    print(f"index:    {stats.location}")
    print(f"articles: {stats.articles}")
    print(f"chunks:   {stats.chunks}")
    print(f"sites:    {len(stats.sites)} ({', '.join(stats.sites[:8])}{', ...' if len(stats.sites) > 8 else ''})")
    print(f"dates:    {stats.earliest or '-'} to {stats.latest or '-'}")
    return 0


def cmd_eval(settings: Settings, args) -> int:
    from .evaluation.report import compare_runs
    from .evaluation.runner import EvalOptions, metrics_table, run_evaluation

    if args.target[0] == "compare":
        if len(args.target) != 3:
            raise AssistantError("usage: python -m assistant eval compare DIR_A DIR_B")
        print(compare_runs(Path(args.target[1]), Path(args.target[2])))
        return 0
    if len(args.target) != 1:
        raise AssistantError("eval takes one question file")
    if args.out is None:
        raise AssistantError("eval needs --out DIR")
    options = EvalOptions(
        questions=Path(args.target[0]), out=args.out, articles=args.articles, per_week=args.per_week,
        retrieval_only=args.retrieval_only, choices=args.choices, limit=args.limit,
        workers=max(1, args.workers), cache_dir=args.cache, index_cache=args.keep_indexes,
    )
    metrics = run_evaluation(settings, options)
    print(metrics_table(metrics))
    print(f"wrote {args.out}/results.jsonl, metrics.json, report.md, report.html")
    return 0


COMMANDS = {"ingest": cmd_ingest, "ask": cmd_ask, "chat": cmd_chat, "remove": cmd_remove, "stats": cmd_stats,
            "eval": cmd_eval}


def quiet_libraries() -> None:
    """Library chatter (weight-loading bars, deprecation notes) would bury the answer."""
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("transformers", "sentence_transformers", "chromadb", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
