"""The persisted store: Chroma (embedded under the index folder, or a server)
holding embedded chunks, plus the llama-index docstore that remembers each
article's content hash so unchanged articles are never embedded twice.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .articles import Article, LoadProblem
from .chunking import article_to_document, chunk_id, embedder_id, embedding_model, make_splitter
from .errors import AssistantError
from .settings import Settings, env_name

CHROMA_FILE = "chroma.sqlite3"
DOCSTORE_FILE = "docstore.json"
WRITE_LOCK_FILE = ".write.lock"
KEYWORD_DIR = "bm25"
KEYWORD_META = "assistant-bm25.json"
STATS_PAGE = 5000
REMOVE_BATCH = 500
# Collection metadata key every ingest or removal sets to a new value: how clients of a shared
# Chroma server notice each other's writes (see NewsStore.keyword_index).
GENERATION_KEY = "news_generation"
# Keyword index builds (persisted stamps) written by this process: not a sign of another process.
_BUILDS_WRITTEN_HERE: set = set()


@dataclass
class IngestReport:
    articles_seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks_written: int = 0
    problems: list[LoadProblem] = field(default_factory=list)

    @property
    def embeddings_computed(self) -> int:
        # Every chunk written was embedded in this run; unchanged articles write none.
        return self.chunks_written

    def summary(self) -> str:
        return (f"{self.articles_seen} articles: {self.added} new, {self.updated} changed, "
                f"{self.unchanged} unchanged; {self.chunks_written} chunks embedded and written")


@dataclass(frozen=True)
class ArticleSelection:
    """Which indexed articles to remove: those matching every criterion given."""

    ids: tuple[str, ...] = ()
    published_before: str | None = None  # YYYY-MM-DD; articles without a date never match
    sites: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.ids or self.published_before or self.sites)

    def matches(self, row: dict) -> bool:
        if self.ids and row["id"] not in self.ids:
            return False
        if self.published_before and not (row["published"] and row["published"] < self.published_before):
            return False
        return not self.sites or row["site"] in self.sites


@dataclass(frozen=True)
class IndexStats:
    articles: int
    chunks: int
    sites: list[str]
    earliest: str | None
    latest: str | None
    location: str

    def as_dict(self) -> dict:
        return {
            "articles": self.articles,
            "chunks": self.chunks,
            "sites": self.sites,
            "earliest": self.earliest,
            "latest": self.latest,
            "location": self.location,
        }


def chroma_client(settings: Settings, create: bool):
    """An embedded persistent client under ``index_dir``, or an HTTP client to a Chroma server."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.server_mode:
        where = f"{settings.chroma_host}:{settings.chroma_port}"
        try:
            client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                         ssl=settings.chroma_ssl, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:  # chromadb raises several types for a dead server
            raise AssistantError(
                f"cannot reach the Chroma server at {where} ({type(exc).__name__}); "
                f"start it or fix {env_name('chroma_host')} / {env_name('chroma_port')}"
            ) from exc
        return client

    index_dir = settings.index_dir
    if index_dir.exists() and not index_dir.is_dir():
        raise AssistantError(f"index location {index_dir} is a file, not a folder (setting {env_name('index_dir')})")
    has_store = (index_dir / CHROMA_FILE).exists()
    if not has_store:
        foreign = [p.name for p in index_dir.iterdir() if not p.name.startswith(".")] if index_dir.exists() else []
        if foreign:
            raise AssistantError(
                f"{index_dir} is not an index (no {CHROMA_FILE}, but holds {', '.join(sorted(foreign)[:3])}); "
                f"choose an empty or new folder with --index or {env_name('index_dir')}"
            )
        if not create:
            raise AssistantError(
                f"no index at {index_dir}; build it with `python -m assistant ingest corpus/` "
                f"(or point --index / {env_name('index_dir')} at an existing one)"
            )
        index_dir.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(index_dir), settings=chroma_settings)
    except Exception as exc:
        raise AssistantError(f"{index_dir} holds a Chroma store that cannot be opened ({exc})") from exc


