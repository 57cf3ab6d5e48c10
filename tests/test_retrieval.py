"""Hybrid retrieval: rank fusion, BM25 persisted and kept current, filters, as-of preference, diversity."""

from __future__ import annotations

import datetime as dt

import pytest
from llama_index.core.schema import NodeWithScore, TextNode

from assistant.articles import make_article
from assistant.retrieval import NewsRetriever, RetrievalFilters, apply_recency, day_number, diversify, fuse_ranks
from assistant.settings import Settings
from assistant.store import KEYWORD_DIR, NewsStore

from .conftest import make_settings


def node(node_id: str, article: str = "a", text: str = "", published: str | None = None) -> NodeWithScore:
    meta = {"article_id": article}
    if published:
        meta["published_day"] = day_number(dt.date.fromisoformat(published))
    return NodeWithScore(node=TextNode(id_=node_id, text=text or node_id, metadata=meta), score=0.0)


def test_defaults_are_the_documented_ones():
    s = Settings()
    assert s.retrieval_mode == "hybrid" and s.candidates == 30 and s.rrf_k == 60.0
    assert s.max_chunks_per_article == 2 and s.duplicate_jaccard == 0.8
    assert s.recency_half_life_days > 0 and s.context_top_k >= 3


def test_weighted_reciprocal_rank_fusion():
    vector = [node("x"), node("y"), node("z")]
    keyword = [node("z"), node("w")]
    fused = fuse_ranks([vector, keyword], [0.5, 0.5], k=60)
    scores = {n.node.node_id: n.score for n in fused}
    assert scores["z"] == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert scores["x"] == pytest.approx(0.5 / 61)
    assert [n.node.node_id for n in fused][0] == "z"  # found by both: first
    only_vector = fuse_ranks([vector, keyword], [1.0, 0.0], k=60)
    assert [n.node.node_id for n in only_vector] == ["x", "y", "z"]


def test_recency_prefers_recent_articles_and_halves_per_half_life():
    old = node("old", published="2024-01-01")
    new = node("new", published="2024-03-01")
    undated = node("undated")
    for n in (old, new, undated):
        n.score = 1.0
    ranked = [old, undated, new]
    apply_recency(ranked, dt.date(2024, 3, 1), half_life_days=30)
    assert [n.node.node_id for n in ranked] == ["new", "undated", "old"]
    assert new.score == 1.0 and undated.score == pytest.approx(0.5)
    assert old.score == pytest.approx(0.5 ** (60 / 30))


def test_diversity_caps_chunks_per_article_and_drops_near_duplicates():
    story = "Oil prices rose sharply on Monday after the cartel announced deep production cuts for the summer"
    ranked = [
        node("a1", "A", "first chunk of article A about oil"),
        node("a2", "A", "second chunk of article A about gas"),
        node("a3", "A", "third chunk of article A about coal"),
        node("b1", "B", story + "."),
        node("c1", "C", story + " , Reuters reported."),  # the same wire story on another site
        node("d1", "D", "Something else entirely."),
    ]
    kept = [n.node.node_id for n in diversify(ranked, max_per_article=2, duplicate_jaccard=0.8)]
    assert kept == ["a1", "a2", "b1", "d1"]
    assert len(diversify(ranked, max_per_article=0, duplicate_jaccard=1.0)) == 6


@pytest.fixture
def archive(tmp_path):
    settings = make_settings(tmp_path / "index")
    store = NewsStore(settings, create=True)
    store.ingest([
        make_article(article_id="old-gas", title="Gas prices", site="a.com", published="2023-01-10",
                     text="Gas prices fell to $3.10 a gallon this week, the motor club said."),
        make_article(article_id="new-gas", title="Gas prices", site="b.com", published="2023-06-10",
                     text="Gas prices rose to $3.60 a gallon this week, the motor club said."),
        make_article(article_id="code", title="Recall", site="a.com", published="2023-06-01",
                     text="The recall covers model XJ-9000 units built in the spring."),
        make_article(article_id="future", title="Gas prices", site="a.com", published="2023-12-01",
                     text="Gas prices hit $2.90 a gallon this week, the motor club said."),
    ], show_progress=False)
    return settings


def ids(ranked) -> list[str]:
    return [n.node.metadata["article_id"] for n in ranked.nodes]


def test_keyword_index_is_persisted_and_follows_ingest(archive):
    store = NewsStore(archive)
    assert (archive.index_dir / KEYWORD_DIR).is_dir()
    assert store.keyword_index().chunk_count == store.chunk_count() == 4
    store.ingest([make_article(article_id="late", title="Late", text="A zeppelin landed in Ohio.")], show_progress=False)
    # The same store object searches its rebuilt index at once (as the chat does after an upload)...
    assert [n.node.metadata["article_id"] for n in store.keyword_index().search("zeppelin", 5)] == ["late"]
    # ...and a new process loads it from disk.
    reopened = NewsStore(archive)
    assert reopened.keyword_index().chunk_count == 5
    found = reopened.keyword_index().search("zeppelin", 5)
    assert [n.node.metadata["article_id"] for n in found] == ["late"]


def test_bm25_finds_rare_tokens_and_fusion_keeps_them(archive):
    retriever = NewsRetriever(archive, NewsStore(archive))
    assert ids(retriever.retrieve("XJ-9000"))[0] == "code"
    bm25_only = NewsRetriever(archive.model_copy(update={"retrieval_mode": "bm25"}), NewsStore(archive))
    assert ids(bm25_only.retrieve("XJ-9000")) == ["code"]


def test_filters_apply_to_both_retrievers(archive):
    retriever = NewsRetriever(archive, NewsStore(archive))
    only_b = retriever.retrieve("gas prices gallon", RetrievalFilters(sites=("b.com",)))
    assert ids(only_b) == ["new-gas"]
    early = retriever.retrieve("gas prices gallon", RetrievalFilters(until=dt.date(2023, 3, 1)))
    assert ids(early) == ["old-gas"]
    window = retriever.retrieve("XJ-9000", RetrievalFilters(since=dt.date(2023, 5, 1), until=dt.date(2023, 7, 1)))
    assert set(ids(window)) <= {"new-gas", "code"}


def test_as_of_excludes_later_articles_and_prefers_recent_ones(archive):
    retriever = NewsRetriever(archive, NewsStore(archive))
    in_june = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 6, 12)))
    assert in_june[0] == "new-gas" and "future" not in in_june
    in_january = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 1, 11)))
    assert in_january == ["old-gas"]
    in_december = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 12, 2)))
    assert in_december[0] == "future"
