"""Question sets: the RealTimeQA format, plain JSON Lines, and CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AssistantError


@dataclass
class Question:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    date: dt.date | None = None
    week: str | None = None
    source: str | None = None
    article_ids: list[str] = field(default_factory=list)
    answer_article_ids: list[str] = field(default_factory=list)
    answerable: bool = True


def load_questions(path: Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise AssistantError(f"{path}: no such question file")
    if path.suffix.lower() == ".csv":
        return _from_csv(path)
    questions, problems = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                questions.append(_from_record(record, f"q{number}"))
            except (json.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
                problems.append(f"{path}:{number}: {exc}")
    if problems and not questions:
        raise AssistantError(f"no questions loaded: {problems[0]}")
    for problem in problems:
        print(f"warning: skipped {problem}")
    _check_unique(questions, path)
    return questions


def _from_record(record: dict, default_id: str) -> Question:
    if not isinstance(record, dict) or not str(record.get("question") or "").strip():
        raise ValueError("a question needs a non-empty 'question' field")
    answers = record.get("answers", record.get("answer", []))
    if isinstance(answers, str):
        answers = [answers]
    date = record.get("date")
    return Question(
        id=str(record.get("id") or default_id),
        question=str(record["question"]).strip(),
        answers=[str(a) for a in answers or []],
        choices=[str(c) for c in record.get("choices") or []],
        date=dt.date.fromisoformat(date) if date else None,
        week=str(record["week"]) if record.get("week") else None,
        source=record.get("source"),
        article_ids=list(record.get("article_ids") or []),
        answer_article_ids=list(record.get("answer_article_ids") or []),
        answerable=bool(record.get("answerable", True)),
    )


def _from_csv(path: Path) -> list[Question]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "question" not in reader.fieldnames:
            raise AssistantError(f"{path}: a CSV question set needs a 'question' column")
        questions = []
        for number, row in enumerate(reader, start=2):
            if not (row.get("question") or "").strip():
                continue
            answer = (row.get("answer") or "").strip()
            questions.append(Question(id=row.get("id") or f"q{number}", question=row["question"].strip(),
                                      answers=[answer] if answer else []))
    _check_unique(questions, path)
    return questions


def _check_unique(questions: list[Question], path: Path) -> None:
    seen = set()
    for q in questions:
        if q.id in seen:
            raise AssistantError(f"{path}: question id '{q.id}' appears twice; ids must be unique")
        seen.add(q.id)
