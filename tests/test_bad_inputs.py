"""The bad-input catalogue: every bad input a user can hand the assistant gets one clear
error line naming the input, and the index it was given is left exactly as it was.

Runs the CLI in-process (``assistant.cli.main``, the same code path as ``python -m
assistant``) against a copy of the seed index, and snapshots the index before and after:
every chunk id and text in Chroma, the docstore file and the BM25 index metadata.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.settings import Settings
from assistant.store import DOCSTORE_FILE, KEYWORD_DIR, KEYWORD_META, NewsStore


def snapshot(index: Path) -> dict:
    """Everything that makes up the index, in comparable form."""
    store = NewsStore(Settings(index_dir=index))
    records = store.collection.get(include=["documents", "metadatas"])
    chunks = sorted(zip(records["ids"], records["documents"]))
    return {
        "chunks": chunks,
        "docstore": hashlib.sha256((index / DOCSTORE_FILE).read_bytes()).hexdigest(),
        "bm25": (index / KEYWORD_DIR / KEYWORD_META).read_text(encoding="utf-8"),
    }


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The one error line, last; anything before it is one warning line per skipped input."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert all(line.startswith("warning: skipped ") for line in lines[:-1]), err
    return lines[-1]


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


# name -> (files to create under the case folder, the path to ingest, words the error must contain)
FILE_CASES = {
    "empty file": ({"empty.md": b""}, "empty.md", ["empty.md", "file is empty"]),
    "binary file": ({"photo.txt": bytes(range(256)) * 64}, "photo.txt", ["photo.txt", "binary file"]),
    "invalid UTF-8": ({"latin1.txt": "Caf\xe9 au lait\nprix en baisse".encode("latin-1")}, "latin1.txt",
                      ["latin1.txt", "not valid UTF-8", "0xe9"]),
    "malformed JSON lines": ({"feed.jsonl": '{"id": "a", "text": \nnot json either\n'}, "feed.jsonl",
                             ["feed.jsonl", "malformed JSON"]),
    "malformed JSON file": ({"feed.json": '[{"id": "a", "text": "x"'}, "feed.json", ["feed.json", "malformed JSON"]),
    "article with no text": ({"blank.md": "---\ntitle: A title and nothing else\n---\n\n"}, "blank.md",
                             ["blank.md", "no text"]),
    "JSON article with no text": ({"blank.jsonl": '{"id": "b", "title": "Only a title"}\n'}, "blank.jsonl",
                                  ["blank.jsonl", "no text"]),
    "unsupported file type": ({"slides.pptx": b"PK\x03\x04"}, "slides.pptx", ["slides.pptx", "unsupported file type"]),
    "missing path": ({}, "no-such-file.md", ["no-such-file.md", "no such file"]),
    "truncated gzip": ({"feed.jsonl.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00"}, "feed.jsonl.gz", ["feed.jsonl.gz"]),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_file_is_refused_with_one_line_and_the_index_is_unchanged(case, seed_index_copy, tmp_path, capsys):
    files, target, words = FILE_CASES[case]
    for name, content in files.items():
        write(tmp_path / "in" / name, content)
    before = snapshot(seed_index_copy)
    code, out, err = run(capsys, "--index", str(seed_index_copy), "ingest", str(tmp_path / "in" / target), "--quiet")
    assert code == 1
    one_error_line(err)
    for word in words:
        assert word in err, err
    assert snapshot(seed_index_copy) == before


def test_file_of_50_mb_is_refused_without_reading_it_whole(seed_index_copy, tmp_path, capsys):
    big = tmp_path / "dump.txt"
    with open(big, "wb") as handle:
        line = b"Gas prices rose again this week across the region. " * 20 + b"\n"
        while handle.tell() < 50 * 1024 * 1024:
            handle.write(line * 100)
    before = snapshot(seed_index_copy)
    code, _, err = run(capsys, "--index", str(seed_index_copy), "ingest", str(big), "--quiet")
    assert code == 1
    message = one_error_line(err)
    assert "dump.txt" in message and "larger than 5,000,000 bytes" in message and "max_article_bytes" in message
    assert snapshot(seed_index_copy) == before


def test_duplicate_ids_with_different_text_keep_one_and_warn(seed_index_copy, tmp_path, capsys):
    feed = write(tmp_path / "feed.jsonl", "\n".join(json.dumps(a) for a in [
        {"id": "dup-1", "title": "Refinery fire", "text": "A refinery fire cut output by 5 percent."},
        {"id": "dup-1", "title": "Refinery fire", "text": "A refinery fire cut output by 9 percent, officials said."},
    ]) + "\n")
    code, out, err = run(capsys, "--index", str(seed_index_copy), "ingest", str(feed), "--quiet")
    assert code == 0, err
    assert "duplicate article id 'dup-1' with different text" in err and "the later one is kept" in err
    assert "1 articles: 1 new" in out
    store = NewsStore(Settings(index_dir=seed_index_copy))
    texts = store.collection.get(where={"article_id": "dup-1"}, include=["documents"])["documents"]
    assert texts == ["A refinery fire cut output by 9 percent, officials said."]


def test_link_out_of_a_corpus_folder_is_skipped(seed_index_copy, tmp_path, capsys):
    secret = write(tmp_path / "private" / "notes.md", "---\ntitle: Private notes\n---\nThe launch is in May.\n")
    corpus = tmp_path / "corpus"
    write(corpus / "good.md", "---\ntitle: Fuel prices\npublished: 2024-04-02\n---\nDiesel fell 5 cents.\n")
    (corpus / "notes.md").symlink_to(secret)
    code, out, err = run(capsys, "--index", str(seed_index_copy), "ingest", str(corpus), "--quiet")
    assert code == 0, err
    assert "notes.md" in err and "links outside the folder" in err
    assert "1 articles: 1 new" in out
    titles = [a["title"] for a in NewsStore(Settings(index_dir=seed_index_copy)).articles()]
    assert "Private notes" not in titles and "Fuel prices" in titles


def test_folder_of_only_bad_files_is_one_error_and_no_change(seed_index_copy, tmp_path, capsys):
    write(tmp_path / "in" / "empty.md", b"")
    write(tmp_path / "in" / "binary.txt", bytes(range(256)))
    before = snapshot(seed_index_copy)
    code, _, err = run(capsys, "--index", str(seed_index_copy), "ingest", str(tmp_path / "in"), "--quiet")
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [
        "error: nothing to ingest: all 2 inputs were skipped (see warnings)"]
    assert snapshot(seed_index_copy) == before


@pytest.mark.parametrize("command", [["stats"], ["ask", "What is Nissan's Fisker angle?"]])
def test_index_folder_that_is_not_a_chroma_store(tmp_path, capsys, command):
    folder = write(tmp_path / "photos" / "cat.jpg", b"\xff\xd8\xff").parent
    code, _, err = run(capsys, "--index", str(folder), *command)
    assert code == 1
    message = one_error_line(err)
    assert str(folder) in message
    assert [p.name for p in folder.iterdir()] == ["cat.jpg"]


def test_ingest_into_a_folder_that_is_not_a_chroma_store(tmp_path, capsys):
    folder = write(tmp_path / "photos" / "cat.jpg", b"\xff\xd8\xff").parent
    article = write(tmp_path / "a.md", "---\ntitle: T\n---\nText.\n")
    code, _, err = run(capsys, "--index", str(folder), "ingest", str(article), "--quiet")
    assert code == 1
    assert "is not an index" in one_error_line(err)
    assert [p.name for p in folder.iterdir()] == ["cat.jpg"]


def test_damaged_chroma_store_is_an_error_not_a_crash(seed_index_copy, capsys):
    (seed_index_copy / "chroma.sqlite3").write_bytes(b"this is not a database")
    code, _, err = run(capsys, "--index", str(seed_index_copy), "stats")
    assert code == 1
    assert str(seed_index_copy) in one_error_line(err)


def test_question_of_100_kb_and_empty_question(seed_index, capsys):
    code, _, err = run(capsys, "--index", str(seed_index), "ask", "why? " * 20_000)
    assert code == 1 and "limit is 2,000" in one_error_line(err)
    code, _, err = run(capsys, "--index", str(seed_index), "ask", "   ")
    assert code == 1 and "question is empty" in one_error_line(err)


def test_broken_docstore_is_an_error_and_is_not_overwritten(seed_index_copy, tmp_path, capsys):
    docstore = seed_index_copy / DOCSTORE_FILE
    docstore.write_text("{not json", encoding="utf-8")
    article = write(tmp_path / "a.md", "---\ntitle: T\n---\nText.\n")
    code, _, err = run(capsys, "--index", str(seed_index_copy), "ingest", str(article), "--quiet")
    assert code == 1
    assert DOCSTORE_FILE in one_error_line(err)
    assert docstore.read_text(encoding="utf-8") == "{not json"  # left for the user to inspect or restore
    shutil.rmtree(seed_index_copy)
