"""Chroma server mode: the test starts the Chroma server shipped in the chromadb package
(`chroma run`) on localhost, ingests the seed corpus into it through the CLI configured by
environment variables only, and checks that asking gives the same answer and citations as
the embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.answer import NewsAssistant
from assistant.llm import build_llm
from assistant.settings import Settings

from .conftest import CORPUS, REPO
from .test_cli import free_port, run_cli

QUESTION = "What is Nissan's Fisker angle?"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    chroma = Path(sys.executable).with_name("chroma")
    log = open(data.parent / f"chroma-server-{port}.log", "w")
    server = subprocess.Popen([str(chroma), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    import chromadb

    deadline = time.monotonic() + 120
    while True:
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
            break
        except Exception:
            assert server.poll() is None, f"chroma run exited: {Path(log.name).read_text()}"
            assert time.monotonic() < deadline, "the Chroma server did not start within 120 s"
            time.sleep(0.5)
    yield port
    server.terminate()
    server.wait(timeout=30)
    log.close()


def test_server_mode_gives_the_same_answer_and_citations_as_embedded(chroma_server, seed_index, tmp_path):
    env = {"ASSISTANT_CHROMA_HOST": "127.0.0.1", "ASSISTANT_CHROMA_PORT": str(chroma_server),
           "ASSISTANT_INDEX_DIR": str(tmp_path / "local")}
    ingest = run_cli("ingest", str(CORPUS), "--quiet", env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert "1 new" in ingest.stdout
    stats = run_cli("stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    server_stats = json.loads(stats.stdout)
    assert server_stats["location"] == f"chroma server 127.0.0.1:{chroma_server}"
    embedded_stats = json.loads(run_cli("--index", str(seed_index), "stats", "--json").stdout)
    assert (server_stats["articles"], server_stats["chunks"]) == (embedded_stats["articles"], embedded_stats["chunks"])
    # Ingesting again over the server changes nothing (the docstore of hashes stays local).
    again = run_cli("ingest", str(CORPUS), "--quiet", env=env)
    assert "1 unchanged; 0 chunks" in again.stdout

    llm = build_llm(Settings())  # the real packaged model, loaded once for both stores
    server = NewsAssistant(Settings(chroma_host="127.0.0.1", chroma_port=chroma_server, index_dir=tmp_path / "local"),
                           llm=llm)
    embedded = NewsAssistant(Settings(index_dir=seed_index), llm=llm)
    from_server, from_embedded = server.ask(QUESTION), embedded.ask(QUESTION)
    assert not from_server.refused and from_server.citations
    assert from_server.answer == from_embedded.answer
    cited = lambda answer: [(c.n, c.article_id, c.title, c.url, c.text) for c in answer.citations]  # noqa: E731
    assert cited(from_server) == cited(from_embedded)
    assert "Fisker" in from_server.answer


def test_cli_against_the_server_from_a_config_file(chroma_server, tmp_path):
    config = tmp_path / "team.toml"
    config.write_text(f'chroma_host = "127.0.0.1"\nchroma_port = {chroma_server}\ncollection = "team_news"\n'
                      f'index_dir = "{tmp_path / "local"}"\n', encoding="utf-8")
    env = {"ASSISTANT_CONFIG": str(config)}
    missing = run_cli("stats", env=env)
    assert missing.returncode == 1 and "no collection 'team_news'" in missing.stderr
    assert run_cli("ingest", str(CORPUS), "--quiet", env=env).returncode == 0
    stats = json.loads(run_cli("stats", "--json", env=env).stdout)
    assert stats["articles"] == 1 and str(REPO) not in stats["location"]

    # A colleague on the same server (own local folder, so own docstore) removes the article; this
    # client's docstore still has its hash, yet ingesting it again writes it back, not "unchanged".
    colleague = {"ASSISTANT_CONFIG": str(config), "ASSISTANT_INDEX_DIR": str(tmp_path / "colleague")}
    removed = run_cli("remove", "seed-nissan-honda-ev-partnership", env=colleague)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(run_cli("stats", "--json", env=env).stdout)["articles"] == 0
    again = run_cli("ingest", str(CORPUS), "--quiet", env=env)
    assert "1 new" in again.stdout, again.stdout + again.stderr
    assert json.loads(run_cli("stats", "--json", env=env).stdout)["articles"] == 1


def test_a_colleagues_correction_reaches_the_keyword_search_with_the_same_chunk_count(chroma_server, tmp_path):
    """Each client of a server keeps its own BM25 index. A colleague's corrected article has as
    many chunks as before, so the server's chunk count does not say that anything changed; the
    write generation on the collection does."""
    from assistant.store import NewsStore

    story = ("---\nid: zoo-escape\ntitle: A zebra escapes from a Seoul zoo\npublished: 2023-03-23\n---\n"
             "A zebra named {name} escaped from Seoul Children's Grand Park on Thursday and ran through "
             "the streets for three hours before keepers brought it back.\n")
    article = tmp_path / "zebra.md"
    article.write_text(story.format(name="Serolo"), encoding="utf-8")
    server = {"chroma_host": "127.0.0.1", "chroma_port": chroma_server, "collection": "corrections"}
    colleague = {"ASSISTANT_CHROMA_HOST": "127.0.0.1", "ASSISTANT_CHROMA_PORT": str(chroma_server),
                 "ASSISTANT_COLLECTION": "corrections", "ASSISTANT_INDEX_DIR": str(tmp_path / "colleague")}
    assert run_cli("ingest", str(article), "--quiet", env=colleague).returncode == 0

    mine = NewsStore(Settings(index_dir=tmp_path / "mine", **server))
    found = lambda word: [n.node.metadata["article_id"] for n in mine.keyword_index().search(word, 5)]  # noqa: E731
    assert found("Serolo") == ["zoo-escape"] and found("Kiboko") == []
    chunks_before = mine.chunk_count()

    article.write_text(story.format(name="Kiboko"), encoding="utf-8")  # the colleague corrects the name
    corrected = run_cli("ingest", str(article), "--quiet", env=colleague)
    assert "1 changed" in corrected.stdout, corrected.stdout + corrected.stderr
    assert mine.chunk_count() == chunks_before  # nothing for a chunk count to notice
    assert found("Kiboko") == ["zoo-escape"] and found("Serolo") == []
