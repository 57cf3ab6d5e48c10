"""Find the chunks that answer a question: vector search over the store, with
date and site filters applied inside Chroma.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from .chunking import embedding_model
from .settings import Settings
from .store import NewsStore

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class RetrievalFilters:
    since: dt.date | None = None
    until: dt.date | None = None
    sites: tuple[str, ...] = field(default_factory=tuple)

    def is_empty(self) -> bool:
        return not (self.since or self.until or self.sites)

    def to_metadata_filters(self) -> MetadataFilters | None:
        filters: list[MetadataFilter] = []
        if self.since:
            filters.append(MetadataFilter(key="published_day", operator=FilterOperator.GTE, value=_day(self.since)))
        if self.until:
            filters.append(MetadataFilter(key="published_day", operator=FilterOperator.LTE, value=_day(self.until)))
        if self.sites:
            filters.append(MetadataFilter(key="site", operator=FilterOperator.IN, value=list(self.sites)))
        if not filters:
            return None
        return MetadataFilters(filters=filters, condition=FilterCondition.AND)


def _day(date: dt.date) -> int:
    return (date - EPOCH).days


class NewsRetriever:
    """Ranked chunks for a question; ``score`` is the cosine similarity to the question."""

    def __init__(self, settings: Settings, store: NewsStore):
        self.settings = settings
        self.index = VectorStoreIndex.from_vector_store(store.vector_store, embed_model=embedding_model(settings))

    def retrieve(
        self, question: str, filters: RetrievalFilters | None = None, as_of: dt.date | None = None
    ) -> list[NodeWithScore]:
        """``as_of`` is the day the question is asked: articles published after it do not exist yet."""
        filters = filters or RetrievalFilters()
        if as_of is not None:
            limit = as_of + dt.timedelta(days=self.settings.as_of_grace_days)
            filters = replace(filters, until=min(filters.until, limit) if filters.until else limit)
        retriever = self.index.as_retriever(
            similarity_top_k=self.settings.retrieve_top_k,
            filters=filters.to_metadata_filters(),
        )
        nodes = retriever.retrieve(question)
        for node in nodes:
            # llama-index's Chroma store reports exp(-distance); with the cosine
            # space distance = 1 - cosine, so undo it to get a cosine we can threshold.
            node.score = 1.0 + math.log(node.score) if node.score else 0.0
        return nodes
