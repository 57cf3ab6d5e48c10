"""Citations that hold: parse the model's [n] marks, check every sentence against the
passages it cites, re-cite or remove what its citation does not support, and
filter streamed tokens so a reader never sees a mark that will be removed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .chunking import embed_sentences
from .context import split_sentences
from .settings import REFUSAL
from .text import content_words

CITATION = re.compile(r"\[(?:sources?\s*)?(\d+(?:\s*(?:,|and)\s*(?:sources?\s*)?\d+)*)\]", re.IGNORECASE)
REFUSAL_CORE = "do not cover this question"
_WRAPPED = re.compile(r"\[([^\[\]]{20,})\]")  # "[Nissan is in talks ...] [1]": a quote the model bracketed


@dataclass
class Citation:
    n: int
    article_id: str
    title: str
    site: str
    published: str
    url: str
    text: str


@dataclass
class SentenceCheck:
    sentence: str  # as it appears in the final answer ("" when removed)
    original: str  # as the model wrote it
    cited: list[int]  # numbers after the check
    support: float  # best support among the final citations (0..1)
    action: str  # verified | re-cited | added | removed | no-claim | quoted (see NewsAssistant._quote)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class CheckedAnswer:
    text: str
    citations: list[Citation]
    checks: list[SentenceCheck] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return not self.citations


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", CITATION.sub("", text)).strip()


def citation_numbers(text: str) -> list[int]:
    return [int(x) for m in CITATION.finditer(text) for x in re.findall(r"\d+", m.group(1))]


class CitationChecker:
    """Checks each sentence of an answer against the passages it cites.

    Support of a sentence by a passage is the larger of (a) the share of the
    sentence's content words found in the passage (with its title) and (b) the
    embedding cosine between the sentence and the passage's best sentence,
    rescaled so that ``cosine_floor`` maps to 0 and 1.0 to 1. A sentence whose
    citations all fall below ``min_support`` is re-cited to the best-supporting
    passage, or removed when none reaches it.

    Given the question, a sentence's *answer words* are its content words the question
    does not have ("Chloe Kelly" in "Chloe Kelly scored the winning goal against
    Germany"). A passage about the same event can support the sentence's wording without
    naming the answer; when another passage names more of the answer words, the citation
    goes to that one, so the passage a reader opens is the one that says the answer.
    """

    def __init__(self, embed_model=None, min_support: float = 0.5, cosine_floor: float = 0.3, batch_size: int = 8):
        self.embed_model = embed_model
        self.batch_size = batch_size
        self.min_support = min_support
        self.cosine_floor = cosine_floor

    def check(self, text: str, sources: list[Citation], question: str = "") -> CheckedAnswer:
        text = text.strip()
        wrapped = _WRAPPED.match(text)
        if wrapped:
            text = wrapped.group(1) + text[wrapped.end():]
        if not text or REFUSAL_CORE in text.lower() or not sources:
            return CheckedAnswer(REFUSAL, [])
        by_number = {s.n: s for s in sources}
        sentences = split_sentences(text)
        # A citation standing alone after the last sentence ("... pickup. [1]") belongs to it.
        merged: list[str] = []
        for sentence in sentences:
            if merged and not strip_citations(sentence):
                merged[-1] = f"{merged[-1]} {sentence}"
            else:
                merged.append(sentence)
        plains = [strip_citations(s) for s in merged]
        words = [content_words(p) for p in plains]  # each sentence's, used by every rule below
        passage_words = [content_words(f"{s.title} {s.text}") for s in sources]
        support = self._support_matrix(plains, words, sources, passage_words)
        asked = content_words(question)

        checks: list[SentenceCheck] = []
        for i, sentence in enumerate(merged):
            plain = plains[i]
            written = [n for n in dict.fromkeys(citation_numbers(sentence)) if n in by_number]
            if len(words[i]) < 2:
                # A bare answer the model left unmarked ("Israel") is not given a citation here: it then
                # goes the declined way (second try, quote), which measured better (BENCHMARKS.md,
                # "Citation check tried: bare answers").
                checks.append(SentenceCheck(_render(plain, written), sentence, written, 1.0, "no-claim"))
                continue
            scores = {s.n: float(support[i, j]) for j, s in enumerate(sources)}
            eligible = [n for n in scores if scores[n] >= self.min_support]
            if asked and eligible:  # only passages that name the answer as fully as the best one does
                answer_words = words[i] - asked
                named = {s.n: len(answer_words & passage_words[j]) for j, s in enumerate(sources) if s.n in eligible}
                most = max(named.values())
                if most:
                    eligible = [n for n in eligible if named[n] == most]
            held = [n for n in written if n in eligible]
            if held:
                action = "verified" if held == written else "re-cited"
                # The model's wording is kept, but a mark it put first ("[1] Glenn Thompson", copying how
                # the sources are numbered) goes to the end, where every other citation sits.
                verbatim = held == written and not CITATION.match(sentence)
                final = _keep_marks(sentence, set(held)) if verbatim else _render(plain, held)
                checks.append(SentenceCheck(_clean(final), sentence, held, max(scores[n] for n in held), action))
                continue
            best = max(eligible or scores, key=scores.get)
            if scores[best] >= self.min_support:
                checks.append(SentenceCheck(_render(plain, [best]), sentence, [best], scores[best],
                                            "re-cited" if written else "added"))
            else:
                checks.append(SentenceCheck("", sentence, [], scores[best], "removed"))

        kept = [c for c in checks if c.sentence]
        cited = sorted({n for c in kept for n in c.cited})
        if not cited:  # nothing the passages support: say so instead of guessing
            return CheckedAnswer(REFUSAL, [], checks)
        return CheckedAnswer(" ".join(c.sentence for c in kept), [by_number[n] for n in cited], checks)

    def check_pick(self, text: str, sources: list[Citation]) -> CheckedAnswer:
        """A multiple-choice reply ("B. Europe [1]"): keep it, with only marks naming shown sources."""
        text = text.strip()
        if not text or REFUSAL_CORE in text.lower():
            return CheckedAnswer(REFUSAL, [])
        by_number = {s.n: s for s in sources}
        numbers = [n for n in dict.fromkeys(citation_numbers(text)) if n in by_number]
        return CheckedAnswer(_clean(_keep_marks(text, set(numbers))), [by_number[n] for n in numbers] or sources[:1])

    def _support_matrix(self, sentences: list[str], sentence_words: list[set[str]], sources: list[Citation],
                        passage_words: list[set[str]]) -> np.ndarray:
        overlap = np.zeros((len(sentences), len(sources)))
        for i, words in enumerate(sentence_words):
            for j, words_p in enumerate(passage_words):
                overlap[i, j] = len(words & words_p) / (len(words) or 1)
        if self.embed_model is None or not sentences:
            return overlap
        passage_sentences = [split_sentences(s.text) or [s.text] for s in sources]
        flat = [p for ps in passage_sentences for p in ps]
        vectors = embed_sentences(self.embed_model, sentences + flat, self.batch_size)
        answer_vecs, passage_vecs = vectors[: len(sentences)], vectors[len(sentences):]
        cosine = np.zeros_like(overlap)
        start = 0
        for j, ps in enumerate(passage_sentences):
            block = passage_vecs[start:start + len(ps)]
            cosine[:, j] = (answer_vecs @ block.T).max(axis=1)
            start += len(ps)
        rescaled = np.clip((cosine - self.cosine_floor) / (1.0 - self.cosine_floor), 0.0, 1.0)
        return np.maximum(overlap, rescaled)


def _render(plain: str, numbers: list[int]) -> str:
    marks = "".join(f"[{n}]" for n in numbers)
    if not marks:
        return plain
    if plain and plain[-1] in ".!?":
        return f"{plain[:-1]} {marks}{plain[-1]}"
    return f"{plain} {marks}"


def _keep_marks(sentence: str, allowed: set[int]) -> str:
    """The model's sentence verbatim, with marks naming no shown source taken out."""
    return CITATION.sub(lambda m: "".join(f"[{n}]" for n in dict.fromkeys(citation_numbers(m.group(0)))
                                          if n in allowed), sentence)


def _clean(sentence: str) -> str:
    """Drop marks naming no source (already filtered) and stray spaces, keeping the model's wording."""
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", sentence)).strip()


class CitationStream:
    """Filters streamed tokens so a reader never sees a citation that will be removed.

    Text from a "[" is held back until its "]" (or until it clearly is not a
    citation); a held citation is let through with only the source numbers that
    exist, so the streamed text does not jump when the checked answer replaces it
    (only sentences the check re-cites or removes change).
    """

    MAX_HELD = 24

    def __init__(self, valid_numbers: set[int]):
        self.valid = valid_numbers
        self.held = ""

    def feed(self, token: str) -> str:
        out = []
        for char in token:
            if self.held:
                self.held += char
                if char == "]":
                    out.append(self._release())
                elif len(self.held) > self.MAX_HELD:
                    out.append(self.held)
                    self.held = ""
            elif char == "[":
                self.held = char
            else:
                out.append(char)
        return "".join(out)

    def _release(self) -> str:
        held, self.held = self.held, ""
        if not CITATION.fullmatch(held):
            return held
        return "".join(f"[{n}]" for n in dict.fromkeys(citation_numbers(held)) if n in self.valid)

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held
