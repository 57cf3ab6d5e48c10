"""Find the chunks that answer a question.

Hybrid search: the vector retriever over Chroma and BM25 over the same chunks
each return candidates (date and site filters applied inside Chroma and as a
mask in BM25, an as-of date hides later articles); a trained model scores each
candidate from cheap features, the article's age at the as-of date among them
(fusion=learned; the fixed fusions add normalized scores or ranks and discount
older articles), and a diversity pass keeps near-identical passages and too many
chunks of one article out of the top results. Chunks are sized for the
embedder (256 tokens), which is short for reading: each result comes back as a
window of the chunk and its neighbours in the article ("small to big").
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from chromadb.errors import ChromaError
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from .chunking import chunk_id, chunk_position, embedding_model
from .errors import AssistantError
from .settings import Settings
from .store import KeywordIndex, NewsStore
from .text import content_of, content_words, names, word_pairs, words

EPOCH = dt.date(1970, 1, 1)
FUSION_MODEL_FILE = Path(__file__).with_name("fusion_model.json")  # written by benchmarks.learned_fusion --save
VECTOR_HEADROOM = 3  # unfiltered vector search fetches this many times the candidates (see _vector_search)
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class RetrievalFilters:
    since: dt.date | None = None
    until: dt.date | None = None
    sites: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def asked(cls, since: dt.date | None, until: dt.date | None, sites) -> RetrievalFilters:
        """Filters as a user gives them (CLI, UI): a range that is empty by itself is a mistake to
        report, not a question to refuse. (Combined with an as-of day, an empty range is fine:
        "since next year" asked today simply finds nothing yet.)"""
        if since and until and since > until:
            raise AssistantError(f"the date range is empty: since {since} is after until {until}")
        return cls(since=since, until=until, sites=tuple(sites))

    def is_empty(self) -> bool:
        return not (self.since or self.until or self.sites)

    def to_metadata_filters(self) -> MetadataFilters | None:
        filters: list[MetadataFilter] = []
        if self.since:
            filters.append(MetadataFilter(key="published_day", operator=FilterOperator.GTE, value=day_number(self.since)))
        if self.until:
            filters.append(MetadataFilter(key="published_day", operator=FilterOperator.LTE, value=day_number(self.until)))
        if self.sites:
            filters.append(MetadataFilter(key="site", operator=FilterOperator.IN, value=list(self.sites)))
        if not filters:
            return None
        return MetadataFilters(filters=filters, condition=FilterCondition.AND)

    def keyword_mask(self, days: np.ndarray, sites: np.ndarray) -> np.ndarray | None:
        """The same filters as a 0/1 mask over the BM25 corpus."""
        if self.is_empty():
            return None
        keep = np.ones(len(days), dtype=bool)
        if self.since:
            keep &= days >= day_number(self.since)
        if self.until:
            keep &= days <= day_number(self.until)
        if self.sites:
            keep &= np.isin(sites, list(self.sites))
        return keep.astype(np.int8)


def day_number(date: dt.date) -> int:
    return (date - EPOCH).days


@dataclass
class Candidates:
    vector: list[NodeWithScore]  # nearest chunks, best first; score = cosine similarity
    keyword: list[NodeWithScore]  # BM25 matches, best first; score = BM25 score
    best_similarity: float  # highest cosine among the vector candidates (relevance gate)
    question_embedding: list[float] | None = None  # computed once per question (None when no vector search ran)
    newest_day: int | None = None  # the index's newest article (day number), for ``NewsRetriever.age_anchor``


@dataclass
class RankedChunks:
    nodes: list[NodeWithScore]  # best first; score = fused score
    best_similarity: float  # highest cosine similarity among the vector candidates (relevance gate)
    question_embedding: list[float] | None = None  # for the sentence selection, which compares sentences with it
    # With windows: node id -> (start, end, fused score) of each chunk joined into its text, so that
    # the sentence selection credits a sentence with its own chunk's rank, not its window's centre's.
    part_scores: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)


class NewsRetriever:
    def __init__(self, settings: Settings, store: NewsStore):
        self.settings = settings
        self.store = store
        self.embed_model = embedding_model(settings)
        self._index: VectorStoreIndex | None = None

    @property
    def index(self) -> VectorStoreIndex:
        """llama-index's view of the store's Chroma collection, made again when the store reopened it."""
        vector_store = self.store.vector_store
        if self._index is None or self._index.vector_store is not vector_store:
            self._index = VectorStoreIndex.from_vector_store(vector_store, embed_model=self.embed_model)
        return self._index

    def warm_up(self) -> None:
        """Search once, unfiltered and filtered, so that the first question does not pay for
        loading the keyword index, the fusion model and Chroma's vector index from disk
        (1.7 s on the 54,000-chunk archive, 2 cores, page cache warm; more when it is not)."""
        self.retrieve("news", RetrievalFilters(until=dt.date.today()))

    def retrieve(
        self, question: str, filters: RetrievalFilters | None = None, as_of: dt.date | None = None
    ) -> RankedChunks:
        """``as_of`` is the day the question is asked: later articles do not exist yet, recent ones count more."""
        s = self.settings
        found = self.candidates(question, filters, as_of)
        fused = fuse_candidates(s, question, found, self.age_anchor(as_of, found.newest_day))
        best = diversify(fused, s.max_chunks_per_article, s.duplicate_jaccard, s.window_chunks, s.retrieve_top_k)
        part_scores: dict[str, list[tuple[int, int, float]]] = {}
        if s.window_chunks > 0:
            best, part_scores = self._windows(best, {n.node.node_id: n.score or 0.0 for n in fused})
        return RankedChunks(best, found.best_similarity, found.question_embedding, part_scores)

    def candidates(
        self, question: str, filters: RetrievalFilters | None = None, as_of: dt.date | None = None
    ) -> Candidates:
        """Each retriever's own ranking under the filters and the as-of limit, before fusion."""
        s = self.settings
        # Read once per question; it first catches up with what another process may have ingested or
        # removed since the last question (``NewsStore.sync``), so before the vector search too.
        keyword = self.store.keyword_index()
        filters = filters or RetrievalFilters()
        asked_filters = filters
        if as_of is not None:
            limit = as_of + dt.timedelta(days=s.as_of_grace_days)
            filters = replace(filters, until=min(filters.until, limit) if filters.until else limit)

        vector_nodes, embedding = [], None
        if s.retrieval_mode in ("hybrid", "vector"):
            # Embedded once here: llama-index's retriever would embed it again for each search.
            embedding = self.embed_model.get_query_embedding(question)
            vector_nodes = self._vector_search(QueryBundle(question, embedding=embedding), filters, asked_filters,
                                               keyword)
        best_similarity = max((n.score or 0.0 for n in vector_nodes), default=0.0)
        keyword_nodes = self._keyword_search(keyword, question, filters) if s.retrieval_mode in ("hybrid", "bm25") else []
        if s.retrieval_mode == "bm25" and keyword_nodes:
            best_similarity = 1.0  # BM25 alone has no calibrated relevance score; nothing is gated
        return Candidates(vector_nodes, keyword_nodes, best_similarity, embedding,
                          keyword.newest_day if keyword is not None else None)

    def age_anchor(self, as_of: dt.date | None, newest_day: int | None) -> dt.date | None:
        """The day articles' ages are counted from (the learned fusion's age feature, the fixed fusions'
        recency): the as-of day, unless the index's newest article is more than ``stale_index_days``
        older than it. Then the newest article's day (with the grace days) is "now": an archive that
        ended in 2023, asked today, would otherwise show every article as years old, and the ranking
        could no longer tell the archive's last week from its first (BENCHMARKS.md, per-week table)."""
        s = self.settings
        if as_of is None or newest_day is None or s.stale_index_days <= 0:
            return as_of
        archive_end = EPOCH + dt.timedelta(days=newest_day + s.as_of_grace_days)
        return archive_end if (as_of - archive_end).days > s.stale_index_days else as_of

    def _windows(
        self, centers: list[NodeWithScore], fused_scores: dict[str, float]
    ) -> tuple[list[NodeWithScore], dict[str, list[tuple[int, int, float]]]]:
        """Each chunk with up to ``window_chunks`` neighbours on each side, read in one Chroma
        call; a neighbour already shown in a better window is not repeated. Also each window's
        parts as (start, end, score): a neighbour keeps its own fused score (0 when neither
        retriever found it), the centre its window's.

        Written here because llama-index's small-to-big tools (sentence-window metadata,
        auto-merging parents) need those windows stored at ingest; ours are reassembled
        from the deterministic chunk ids, so existing indexes work unchanged."""
        w = self.settings.window_chunks
        wanted: dict[str, list[str]] = {}
        used: set[str] = set()
        for center in centers:
            position = chunk_position(center.node.node_id)
            ids = [center.node.node_id]
            if position is not None:
                article, n = position
                ids = [chunk_id(article, m) for m in range(max(0, n - w), n + w + 1)]
            ids = [i for i in ids if i not in used or i == center.node.node_id]
            used.update(ids)
            wanted[center.node.node_id] = ids
        stored = self.store.chunks([i for ids in wanted.values() for i in ids])
        out, part_scores = [], {}
        for center in centers:
            center_id = center.node.node_id
            parts = [stored[i] for i in wanted[center_id] if i in stored] or [center.node]
            text, spans = join_chunks(parts)
            window = center.node.model_copy()
            window.set_content(text)
            window.start_char_idx, window.end_char_idx = parts[0].start_char_idx, parts[-1].end_char_idx
            out.append(NodeWithScore(node=window, score=center.score))
            part_scores[center_id] = [
                (start, end, (center.score or 0.0) if part.node_id == center_id else fused_scores.get(part.node_id, 0.0))
                for part, (start, end) in zip(parts, spans)]
        return out, part_scores

    def _vector_search(
        self, question: QueryBundle, filters: RetrievalFilters, asked_filters: RetrievalFilters | None = None,
        keyword: KeywordIndex | None = None,
    ) -> list[NodeWithScore]:
        """Nearest chunks under ``filters``. When the only filter is the as-of limit (the usual
        case: asked today, nothing is excluded), search unfiltered with some headroom and drop
        later articles here: a filtered search costs about 0.10 s per query on a 54,000-chunk
        index against 0.02 s unfiltered. Only if too few candidates survive is the filtered
        search run. ``keyword`` is the question's keyword index (read from the store if not given)."""
        k = self.settings.candidates
        if asked_filters is not None and asked_filters.is_empty() and filters.until is not None:
            last_day = day_number(filters.until)
            nodes = self._nearest(question, k * VECTOR_HEADROOM, None)
            kept = [n for n in nodes if int(n.node.metadata.get("published_day", -1)) <= last_day]
            if len(kept) >= k or len(nodes) < k * VECTOR_HEADROOM:  # enough, or the index holds no more
                return kept[:k]
        allowed = self._allowed_ids(keyword, filters)
        if allowed is not None:
            if not allowed:
                return []
            try:
                return self._nearest(question, k, None, ids=allowed)
            except ChromaError:  # an id Chroma no longer holds (the store changed under us): filter there
                pass
        return self._nearest(question, k, filters.to_metadata_filters())

    def _allowed_ids(self, keyword: KeywordIndex | None, filters: RetrievalFilters) -> list[str] | None:
        """The ids of the chunks ``filters`` keep, from the keyword index's in-memory arrays.
        Chroma's where-filter reads them from SQLite on every query (about 0.35 s on a
        54,000-chunk archive on 2 cores); handed the ids, the same search takes about 0.10 s
        with the same results. None in server mode, where the list would cross the network
        on every query, or without a keyword index: Chroma filters then."""
        if self.settings.server_mode:
            return None
        keyword = keyword if keyword is not None else self.store.keyword_index()
        mask = None if keyword is None else filters.keyword_mask(keyword.days, keyword.sites)
        return None if mask is None else keyword.ids_where(mask)

    def _nearest(
        self, question: QueryBundle | str, k: int, metadata_filters: MetadataFilters | None,
        ids: list[str] | None = None,
    ) -> list[NodeWithScore]:
        """The k nearest chunks, among ``ids`` if given (passed through to Chroma's query)."""
        kwargs = {"ids": ids} if ids is not None else {}
        nodes = self.index.as_retriever(
            similarity_top_k=k, filters=metadata_filters, vector_store_kwargs=kwargs).retrieve(question)
        for node in nodes:
            # llama-index's Chroma store reports exp(-distance); with the cosine
            # space distance = 1 - cosine, so undo it to get a cosine we can threshold.
            node.score = 1.0 + math.log(node.score) if node.score else 0.0
        return nodes

    def _keyword_search(self, keyword: KeywordIndex | None, question: str,
                        filters: RetrievalFilters) -> list[NodeWithScore]:
        if keyword is None:
            return []
        mask = filters.keyword_mask(keyword.days, keyword.sites)
        if mask is not None and not mask.any():
            return []
        return keyword.search(question, self.settings.candidates, mask)


