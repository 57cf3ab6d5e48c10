"""Batch evaluation: metric definitions on hand-made data, outputs, resume after a kill."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from assistant.answer import NewsAssistant
from assistant.errors import AssistantError
from assistant.evaluation.questions import load_questions
from assistant.evaluation.runner import EvalOptions, run_evaluation
from assistant.evaluation.scoring import (
    compute_metrics, contains_answer, first_article_rank, first_hit_rank, fold, pick_choice, token_f1,
)

from .conftest import REPO, ByPromptLLM as ByQuestionLLM, make_settings
from .test_cli import run_cli


def test_folding_and_matching():
    assert fold("“Squid Game”") == "squid game"
    assert contains_answer("Netflix renewed 'Squid Game' today.", ["“Squid Game”"])
    assert not contains_answer("Squidgames are fun", ["Squid Game"])
    assert contains_answer("The E.U. said", ["E.U."])
    assert token_f1("Trump", ["Former President Donald Trump"]) == pytest.approx(2 * 1 * 0.25 / 1.25)
    assert token_f1("Donald Trump", ["Donald Trump"]) == 1.0
    assert token_f1("Biden", ["Donald Trump"]) == 0.0


def test_pick_choice():
    choices = ["Europe", "North America", "Asia", "Africa"]
    assert pick_choice("A. Europe [1]", choices) == "Europe"
    assert pick_choice("(C) because of the rule", choices) == "Asia"
    assert pick_choice("The answer is North America [2].", choices) == "North America"
    assert pick_choice("Europe or Asia", choices) is None
    assert pick_choice("The indexed articles do not cover this question.", choices) is None


def _record(**kw) -> dict:
    base = {"id": kw.pop("id"), "answerable": True, "answers": ["x"], "answer_article_ids": ["a"], "error": None,
            "hit_rank": None, "context_hit": False, "context_tokens": 100, "answer": "y", "refused": False,
            "correct": False, "f1": 0.0, "citation_supported": False,
            "timings": {"total_s": 1.0, "generate_s": 1.0, "answer_tokens": 10.0, "first_token_s": 0.5}}
    base.update(kw)
    return base


def test_metrics_on_a_hand_made_set():
    records = [
        _record(id="1", hit_rank=1, context_hit=True, correct=True, f1=1.0, citation_supported=True,
                mc_pick="x", mc_correct=True, timings={"total_s": 2.0, "generate_s": 1.0, "answer_tokens": 20.0, "first_token_s": 0.2}),
        _record(id="2", hit_rank=3, context_hit=True, correct=True, f1=0.5, citation_supported=False,
                mc_pick="z", mc_correct=False, timings={"total_s": 4.0, "generate_s": 3.0, "answer_tokens": 20.0, "first_token_s": 0.4}),
        _record(id="3", hit_rank=None, context_hit=False, correct=False, f1=0.0, refused=True,
                mc_pick=None, mc_correct=False, timings={"total_s": 6.0, "generate_s": 0.0, "answer_tokens": 0.0}),
        _record(id="4", answer_article_ids=[], hit_rank=None, correct=False, f1=0.25, context_tokens=300,
                timings={"total_s": 8.0, "generate_s": 1.0, "answer_tokens": 10.0, "first_token_s": 0.6}),
        _record(id="5", answerable=False, answers=["gone"], answer_article_ids=[], refused=True, correct=None,
                f1=None, context_tokens=0, timings={"total_s": 0.1}),
        _record(id="6", answerable=False, answers=["gone"], answer_article_ids=[], refused=False, correct=None,
                f1=None, context_tokens=0, timings={"total_s": 0.1}),
        _record(id="7", error="boom"),
    ]
    m = compute_metrics(records)
    assert (m["n"], m["n_answerable"], m["n_unanswerable"], m["n_errors"]) == (7, 5, 2, 1)
    # retrieval: over ids 1-3 (answerable, with answer_article_ids, no error)
    assert m["hit@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["hit@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["hit@10"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert m["context_hit"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["context_tokens"] == pytest.approx((100 * 3 + 300 + 0 + 0) / 6, abs=1e-3)
    # answers: over answerable ids 1-4
    assert m["answer_accuracy"] == pytest.approx(0.5)
    assert m["answer_f1"] == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert m["mc_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["citation_support"] == pytest.approx(0.5)  # 1 of the 2 correct answers cites the gold
    assert m["refusal_unanswerable"] == pytest.approx(0.5)
    assert m["refusal_answerable"] == pytest.approx(0.25)
    assert m["latency_p50_s"] == pytest.approx(3.0)  # of 2, 4, 6, 8, 0.1, 0.1
    assert m["tokens_per_s"] == pytest.approx(50 / (0.8 + 2.6 + 0 + 0.4), abs=0.01)  # after the first token
    assert m["first_token_p50_s"] == pytest.approx(0.4)


def test_article_rank_counts_the_story_not_the_wording():
    # The right article ranked first but worded differently: no string hit, an article hit at rank 1.
    chunks = ["Buckingham Palace said the King will be crowned on May 6, 2023.", "The date is 6 May 2023, a blog said."]
    assert first_hit_rank(chunks, ["6 May 2023"]) == 2
    assert first_article_rank(["palace-story", "blog"], ["palace-story"]) == 1
    assert first_article_rank(["blog", "other"], ["palace-story"]) is None
    records = [_record(id="1", hit_rank=2, article_rank=1), _record(id="2", hit_rank=1, article_rank=None),
               _record(id="3", hit_rank=None, article_rank=6)]
    assert compute_metrics(records)["article_hit@5"] == pytest.approx(1 / 3, abs=1e-4)
    assert compute_metrics([_record(id="1", hit_rank=1)])["article_hit@5"] is None  # results written before the key


def test_metrics_are_null_where_the_data_cannot_give_them():
    m = compute_metrics([_record(id="1", answers=[], answer_article_ids=[], correct=None, f1=None)])
    assert m["hit@5"] is None and m["answer_accuracy"] is None and m["mc_accuracy"] is None
    assert m["refusal_unanswerable"] is None


def test_question_formats(tmp_path):
    csv_file = tmp_path / "q.csv"
    csv_file.write_text("question,answer\nWho partnered with Honda?,General Motors\nAnything new?,\n", encoding="utf-8")
    qs = load_questions(csv_file)
    assert [(q.question, q.answers) for q in qs] == [("Who partnered with Honda?", ["General Motors"]), ("Anything new?", [])]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"question": "Q1?", "answers": ["A"], "date": "2024-03-20"}\n'
                     '{"id": "u", "question": "Q2?", "answerable": false}\nnot json\n', encoding="utf-8")
    qs = load_questions(jsonl)
    assert [q.id for q in qs] == ["q1", "u"] and qs[0].date.isoformat() == "2024-03-20" and not qs[1].answerable
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "question": "x"}\n{"id": "a", "question": "y"}\n', encoding="utf-8")
    with pytest.raises(AssistantError, match="appears twice"):
        load_questions(dup)


def test_runner_with_articles_file_writes_all_outputs(tmp_path):
    articles = tmp_path / "articles.jsonl"
    articles.write_text("\n".join(json.dumps(a) for a in [
        {"id": "gas", "title": "Gas prices fall", "site": "a.com", "published": "2024-03-10",
         "text": "Average gas prices fell 12 cents this week, to $3.10 a gallon, the motor club said."},
        {"id": "honda", "title": "Honda and GM", "site": "b.com", "published": "2024-03-11",
         "text": "Honda partnered with General Motors to develop electric vehicles for North America."},
    ]), encoding="utf-8")
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"id": "g", "question": "How much did gas prices fall this week?", "answers": ["12 cents"],
         "answer_article_ids": ["gas"], "choices": ["12 cents", "5 cents"], "date": "2024-03-12", "source": "A"},
        {"id": "h", "question": "Who did Honda partner with for electric vehicles?", "answers": ["General Motors"],
         "answer_article_ids": ["honda"], "choices": ["Ford", "General Motors"], "date": "2024-03-12", "source": "B"},
        {"id": "u", "question": "Who won the 1998 chess olympiad?", "answers": ["Russia"], "answerable": False},
    ]), encoding="utf-8")
    llm = ByQuestionLLM(prompts=[], replies={"Choices": "B. General Motors [1]", "Question: How much": "They fell 12 cents [1].",
                                             "Question: Who did Honda": "Honda partnered with Ford [1]."})
    out = tmp_path / "run"
    options = EvalOptions(questions=questions, out=out, articles=articles, choices=True, cache_dir=tmp_path / "cache",
                          show_progress=False, workers=2)
    metrics = run_evaluation(make_settings(tmp_path / "unused"), options,
                             engine_factory=lambda s: NewsAssistant(s, llm=llm))
    for name in ("results.jsonl", "metrics.json", "report.md", "report.html", "hit_at_k.png", "latency.png"):
        assert (out / name).exists(), name
    assert metrics["n"] == 3 and metrics["n_unanswerable"] == 1
    assert metrics["hit@1"] == 1.0 and metrics["context_hit"] == 1.0
    assert metrics["answer_accuracy"] == 0.5  # gas right, Honda wrong (Ford)
    assert metrics["citation_support"] == 1.0
    assert metrics["mc_accuracy"] == 0.5  # "B. General Motors" is right for h, wrong for g
    assert metrics["refusal_unanswerable"] == 1.0  # nothing relevant retrieved: refused without the model
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "Honda partnered with Ford" in html
    records = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert (records["g"]["retrieved"][0], records["h"]["retrieved"][0]) == ("gas", "honda")  # 2 workers: any order
    assert "fell 12 cents" in records["g"]["context"]  # what the model read is kept for tracing a failure
    assert records["h"]["checks"][0]["original"] == "Honda partnered with Ford [1]."
    assert gc.get_freeze_count() == 0  # the run froze its engine's heap while timing, and thawed it after

    # A second run over the same folder has nothing left to do; compare shows no flips.
    run_evaluation(make_settings(tmp_path / "unused"), options, engine_factory=lambda s: NewsAssistant(s, llm=llm))
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    result = run_cli("eval", "compare", str(out), str(out))
    assert result.returncode == 0 and "0 questions flipped" in result.stdout


def test_per_week_runs_reuse_cached_embeddings(tmp_path, rtqa_articles):
    source = REPO.parent / "shared" / "data" / "realtimeqa" / "questions.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines()
    week = json.loads(lines[0])["week"]
    subset = [line for line in lines if json.loads(line)["week"] == week][:3]
    questions = tmp_path / "week.jsonl"
    questions.write_text("\n".join(subset) + "\n", encoding="utf-8")
    ids = {i for line in subset for i in json.loads(line)["article_ids"]}
    articles = tmp_path / "articles.jsonl"
    import gzip

    with gzip.open(rtqa_articles, "rt", encoding="utf-8") as handle:
        articles.write_text("".join(line for line in handle if json.loads(line)["id"] in ids), encoding="utf-8")

    def run(out):
        started = time.perf_counter()
        metrics = run_evaluation(make_settings(tmp_path / "unused"), EvalOptions(
            questions=questions, out=out, articles=articles, per_week=True, retrieval_only=True,
            cache_dir=tmp_path / "cache", show_progress=False))
        return metrics, time.perf_counter() - started

    from assistant.chunking import embedding_model

    first, _ = run(tmp_path / "r1")
    cache = embedding_model(make_settings(tmp_path / "unused", embed_cache_dir=tmp_path / "cache")).embeddings_cache
    misses = cache.misses
    assert misses > 0
    second, _ = run(tmp_path / "r2")
    assert cache.misses == misses  # nothing embedded again
    assert first["hit@10"] == second["hit@10"] and first["n"] == 3


@pytest.mark.slow
def test_killed_run_resumes_with_every_question_once(tmp_path, seed_index):
    questions = tmp_path / "q.jsonl"
    asks = ["What is Nissan's Fisker angle?", "Who did Honda partner with for North America?",
            "What brand did Honda form with Sony?", "What does the memorandum of understanding start?",
            "Which alliance is Nissan part of?", "Which country became the largest vehicle exporter?"]
    questions.write_text("\n".join(json.dumps({"id": f"q{i}", "question": q}) for i, q in enumerate(asks)) + "\n",
                         encoding="utf-8")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "assistant", "--index", str(seed_index), "eval", str(questions), "--out", str(out)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")})
    results = out / "results.jsonl"
    deadline = time.monotonic() + 600  # only a bound: the loop stops at the second result (slow when the machine is shared)
    while time.monotonic() < deadline and process.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = len(results.read_text().splitlines())
    assert 2 <= partial < len(asks)

    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                              env={k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")})
    assert finished.returncode == 0, finished.stderr
    ids = [json.loads(line)["id"] for line in results.read_text().splitlines()]
    assert sorted(ids) == sorted(f"q{i}" for i in range(len(asks)))
    assert json.loads((out / "metrics.json").read_text())["n"] == len(asks)


def test_kept_indexes_are_reused(tmp_path):
    from assistant.evaluation.runner import build_index

    articles = tmp_path / "a.jsonl"
    articles.write_text(json.dumps({"id": "x", "text": "Oil prices rose on Monday.", "published": "2024-01-02"}) + "\n",
                        encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "1", "week": "20240105", "question": "What did oil prices do?",
                                     "answers": ["rose"], "answer_article_ids": ["x"], "article_ids": ["x"]}) + "\n",
                         encoding="utf-8")
    built = []

    def counting_builder(settings, chosen):
        built.append([a.id for a in chosen])
        build_index(settings, chosen)

    counting_builder.__name__ = "build_index"
    for run in ("r1", "r2"):
        metrics = run_evaluation(make_settings(tmp_path / "unused"), EvalOptions(
            questions=questions, out=tmp_path / run, articles=articles, per_week=True, retrieval_only=True,
            cache_dir=tmp_path / "cache", index_cache=tmp_path / "indexes", show_progress=False),
            index_builder=counting_builder)
        assert metrics["hit@1"] == 1.0
    assert built == [["x"]]  # built once, reused by the second run
    assert len(list((tmp_path / "indexes").iterdir())) == 1


def test_results_survive_line_separators_inside_article_text(tmp_path):
    """Records keep what the model read; U+2028 in an article must not split a record when read back."""
    from assistant.evaluation.runner import _finished_ids, _ResultWriter

    path = tmp_path / "results.jsonl"
    writer = _ResultWriter(path)
    writer.write({"id": "q1", "error": None, "context": "first line\u2028second\x85third"})
    writer.write({"id": "q2", "error": None, "context": "plain"})
    writer.close()
    assert _finished_ids(path) == {"q1", "q2"}
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
