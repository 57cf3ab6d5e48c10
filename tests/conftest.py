"""Shared fixtures: real Chroma, the real packaged embedding model, temporary indexes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata

from assistant.articles import ArticleLoader
from assistant.settings import Settings
from assistant.store import NewsStore

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
SHARED_RTQA = REPO.parent / "shared" / "data" / "realtimeqa"


class ScriptedLLM(CustomLLM):
    """A stand-in LLM for fast unit tests: returns a fixed reply and records the prompts."""

    reply: str = ""
    prompts: list = []

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=4096, num_output=200, model_name="scripted")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.reply)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        self.prompts.append(prompt)

        def gen():
            text = ""
            for word in self.reply.split(" "):
                delta = (" " if text else "") + word
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()


class ByPromptLLM(ScriptedLLM):
    """Replies chosen by the first key found in the prompt (else "no idea")."""

    replies: dict = {}

    def complete(self, prompt, formatted=False, **kwargs):
        self.reply = next((r for k, r in self.replies.items() if k in prompt), "no idea")
        return super().complete(prompt, formatted, **kwargs)

    def stream_complete(self, prompt, formatted=False, **kwargs):
        self.reply = next((r for k, r in self.replies.items() if k in prompt), "no idea")
        return super().stream_complete(prompt, formatted, **kwargs)


def make_settings(index_dir: Path, **overrides) -> Settings:
    return Settings(index_dir=index_dir, **overrides)


def ingest_paths(settings: Settings, paths) -> NewsStore:
    loader = ArticleLoader()
    store = NewsStore(settings, create=True)
    store.ingest(list(loader.load(paths)), show_progress=False)
    return store


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory) -> Path:
    """An index of the default corpus, built once per test session."""
    index_dir = tmp_path_factory.mktemp("seed-index")
    ingest_paths(make_settings(index_dir), [CORPUS])
    return index_dir


@pytest.fixture
def seed_index_copy(seed_index, tmp_path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(seed_index, target)
    return target


@pytest.fixture(scope="session")
def rtqa_articles() -> Path:
    path = SHARED_RTQA / "articles.jsonl.gz"
    if not path.exists():
        pytest.skip(f"shared RealTimeQA data not found at {path}")
    return path
