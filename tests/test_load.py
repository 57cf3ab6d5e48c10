"""Load: 8 concurrent clients through the app's HTTP API (gradio_client against `/ask`), with
the same launch settings as `app.py`. A slow scripted model makes the requests overlap; every
client must get the answer to its own question, and no request may fail. (Latency under load
with the real model is measured by `python -m benchmarks.load`, not asserted here.)"""

from __future__ import annotations

import time

from assistant.answer import NewsAssistant
from assistant.ui import launch
from benchmarks.load import drive, mixed

from .conftest import ByPromptLLM, make_settings
from .test_cli import free_port

TOPICS = ["Fisker", "Honda", "Nissan", "software", "batteries", "North America", "pickup", "partnership"]


class SlowByPromptLLM(ByPromptLLM):
    """Replies by question, a few milliseconds per word, so concurrent requests overlap."""

    def stream_complete(self, prompt, formatted=False, **kwargs):
        words = super().stream_complete(prompt, formatted, **kwargs)

        def slow():
            for piece in words:
                time.sleep(0.02)
                yield piece

        return slow()


def test_eight_concurrent_clients_each_get_their_own_answer(seed_index):
    questions = [f"What do Nissan and Honda plan about {topic}?" for topic in TOPICS]
    replies = {q: f"Answer for {topic}: Nissan and Honda explore a partnership [1]." for q, topic in zip(questions, TOPICS)}
    settings = make_settings(seed_index, ui_port=free_port())
    llm = SlowByPromptLLM(reply="", prompts=[], replies={f"Question: {q}": r for q, r in replies.items()})
    launch(settings, NewsAssistant(settings, llm=llm), prevent_thread_lock=True, quiet=True)
    import gradio as gr

    try:
        url = f"http://127.0.0.1:{settings.ui_port}/"
        per_client = [[questions[i], questions[(i + 3) % 8]] for i in range(8)]
        result = drive(url, per_client)
    finally:
        gr.close_all()
    assert len(result.records) == 16
    assert result.errors == []
    for record in result.records:
        assert record["response"]["answer"] == replies[record["question"]]
        assert record["response"]["citations"][0]["title"] == "Nissan and Honda explore an EV and software partnership"
    assert result.max_in_flight() >= 4  # the clients really were concurrent
    # The benchmark's mixing check flags a response that differs from its question's reference.
    reference = {r["question"]: r["response"] for r in result.records}
    assert mixed(result, reference) == []
    swapped = result.records[0]
    reference[swapped["question"]] = {**swapped["response"], "answer": "someone else's answer"}
    assert mixed(result, reference) != []