# Fusion is written here rather than with llama-index's QueryFusionRetriever: that
# one keys candidates by content hash and overwrites their scores, while we need
# per-retriever weights and the vector cosine kept for the relevance gate.
def fuse_ranks(rankings: list[list[NodeWithScore]], weights: list[float], k: float) -> list[NodeWithScore]:
    """Weighted reciprocal rank fusion: score = sum of weight / (k + rank)."""
    scores: dict[str, float] = {}
    nodes: dict[str, NodeWithScore] = {}
    for ranking, weight in zip(rankings, weights):
        if weight <= 0:
            continue
        for rank, node in enumerate(ranking, start=1):
            key = node.node.node_id
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            nodes.setdefault(key, node)
    fused = [NodeWithScore(node=nodes[key].node, score=score) for key, score in scores.items()]
    fused.sort(key=lambda n: n.score, reverse=True)
    return fused


def fuse_candidates(settings: Settings, question: str, found: Candidates, as_of: dt.date | None) -> list[NodeWithScore]:
    """Both retrievers' candidates in one scored order, by the settings' fusion (before the diversity pass)."""
    s = settings
    # The model was trained on both retrievers' candidates and weighs the article's age itself;
    # one retriever alone (retrieval_mode vector or bm25) keeps its own scores and the fixed recency.
    if s.fusion == "learned" and s.retrieval_mode == "hybrid":
        dated = as_of if s.recency_half_life_days > 0 else None  # 0: no date preference, as with the fixed fusions
        return fuse_learned(question, dated, found.vector, found.keyword, load_fusion_model(FUSION_MODEL_FILE))
    rankings, weights = [found.vector, found.keyword], [s.vector_weight, 1.0 - s.vector_weight]
    fused = fuse_ranks(rankings, weights, s.rrf_k) if s.fusion == "rrf" else fuse_scores(rankings, weights)
    if as_of is not None and s.recency_half_life_days > 0:
        apply_recency(fused, as_of, s.recency_half_life_days)
    return fused


