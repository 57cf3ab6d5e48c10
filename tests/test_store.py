"""Indexing into the real Chroma with the real embedding model."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent

from assistant.articles import ArticleLoader, make_article
from assistant.chunking import article_to_document, embedder_id, embedding_model, embedder_window, make_splitter
from assistant.errors import AssistantError
from assistant.retrieval import NewsRetriever
from assistant.store import WRITE_LOCK_FILE, ArticleSelection, NewsStore, chroma_client

from .conftest import ingest_paths, make_settings


class EmbeddingCounter(BaseEventHandler):
    """Counts texts actually sent through the embedding model (llama-index instrumentation)."""

    count: int = 0

    @classmethod
    def class_name(cls) -> str:
        return "EmbeddingCounter"

    def handle(self, event, **kwargs) -> None:
        if isinstance(event, EmbeddingEndEvent):
            self.count += len(event.chunks)


@pytest.fixture
def embedding_counter():
    counter = EmbeddingCounter()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(counter)
    yield counter
    dispatcher.event_handlers.remove(counter)


def write_articles(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sentences = " ".join(f"Company {i} reported result number {j} for the quarter." for j in range(60))
        (folder / f"a{i}.md").write_text(
            f"---\nid: art-{i}\ntitle: Story {i}\nsite: example.com\npublished: 2024-01-{i + 1:02d}\n---\n{sentences}\n",
            encoding="utf-8",
        )


def chunk_ids_by_article(store: NewsStore) -> dict[str, list[str]]:
    got = store.collection.get(include=["metadatas"])
    out: dict[str, list[str]] = {}
    for chunk_id, meta in zip(got["ids"], got["metadatas"]):
        out.setdefault(meta["article_id"], []).append(chunk_id)
    return {k: sorted(v) for k, v in out.items()}


def test_reingest_unchanged_computes_no_embeddings_and_edit_replaces_chunks(tmp_path, embedding_counter):
    corpus = tmp_path / "corpus"
    write_articles(corpus, 3)
    settings = make_settings(tmp_path / "index")
    store = NewsStore(settings, create=True)

    first = store.ingest(list(ArticleLoader().load([corpus])), show_progress=False)
    assert first.added == 3 and first.chunks_written > 3
    assert embedding_counter.count == first.chunks_written
    before = chunk_ids_by_article(store)
    assert store.chunk_count() == first.chunks_written

    # A new process would reopen the store from disk: do the same.
    embedding_counter.count = 0
    store = NewsStore(settings)
    again = store.ingest(list(ArticleLoader().load([corpus])), show_progress=False)
    assert (again.unchanged, again.added, again.updated, again.chunks_written) == (3, 0, 0, 0)
    assert embedding_counter.count == 0
    assert chunk_ids_by_article(store) == before

    # Edit one article so it becomes much shorter: exactly its new chunks remain.
    (corpus / "a1.md").write_text("---\nid: art-1\ntitle: Story 1 (corrected)\n---\nA short correction.\n", encoding="utf-8")
    edited = NewsStore(settings).ingest(list(ArticleLoader().load([corpus])), show_progress=False)
    assert (edited.updated, edited.unchanged) == (1, 2)
    after = chunk_ids_by_article(store)
    assert after["art-1"] == ["art-1#0"]
    assert after["art-0"] == before["art-0"] and after["art-2"] == before["art-2"]
    got = store.collection.get(ids=["art-1#0"], include=["documents", "metadatas"])
    assert got["documents"] == ["A short correction."]
    assert got["metadatas"][0]["title"] == "Story 1 (corrected)"
    assert store.chunk_count() == sum(len(v) for v in after.values())


def test_chunks_fit_the_embedder_window_with_their_header(tmp_path):
    settings = make_settings(tmp_path / "index")
    embed = embedding_model(settings)
    splitter = make_splitter(settings, embed)
    long_text = " ".join(f"Sentence number {i} talks about electric vehicle batteries and prices." for i in range(300))
    doc = article_to_document(make_article(text=long_text, title="A long article about batteries",
                                           site="example.com", published="2024-05-01", article_id="long"))
    nodes = splitter([doc])
    assert len(nodes) > 5
    tokenizer = embed._model.tokenizer
    window = embedder_window(embed)
    for node in nodes:
        embedded = node.get_content(metadata_mode="embed")
        assert embedded.startswith("title: A long article about batteries\nsite: example.com\npublished: 2024-05-01")
        assert len(tokenizer.tokenize(embedded)) + 2 <= window
        assert node.metadata["published_day"] > 19000
        # Sentence-aware: chunks end at a sentence boundary.
        assert node.get_content().rstrip().endswith(".")


def test_stats_and_duplicate_ids(tmp_path):
    settings = make_settings(tmp_path / "index")
    store = NewsStore(settings, create=True)
    articles = [
        make_article(text="Oil prices rose.", title="Oil", article_id="d1", site="a.com", published="2023-02-01", source="x:1"),
        make_article(text="Oil prices fell.", title="Oil", article_id="d1", site="a.com", published="2023-02-01", source="x:2"),
        make_article(text="Gas is cheaper.", title="Gas", article_id="d2", site="b.com", published="2023-03-05"),
    ]
    report = store.ingest(articles, show_progress=False)
    assert report.articles_seen == 2
    assert len(report.problems) == 1 and "duplicate article id 'd1'" in str(report.problems[0])
    stats = store.stats()
    assert (stats.articles, stats.chunks) == (2, 2)
    assert stats.sites == ["a.com", "b.com"]
    assert (stats.earliest, stats.latest) == ("2023-02-01", "2023-03-05")
    assert store.collection.get(ids=["d1#0"], include=["documents"])["documents"] == ["Oil prices fell."]


def test_missing_index_and_foreign_folder(tmp_path):
    with pytest.raises(AssistantError, match="no index at"):
        NewsStore(make_settings(tmp_path / "nothing-here"))
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(AssistantError, match="is not an index"):
        NewsStore(make_settings(foreign), create=True)
    assert [p.name for p in foreign.iterdir()] == ["cat.jpg"]  # nothing written into it


def test_seed_index_stats(seed_index):
    stats = NewsStore(make_settings(seed_index)).stats()
    assert stats.articles == 1 and stats.chunks >= 2
    assert stats.earliest == stats.latest == "2024-03-15"


def test_vector_search_ef_is_set_on_new_and_on_older_collections(tmp_path):
    fresh = NewsStore(make_settings(tmp_path / "new"), create=True)
    hnsw = fresh.collection.configuration["hnsw"]
    # The distance-to-cosine conversion in retrieval needs the cosine space, which a configuration
    # without it would silently turn into l2.
    assert (hnsw["space"], hnsw["ef_search"]) == ("cosine", fresh.settings.vector_search_ef)

    # A collection as versions before the setting made it: the space in the metadata, Chroma's default ef_search.
    settings = make_settings(tmp_path / "older", vector_search_ef=321)
    chroma_client(settings, create=True).get_or_create_collection(
        settings.collection, metadata={"hnsw:space": "cosine", "embedder": embedder_id(settings),
                                       "embed_backend": settings.embed_backend})
    store = NewsStore(settings)
    assert store.collection.configuration["hnsw"]["ef_search"] == 321
    assert store.collection.configuration["hnsw"]["space"] == "cosine"
    store.ingest([make_article(text="Gas prices fell to $3.20 a gallon this week.", title="Gas", article_id="g1",
                               site="a.com", published="2023-06-10")], show_progress=False)
    found = NewsRetriever(settings, store)._nearest("What happened to gas prices?", 5, None)
    assert [n.node.node_id for n in found] == ["g1#0"] and 0.3 < found[0].score <= 1.0  # a cosine, not an l2 distance


def removal_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stories = [
        ("zinc", "Zinc smelter closes", "metals.example", "2023-02-01",
         "The Aurubis zinc smelter in Hamburg closed on Monday because power became too expensive."),
        ("ferry", "Ferry strike ends", "ports.example", "2023-06-10",
         "Ferry crews in Calais ended their strike after the operator raised wages by eight percent."),
        ("orchard", "Apple harvest record", "metals.example", "2024-01-20",
         "Orchards in Washington state picked a record apple harvest of 150 million boxes."),
        ("undated", "Undated note", "metals.example", "",
         "A note without a date about copper cables and their thieves."),
    ]
    for article_id, title, site, published, text in stories:
        date_line = f"published: {published}\n" if published else ""
        (folder / f"{article_id}.md").write_text(
            f"---\nid: {article_id}\ntitle: {title}\nsite: {site}\n{date_line}---\n{text}\n", encoding="utf-8")


def test_removed_articles_leave_both_searches_and_come_back_when_ingested_again(tmp_path):
    corpus = tmp_path / "corpus"
    removal_corpus(corpus)
    settings = make_settings(tmp_path / "index")
    store = ingest_paths(settings, [corpus])
    retriever = NewsRetriever(settings, store)
    question = "Why did the zinc smelter in Hamburg close?"
    assert retriever.retrieve(question).nodes[0].node.metadata["article_id"] == "zinc"
    assert store.keyword_index().search("zinc smelter Hamburg", top_k=10)[0].node.metadata["article_id"] == "zinc"

    assert store.remove(["zinc"]) == 1
    # Another process sees the same: no chunk, no hash, no keyword entry, not listed.
    store = NewsStore(settings)
    assert "zinc" not in chunk_ids_by_article(store)
    assert store.docstore.get_document_hash("zinc") is None
    assert [r["id"] for r in store.articles()] == ["orchard", "ferry", "undated"]
    assert store.keyword_index().chunk_count == store.chunk_count() == 3
    assert all(n.node.metadata["article_id"] != "zinc" for n in store.keyword_index().search("zinc smelter Hamburg", 10))
    found = NewsRetriever(settings, store).retrieve(question).nodes
    assert found and all(n.node.metadata["article_id"] != "zinc" for n in found)

    # The file ingested again is new to the index, and the others are untouched.
    report = store.ingest(list(ArticleLoader().load([corpus])), show_progress=False)
    assert (report.added, report.unchanged, report.updated) == (1, 3, 0)
    assert NewsRetriever(settings, store).retrieve(question).nodes[0].node.metadata["article_id"] == "zinc"

    # Criteria combine: before a date AND from a site; an undated article is never "before".
    chosen = store.select_articles(ArticleSelection(published_before="2024-01-01", sites=("metals.example",)))
    assert [r["id"] for r in chosen] == ["zinc"]
    chosen = store.select_articles(ArticleSelection(published_before="2030-01-01"))
    assert sorted(r["id"] for r in chosen) == ["ferry", "orchard", "zinc"]
    with pytest.raises(AssistantError, match="which articles"):
        store.select_articles(ArticleSelection())


def test_removing_every_article_leaves_an_empty_index_that_ingest_refills(tmp_path):
    corpus = tmp_path / "corpus"
    removal_corpus(corpus)
    settings = make_settings(tmp_path / "index")
    store = ingest_paths(settings, [corpus])
    store.remove([r["id"] for r in store.articles()])
    store = NewsStore(settings)
    assert (store.stats().articles, store.chunk_count()) == (0, 0)
    assert store.keyword_index() is None and not store.keyword_dir.exists()
    report = store.ingest(list(ArticleLoader().load([corpus])), show_progress=False)
    assert report.added == 4 and store.keyword_index().chunk_count == store.chunk_count() == 4


def test_keyword_index_follows_another_process_even_when_the_chunk_count_stays(tmp_path):
    """The chat app keeps its BM25 index loaded; an ingest from the command line that corrects an
    article (same number of chunks) must reach its keyword search, not only its vector search."""
    settings = make_settings(tmp_path / "index")
    original = [make_article(text="Gas is cheaper in Ohio this week.", title="Gas", article_id="gas", published="2023-03-05"),
                make_article(text="Oil rose on Monday.", title="Oil", article_id="oil", published="2023-03-06")]
    NewsStore(settings, create=True).ingest(original, show_progress=False)
    chat = NewsStore(settings)
    assert chat.keyword_index().search("cheaper Ohio", 5)[0].node.node_id == "gas#0"

    corrected = make_article(text="Gas is dearer in Utah this week.", title="Gas", article_id="gas", published="2023-03-05")
    NewsStore(settings).ingest([corrected], show_progress=False)  # "another process"
    assert chat.chunk_count() == 2  # the count alone would not tell
    hits = chat.keyword_index().search("dearer Utah", 5)
    assert hits and hits[0].node.node_id == "gas#0" and "Utah" in hits[0].node.get_content()
    assert not chat.keyword_index().search("cheaper Ohio", 5)


def test_a_running_app_sees_what_the_command_line_ingests_and_removes(tmp_path):
    """Chroma's embedded store keeps its vector index in memory per process and never reloads it;
    the running store must notice another process's ingest and removal and search what is on disk."""
    from .test_cli import run_cli

    settings = make_settings(tmp_path / "index")
    NewsStore(settings, create=True).ingest(
        [make_article(text="Oil rose on Monday in London trading.", title="Oil", article_id="oil", published="2023-03-06")],
        show_progress=False)
    app_store = NewsStore(settings)
    retriever = NewsRetriever(settings, app_store)
    question = "Which animal escaped from the Seoul zoo?"
    assert [n.node.node_id for n in retriever.candidates(question).vector] == ["oil#0"]

    article = tmp_path / "zebra.md"
    article.write_text("---\nid: zebra\ntitle: Zebra escapes\npublished: 2023-03-07\n---\n"
                       "A zebra escaped from the Seoul zoo and ran through the streets.\n", encoding="utf-8")
    assert run_cli("--index", str(settings.index_dir), "ingest", str(article), "--quiet").returncode == 0
    found = retriever.candidates(question)
    assert [n.node.node_id for n in found.vector][0] == "zebra#0"  # the vector search, not only BM25
    assert app_store.docstore.get_document_hash("zebra") is not None  # and the docstore it would write

    assert run_cli("--index", str(settings.index_dir), "remove", "zebra").returncode == 0
    assert [n.node.node_id for n in retriever.candidates(question).vector] == ["oil#0"]
    assert [n.node.node_id for n in retriever.retrieve(question).nodes] == ["oil#0"]


