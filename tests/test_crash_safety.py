"""Crash safety: an ingest killed with SIGKILL (no cleanup runs) and started again ends
with the same index an uninterrupted ingest builds: every article once, no duplicate or
orphan chunks, and nothing that was committed before the kill embedded again."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from assistant.settings import Settings
from assistant.store import DOCSTORE_FILE, NewsStore

from .conftest import REPO, ingest_paths

TOPICS = ["refinery", "battery plant", "port strike", "rail merger", "chip fab", "wind farm", "airline", "steel mill"]
PLACES = ["Ohio", "Texas", "Bavaria", "Osaka", "Gdansk", "Ontario", "Chennai", "Lyon"]


def write_corpus(folder: Path, count: int) -> None:
    rng = random.Random(7)
    folder.mkdir()
    for i in range(count):
        topic, place = rng.choice(TOPICS), rng.choice(PLACES)
        paragraphs = [
            f"The {topic} in {place} reported item {i}: output changed by {rng.randint(1, 90)} percent "
            f"after {rng.choice(['a fire', 'new orders', 'a strike', 'a merger vote'])}." + " Officials gave details about the site, the staff and the outlook for the year." * 6
            for _ in range(rng.randint(2, 8))
        ]
        (folder / f"article-{i:03d}.md").write_text(
            f"---\ntitle: {topic.title()} news {i}\npublished: 2024-0{1 + i % 9}-1{i % 10}\n---\n"
            + "\n\n".join(paragraphs) + "\n", encoding="utf-8")


def ingest_process(index: Path, corpus: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_INGEST_BATCH_ARTICLES"] = "8"  # many commits, so kills land between and inside them
    return subprocess.Popen([sys.executable, "-m", "assistant", "--index", str(index), "ingest", str(corpus), "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(index: Path) -> set[str]:
    """Article ids the docstore records (what a restart will not embed again)."""
    path = index / DOCSTORE_FILE
    if not path.exists():
        return set()
    data = json.loads(path.read_text(encoding="utf-8"))
    return set(data.get("docstore/metadata", {}))


def kill_when(process: subprocess.Popen, index: Path, at_least: int, extra_delay: float) -> None:
    deadline = time.monotonic() + 300
    while len(committed(index)) < at_least:
        assert process.poll() is None, f"ingest ended before the kill: {process.communicate()}"
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.05)
    time.sleep(extra_delay)  # land inside the next batch: Chroma written, docstore not yet
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def chunk_texts(index: Path) -> dict[str, str]:
    records = NewsStore(Settings(index_dir=index)).collection.get(include=["documents"])
    assert len(records["ids"]) == len(set(records["ids"]))
    return dict(zip(records["ids"], records["documents"]))


def test_ingest_killed_twice_then_rerun_equals_an_uninterrupted_ingest(tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 120)
    reference = chunk_texts(ingest_paths(Settings(index_dir=tmp_path / "reference"), [corpus]).settings.index_dir)
    index = tmp_path / "index"

    first = ingest_process(index, corpus)
    kill_when(first, index, at_least=8, extra_delay=0.0)  # right after the first commit
    second = ingest_process(index, corpus)
    kill_when(second, index, at_least=len(committed(index)) + 16, extra_delay=0.7)
    done_before = committed(index)
    assert 8 <= len(done_before) < 120

    final = ingest_process(index, corpus)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    # Nothing committed before the kill is embedded again.
    articles_of = lambda ids: {i.rsplit("#", 1)[0] for i in ids}  # noqa: E731
    committed_chunks = sum(1 for chunk in reference if chunk.rsplit("#", 1)[0] in done_before)
    summary = re.search(r"(\d+) articles: (\d+) new, (\d+) changed, (\d+) unchanged; (\d+) chunks embedded", out)
    assert summary, out
    seen, new, changed, unchanged, embedded = map(int, summary.groups())
    assert (seen, unchanged, changed) == (120, len(done_before), 0)
    assert embedded == len(reference) - committed_chunks
    # The same chunks, ids and texts as the uninterrupted ingest: no duplicate, none missing, no orphan.
    assert chunk_texts(index) == reference
    assert len(committed(index)) == 120 and articles_of(reference) == committed(index)
    store = NewsStore(Settings(index_dir=index))
    assert store.stats().articles == 120
    assert store.keyword_index().chunk_count == len(reference)


def test_article_changed_after_a_kill_between_chroma_and_docstore_leaves_no_stale_chunks(tmp_path):
    """The window a kill can hit: chunks written to Chroma, docstore not yet saved. If the
    article then changes (a shorter version) before the rerun, none of its old chunks survive."""
    from assistant.articles import make_article

    settings = Settings(index_dir=tmp_path / "index")
    long_text = "\n\n".join(f"Paragraph {i} on the port strike in Gdansk. " + "Cranes stood idle all day. " * 12
                            for i in range(6))
    store = NewsStore(settings, create=True)
    store.ingest([make_article(article_id="strike", title="Port strike", text=long_text)], show_progress=False)
    assert store.chunk_count() >= 3
    (settings.index_dir / DOCSTORE_FILE).unlink()  # as if killed before the docstore was written

    rerun = NewsStore(settings)
    rerun.ingest([make_article(article_id="strike", title="Port strike", text="The strike ended on Friday.")],
                 show_progress=False)
    assert chunk_texts(settings.index_dir) == {"strike#0": "The strike ended on Friday."}


class Killed(BaseException):
    """Stands for the process dying at that point (nothing after it runs)."""


def test_remove_killed_between_docstore_and_chroma_can_be_redone_or_undone(tmp_path):
    """remove() forgets the article in the docstore first, then deletes its chunks. Dying in
    between leaves chunks the docstore does not know: removing again finds and deletes them, and
    ingesting the article again replaces them (never skipped as unchanged)."""
    from assistant.articles import make_article

    settings = Settings(index_dir=tmp_path / "index")
    text = "\n\n".join(f"Paragraph {i} on the port strike in Gdansk. " + "Cranes stood idle all day. " * 12
                       for i in range(4))
    articles = [make_article(article_id="strike", title="Port strike", text=text),
                make_article(article_id="fair", title="Book fair", text="The book fair opened in Leipzig.")]
    store = NewsStore(settings, create=True)
    store.ingest(articles, show_progress=False)
    reference = chunk_texts(settings.index_dir)

    def die(*args, **kwargs):
        raise Killed()

    store.collection.delete = die
    try:
        store.remove(["strike"])
    except Killed:
        pass
    assert "strike" not in committed(settings.index_dir)

    # Undo: ingesting the article again restores exactly the chunks it had.
    report = NewsStore(settings).ingest(articles, show_progress=False)
    assert (report.added, report.unchanged) == (1, 1)
    assert chunk_texts(settings.index_dir) == reference

    # Redo: after another such death, removing again finishes the job.
    store = NewsStore(settings)
    store.collection.delete = die
    try:
        store.remove(["strike"])
    except Killed:
        pass
    store = NewsStore(settings)
    assert {row["id"] for row in store.articles()} == {"strike", "fair"}  # its chunks are still there
    assert store.remove(["strike"]) == len(reference) - 1
    assert chunk_texts(settings.index_dir) == {"fair#0": reference["fair#0"]}
    assert committed(settings.index_dir) == {"fair"}