def min_max(ranking: list[NodeWithScore]) -> dict[str, float]:
    """Each chunk's score scaled to 0..1 within its list (1.0 for all when the scores are equal)."""
    values = [n.score or 0.0 for n in ranking]
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    return {n.node.node_id: ((v - low) / (high - low) if high > low else 1.0) for n, v in zip(ranking, values)}


def article_of(node: NodeWithScore) -> str:
    return node.node.metadata.get("article_id") or node.node.ref_doc_id or node.node.node_id


def fuse_scores(rankings: list[list[NodeWithScore]], weights: list[float]) -> list[NodeWithScore]:
    """Weighted sum of min-max normalized scores (llama-index's "relative_score" fusion): unlike
    rank fusion it keeps how far ahead a clear winner is. A chunk missing from a list gets 0 there."""
    scores: dict[str, float] = {}
    nodes: dict[str, NodeWithScore] = {}
    for ranking, weight in zip(rankings, weights):
        if weight <= 0 or not ranking:
            continue
        for node in ranking:
            nodes.setdefault(node.node.node_id, node)
        for key, normalized in min_max(ranking).items():
            scores[key] = scores.get(key, 0.0) + weight * normalized
    fused = [NodeWithScore(node=nodes[key].node, score=score) for key, score in scores.items()]
    fused.sort(key=lambda n: n.score, reverse=True)
    return fused


