"""Ingestion and query speed at archive scale, beside the plain llama-index default
pipeline, in one run.

    python -m benchmarks.ingest [--sizes 1000,4000,all] [--baseline-articles 1000]

Steps, each in its own subprocess (so wall time and peak memory are its own):
1. raw `encode()` speed of the embedder on 1,000 of our chunks, fp32 torch and
   the default int8 ONNX export: the ceiling for chunks/s;
2. the llama-index default pipeline (`VectorStoreIndex.from_documents`, fp32)
   on the first N articles, into a fresh Chroma store;
3. this project's `NewsStore.ingest`, growing one fresh index through each size
   (the first 1,000 articles, then the next ones up to 4,000, then all): each
   step embeds only the articles it adds, as a user's incremental ingest does;
4. after each step, a serving process opens the index and runs retrieval (no
   LLM) for the development questions, each with its own date: latency and the
   process's peak memory at that size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assistant.evaluation.scoring import quantile

from .common import REPO, RTQA_ARTICLES as RTQA, machine, publish

ENCODE_SAMPLE = 1000
QUESTIONS = REPO / ".cache" / "sets" / "dev-30w-seed2026.jsonl"


def slice_articles(start: int, stop: int | None, loader=None):
    from assistant.articles import ArticleLoader

    return list(itertools.islice((loader or ArticleLoader()).load([RTQA]), start, stop))


def peak_rss_mb() -> float:
    # VmHWM: this process's resident peak (ru_maxrss would include reaped children).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_encode(args) -> dict:
    from llama_index.core.schema import MetadataMode

    from assistant.chunking import article_to_document, embedding_model, make_splitter
    from assistant.settings import Settings

    settings = Settings(embed_backend=args.backend)
    embed = embedding_model(settings)
    nodes = make_splitter(settings, embed)([article_to_document(a) for a in slice_articles(0, 200)])
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes[:args.stop or ENCODE_SAMPLE]]
    embed._model.encode(texts[:32], batch_size=settings.embed_batch_size)  # warm-up
    started = time.perf_counter()
    embed._model.encode(texts, batch_size=settings.embed_batch_size)
    return {"chunks": len(texts), "wall_s": time.perf_counter() - started}


def worker_baseline(args) -> dict:
    """llama-index defaults: VectorStoreIndex.from_documents into Chroma, the same model in fp32."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.chunking import embedding_model
    from assistant.settings import Settings

    articles = slice_articles(0, args.stop)
    embed = embedding_model(Settings(embed_backend="torch"))
    documents = [
        Document(text=a.text, id_=a.id, metadata={"title": a.title, "site": a.site or "", "published": a.published or ""})
        for a in articles
    ]
    started = time.perf_counter()
    client = chromadb.PersistentClient(path=args.index, settings=ChromaSettings(anonymized_telemetry=False))
    store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("baseline"))
    VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed
    )
    wall = time.perf_counter() - started
    return {"articles": len(articles), "chunks": store._collection.count(), "wall_s": wall}


def worker_ours(args) -> dict:
    """Grow the index to the first ``stop`` articles; only the new ones are embedded."""
    from assistant.chunking import embedding_model
    from assistant.settings import Settings
    from assistant.store import NewsStore

    settings = Settings(index_dir=Path(args.index))
    embedding_model(settings)  # model load is not ingestion
    started = time.perf_counter()
    # Reading and de-duplicating the articles is part of ingesting them.
    from assistant.articles import ArticleLoader

    loader = ArticleLoader()
    articles = slice_articles(0, args.stop, loader)
    report = NewsStore(settings, create=True).ingest(articles, show_progress=True)
    wall = time.perf_counter() - started
    return {"articles": report.added + report.updated, "total_articles": len(articles),
            "skipped": len(loader.problems), "chunks": report.chunks_written, "wall_s": wall}


