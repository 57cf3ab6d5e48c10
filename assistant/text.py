"""Word-level text helpers shared by the stages that compare a question with a passage
(retrieval features, sentence selection, citation checks, refusal, the UI's highlights)."""

from __future__ import annotations

import re
import threading

import Stemmer

_WORD = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"\b[A-Z][A-Za-z]+")  # a capitalized word: names, places, organisations (and sentence starts)
_STOP = frozenset(
    "a an and are as at be been by did do does for from had has have he her his how in is it its of on or "
    "she that the their they this to was were what when where which who whom why will with would you "
    "this week recently latest new according said about also then there these those any some more most other "
    "such than too very can could should may might must into over under after before again so not no yes if "
    "but our we us me my your i am just only tell know".split()
)


def words(text: str) -> list[str]:
    """Lower-cased words and numbers, in order."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> set[str]:
    return content_of(words(text))


_STEMMERS = threading.local()  # a PyStemmer object must not be shared between threads (the UI's queue)


def stems(found: set[str]) -> set[str]:
    """English Snowball stems of words ("investing", "investment" -> "invest"), with PyStemmer,
    which llama-index's BM25 retriever already depends on."""
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = Stemmer.Stemmer("english")
    return set(stemmer.stemWords(list(found)))


def content_of(seq: list[str]) -> set[str]:
    """The content words of an already split text (split once, used several ways)."""
    return {w for w in seq if w not in _STOP and len(w) > 1}


def word_pairs(text: str) -> set[tuple[str, str]]:
    """Adjacent word pairs, except those of two stop words ("of the"): phrases such as
    ("prime", "minister") or ("gas", "prices") that a bag of words cannot see."""
    seq = words(text)
    return {(a, b) for a, b in zip(seq, seq[1:]) if not (a in _STOP and b in _STOP)}


def names(text: str) -> set[str]:
    """Capitalized words, lower-cased: the names a passage mentions (an answer is usually one)."""
    return {w.lower() for w in _NAME.findall(text)}


_NUMBER = re.compile(r"\d+")


def adds_name_or_number(sentence: str, question: str) -> bool:
    """Whether ``sentence`` names something ``question`` does not: a capitalized word (not a stop word
    such as a sentence-initial "The") or a number. An answer is usually one; a sentence without any
    only restates what was asked."""
    asked = names(question) | set(words(question))
    if any(w not in _STOP and w not in asked for w in names(sentence)):
        return True
    return bool(set(_NUMBER.findall(sentence)) - set(_NUMBER.findall(question)))