# A learned fusion: boosted trees (or a logistic regression) over these features of every candidate,
# trained by benchmarks.learned_fusion on development weeks (candidates holding a gold answer against
# the rest). Hand-written scoring, as llama-index's fusion retrievers only combine scores or ranks.
FUSION_FEATURES = (
    "vector score, min-max within its list (0 if absent)",
    "BM25 score, min-max within its list (0 if absent)",
    "cosine (the list's lowest if absent)",
    "found by both retrievers",
    "best vector score among its article's candidates",
    "best BM25 score among its article's candidates",
    "1 / (1 + its article's rank by vector score)",
    "1 / (1 + its article's rank by BM25 score)",
    "log(1 + its article's chunks among the candidates)",
    "log(1 + position in its article)",
    "log(1 + article age in days at the question's date)",
    "share of the question's content words in the chunk",
    "share of the question's content words in the title",
    "share of the question's word pairs that the chunk has as adjacent words",
    "log(1 + capitalized words in the chunk that the question does not have)",
    "log(1 + words in the chunk)",
)
UNDATED_AGE_DAYS = 365  # an undated article counts as a year old: neither preferred nor buried


def candidate_features(
    question: str, as_of: dt.date | None, vector: list[NodeWithScore], keyword: list[NodeWithScore]
) -> tuple[list[NodeWithScore], np.ndarray]:
    """The union of both retrievers' candidates and one row of FUSION_FEATURES per candidate.
    Without an as-of date every age is 0 (no recency), as with the other fusions."""
    vec_norm, kw_norm = min_max(vector), min_max(keyword)
    cosine = {n.node.node_id: n.score or 0.0 for n in vector}
    lowest_cosine = min(cosine.values(), default=0.0)
    nodes = list({n.node.node_id: n for n in [*vector, *keyword]}.values())
    article = {n.node.node_id: article_of(n) for n in nodes}
    best_vec: dict[str, float] = {}
    best_kw: dict[str, float] = {}
    count: dict[str, int] = {}
    for n in nodes:
        a, i = article[n.node.node_id], n.node.node_id
        best_vec[a] = max(best_vec.get(a, 0.0), vec_norm.get(i, 0.0))
        best_kw[a] = max(best_kw.get(a, 0.0), kw_norm.get(i, 0.0))
        count[a] = count.get(a, 0) + 1
    vec_rank = {a: r for r, a in enumerate(sorted(best_vec, key=best_vec.get, reverse=True))}
    kw_rank = {a: r for r, a in enumerate(sorted(best_kw, key=best_kw.get, reverse=True))}
    asked = content_words(question) or {""}
    asked_pairs, asked_names = word_pairs(question), names(question)
    rows = []
    for n in nodes:
        i, a, meta = n.node.node_id, article[n.node.node_id], n.node.metadata
        published = int(meta.get("published_day", -1))
        if as_of is None:
            age = 0
        else:
            age = UNDATED_AGE_DAYS if published < 0 else max(0, day_number(as_of) - published)
        position = chunk_position(i)
        text = n.node.get_content()
        seq = words(text)  # split once: this runs for every candidate of every question
        rows.append([
            vec_norm.get(i, 0.0), kw_norm.get(i, 0.0), cosine.get(i, lowest_cosine),
            float(i in vec_norm and i in kw_norm), best_vec[a], best_kw[a], 1 / (1 + vec_rank[a]),
            1 / (1 + kw_rank[a]), math.log1p(count[a]), math.log1p(position[1] if position else 0), math.log1p(age),
            len(asked & content_of(seq)) / len(asked),
            len(asked & content_words(meta.get("title") or "")) / len(asked),
            # The question's pairs already leave out pairs of two stop words, so the chunk's need no filter.
            len(asked_pairs & set(zip(seq, seq[1:]))) / max(1, len(asked_pairs)),
            math.log1p(len(names(text) - asked_names)), math.log1p(len(seq)),
        ])
    return nodes, np.array(rows, dtype=float).reshape(len(nodes), len(FUSION_FEATURES))


