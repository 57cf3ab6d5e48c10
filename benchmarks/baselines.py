"""The plain llama-index default pipeline, as the baseline every benchmark measures beside ours.

`VectorStoreIndex.from_documents` with default settings (SentenceSplitter 1,024
tokens, overlap 200) into Chroma, the same embedding model run as a user of
llama-index gets it (sentence-transformers in fp32, `default_settings`); its default query
engine retrieves the top 2 chunks and answers with the default prompt.
Plugs into `assistant.evaluation.runner.run_evaluation` as index builder and engine.
"""

from __future__ import annotations

import time

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.schema import MetadataMode

from assistant.answer import Answer, Citation, Retrieval
from assistant.chunking import embedding_model
from assistant.llm import build_llm
from assistant.settings import Settings
from assistant.store import chroma_client

COLLECTION = "llamaindex_default"


def default_settings(settings: Settings) -> Settings:
    """The baseline's settings: the packaged model in plain fp32 torch, whatever ours use."""
    return settings.model_copy(update={"embed_backend": "torch"})
DEFAULT_QUERY_ENGINE_TOP_K = 2  # what VectorStoreIndex.as_query_engine() retrieves
RANKING_TOP_K = 10  # for hit@k and MRR@10


def _vector_store(settings: Settings, create: bool):
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chroma_client(settings, create=create)
    return ChromaVectorStore(chroma_collection=client.get_or_create_collection(COLLECTION))


def build_default_index(settings: Settings, articles) -> None:
    documents = [
        Document(text=a.text, id_=a.id,
                 metadata={"article_id": a.id, "title": a.title, "site": a.site or "", "published": a.published or ""})
        for a in articles
    ]
    VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=_vector_store(settings, create=True)),
        embed_model=embedding_model(default_settings(settings)),
    )


class DefaultPipeline:
    """retrieve()/answer() like NewsAssistant, over the default index (as_of is not used: the default has none)."""

    def __init__(self, settings: Settings, llm=None):
        self.settings = settings
        self.index = VectorStoreIndex.from_vector_store(_vector_store(settings, create=False),
                                                        embed_model=embedding_model(default_settings(settings)))
        self._llm = llm

    def warm_up(self) -> None:
        """One search before the timed ones, as for this project's engine."""
        self.index.as_retriever(similarity_top_k=RANKING_TOP_K).retrieve("news")

    def retrieve(self, question: str, filters=None, as_of=None) -> Retrieval:
        started = time.perf_counter()
        ranked = self.index.as_retriever(similarity_top_k=RANKING_TOP_K).retrieve(question)
        sources = [
            Citation(n=i, article_id=n.node.metadata.get("article_id", ""), title=n.node.metadata.get("title", ""),
                     site=n.node.metadata.get("site", ""), published=n.node.metadata.get("published", ""), url="",
                     text=n.node.get_content(metadata_mode=MetadataMode.LLM))
            for i, n in enumerate(ranked[:DEFAULT_QUERY_ENGINE_TOP_K], start=1)
        ]
        elapsed = time.perf_counter() - started
        return _DefaultRetrieval(question, ranked, sources, round(elapsed, 3), rank_s=round(elapsed, 4))

    def answer(self, retrieval: Retrieval, on_token=None, choices=None) -> Answer:
        from llama_index.core import get_response_synthesizer

        if self._llm is None:
            self._llm = build_llm(self.settings)
        query = retrieval.question
        if choices:
            query += "\nChoices:\n" + "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(choices))
        started = time.perf_counter()
        synthesizer = get_response_synthesizer(llm=self._llm, streaming=True)  # default prompts, compact mode
        response = synthesizer.synthesize(query, nodes=retrieval.ranked[:DEFAULT_QUERY_ENGINE_TOP_K])
        first, pieces = None, []
        for token in response.response_gen:
            first = first if first is not None else time.perf_counter() - started
            pieces.append(token)
        generate_s = time.perf_counter() - started
        text = "".join(pieces).strip()
        timings = {"retrieve_s": retrieval.retrieve_s, "first_token_s": round(first or generate_s, 3),
                   "generate_s": round(generate_s, 3), "total_s": round(retrieval.retrieve_s + generate_s, 3),
                   "answer_tokens": float(len(text.split()) * 1.3)}
        # The default engine cites nothing: its "citations" are the sources it was given.
        return Answer(retrieval.question, text, retrieval.sources, retrieval.retrieved_ids, timings,
                      refused=False, sources=retrieval.sources, context=retrieval.context)


class _DefaultRetrieval(Retrieval):
    @property
    def context(self) -> str:
        # The default query engine's context: its chunks' text with metadata, joined.
        return "\n\n".join(s.text for s in self.sources)
