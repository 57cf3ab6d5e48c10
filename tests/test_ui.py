"""The minimal chat UI: served by Gradio, answers through its API, renders article text as text."""

from __future__ import annotations

import datetime as dt
import os
import time
from contextlib import contextmanager

import pytest

from assistant.answer import Answer, Citation, NewsAssistant
from assistant.errors import AssistantError
from assistant.retrieval import RetrievalFilters
from assistant.ui import (KEEP_FILES_S, build_app, conversation_markdown, format_sources, launch, refusal_note,
                          remove_files_older_than, render_answer, render_conversation_sources, render_sources)

from .conftest import ScriptedLLM, make_settings
from .test_cli import free_port


def test_sources_escape_article_html():
    evil = Citation(n=1, article_id="x", title="<script>alert(1)</script>", site="a.com", published="2024-01-01",
                    url="https://a.com/x", text='<img src=x onerror="alert(2)"> Gas fell.')
    rendered = format_sources(Answer("q", "Gas fell [1].", [evil], ["x"], {}))
    assert "<script>" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;" in rendered and "&lt;img" in rendered


def test_a_refusal_shows_the_closest_articles_escaped_and_linked():
    evil = Citation(n=1, article_id="x", title="<script>alert(1)</script> Storm", site="a.com", published="2024-01-01",
                    url="https://a.com/x", text="Storm passes.")
    refusal = Answer("q", "The indexed articles do not cover this question.", [], ["x"], {}, refused=True,
                     closest_articles=[evil])
    for rendered in (render_answer(refusal), format_sources(refusal)):
        assert "Closest articles" in rendered and "(not enough to answer)" in rendered
        assert "<script>" not in rendered and "&lt;/script&gt; Storm" in rendered
    assert '<a href="https://a.com/x"' in render_answer(refusal)