@lru_cache(maxsize=4)
def load_fusion_model(path: Path) -> dict:
    """The trained model, as numpy arrays: either boosted trees ("kind": "trees": per tree the
    split feature, threshold, children and leaf value of each node, and the starting log-odds) or
    a logistic regression (per-feature mean and scale for standardization, coefficients, intercept)."""
    try:
        model = json.loads(Path(path).read_text(encoding="utf-8"))
        if tuple(model["features"]) != FUSION_FEATURES:
            raise AssistantError(f"{path} was trained on other features than this version computes; "
                                 "rerun benchmarks.learned_fusion --save")
        # The weeks it learned from ride along, so a benchmark can tell in-sample from out-of-sample.
        return model_arrays(model) | {"weeks": list(model.get("weeks", []))}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssistantError(f"cannot read the fusion model {path} ({exc}); reinstall, or use fusion=relative_score") from exc


def model_arrays(model: dict) -> dict:
    """A model as written to fusion_model.json, as the numpy arrays fusion_logits reads."""
    if model.get("kind", "logistic") == "trees":
        return {"kind": "trees", "baseline": float(model["baseline"]), **tree_arrays(model["trees"])}
    return {"kind": "logistic", "intercept": float(model["intercept"])} | {
        k: np.asarray(model[k], dtype=float) for k in ("mean", "scale", "coef")}