class KeywordIndex:
    """BM25 over the same chunks as Chroma (llama-index's BM25Retriever on bm25s), persisted
    beside the index and rebuilt from Chroma whenever the chunk count it was built for changed.

    Also keeps per-chunk ids, publication days and sites as arrays, so date and site
    filters become one vectorized mask instead of a Python loop per query, and the
    vector search can be handed the ids a filter keeps (see ``ids_where``).
    """

    def __init__(self, retriever, chunk_count: int, generation: str | None = None):
        import numpy as np

        self.retriever = retriever
        self.chunk_count = chunk_count
        self.generation = generation  # the collection's write generation it was built from (see NewsStore)
        corpus = retriever.corpus
        self.days = np.array([int(c.get("published_day", -1)) for c in corpus], dtype=np.int32)
        self.sites = np.array([c.get("site") or "" for c in corpus], dtype=object)
        self.node_ids = np.array([c["node_id"] for c in corpus], dtype=object)
        dated = self.days[self.days >= 0]
        self.newest_day = int(dated.max()) if len(dated) else None  # the newest article's day number

    @classmethod
    def build(cls, nodes, chunk_count: int, folder: Path | None, generation: str | None = None):
        from llama_index.retrievers.bm25 import BM25Retriever

        if not nodes:
            if folder is not None:  # an empty store has no keyword index; drop the last one's
                shutil.rmtree(folder, ignore_errors=True)
            return None
        retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=10)
        # A freshly built bm25s index does not hold the corpus (a loaded one does); searches
        # share the bm25s object, so give it the corpus the retriever built.
        retriever.bm25.corpus = retriever.corpus
        index = cls(retriever, chunk_count, generation)
        if folder is not None:
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            retriever.persist(str(tmp), show_progress=False)
            (tmp / KEYWORD_META).write_text(json.dumps({"chunk_count": chunk_count, "generation": generation}),
                                            encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)  # readers see the old index or the new one, never half
        return index

    @staticmethod
    def persisted_stamp(folder: Path) -> tuple | None:
        """Identifies one persisted build (a new build is a new file), None if there is none."""
        try:
            info = (folder / KEYWORD_META).stat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    @classmethod
    def load(cls, folder: Path):
        from llama_index.retrievers.bm25 import BM25Retriever

        meta = folder / KEYWORD_META
        if not meta.exists():
            return None
        built_for = json.loads(meta.read_text(encoding="utf-8"))
        return cls(BM25Retriever.from_persist_dir(str(folder), show_progress=False), built_for["chunk_count"],
                   built_for.get("generation"))  # builds older than the generation have none

    def ids_where(self, mask) -> list[str]:
        """The chunk ids a 0/1 mask (as from ``RetrievalFilters.keyword_mask``) keeps."""
        return self.node_ids[mask.astype(bool)].tolist()

    def search(self, question: str, top_k: int, mask=None):
        """Best chunks for the question; ``mask`` (0/1 per chunk) restricts the candidates."""
        from llama_index.retrievers.bm25 import BM25Retriever

        top_k = min(top_k, len(self.days))
        # A per-query retriever sharing the built bm25s index: cheap, and thread-safe
        # unlike changing the shared retriever's mask.
        retriever = BM25Retriever(existing_bm25=self.retriever.bm25, similarity_top_k=top_k,
                                  corpus_weight_mask=None if mask is None else mask.tolist(),
                                  skip_stemming=self.retriever.skip_stemming)
        return [n for n in retriever.retrieve(question) if n.score and n.score > 0]


