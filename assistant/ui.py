"""Minimal Gradio chat over the same engine as the CLI (streamed answers, sources listed)."""

from __future__ import annotations

import datetime as dt
import html
import queue
import re
import threading
from typing import Iterator

from .answer import Answer, NewsAssistant
from .errors import AssistantError
from .retrieval import RetrievalFilters
from .settings import Settings, env_name

EXAMPLES = [
    "What is Nissan's Fisker angle?",
    "Who did Honda partner with for North America?",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def format_sources(answer: Answer) -> str:
    """Markdown list of the cited sources; article text is escaped, never rendered as HTML."""
    if not answer.citations:
        return ""
    lines = ["", "**Sources**"]
    for c in answer.citations:
        about = ", ".join(html.escape(x) for x in (c.site, c.published) if x)
        title = html.escape(c.title or c.article_id)
        link = f" — <{html.escape(c.url)}>" if c.url else ""
        passage = html.escape(" ".join(c.text.split())[:600])
        lines.append(f"{c.n}. **{title}**{f' ({about})' if about else ''}{link}\n   > {passage}")
    return "\n".join(lines)


def history_pairs(history: list) -> list[tuple[str, str]]:
    """(question, answer) pairs from Gradio's messages history, without the sources block."""
    pairs, question = [], None
    for message in history or []:
        role, content = message.get("role"), message.get("content")
        if isinstance(content, list):  # Gradio may hand over content blocks
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        if role == "user":
            question = str(content)
        elif role == "assistant" and question is not None:
            answer_only = re.split(r"\n\n_Searched for:|\n\*\*Sources\*\*", str(content))[0]
            pairs.append((question, answer_only.strip()))
            question = None
    return pairs


def stream_answer(assistant: NewsAssistant, question: str, history: list | None = None) -> Iterator[str]:
    """Yield the answer text as it is generated, then the final text with its sources."""
    tokens: queue.Queue = queue.Queue()
    result: dict = {}

    def work():
        try:
            result["answer"] = assistant.ask(question, on_token=tokens.put, history=history_pairs(history))
        except AssistantError as exc:
            result["error"] = str(exc)
        except Exception as exc:  # never show a stack trace in the chat
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            tokens.put(None)

    threading.Thread(target=work, daemon=True).start()
    partial = ""
    while (token := tokens.get()) is not None:
        partial += token
        yield partial
    if "error" in result:
        yield f"Sorry, that failed: {result['error']}"
        return
    answer: Answer = result["answer"]
    searched = ""
    if answer.standalone_question and answer.standalone_question != answer.question:
        searched = f"\n\n_Searched for: {html.escape(answer.standalone_question)}_"
    yield answer.answer + searched + "\n" + format_sources(answer)


def build_app(settings: Settings, assistant: NewsAssistant):
    import gradio as gr

    def respond(message: str, history: list) -> Iterator[str]:
        yield from stream_answer(assistant, message, history)

    def ask(question: str, since: str = "", until: str = "", sites: str = "") -> dict:
        """The same JSON object as `python -m assistant ask --json`."""
        filters = RetrievalFilters(
            since=_date_or_none(since), until=_date_or_none(until),
            sites=tuple(s.strip() for s in sites.split(",") if s.strip()),
        )
        try:
            return assistant.ask(question, filters=filters).as_dict()
        except AssistantError as exc:
            return {"question": question, "error": str(exc)}

    with gr.Blocks(title="News assistant") as app:
        gr.ChatInterface(
            respond,
            title="News assistant",
            description="Answers from the indexed articles only, with numbered citations.",
            examples=EXAMPLES,
            cache_examples=False,
            api_name="chat",
        )
        gr.api(ask, api_name="ask")
    return app


def _date_or_none(value: str) -> dt.date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise AssistantError(f"'{value}' is not a date (YYYY-MM-DD)") from None


def launch(settings: Settings, assistant: NewsAssistant, **launch_kwargs):
    auth = None
    if settings.ui_host not in LOCAL_HOSTS:
        if not (settings.ui_username and settings.ui_password):
            raise AssistantError(
                f"serving on {settings.ui_host} needs a login; set {env_name('ui_username')} and {env_name('ui_password')}"
            )
        auth = (settings.ui_username, settings.ui_password)
    app = build_app(settings, assistant)
    app.queue(default_concurrency_limit=4)
    return app.launch(server_name=settings.ui_host, server_port=settings.ui_port, auth=auth, **launch_kwargs)