def tree_arrays(trees: list[dict]) -> dict[str, np.ndarray]:
    """The trees padded to one (trees x nodes) array per field, so that all of them are walked at
    once. A leaf's feature is -1; a leaf is its own child, so walking past it stays on it."""
    width = max(len(t["value"]) for t in trees)
    out = {"feature": np.full((len(trees), width), -1, dtype=np.int64),
           "threshold": np.zeros((len(trees), width)), "value": np.zeros((len(trees), width)),
           "left": np.tile(np.arange(width), (len(trees), 1)), "right": np.tile(np.arange(width), (len(trees), 1))}
    for i, tree in enumerate(trees):
        for name in out:
            out[name][i, :len(tree[name])] = tree[name]
    leaf = out["feature"] < 0
    out["left"][leaf] = out["right"][leaf] = np.nonzero(leaf)[1]
    out["feature"][leaf] = 0  # any column: the comparison is ignored on a leaf
    out["depth"] = max(int(t["depth"]) for t in trees)
    return out


def fusion_logits(model: dict, features: np.ndarray) -> np.ndarray:
    """The model's log-odds that each candidate holds the answer."""
    if model["kind"] == "logistic":
        return ((features - model["mean"]) / model["scale"]) @ model["coef"] + model["intercept"]
    # Boosted trees, evaluated by hand: scikit-learn's models are not package data one can load
    # safely (pickles), and serving needs only this walk. Every candidate goes down every tree
    # together; the export checked that this reproduces scikit-learn's decision_function.
    rows = np.arange(len(features))[:, None]
    trees = np.arange(model["feature"].shape[0])[None, :]
    node = np.zeros((len(features), len(trees[0])), dtype=np.int64)
    for _ in range(model["depth"]):
        go_left = features[rows, model["feature"][trees, node]] <= model["threshold"][trees, node]
        node = np.where(go_left, model["left"][trees, node], model["right"][trees, node])
    return model["value"][trees, node].sum(axis=1) + model["baseline"]


