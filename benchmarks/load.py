"""Load benchmark: concurrent clients asking through the app's HTTP API (Gradio's API, via
gradio_client), against `python app.py` with the default model, on localhost.

    python -m benchmarks.load [--clients 8] [--per-client 2] [--week 20220701]

Serves one RealTimeQA development week's articles (an index built under .cache/load-index
on first use) and asks that week's questions. Each question is first asked alone, one at a
time (the reference answers and the single-client latency); then all clients ask at once,
each its own questions. A response counts as mixed if its question or answer differs from
the reference for the question that client asked (answers are deterministic: temperature 0).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from assistant.evaluation.scoring import quantile

from .common import REPO, RTQA, RTQA_ARTICLES, fmt_metric, machine, publish


@dataclass
class LoadResult:
    records: list[dict] = field(default_factory=list)  # client, question, response, latency_s, started, ended
    wall_s: float = 0.0

    @property
    def errors(self) -> list[dict]:
        return [r for r in self.records if "error" in r["response"] or r["response"].get("question") != r["question"]]

    def latency(self, q: float) -> float:
        return quantile([r["latency_s"] for r in self.records], q)

    def max_in_flight(self) -> int:
        """Most requests open at one moment (proves the clients really overlapped)."""
        events = sorted([(r["started"], 1) for r in self.records] + [(r["ended"], -1) for r in self.records])
        level = best = 0
        for _, step in events:
            level += step
            best = max(best, level)
        return best


def drive(url: str, questions_per_client: list[list[str]]) -> LoadResult:
    """Every client (own gradio_client connection and thread) asks its questions in order; all
    start together. Responses are the `/ask` JSON objects."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in questions_per_client]
    start = threading.Barrier(len(clients))
    result = LoadResult()
    lock = threading.Lock()

    def work(number: int, client, questions: list[str]) -> None:
        start.wait()
        for question in questions:
            began = time.perf_counter()
            try:
                response = client.predict(question, "", "", "", api_name="/ask")
            except Exception as exc:  # a failed request is a result here, not a crash
                response = {"error": f"{type(exc).__name__}: {exc}"}
            ended = time.perf_counter()
            with lock:
                result.records.append({"client": number, "question": question, "response": response,
                                       "latency_s": ended - began, "started": began, "ended": ended})

    threads = [threading.Thread(target=work, args=(i, c, qs)) for i, (c, qs) in enumerate(zip(clients, questions_per_client))]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - began
    return result


def mixed(result: LoadResult, reference: dict[str, dict]) -> list[dict]:
    """Responses whose answer or citations differ from the question's answer asked alone."""
    keys = ("answer", "citations", "refused")
    return [r for r in result.records
            if "error" not in r["response"] and any(r["response"].get(k) != reference[r["question"]].get(k) for k in keys)]


# -- the benchmark ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def week_questions(week: str) -> tuple[list[str], list[str]]:
    questions = [json.loads(line) for line in (RTQA / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    chosen = [q for q in questions if q["week"] == week]
    return [q["question"] for q in chosen], sorted({i for q in chosen for i in q["article_ids"]})


def build_index(index: Path, article_ids: list[str], env: dict) -> None:
    if (index / "chroma.sqlite3").exists():
        return
    import gzip

    wanted = set(article_ids)
    feed = index.with_suffix(".jsonl")
    with gzip.open(RTQA_ARTICLES, "rt", encoding="utf-8") as source, open(feed, "w", encoding="utf-8") as out:
        for line in source:
            if json.loads(line)["id"] in wanted:
                out.write(line)
    subprocess.run([sys.executable, "-m", "assistant", "ingest", str(feed), "--quiet"], cwd=REPO, env=env, check=True)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--week", default="20220701")
    args = parser.parse_args()

    questions, article_ids = week_questions(args.week)
    needed = args.clients * args.per_client
    questions = (questions * (needed // len(questions) + 1))[:needed]
    index = REPO / ".cache" / f"load-index-{args.week}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update({"ASSISTANT_INDEX_DIR": str(index), "ASSISTANT_UI_PORT": str(port),
                "ASSISTANT_EMBED_CACHE_DIR": str(REPO / ".cache"), "ASSISTANT_UPLOAD_DIR": str(index / "uploads")})
    build_index(index, article_ids, env)
    server = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        import urllib.request

        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("app.py did not start")
                time.sleep(1)
        unique = list(dict.fromkeys(questions))
        alone = drive(url, [unique])  # one client, one question at a time: the reference
        reference = {r["question"]: r["response"] for r in alone.records}
        loaded = drive(url, [questions[i::args.clients] for i in range(args.clients)])
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)

    wrong = mixed(loaded, reference)
    rows = [("1 client, questions one at a time", alone, 1), (f"{args.clients} concurrent clients", loaded, args.clients)]
    lines = [
        "## Load: concurrent clients through the HTTP API",
        "",
        f"Command: `python -m benchmarks.load --clients {args.clients} --per-client {args.per_client} --week {args.week}`  ",
        f"Machine: {machine()}  ",
        f"Server: `python app.py` (default settings and model) over the {len(article_ids)} articles of RealTimeQA week "
        f"{args.week}; clients use `gradio_client` against `/ask` on localhost, each asking {args.per_client} of that "
        f"week's questions. The single-client run gives every question's reference answer; a concurrent response is "
        f"'mixed' if its answer, citations or refusal differ from that reference. Server peak memory (VmHWM): "
        f"{peak:,.0f} MB.",
        "",
        "| run | requests | errors | mixed | most in flight | latency p50 (s) | latency p95 (s) | wall (s) | requests/min |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result, _ in rows:
        n = len(result.records)
        lines.append(
            f"| {name} | {n} | {len(result.errors)} | {len(mixed(result, reference))} | {result.max_in_flight()} | "
            f"{fmt_metric(result.latency(0.5))} | {fmt_metric(result.latency(0.95))} | {fmt_metric(result.wall_s)} | "
            f"{fmt_metric(60 * n / result.wall_s)} |")
    lines += ["", "The local model answers one question at a time (llama.cpp is not thread-safe; generation holds a "
              "lock), so under load requests queue for it: latency grows with the number of clients while throughput "
              "stays that of one model. A team sharing one server points `llm_backend` at an Ollama or "
              "OpenAI-compatible server that batches requests.", ""]
    publish("\n".join(lines))
    return 1 if loaded.errors or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
