"""Command line: ``python -m assistant [--index DIR] {ingest,ask,stats} ...``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import warnings

from .errors import AssistantError
from .settings import Settings, env_name


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
    ask.add_argument("--since", type=_date, help="only articles published on or after this date")
    ask.add_argument("--until", type=_date, help="only articles published on or before this date")
    ask.add_argument("--site", action="append", default=[], help="only articles from this site (repeatable)")

    stats = commands.add_parser("stats", help="what the index holds")
    stats.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        overrides = {"index_dir": args.index} if args.index else {}
        settings = Settings(**overrides)
        return COMMANDS[args.command](settings, args)
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
    from .retrieval import RetrievalFilters

    assistant = NewsAssistant(settings)
    filters = RetrievalFilters(since=args.since, until=args.until, sites=tuple(args.site))
    answer = assistant.ask(args.question, filters=filters)
    if args.json:
        print(json.dumps(answer.as_dict(), ensure_ascii=False))
        return 0
    print(answer.answer)
    if answer.citations:
        print()
        for c in answer.citations:
            about = ", ".join(x for x in (c.site, c.published, c.url) if x)
            print(f"[{c.n}] {c.title}{f' ({about})' if about else ''}")
    return 0


def cmd_stats(settings: Settings, args) -> int:
    from .store import NewsStore

    stats = NewsStore(settings).stats()
    if args.json:
        print(json.dumps(stats.as_dict()))
        return 0
    print(f"index:    {stats.location}")
    print(f"articles: {stats.articles}")
    print(f"chunks:   {stats.chunks}")
    print(f"sites:    {len(stats.sites)} ({', '.join(stats.sites[:8])}{', ...' if len(stats.sites) > 8 else ''})")
    print(f"dates:    {stats.earliest or '-'} to {stats.latest or '-'}")
    return 0


COMMANDS = {"ingest": cmd_ingest, "ask": cmd_ask, "stats": cmd_stats}


def _quiet_libraries() -> None:
    """Library chatter (weight-loading bars, deprecation notes) would bury the answer."""
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("transformers", "sentence_transformers", "chromadb", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