class NewsStore:
    """Chroma collection + docstore for one index, and ingestion into them."""

    def __init__(self, settings: Settings, create: bool = False):
        self.settings = settings
        self.client = chroma_client(settings, create=create)
        if not create:
            names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
            if settings.collection not in names:
                raise AssistantError(
                    f"the index holds no collection '{settings.collection}'; "
                    "build it with `python -m assistant ingest corpus/`"
                )
        self._open_collection()
        self._keyword: KeywordIndex | None = None
        self._keyword_lock = threading.RLock()
        self.docstore_path = settings.index_dir / DOCSTORE_FILE
        self.docstore = self._load_docstore()
        # The keyword index build this store last saw: a different one on disk means another
        # process changed the index (see ``sync``).
        self._seen_build = KeywordIndex.persisted_stamp(self.keyword_dir)
        self._retired_systems: list = []

    def _open_collection(self) -> None:
        from llama_index.vector_stores.chroma import ChromaVectorStore

        settings = self.settings
        # The embedder is recorded with the collection: question vectors from another
        # embedder (fp32 vs int8, another model) would be compared with these silently.
        embedder = embedder_id(settings)
        # The space goes in the configuration with ef_search: given a configuration, Chroma ignores
        # the older "hnsw:space" metadata and would build an l2 index.
        collection = self.client.get_or_create_collection(
            settings.collection, metadata={"embedder": embedder, "embed_backend": settings.embed_backend},
            configuration={"hnsw": {"space": "cosine", "ef_search": settings.vector_search_ef}},
        )
        built_with = (collection.metadata or {}).get("embedder")
        if built_with and built_with != embedder:
            raise AssistantError(
                f"the index in {self._where()} was embedded with {built_with} "
                f"(embed_backend={collection.metadata.get('embed_backend')}), not {embedder} "
                f"(embed_backend={settings.embed_backend}); use those settings, or rebuild the index"
            )
        # An existing collection keeps the configuration it was made with; ef_search is the one
        # part Chroma lets change afterwards, changed only on a collection this
        # embedder may use (indexes built before the setting existed have 100).
        hnsw = (collection.configuration or {}).get("hnsw") or {}
        if hnsw.get("ef_search") != settings.vector_search_ef:
            collection.modify(configuration={"hnsw": {"ef_search": settings.vector_search_ef}})
        # Searches read these two attributes once each, so swapping them (``sync``) is safe.
        self.collection = collection
        self.vector_store = ChromaVectorStore(chroma_collection=collection)

    def _load_docstore(self):
        from llama_index.core.storage.docstore import SimpleDocumentStore

        if not self.docstore_path.exists():
            return SimpleDocumentStore()
        try:
            return SimpleDocumentStore.from_persist_path(str(self.docstore_path))
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise AssistantError(
                f"{self.docstore_path} is damaged ({type(exc).__name__}: {exc}); restore it, or move it "
                "away and ingest again (chunks already in Chroma are replaced, not duplicated)"
            ) from exc

    def sync(self) -> bool:
        """Catch up with what another writer saved into this index since this store last looked,
        e.g. an ``ingest`` or ``remove`` from the command line while the chat app runs; True if it
        reopened Chroma.

        Every change to an index ends with a new keyword index build on disk, so a build this store
        did not write is the signal, checked with one stat(). Its keyword index is then loaded
        again (even when the chunk count stayed, as for a corrected article). And Chroma keeps one
        System per folder and process, with the vector index in memory, and never reloads it:
        another process's chunks stay invisible to this one's vector search, and its deletions can
        leave ids Chroma no longer holds (chroma-core/chroma#2399, #3792). So for a build of another
        process the System is retired and the folder opened afresh; retired Systems are stopped at
        the next reopen, when searches that were using them are long done."""
        with self._keyword_lock:
            build = KeywordIndex.persisted_stamp(self.keyword_dir)
            if build == self._seen_build:
                return False
            self._seen_build, self._keyword = build, None  # keyword_index() loads the new build
            if self.settings.server_mode or build in _BUILDS_WRITTEN_HERE:
                return False  # a server, or another store of this process (sharing our System), is current
            from chromadb.api.shared_system_client import SharedSystemClient

            # Chroma has no public way to reload a folder; dropping its cached System (keyed by
            # the folder) makes the next client build a new one from disk. Private names, so
            # checked: under a Chroma without them the view stays as it was (tests/test_store.py
            # fails on the pinned version if they go).
            systems = getattr(SharedSystemClient, "_identifier_to_system", None)
            folder_key = getattr(self.client, "_identifier", None)
            if not isinstance(systems, dict) or folder_key is None:
                return False
            for system in self._retired_systems:
                system.stop()
            retired = systems.pop(folder_key, None)
            self._retired_systems = [retired] if retired is not None else []
            self.client = chroma_client(self.settings, create=False)
            self._open_collection()
            self.docstore = self._load_docstore()
            return True

    # -- ingestion ---------------------------------------------------------
    def ingest(self, articles: Iterable[Article], show_progress: bool = True) -> IngestReport:
        """Chunk, embed and write articles; unchanged ones are skipped, changed ones replaced."""
        with self._only_writer():
            self.sync()  # write on top of what other processes wrote, not on a stale view of it
            return self._ingest(articles, show_progress)

    def _ingest(self, articles: Iterable[Article], show_progress: bool) -> IngestReport:
        from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
        from tqdm import tqdm

        report = IngestReport()
        documents = self._unique_documents(articles, report)
        report.articles_seen = len(documents)
        if not documents:
            return report
        embed_model = embedding_model(self.settings)
        pipeline = IngestionPipeline(
            transformations=[make_splitter(self.settings, embed_model), embed_model],
            vector_store=self.vector_store,
            docstore=self.docstore,
            docstore_strategy=DocstoreStrategy.UPSERTS,
            # The pipeline's in-memory transformation cache would keep every batch's nodes and
            # embeddings for the whole run (GBs at archive scale) and hash them all; the docstore
            # already skips unchanged articles, and embed_cache_dir caches vectors on disk.
            disable_cache=True,
        )
        batch_size = max(1, self.settings.ingest_batch_articles)
        with tqdm(total=len(documents), unit="article", desc="ingest", disable=not show_progress) as bar:
            for start in range(0, len(documents), batch_size):
                batch = documents[start:start + batch_size]
                self._forget_vanished_articles(batch)
                for doc in batch:
                    known = self.docstore.get_document_hash(doc.id_)
                    if known is None:
                        report.added += 1
                    elif known != doc.hash:
                        report.updated += 1
                    else:
                        report.unchanged += 1
                self._remove_uncommitted_chunks(batch)
                # store_doc_text=False: Chroma keeps the chunk text; the docstore
                # only needs ids and hashes to decide what changed.
                nodes = pipeline.run(documents=batch, store_doc_text=False)
                report.chunks_written += len(nodes)
                self._persist_docstore()
                bar.update(len(batch))
                bar.set_postfix(chunks=report.chunks_written)
        if report.added or report.updated:
            self._bump_generation()
        if report.added or report.updated or not (self.keyword_dir / KEYWORD_META).exists():
            self.refresh_keyword_index()
        return report

    def _remove_uncommitted_chunks(self, batch) -> None:
        """Chunks in Chroma of articles the docstore does not know are left from an ingest killed
        between writing Chroma and the docstore (or a lost docstore). Delete them before adding:
        Chroma's add() ignores ids it already holds, so a changed article would keep stale chunks,
        and a shorter new version would leave orphans past its last chunk."""
        unknown = [doc.id_ for doc in batch if self.docstore.get_document_hash(doc.id_) is None]
        if unknown:
            self.collection.delete(where={"document_id": {"$in": unknown}})

    @contextmanager
    def _only_writer(self):
        """One ingest or removal per index at a time, across processes: Chroma's embedded store is
        not safe for two writers, and the docstore and keyword index files would end as whichever
        wrote last. A second writer gets a one-line error rather than a damaged index."""
        try:
            import fcntl
        except ImportError:  # no flock (Windows): one writer at a time is then up to the user
            yield
            return
        try:
            self.settings.index_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.settings.index_dir / WRITE_LOCK_FILE, "w")
        except OSError as exc:
            raise AssistantError(f"cannot write to the index folder {self.settings.index_dir} ({exc.strerror})") from exc
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AssistantError(
                    f"another ingest or removal is writing to {self.settings.index_dir.resolve()}; "
                    "try again when it has finished") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _forget_vanished_articles(self, batch) -> None:
        """Forget the hashes of articles whose chunks are no longer in Chroma, so they are written
        again instead of skipped as unchanged: removed through another client of a shared Chroma
        server (each client keeps its own docstore), or a store restored without its docstore."""
        known = [doc.id_ for doc in batch if self.docstore.get_document_hash(doc.id_) is not None]
        if not known:
            return
        # Every written article has a first chunk; looking ids up is cheaper than a metadata filter.
        first_chunks = {chunk_id(article_id, 0): article_id for article_id in known}
        present = set(self.collection.get(ids=list(first_chunks), include=[])["ids"])
        for first_chunk, article_id in first_chunks.items():
            if first_chunk not in present:
                self.docstore.delete_document(article_id, raise_error=False)

    @staticmethod
    def _unique_documents(articles: Iterable[Article], report: IngestReport):
        by_id = {}
        for article in articles:
            if article.id in by_id and by_id[article.id][0].text != article.text:
                report.problems.append(LoadProblem(
                    article.source, None,
                    f"duplicate article id '{article.id}' with different text (also in {by_id[article.id][0].source}); "
                    "the later one is kept",
                ))
            by_id[article.id] = (article, article_to_document(article))
        return [doc for _, doc in by_id.values()]

    def _persist_docstore(self) -> None:
        # Write then rename, so a crash mid-write never leaves a truncated docstore.
        tmp = self.docstore_path.with_suffix(".json.tmp")
        self.docstore.persist(str(tmp))
        os.replace(tmp, self.docstore_path)

    # -- removal ---------------------------------------------------------------
    def select_articles(self, selection: ArticleSelection) -> list[dict]:
        """The indexed articles (rows as from ``articles``) that ``selection`` matches."""
        if selection.is_empty():
            raise AssistantError("say which articles to remove (ids, a date or a site)")
        return [row for row in self.articles() if selection.matches(row)]

    def remove(self, article_ids: list[str]) -> int:
        """Delete these articles' chunks, hashes and keyword entries; returns the chunks deleted.

        The docstore forgets an article before Chroma drops its chunks: if the process dies in
        between, the chunks are still listed (so removing again finds them) and re-ingesting the
        article replaces them (see ``_remove_uncommitted_chunks``). The other order would leave a
        hash without chunks, and re-ingesting that article would be skipped as unchanged.
        """
        if not article_ids:
            return 0
        with self._only_writer():
            self.sync()
            return self._remove(article_ids)

    def _remove(self, article_ids: list[str]) -> int:
        before = self.collection.count()
        for article_id in article_ids:
            self.docstore.delete_document(article_id, raise_error=False)
        self._persist_docstore()
        # One delete per batch of ids, not llama-index's one call per document (vector_store.delete),
        # so pruning thousands of articles is a few calls.
        for start in range(0, len(article_ids), REMOVE_BATCH):
            self.collection.delete(where={"document_id": {"$in": list(article_ids[start:start + REMOVE_BATCH])}})
        self._bump_generation()
        self.refresh_keyword_index()
        return before - self.collection.count()

    # -- keyword index -------------------------------------------------------
    @property
    def keyword_dir(self) -> Path:
        # Server mode: one keyword index per server and collection, kept locally.
        name = KEYWORD_DIR if not self.settings.server_mode else (
            f"{KEYWORD_DIR}-{self.settings.chroma_host}-{self.settings.chroma_port}-{self.settings.collection}")
        return self.settings.index_dir / name

    def keyword_index(self) -> KeywordIndex | None:
        """The BM25 index: loaded once, loaded again when another writer saved a new build (see
        ``sync``), rebuilt if Chroma's chunk count moved since it was built or, with a shared Chroma
        server, if another client wrote to the collection since (its write generation changed)."""
        with self._keyword_lock:
            self.sync()
            if self._keyword is None and self.keyword_dir.exists():
                self._keyword = KeywordIndex.load(self.keyword_dir)
            if self._keyword_is_stale():
                self.refresh_keyword_index()
            return self._keyword

    def _keyword_is_stale(self) -> bool:
        if self._keyword is None or self._keyword.chunk_count != self.collection.count():
            return True
        # An embedded index follows other writers through their builds on disk (``sync``). Clients
        # of a server share no folder, and a colleague's corrected article can leave the chunk
        # count as it was, so they compare the generation every write sets on the collection.
        return self.settings.server_mode and self._keyword.generation != self.write_generation()

    def _stored_metadata(self) -> dict:
        # A fresh read: the collection object keeps the metadata it was opened with, and other clients write it.
        return self.client.get_collection(self.settings.collection).metadata or {}

    def write_generation(self) -> str | None:
        """The collection's write generation as stored now."""
        return self._stored_metadata().get(GENERATION_KEY)

    def _bump_generation(self) -> None:
        # modify() replaces the whole metadata, so the other keys (the embedder) are passed back;
        # Chroma refuses "hnsw:" keys there, which its configuration holds anyway.
        metadata = {key: value for key, value in self._stored_metadata().items() if not key.startswith("hnsw:")}
        self.collection.modify(metadata={**metadata, GENERATION_KEY: uuid.uuid4().hex})

    def refresh_keyword_index(self) -> None:
        with self._keyword_lock:
            # Read before the chunks: a write landing in between then shows as a newer generation.
            generation = self.write_generation()
            self._keyword = KeywordIndex.build(self.all_nodes(), self.collection.count(), self.keyword_dir,
                                               generation)
            self._seen_build = KeywordIndex.persisted_stamp(self.keyword_dir)
            if self._seen_build is not None:
                _BUILDS_WRITTEN_HERE.add(self._seen_build)

    def chunks(self, ids: list[str]) -> dict:
        """The stored chunks (nodes with text and metadata) among ``ids``, in one Chroma read."""
        if not ids:
            return {}
        return {node.node_id: node for node in self.vector_store.get_nodes(node_ids=list(ids))}

    def all_nodes(self):
        """Every chunk as a llama-index node (text and metadata, no embedding), read page by page."""
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        return [metadata_dict_to_node(meta, text=text) for text, meta in self._chunk_records(with_text=True)]

    def _where(self) -> str:
        return (f"chroma server {self.settings.chroma_host}:{self.settings.chroma_port}"
                if self.settings.server_mode else str(Path(self.settings.index_dir).resolve()))

    def _chunk_records(self, with_text: bool = False):
        """(text or None, metadata) of every chunk, read page by page: one get() of a large
        collection would hold everything at once."""
        include = ["documents", "metadatas"] if with_text else ["metadatas"]
        for offset in range(0, self.collection.count(), STATS_PAGE):
            page = self.collection.get(include=include, limit=STATS_PAGE, offset=offset)
            texts = page["documents"] if with_text else [None] * len(page["metadatas"])
            yield from zip(texts, page["metadatas"])

    # -- reading -----------------------------------------------------------
    def articles(self) -> list[dict]:
        """One row per article (title, site, published, url, id), newest first."""
        rows: dict[str, dict] = {}
        for _, meta in self._chunk_records():
            article_id = meta.get("article_id") or meta.get("document_id")
            rows.setdefault(article_id, {
                "id": article_id, "title": meta.get("title") or article_id, "site": meta.get("site") or "",
                "published": meta.get("published") or "", "url": meta.get("url") or "",
            })
        return sorted(rows.values(), key=lambda r: (r["published"], r["title"]), reverse=True)

    def chunk_count(self) -> int:
        return self.collection.count()

    def stats(self) -> IndexStats:
        articles: set[str] = set()
        sites: set[str] = set()
        dates: list[str] = []
        total = 0
        for _, meta in self._chunk_records():
            total += 1
            articles.add(meta.get("article_id") or meta.get("document_id"))
            if meta.get("site"):
                sites.add(meta["site"])
            if meta.get("published"):
                dates.append(meta["published"])
        location = self._where()
        return IndexStats(
            articles=len(articles),
            chunks=total,
            sites=sorted(sites),
            earliest=min(dates) if dates else None,
            latest=max(dates) if dates else None,
            location=location,
        )
