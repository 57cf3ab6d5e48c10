"""Batch evaluation: answer a question set, score it, report it (`python -m assistant eval`)."""
