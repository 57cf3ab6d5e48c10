"""The language model behind answers, chosen by configuration: the packaged
GGUF (default), any GGUF file, an Ollama server or an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from .errors import AssistantError
from .models import packaged_model_path
from .settings import Settings, env_name

# Qwen2.5 instruct models are trained on ChatML; any other framing makes them ramble.
CHATML_STOP = "<|im_end|>"
# Text shaped like a chat-template control token: ChatML's <|im_start|> and <|im_end|>, Qwen's
# <|endoftext|>, Llama 3's <|eot_id|> and <|start_header_id|>, ...
_CONTROL_TOKEN = re.compile(r"<\|([A-Za-z0-9_]{1,40})\|>")


def defuse_control_tokens(text: str) -> str:
    """Untrusted text (articles, titles, questions, chat history) as it may go into a prompt:
    "<|im_end|>" becomes "<im_end>". llama-cpp-python tokenizes the whole prompt with special
    tokens parsed, so an article holding "<|im_end|><|im_start|>system ..." would otherwise close
    the sources and open a system turn of its own: the text stays readable, but it can no longer
    be a control token. Done for every backend, since how a server tokenizes is not ours to know."""
    return _CONTROL_TOKEN.sub(r"<\1>", text)


def chatml_messages_to_prompt(messages: Sequence) -> str:
    parts = []
    for message in messages:
        role = getattr(message.role, "value", message.role)
        parts.append(f"<|im_start|>{role}\n{message.content}<|im_end|>\n")
    return "".join(parts) + "<|im_start|>assistant\n"


def chatml_completion_to_prompt(completion: str) -> str:
    return f"<|im_start|>user\n{completion}<|im_end|>\n<|im_start|>assistant\n"


def build_llm(settings: Settings):
    """The configured LLM as a llama-index LLM; raises AssistantError naming the setting to fix."""
    backend = settings.llm_backend
    if backend in ("packaged", "gguf"):
        if backend == "packaged":
            model_path = packaged_model_path(settings.llm_model, settings.model_cache_dir)
        else:
            if settings.gguf_path is None or not Path(settings.gguf_path).is_file():
                raise AssistantError(
                    f"GGUF file {settings.gguf_path} not found; set {env_name('gguf_path')} to a .gguf file"
                )
            model_path = Path(settings.gguf_path)
        return _llama_cpp(settings, model_path)
    if not settings.llm_url:
        raise AssistantError(f"llm_backend={backend} needs a server URL; set {env_name('llm_url')}")
    if backend == "ollama":
        from llama_index.llms.ollama import Ollama

        _check_reachable(settings.llm_url.rstrip("/") + "/api/tags")
        return Ollama(
            model=settings.llm_model,
            base_url=settings.llm_url,
            request_timeout=settings.llm_timeout_s,
            temperature=settings.temperature,
            context_window=settings.context_window,
            additional_kwargs={"num_predict": settings.max_new_tokens},
        )
    from llama_index.llms.openai_like import OpenAILike

    _check_reachable(settings.llm_url.rstrip("/") + "/models", settings.llm_api_key)
    return OpenAILike(
        model=settings.llm_model,
        api_base=settings.llm_url,
        api_key=settings.llm_api_key,
        is_chat_model=True,
        context_window=settings.context_window,
        max_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        timeout=settings.llm_timeout_s,
        max_retries=1,
    )


def _llama_cpp(settings: Settings, model_path: Path):
    try:
        from llama_index.llms.llama_cpp import LlamaCPP
    except ImportError as exc:
        raise AssistantError("llama-cpp-python is not installed; run `make install`") from exc
    try:
        return LlamaCPP(
            model_path=str(model_path),
            temperature=settings.temperature,
            max_new_tokens=settings.max_new_tokens,
            context_window=settings.context_window,
            messages_to_prompt=chatml_messages_to_prompt,
            completion_to_prompt=chatml_completion_to_prompt,
            generate_kwargs={"stop": [CHATML_STOP], "repeat_penalty": 1.1},
            model_kwargs={"n_threads": settings.llm_threads, "n_batch": 512},
            verbose=False,
        )
    except ValueError as exc:  # llama.cpp could not load the file
        raise AssistantError(f"cannot load GGUF model {model_path} ({exc})") from exc


def _check_reachable(url: str, api_key: str | None = None) -> None:
    """Fail fast with the setting to fix, instead of a stack trace at the first question."""
    request = urllib.request.Request(url)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=5):
            return
    except urllib.error.HTTPError:
        return  # the server answered; authentication or routing is its own concern
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AssistantError(f"cannot reach the LLM server at {url} ({reason}); fix {env_name('llm_url')}") from exc


def count_tokens(llm, text: str) -> int:
    """Tokens of ``text`` for the model's own tokenizer where we have it (llama.cpp), else a word estimate."""
    model = getattr(llm, "_model", None)
    if model is not None and hasattr(model, "tokenize"):
        return len(model.tokenize(text.encode("utf-8"), add_bos=False))
    return round(len(text.split()) * 1.3)  # English averages about 1.3 BPE tokens per word


def next_token_logprobs(llm, prompt: str, options: list[str]) -> list[float] | None:
    """Log-probabilities (normalized over ``options``) that the model's next token starts each
    option, for llama.cpp models; None for other backends (they fall back to generation).

    llama-index's LlamaCPP wrapper exposes only text generation, and llama-cpp-python returns
    logprobs only for models loaded with logits_all (a full logits matrix per prompt token). So
    this evaluates the prompt on the wrapped ``Llama`` directly, reusing the cached prefix it
    shares with the previous prompt (as ``Llama.generate`` does), and reads the last logits.
    Written against the pinned llama-cpp-python 0.3.36."""
    import numpy as np

    llama = getattr(llm, "_model", None)
    if llama is None or not hasattr(llama, "eval") or not hasattr(llama, "_ctx"):
        return None
    tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    if len(tokens) >= llama.n_ctx():
        return None
    shared = 0
    for cached, new in zip(llama.input_ids[: llama.n_tokens], tokens[:-1]):  # the last token is always evaluated
        if cached != new:
            break
        shared += 1
    llama.n_tokens = shared
    llama.eval(tokens[shared:])
    logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)
    scores = []
    for option in options:
        ids = {llama.tokenize(variant.encode("utf-8"), add_bos=False, special=False)[0]
               for variant in (option, " " + option)}
        scores.append(max(logits[i] for i in ids))
    scores = np.array(scores)
    return list(scores - scores.max() - np.log(np.exp(scores - scores.max()).sum()))
