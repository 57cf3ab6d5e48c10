"""The command line as a user runs it (subprocesses): output, JSON keys, one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from assistant.cli import NOTHING_MATCHED
from assistant.settings import REFUSAL

from .conftest import REPO


def run_cli(*args: str, env: dict | None = None, timeout: float = 300,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, input=stdin,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats_json(index) -> dict:
    result = run_cli("--index", str(index), "stats", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stats_json_keys(seed_index):
    stats = stats_json(seed_index)
    assert stats["articles"] == 1 and stats["chunks"] >= 2
    assert stats["earliest"] == stats["latest"] == "2024-03-15"


def test_a_reader_that_stops_early_gets_no_traceback(seed_index):
    """`stats --articles | head -1`: the listing stops quietly when the pipe closes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    process = subprocess.Popen([sys.executable, "-m", "assistant", "--index", str(seed_index), "stats", "--articles"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command has written anything
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert stderr == ""


def test_filters_that_match_no_article_say_so(seed_index):
    result = run_cli("--index", str(seed_index), "ask", "What is Nissan's Fisker angle?", "--site", "nosuch.com")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [REFUSAL, NOTHING_MATCHED]
    empty_range = run_cli("--index", str(seed_index), "ask", "What is Nissan's Fisker angle?",
                          "--since", "2024-05-01", "--until", "2024-01-01")
    assert "the date range is empty: since 2024-05-01 is after until 2024-01-01" in one_line_error(empty_range)


def test_index_from_environment_variable(seed_index):
    result = run_cli("stats", "--json", env={"ASSISTANT_INDEX_DIR": str(seed_index)})
    assert json.loads(result.stdout)["articles"] == 1


def test_ask_json_refusal_for_uncovered_question(seed_index):
    result = run_cli("--index", str(seed_index), "ask", "What is the capital of Mongolia?", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) >= {"question", "answer", "citations", "retrieved", "timings"}
    assert out["answer"] == "The indexed articles do not cover this question."
    assert out["citations"] == []
    assert [c["title"] for c in out["closest_articles"]] == ["Nissan and Honda explore an EV and software partnership"]
    text = run_cli("--index", str(seed_index), "ask", "What is the capital of Mongolia?").stdout
    assert text.splitlines()[0] == "The indexed articles do not cover this question."
    assert "Closest articles (not enough to answer):\n- Nissan and Honda explore an EV and software partnership" in text
    # Streamed, and in a conversation on the command line, the same text is printed.
    streamed = run_cli("--index", str(seed_index), "ask", "What is the capital of Mongolia?", "--stream").stdout
    chatted = run_cli("--index", str(seed_index), "chat", stdin="What is the capital of Mongolia?\n")
    assert streamed == text and chatted.returncode == 0 and chatted.stdout == text + "\n", chatted.stderr


def test_missing_index(tmp_path):
    message = one_line_error(run_cli("--index", str(tmp_path / "none"), "ask", "anything?"))
    assert "no index at" in message and "ingest" in message


def test_question_of_100_kb(seed_index):
    message = one_line_error(run_cli("--index", str(seed_index), "ask", "why? " * 20_000))
    assert "limit is 2,000" in message


def test_bad_files_leave_the_index_intact(seed_index_copy, tmp_path):
    before = stats_json(seed_index_copy)
    bad = {
        "empty.md": b"",
        "binary.txt": bytes(range(256)) * 4,
        "latin1.txt": "Caf\xe9\nprix".encode("latin-1"),
        "broken.jsonl": b'{"id": "x", "text": \n',
    }
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content)
        message = one_line_error(run_cli("--index", str(seed_index_copy), "ingest", str(path)))
        assert name in message
    assert stats_json(seed_index_copy) == before


def test_ingest_folder_with_one_bad_file_ingests_the_rest(seed_index_copy, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("---\ntitle: Fuel prices\npublished: 2024-04-02\n---\nDiesel fell 5 cents.\n", encoding="utf-8")
    (folder / "bad.jsonl").write_text('{"text": "Jet fuel rose."}\nnot json\n', encoding="utf-8")
    result = run_cli("--index", str(seed_index_copy), "ingest", str(folder), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "bad.jsonl:2: malformed JSON" in result.stderr
    assert "2 articles: 2 new" in result.stdout
    stats = stats_json(seed_index_copy)
    assert stats["articles"] == 3 and stats["latest"] == "2024-04-02"


def test_unreachable_chroma_server_names_the_setting():
    env = {"ASSISTANT_CHROMA_HOST": "127.0.0.1", "ASSISTANT_CHROMA_PORT": str(free_port())}
    message = one_line_error(run_cli("stats", env=env))
    assert "cannot reach the Chroma server" in message and "ASSISTANT_CHROMA_HOST" in message


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_unreachable_llm_server_names_the_setting(seed_index, backend):
    env = {"ASSISTANT_LLM_BACKEND": backend, "ASSISTANT_LLM_URL": f"http://127.0.0.1:{free_port()}"}
    message = one_line_error(run_cli("--index", str(seed_index), "ask", "What is Nissan's Fisker angle?", env=env))
    assert "cannot reach the LLM server" in message and "ASSISTANT_LLM_URL" in message


def test_missing_gguf_file_names_the_setting(seed_index, tmp_path):
    env = {"ASSISTANT_LLM_BACKEND": "gguf", "ASSISTANT_GGUF_PATH": str(tmp_path / "nope.gguf")}
    message = one_line_error(run_cli("--index", str(seed_index), "ask", "What is Nissan's Fisker angle?", env=env))
    assert "ASSISTANT_GGUF_PATH" in message


def test_config_file_sets_the_index(seed_index, tmp_path):
    config = tmp_path / "assistant.toml"
    config.write_text(f'index_dir = "{seed_index}"\n', encoding="utf-8")
    result = run_cli("stats", "--json", env={"ASSISTANT_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["articles"] == 1


def test_remove_articles_by_id_or_date_after_a_dry_run(seed_index_copy, tmp_path):
    extra = tmp_path / "gas.md"
    extra.write_text("---\nid: gas-1\ntitle: Gas prices fall\nsite: news.example\npublished: 2023-05-01\n---\n"
                     "Gas prices fell by ten cents this week, the motor club said.\n", encoding="utf-8")
    index = str(seed_index_copy)
    assert run_cli("--index", index, "ingest", str(extra), "--quiet").returncode == 0
    listed = run_cli("--index", index, "stats", "--articles", "--json")
    assert sorted(row["id"] for row in json.loads(listed.stdout)) == ["gas-1", "seed-nissan-honda-ev-partnership"]

    dry = run_cli("--index", index, "remove", "--before", "2024-01-01", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove: gas-1" in dry.stdout and "seed-nissan" not in dry.stdout
    assert stats_json(index)["articles"] == 2  # a dry run removes nothing

    assert "say which articles" in one_line_error(run_cli("--index", index, "remove"))
    assert "ids not found: nope" in one_line_error(run_cli("--index", index, "remove", "nope"))
    assert "no article in the index matches" in one_line_error(
        run_cli("--index", index, "remove", "gas-1", "--site", "other.example"))

    removed = run_cli("--index", index, "remove", "gas-1", "nope")
    assert removed.returncode == 0, removed.stderr
    assert "removed 1 articles" in removed.stdout and "no article 'nope'" in removed.stderr
    assert stats_json(index)["articles"] == 1  # what retrieval then finds: tests/test_store.py