def worker_query(args) -> dict:
    """Open the index as the app does and retrieve (no LLM) for every question."""
    import datetime as dt

    from assistant.answer import NewsAssistant
    from assistant.evaluation.scoring import first_hit_rank
    from assistant.settings import Settings

    questions = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    started = time.perf_counter()
    engine = NewsAssistant(Settings(index_dir=Path(args.index)))
    engine.retrieve("warm-up question about the news")
    open_s = time.perf_counter() - started
    stats = engine.store.stats()
    present = {a["id"] for a in engine.store.articles()}
    rank_s, retrieve_s, hits, in_scope = [], [], 0, 0
    for q in questions:
        retrieval = engine.retrieve(q["question"], as_of=dt.date.fromisoformat(q["date"]))
        rank_s.append(retrieval.rank_s)
        retrieve_s.append(retrieval.retrieve_s)
        if set(q.get("answer_article_ids") or []) & present:
            in_scope += 1
            rank = first_hit_rank([n.node.get_content() for n in retrieval.ranked][:5], q["answers"])
            hits += rank is not None
    return {"articles": stats.articles, "chunks": stats.chunks, "questions": len(questions), "open_s": open_s,
            "rank_p50_s": quantile(rank_s, 0.5), "rank_p95_s": quantile(rank_s, 0.95),
            "retrieve_p50_s": quantile(retrieve_s, 0.5), "retrieve_p95_s": quantile(retrieve_s, 0.95),
            "in_scope": in_scope, "hit@5": hits / in_scope if in_scope else None}


WORKERS = {"encode": worker_encode, "baseline": worker_baseline, "ours": worker_ours, "query": worker_query}


def run_worker(name: str, **options) -> dict:
    command = [sys.executable, "-m", "benchmarks.ingest", "--worker", name]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    print(f"running {name} {options} ...", file=sys.stderr, flush=True)
    # stderr passes through: the ingest progress bar shows while a step runs.
    out = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {result}", file=sys.stderr, flush=True)
    return result


