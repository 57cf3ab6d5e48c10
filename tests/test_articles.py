"""Loading articles: formats, metadata normalization, stable ids, and every bad input."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from assistant.articles import ArticleLoader, content_id, normalize_date
from assistant.errors import AssistantError

from .conftest import CORPUS


def load(*paths, **kwargs):
    loader = ArticleLoader(**kwargs)
    return list(loader.load(paths)), loader.problems


def test_seed_corpus_article_has_its_metadata():
    articles, problems = load(CORPUS)
    assert problems == []
    assert len(articles) == 1
    seed = articles[0]
    assert seed.id == "seed-nissan-honda-ev-partnership"
    assert seed.published == "2024-03-15"
    assert seed.url is None
    assert "Fisker" in seed.text and seed.text.startswith("Nissan and Honda")


def test_markdown_front_matter(tmp_path: Path):
    f = tmp_path / "a.md"
    f.write_text(
        "---\ntitle: Gas prices fall\nurl: https://www.example.com/gas\npublished: March 3, 2024\n"
        "authors: [Ann Lee, Bo Chen]\n---\nGas prices fell 10 cents this week.\n",
        encoding="utf-8",
    )
    [a], problems = load(f)
    assert problems == []
    assert a.title == "Gas prices fall"
    assert a.id == "https://www.example.com/gas"  # no id: the URL is the id
    assert a.site == "example.com"  # derived from the URL
    assert a.published == "2024-03-03"
    assert a.authors == ("Ann Lee", "Bo Chen")
    assert a.text == "Gas prices fell 10 cents this week."


def test_text_without_front_matter_takes_title_from_first_line(tmp_path: Path):
    f = tmp_path / "b.txt"
    f.write_text("# Honda picks a partner\n\nHonda chose GM for North America.\n", encoding="utf-8")
    [a], _ = load(f)
    assert a.title == "Honda picks a partner"
    assert a.text == "Honda chose GM for North America."
    assert a.id == f"file:{f.resolve()}"  # stable across edits, so an edit replaces the article
    assert a.published is None


def test_html_page_extracted_with_trafilatura(tmp_path: Path):
    body = "<p>" + "The automaker said it will build a battery plant in Ohio next year. " * 8 + "</p>"
    f = tmp_path / "page.html"
    f.write_text(
        "<html><head><title>Battery plant | Example</title>"
        '<meta property="og:site_name" content="Example News">'
        '<meta property="article:published_time" content="2024-02-01T08:00:00Z"></head>'
        f"<body><nav>Home | World | Sports</nav><article><h1>Battery plant</h1>{body}</article>"
        "<footer>Copyright Example</footer></body></html>",
        encoding="utf-8",
    )
    [a], problems = load(f)
    assert problems == []
    assert a.title.startswith("Battery plant")
    assert a.site == "Example News"
    assert a.published == "2024-02-01"
    assert "battery plant in Ohio" in a.text
    assert "Copyright" not in a.text and "Home | World" not in a.text


def test_jsonl_gz_and_json_list(tmp_path: Path):
    records = [
        {"id": "x1", "title": "One", "text": "First text.", "site": "a.com", "published": "2023-01-02"},
        {"title": "Two", "text": "Second text.", "url": "https://b.org/2", "published": "2023-01-03T10:00:00+05:00"},
        {"text": "Third text with no id or url."},
    ]
    gz = tmp_path / "a.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(r) for r in records))
    js = tmp_path / "b.json"
    js.write_text(json.dumps(records), encoding="utf-8")
    for path in (gz, js):
        articles, problems = load(path)
        assert problems == []
        assert [a.id for a in articles] == ["x1", "https://b.org/2", content_id("", "Third text with no id or url.")]
        assert articles[0].site == "a.com" and articles[1].site == "b.org"
        assert articles[1].published == "2023-01-03"


def test_shared_realtimeqa_articles_load_as_they_are(rtqa_articles):
    loader = ArticleLoader()
    articles = list(itertools.islice(loader.load([rtqa_articles]), 300))
    assert len(articles) == 300
    assert all(a.id.startswith("rtqa-") for a in articles)
    assert sum(1 for a in articles if a.published and len(a.published) == 10) > 290
    assert all(a.site for a in articles)


def test_content_id_is_stable():
    assert content_id("t", "body") == content_id("t", "body")
    assert content_id("t", "body") != content_id("t", "body!")


@pytest.mark.parametrize(
    "value, expected",
    [("2024-03-15", "2024-03-15"), ("2024-03-15T23:59:00Z", "2024-03-15"), ("15 March 2024", "2024-03-15"),
     (1710460800, "2024-03-15"), (None, None), ("", None), ("not a date at all", None)],
)
def test_normalize_date(value, expected):
    assert normalize_date(value) == expected


# --- bad input: each is skipped with a one-line reason; the rest still loads ----------------
def _one_problem(path, **kwargs) -> str:
    articles, problems = load(path, **kwargs)
    assert articles == []
    assert len(problems) == 1
    message = str(problems[0])
    assert "\n" not in message
    return message


def test_empty_file(tmp_path: Path):
    (tmp_path / "e.md").write_text("", encoding="utf-8")
    assert "file is empty" in _one_problem(tmp_path / "e.md")
    (tmp_path / "e.jsonl").write_text("\n\n", encoding="utf-8")
    assert "file is empty" in _one_problem(tmp_path / "e.jsonl")


def test_binary_file(tmp_path: Path):
    (tmp_path / "b.txt").write_bytes(bytes(range(256)) * 10)
    assert "binary file" in _one_problem(tmp_path / "b.txt")


def test_invalid_utf8(tmp_path: Path):
    (tmp_path / "latin.txt").write_bytes("Title\nCaf\xe9 prices rose.".encode("latin-1"))
    assert "not valid UTF-8" in _one_problem(tmp_path / "latin.txt")


def test_oversized_file(tmp_path: Path):
    (tmp_path / "big.txt").write_text("Title\n" + "word " * 3000, encoding="utf-8")
    assert "larger than" in _one_problem(tmp_path / "big.txt", max_article_bytes=10_000)


def test_malformed_json_line_skips_only_that_line(tmp_path: Path):
    f = tmp_path / "m.jsonl"
    f.write_text(
        '{"id": "a", "text": "Good one."}\n{"id": "b", "text": "broken\n{"id": "c", "text": "Also good."}\n'
        '{"id": "d", "title": "no text"}\n[1, 2]\n',
        encoding="utf-8",
    )
    articles, problems = load(f)
    assert [a.id for a in articles] == ["a", "c"]
    assert [p.line for p in problems] == [2, 4, 5]
    assert "malformed JSON" in problems[0].reason and f"{f}:2" in str(problems[0])
    assert "no text" in problems[1].reason


def test_an_unreadable_date_keeps_the_article_undated_and_says_so(tmp_path: Path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"id": "a", "text": "Ponies.", "published": "2024-13-45"}\n'
                 '{"id": "b", "text": "Horses.", "published": "2024-03-15"}\n', encoding="utf-8")
    (tmp_path / "e.md").write_text("---\ntitle: Mules\npublished: next Tuesday\n---\nMules.\n", encoding="utf-8")
    loader = ArticleLoader()
    articles = list(loader.load([f, tmp_path / "e.md"]))
    assert [(a.id, a.published) for a in articles][:2] == [("a", None), ("b", "2024-03-15")]
    assert articles[2].published is None and loader.problems == []
    assert [str(note) for note in loader.notes] == [
        f"{f}:1: published '2024-13-45' is not a date; the article is kept without one",
        f"{tmp_path / 'e.md'}: published 'next Tuesday' is not a date; the article is kept without one"]


def test_unsupported_type_and_missing_path(tmp_path: Path):
    (tmp_path / "x.pdf").write_bytes(b"%PDF-1.4")
    assert "unsupported file type" in _one_problem(tmp_path / "x.pdf")
    with pytest.raises(AssistantError, match="no such file"):
        load(tmp_path / "missing.md")


def test_folder_skips_bad_files_and_loads_good_ones(tmp_path: Path):
    (tmp_path / "good.md").write_text("Headline\nBody text.", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00\x00")
    (tmp_path / ".hidden.md").write_text("Hidden\nNot an article.", encoding="utf-8")
    (tmp_path / "notes.csv").write_text("a,b", encoding="utf-8")
    articles, problems = load(tmp_path)
    assert [a.title for a in articles] == ["Headline"]
    assert len(problems) == 1 and "bad.txt" in problems[0].path