def test_a_second_writer_gets_a_one_line_error_and_the_index_stays_whole(seed_index_copy, tmp_path):
    """Two ingests (or an ingest and a removal) on one embedded index at once would both write
    Chroma, the docstore and the keyword index; the second is refused until the first is done."""
    import fcntl
    import json

    from .test_cli import one_line_error, run_cli

    article = tmp_path / "zebra.md"
    article.write_text("---\nid: zebra\ntitle: Zebra escapes\n---\nA zebra escaped from the Seoul zoo.\n", encoding="utf-8")
    before = json.loads(run_cli("--index", str(seed_index_copy), "stats", "--json").stdout)
    with open(seed_index_copy / WRITE_LOCK_FILE, "w") as held:  # a writer at work in another process
        fcntl.flock(held, fcntl.LOCK_EX)
        error = one_line_error(run_cli("--index", str(seed_index_copy), "ingest", str(article), "--quiet"))
        assert "another ingest or removal is writing to" in error
        assert "another ingest or removal" in one_line_error(
            run_cli("--index", str(seed_index_copy), "remove", "seed-nissan-honda-ev-partnership"))
        assert json.loads(run_cli("--index", str(seed_index_copy), "stats", "--json").stdout) == before
    done = run_cli("--index", str(seed_index_copy), "ingest", str(article), "--quiet")  # the first one finished
    assert done.returncode == 0 and "1 new" in done.stdout, done.stderr


def test_an_index_folder_that_cannot_be_written_is_a_one_line_error(seed_index_copy, tmp_path):
    from .test_cli import one_line_error, run_cli

    lock = seed_index_copy / WRITE_LOCK_FILE
    lock.unlink(missing_ok=True)
    lock.mkdir()  # unopenable, as in a folder this user may not write into
    article = tmp_path / "zebra.md"
    article.write_text("---\nid: zebra\ntitle: Zebra escapes\n---\nA zebra escaped from the Seoul zoo.\n", encoding="utf-8")
    error = one_line_error(run_cli("--index", str(seed_index_copy), "ingest", str(article), "--quiet"))
    assert "cannot write to the index folder" in error