def render(command: str, encode: dict, baseline: dict, steps: list[tuple[dict, dict]], n_baseline: int) -> str:
    int8_rate = encode["onnx-int8"]["chunks"] / encode["onnx-int8"]["wall_s"]
    fp32_rate = encode["torch"]["chunks"] / encode["torch"]["wall_s"]
    first = steps[0][0]
    ours_rate = first["chunks"] / first["wall_s"]
    all_chunks = sum(s["chunks"] for s, _ in steps)
    all_wall = sum(s["wall_s"] for s, _ in steps)
    all_articles = sum(s["articles"] for s, _ in steps)

    def ingest_row(name, r):
        return (f"| {name} | {r['articles']:,} | {r['chunks']:,} | {r['wall_s']:.1f} | {r['articles'] / r['wall_s']:.2f} | "
                f"{r['chunks'] / r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} |")

    lines = [
        "## Ingestion and query speed at archive scale",
        "",
        f"Command: `{command}` (every row below measured in the same run)  ",
        f"Machine: {machine()}  ",
        "Data: `../shared/data/realtimeqa/articles.jsonl.gz` in file order; this project grows one fresh embedded "
        "index through each size (each step embeds only the articles it adds); the llama-index default pipeline "
        f"ingests the first {n_baseline:,} articles into a fresh store. Each step runs in its own process."
        + (f" The loader skips {steps[-1][0]['skipped']} lines of the file that have no text (reported, not "
           "ingested), so the whole archive is the rest." if steps[-1][0].get("skipped") else ""),
        "",
        "### Ingestion",
        "",
        "| pipeline | articles added | chunks | wall s | articles/s | chunks/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        ingest_row(f"llama-index defaults, first {n_baseline:,} articles (1,024-token chunks cut to the model's "
                   "first 256 tokens; fp32)", baseline),
    ]
    for step, query in steps:
        lines.append(ingest_row(f"this project, growing the index to {query['articles']:,} articles "
                                "(every token embedded; int8 encoder)", step))
    lines.append(ingest_row("this project, all steps together", {
        "articles": all_articles, "chunks": all_chunks, "wall_s": all_wall,
        "peak_rss_mb": max(s["peak_rss_mb"] for s, _ in steps)}))
    lines += [
        "",
        f"Raw `encode()` on {encode['torch']['chunks']:,} of our chunks: fp32 torch {fp32_rate:.1f} chunks/s, "
        f"int8 ONNX (the default `embed_backend=onnx-int8`) {int8_rate:.1f} chunks/s ({int8_rate / fp32_rate:.2f}x). "
        f"The whole pipeline (read, chunk, embed, write to Chroma and the docstore, update BM25) runs at "
        f"{ours_rate / int8_rate:.0%} of the int8 encoder's raw speed on the first step and "
        f"{all_chunks / all_wall / int8_rate:.0%} over all steps. Per article, this project ingests at "
        f"{all_articles / all_wall / (baseline['articles'] / baseline['wall_s']):.2f}x the default pipeline's speed "
        f"while embedding {all_chunks / all_articles:.1f} chunks per article where the default embeds "
        f"{baseline['chunks'] / baseline['articles']:.1f} (truncated) ones.",
        "",
        "### Query speed as the archive grows",
        "",
        f"Each size: a fresh serving process opens the index (embedder, Chroma, BM25) and retrieves for the "
        f"{steps[0][1]['questions']} development questions of `{QUESTIONS.relative_to(REPO)}`, each with its own date "
        "(no LLM). `rank` is hybrid ranking; `retrieve` adds the relevance gate and sentence selection, i.e. everything "
        "before the model. hit@5 counts the questions with a gold article in the index at that size. Peak RSS is the "
        "serving process's.",
        "",
        "| articles | chunks | open s | rank p50 ms | rank p95 ms | retrieve p50 ms | retrieve p95 ms | questions in scope | hit@5 | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, q in steps:
        hit = f"{q['hit@5']:.3f}" if q["hit@5"] is not None else "n/a"
        lines.append(f"| {q['articles']:,} | {q['chunks']:,} | {q['open_s']:.1f} | {q['rank_p50_s'] * 1000:.0f} | "
                     f"{q['rank_p95_s'] * 1000:.0f} | {q['retrieve_p50_s'] * 1000:.0f} | {q['retrieve_p95_s'] * 1000:.0f} | "
                     f"{q['in_scope']} | {hit} | {q['peak_rss_mb']:.0f} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,4000,all", help="index sizes to grow through (article counts or 'all')")
    parser.add_argument("--baseline-articles", type=int, default=1000)
    parser.add_argument("--encode-chunks", type=int, default=ENCODE_SAMPLE, help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, default=None, help="keep the grown index in this folder")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from assistant.cli import quiet_libraries

        quiet_libraries()
        result = WORKERS[args.worker](args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0
    if not RTQA.exists() or not QUESTIONS.exists():
        print(f"error: needs {RTQA} (the shared RealTimeQA data) and {QUESTIONS} "
              "(python -m benchmarks.question_sets --weeks 30 --seed 2026)", file=sys.stderr)
        return 1
    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
    encode = {backend: run_worker("encode", backend=backend, stop=args.encode_chunks) for backend in ("torch", "onnx-int8")}
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as folder:
        baseline = run_worker("baseline", index=folder, stop=args.baseline_articles)
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        print(f"error: --keep {args.keep} is not empty (the benchmark grows a fresh index)", file=sys.stderr)
        return 1
    index = args.keep or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    steps = []
    try:
        for size in sizes:
            step = run_worker("ours", index=index, **({"stop": size} if size else {}))
            steps.append((step, run_worker("query", index=index)))
    finally:
        if args.keep is None:
            shutil.rmtree(index, ignore_errors=True)
    command = "python -m benchmarks.ingest" + (f" --sizes {args.sizes}" if args.sizes != "1000,4000,all" else "") + (
        f" --baseline-articles {args.baseline_articles}" if args.baseline_articles != 1000 else "")
    publish(render(command, encode, baseline, steps, args.baseline_articles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