def fuse_learned(
    question: str, as_of: dt.date | None, vector: list[NodeWithScore], keyword: list[NodeWithScore], model: dict
) -> list[NodeWithScore]:
    """Candidates scored by the trained model: the probability that a chunk holds the answer."""
    nodes, features = candidate_features(question, as_of, vector, keyword)
    if not nodes:
        return []
    logits = fusion_logits(model, features)
    fused = [NodeWithScore(node=n.node, score=float(1 / (1 + math.exp(-z)))) for n, z in zip(nodes, logits)]
    fused.sort(key=lambda n: n.score, reverse=True)
    return fused


def join_chunks(chunks: list) -> tuple[str, list[tuple[int, int]]]:
    """Neighbouring chunks of one article as one text, without repeating their overlap, and where
    each chunk lies in it (overlapping chunks overlap there too)."""
    text = chunks[0].get_content()
    spans = [(0, len(text))]
    for previous, chunk in zip(chunks, chunks[1:]):
        full = chunk.get_content()
        part, overlap = full, 0
        if previous.end_char_idx is not None and chunk.start_char_idx is not None:
            overlap = previous.end_char_idx - chunk.start_char_idx
            if 0 < overlap < len(full) and text.endswith(full[:overlap]):
                part = full[overlap:]
            else:
                overlap = 0
        separator = "" if text.endswith(("\n", " ")) else " "
        start = len(text) - overlap if overlap else len(text) + len(separator)
        text = text + separator + part.lstrip()
        spans.append((start, len(text)))
    return text, spans


def apply_recency(nodes: list[NodeWithScore], as_of: dt.date, half_life_days: float) -> None:
    """Halve a chunk's score for every ``half_life_days`` its article is older than ``as_of``.

    Undated articles count as one half-life old: neither preferred nor buried.
    """
    today = day_number(as_of)
    for node in nodes:
        published = int(node.node.metadata.get("published_day", -1))
        age = half_life_days if published < 0 else max(0, today - published)
        node.score = (node.score or 0.0) * 0.5 ** (age / half_life_days)
    nodes.sort(key=lambda n: n.score, reverse=True)


def diversify(
    nodes: list[NodeWithScore], max_per_article: int, duplicate_jaccard: float, window: int = 0,
    limit: int | None = None,
) -> list[NodeWithScore]:
    """Drop chunks beyond ``max_per_article`` per article, chunks within ``window`` positions of a
    better chunk of the same article (they will be shown in its window), and near-duplicates of
    a better chunk (the same wire story on two sites): word-set Jaccard at or above the threshold."""
    kept: list[NodeWithScore] = []
    kept_words: list[set[str]] = []
    kept_positions: set[tuple[str, int]] = set()
    per_article: dict[str, int] = {}
    for node in nodes:
        if limit is not None and len(kept) >= limit:
            break
        article = article_of(node)
        if max_per_article and per_article.get(article, 0) >= max_per_article:
            continue
        position = chunk_position(node.node.node_id)
        if position and window and any((position[0], position[1] + d) in kept_positions
                                       for d in range(-window, window + 1)):
            continue
        vocabulary = set(_WORDS.findall(node.node.get_content().lower()))
        if duplicate_jaccard < 1.0 and any(
            len(vocabulary & other) / (len(vocabulary | other) or 1) >= duplicate_jaccard for other in kept_words
        ):
            continue
        kept.append(node)
        kept_words.append(vocabulary)
        if position:
            kept_positions.add(position)
        per_article[article] = per_article.get(article, 0) + 1
    return kept