@contextmanager
def served(index, reply: str):
    """The app in this process with a scripted model, and a gradio_client talking to it."""
    from gradio_client import Client

    settings = make_settings(index, ui_port=free_port())
    app = build_app(settings, NewsAssistant(settings, llm=ScriptedLLM(reply=reply, prompts=[])))
    app.queue()
    app.launch(server_name="127.0.0.1", server_port=settings.ui_port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{settings.ui_port}/", verbose=False)
    finally:
        app.close()


def test_chat_answers_through_the_gradio_api(seed_index):
    with served(seed_index, "Nissan may build the Alaska pickup [1].") as client:
        reply = client.predict("What is Nissan's Fisker angle?", api_name="/chat")
        assert "Nissan may build the Alaska pickup [1]." in reply
        assert "**Sources**" in reply and "Nissan and Honda explore an EV and software partnership" in reply


def test_non_local_binding_requires_a_login(seed_index):
    settings = make_settings(seed_index, ui_host="0.0.0.0")
    with pytest.raises(AssistantError, match="needs a login"):
        launch(settings, NewsAssistant(settings, llm=ScriptedLLM(reply="x", prompts=[])))


def test_ask_api_returns_the_cli_json(seed_index):
    with served(seed_index, "Honda partnered with General Motors [1].") as client:
        out = client.predict("Who did Honda partner with?", "", "", "", api_name="/ask")
        assert out["answer"] == "Honda partnered with General Motors [1]."
        assert out["citations"][0]["article_id"] == "seed-nissan-honda-ev-partnership"
        late = client.predict("Who did Honda partner with?", "2030-01-01", "", "", api_name="/ask")
        assert late["answer"] == "The indexed articles do not cover this question."
        # As of a day before the article was published (2024-03-15), it does not exist yet.
        before = client.predict("Who did Honda partner with?", "", "", "", "2024-03-01", api_name="/ask")
        assert before["refused"] and not before["citations"]


def test_the_chat_asks_as_of_today_unless_told(seed_index):
    """As on the command line: recent articles preferred, later ones left out (ranking without an
    as-of date is worse: BENCHMARKS.md, "Ranking without an as-of date")."""
    from assistant.ui import parse_as_of, stream_answer

    asked_on = []

    class Recording(NewsAssistant):
        def ask(self, question, **kwargs):
            asked_on.append(kwargs.get("as_of"))
            return super().ask(question, **kwargs)

    assistant = Recording(make_settings(seed_index), llm=ScriptedLLM(reply="Nissan may build the Alaska [1].", prompts=[]))
    *_, answer = list(stream_answer(assistant, "What is Nissan's Fisker angle?"))
    *_, early = list(stream_answer(assistant, "What is Nissan's Fisker angle?", as_of=parse_as_of("2024-03-01")))
    assert asked_on == [dt.date.today(), dt.date(2024, 3, 1)]
    assert answer.citations and early.refused
    assert parse_as_of("") == dt.date.today()
    with pytest.raises(AssistantError, match="not a date"):
        parse_as_of("next week")


class BrokenLLM(ScriptedLLM):
    def stream_complete(self, prompt, formatted=False, **kwargs):
        raise ConnectionError("connection refused by 127.0.0.1:11434")


def test_backend_failure_is_a_friendly_chat_message(seed_index):
    from assistant.ui import stream_answer

    assistant = NewsAssistant(make_settings(seed_index), llm=BrokenLLM(prompts=[]))
    *_, last = list(stream_answer(assistant, "What is Nissan's Fisker angle?"))
    assert isinstance(last, str) and last.startswith("Sorry, that did not work:")
    assert "connection refused" in last and "Traceback" not in last


def test_each_answer_links_to_its_own_sources_in_the_conversation_panel():
    """Every answer numbers its sources from 1: after a follow-up, the first answer's [1] must still
    lead to the article it cited, not to the latest answer's source [1]."""
    nissan = Citation(n=1, article_id="a", title="Nissan eyes Fisker", site="a.com", published="2024-03-15",
                      url="", text="Nissan is in talks with Fisker.")
    honda = Citation(n=1, article_id="b", title="Honda picks GM", site="b.com", published="2024-03-16",
                     url="", text="Honda partnered with GM.")
    first = Answer("Nissan's <b>angle</b>?", "Nissan is in talks with Fisker [1].", [nissan], ["a"], {})
    second = Answer("And Honda?", "Honda partnered with GM [1].", [honda], ["b"], {})
    assert 'data-source="source-1-1"' in render_answer(first, turn=1)
    assert 'data-source="source-2-1"' in render_answer(second, turn=2)
    latest, folded = render_conversation_sources([first, second]).split('<details class="turn"')
    assert 'id="source-2-1"' in latest and "Honda picks GM" in latest and "Nissan" not in latest
    assert 'id="source-1-1"' in folded and "Nissan eyes Fisker" in folded
    assert "Answer 1: Nissan&#x27;s &lt;b&gt;angle&lt;/b&gt;?" in folded  # the question, escaped
    assert render_conversation_sources([]) == render_sources(None)
    refusal = Answer("And Toyota?", "The indexed articles do not cover this question.", [], [], {}, refused=True)
    assert "No sources: the indexed articles do not cover this question." in render_conversation_sources(
        [first, refusal]).split("<details")[0]


def test_the_conversation_downloads_as_markdown_with_each_answers_sources():
    cited = Citation(n=1, article_id="a", title="Nissan eyes <script>Fisker</script>", site="a.com",
                     published="2024-03-15", url="https://a.com/n", text="Nissan is in\ntalks with Fisker.")
    closest = Citation(n=1, article_id="b", title="Oil steady", site="b.com", published="2024-03-16", url="",
                       text="Oil was steady.")
    first = Answer("What is Nissan's Fisker angle?", "Nissan is in talks with Fisker [1].", [cited], ["a"], {})
    second = Answer("When was that reported?", "The indexed articles do not cover this question.", [], ["b"], {},
                    refused=True, standalone_question="What is Nissan's Fisker angle? When was that reported?",
                    closest_articles=[closest])
    document = conversation_markdown([first, second], dt.date(2024, 3, 20))
    assert document.startswith("# News assistant conversation (2024-03-20)\n")
    one, two = document.split("## 2. ")
    assert "## 1. What is Nissan's Fisker angle?" in one and "Nissan is in talks with Fisker [1]." in one
    assert "1. **Nissan eyes &lt;script&gt;Fisker&lt;/script&gt;** (a.com, 2024-03-15) <https://a.com/n>" in one
    assert "   > Nissan is in talks with Fisker." in one  # the passage, on one line
    assert "*Searched for: What is Nissan's Fisker angle? When was that reported?*" in two
    assert "**Closest articles** (not enough to answer)" in two and "- **Oil steady** (b.com, 2024-03-16)" in two
    assert "<script>" not in document


def test_downloads_of_past_days_are_cleaned_up(seed_index, tmp_path):
    """A download is written per answer; a long-running app removes its own files after a day, and
    Gradio's copies of uploads and downloads are deleted on the same schedule."""
    old, fresh = tmp_path / "conversation-old.md", tmp_path / "conversation-new.md"
    old.write_text("x"), fresh.write_text("y")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    remove_files_older_than(tmp_path, KEEP_FILES_S)
    assert not old.exists() and fresh.exists()
    settings = make_settings(seed_index)
    app = build_app(settings, NewsAssistant(settings, llm=ScriptedLLM(reply="x [1].", prompts=[])))
    assert app.delete_cache == (3600, KEEP_FILES_S)


def test_a_refusal_under_filters_says_whether_they_left_any_article(seed_index):
    """Through the real engine: a site filter that matches nothing, and a date range that holds the
    seed article but not an answer to an unrelated question."""
    settings = make_settings(seed_index)
    assistant = NewsAssistant(settings, llm=ScriptedLLM(reply="Nissan is in talks to invest in Fisker [1].", prompts=[]))
    today = dt.date.today()
    nowhere = RetrievalFilters(sites=("nosuch.com",))
    around = RetrievalFilters(since=dt.date(2024, 3, 1), until=dt.date(2024, 3, 31))
    no_article = assistant.ask("What is Nissan's Fisker angle?", filters=nowhere)
    assert refusal_note(no_article, nowhere, today).startswith("No indexed article matches the filters")
    not_covered = assistant.ask("What is the capital of Mongolia?", filters=around)
    assert refusal_note(not_covered, around, today).startswith("The filters (dates, sites or as-of date) may have left out")
    assert refusal_note(not_covered, RetrievalFilters(), today) == ""  # no filters: the refusal speaks for itself
    assert refusal_note(assistant.ask("What is Nissan's Fisker angle?", filters=around), around, today) == ""
