"""Select what the model reads: the best sentences of the top chunks, within a token budget.

A 0.5B model answers well from a few hundred tokens and badly from a few
thousand, so instead of whole chunks it gets the sentences that best match the
question. Each sentence is scored by cosine similarity with the question (one
batched embedding call over short sentences, cheap next to generation) plus the
share of the question's content words it contains plus its chunk's retrieval
score relative to the best chunk's (the hybrid ranking sees the whole chunk with
its title, so it knows better than one sentence which story answers); the best
sentences (with the neighbours of the very best, for context) are kept in
article order under their source's number and title.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from llama_index.core.schema import NodeWithScore
from llama_index.core.utils import globals_helper

from .chunking import embed_sentences
from .text import adds_name_or_number, content_words



# Abbreviations common in news that the English Punkt model does not list ("Gov. Ron DeSantis").
_EXTRA_ABBREVIATIONS = ("gov", "sgt", "capt", "cmdr", "supt", "det", "atty", "dept", "mt", "rev", "hon", "pres",
                        "gens", "sens", "univ", "mar", "apr", "jun", "jul", "est", "approx", "fig")
_CONTINUES = re.compile(r"[a-z0-9(]")  # a sentence does not start like this; a wrongly split one does


@functools.lru_cache(maxsize=1)
def _punkt():
    """The trained English Punkt model that llama-index ships (offline) in its NLTK cache.

    llama-index's own split_by_sentence_tokenizer runs an *untrained* Punkt, which ends a
    sentence at every "U.S.", "Lt." and "No.": the selector then showed the model "Nichelle
    Nichols portrayed Lt." without the name, and the citation check put a mark inside it
    ("Lt [1]. Nyota Uhura")."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTokenizer

    globals_helper.wait_for_nltk_check()  # puts llama-index's bundled NLTK data on nltk's path
    try:
        tokenizer = PunktTokenizer("english")
    except LookupError:  # NLTK_DATA points somewhere without punkt_tab: the untrained model still splits
        tokenizer = PunktSentenceTokenizer()
    tokenizer._params.abbrev_types.update(_EXTRA_ABBREVIATIONS)
    return tokenizer


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (each line split on its own), stripped; a piece that starts in
    lower case or with a digit ("No. / 1 overall pick") is joined back to the one before."""
    out: list[str] = []
    for line in text.split("\n"):
        pieces = [p.strip() for p in _punkt().tokenize(line) if p.strip()]
        for i, piece in enumerate(pieces):
            if i and _CONTINUES.match(piece):
                out[-1] = f"{out[-1]} {piece}"
            else:
                out.append(piece)
    return out


@dataclass
class Passage:
    node: NodeWithScore
    text: str  # the selected sentences, in article order
    best_sentence: str | None = None  # set on the passage holding the best-matching sentence of all


def is_question(sentence: str) -> bool:
    return sentence.rstrip(" \"'”’)").endswith("?")


def relative_scores(nodes: list[NodeWithScore]) -> list[float]:
    """Each node's score as a share of the best one's (1.0 for the best); rank-based when scores are missing."""
    values = [n.score for n in nodes]
    top = max((v for v in values if v is not None), default=None)
    if not top or top <= 0 or any(v is None for v in values):
        return [1.0 / (i + 1) for i in range(len(nodes))]
    return [max(0.0, v) / top for v in values]


def sentence_retrieval_scores(nodes: list[NodeWithScore], per_chunk: list[list[str]],
                              part_scores: dict[str, list[tuple[int, int, float]]]) -> list[list[float]]:
    """Each sentence's retrieval term: its chunk's score relative to the best chunk's. In a window
    (a chunk shown with its neighbours) a sentence takes the score of the chunk it comes from,
    else the neighbours' sentences would count as much as those of the chunk that matched."""
    relative = relative_scores(nodes)
    top = max((n.score for n in nodes if n.score is not None), default=None)
    out = []
    for c, (node, sentences) in enumerate(zip(nodes, per_chunk)):
        parts = part_scores.get(node.node.node_id)
        if not parts or not top or top <= 0:
            out.append([relative[c]] * len(sentences))
            continue
        text, cursor, scores = node.node.get_content(), 0, []
        for sentence in sentences:
            start = text.find(sentence[:40], cursor)  # split_sentences may re-join pieces: match its start
            start = cursor if start < 0 else start
            end = start + len(sentence)
            cursor = start + 1
            own = max((score for a, b, score in parts if a < end and b > start), default=node.score or 0.0)
            scores.append(max(0.0, own) / top)
        out.append(scores)
    return out


class SentenceSelector:
    def __init__(self, embed_model, tokenizer, budget_tokens: int, neighbours: int = 1,
                 keyword_weight: float = 0.3, retrieval_weight: float = 0.5, cosine_weight: float = 1.0,
                 embedded_sentences: int = 0, quote_adds_names: bool = True, batch_size: int = 8):
        self.embed_model = embed_model
        self.tokenizer = tokenizer
        self.budget = budget_tokens
        self.neighbours = neighbours
        self.keyword_weight = keyword_weight
        self.retrieval_weight = retrieval_weight
        self.cosine_weight = cosine_weight
        self.embedded_sentences = embedded_sentences
        self.quote_adds_names = quote_adds_names
        self.batch_size = batch_size

    def _cosines(self, question: str, sentences: list[str], question_embedding=None) -> np.ndarray:
        """Each sentence's cosine similarity to the question; zeros without computing them when their
        weight is 0 (embedding some 100 sentences is most of the selection's time)."""
        if not self.cosine_weight:
            return np.zeros(len(sentences))
        if question_embedding is None:
            question_embedding = self.embed_model.get_query_embedding(question)
        question_vec = np.asarray(question_embedding)
        sentence_vecs = embed_sentences(self.embed_model, sentences, self.batch_size)
        return sentence_vecs @ (question_vec / (np.linalg.norm(question_vec) or 1.0))

    def _quote(self, question: str, shown: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
        """The quote fallback's sentence among those shown (best first): the best one that is not a
        question and, with quote_adds_names, names something the question does not. A question in an
        article (quiz pages, "What is being recalled?") echoes the asked question best but answers
        nothing, and so does a sentence that only restates it (no name or number the question lacks)."""
        statements = [u for u in shown if not is_question(u[2])]
        if self.quote_adds_names:
            informative = next((u for u in statements if adds_name_or_number(u[2], question)), None)
            if informative:
                return informative
        return next(iter(statements), shown[0] if shown else None)

    def select(self, question: str, nodes: list[NodeWithScore], question_embedding=None,
               part_scores: dict[str, list[tuple[int, int, float]]] | None = None) -> list[Passage]:
        """Passages (one per chunk that contributes a sentence), best chunk first. ``question_embedding``
        is the retrieval's, when it has one (else the question is embedded here); ``part_scores`` are
        the retrieval's windows' parts (node id -> (start, end, score)), when it returns windows."""
        units: list[tuple[int, int, str]] = []  # (chunk index, sentence index, sentence)
        per_chunk: list[list[str]] = []
        for c, node in enumerate(nodes):
            sentences = split_sentences(node.node.get_content())
            per_chunk.append(sentences)
            units.extend((c, i, s) for i, s in enumerate(sentences))
        if not units:
            return []
        asked = content_words(question)
        retrieval = sentence_retrieval_scores(nodes, per_chunk, part_scores or {})
        scores = [self.keyword_weight * len(asked & content_words(sentence)) / (len(asked) or 1)
                  + self.retrieval_weight * retrieval[c][i] for c, i, sentence in units]
        # Embedding the sentences is most of the selection's time, and a sentence that neither shares the
        # question's words nor sits in a well-ranked chunk seldom wins: only the best few by those two
        # compete with their similarity added; the rest follow them in that order (they fill a budget
        # the others leave, and may come in as neighbours of the best).
        order = sorted(range(len(units)), key=lambda k: scores[k], reverse=True)
        cut = self.embedded_sentences or len(order)
        embedded, rest = order[:cut], order[cut:]
        for k, cos in zip(embedded, self._cosines(question, [units[k][2] for k in embedded], question_embedding)):
            scores[k] += self.cosine_weight * float(cos)
        order = sorted(embedded, key=lambda k: scores[k], reverse=True) + rest

        chosen: set[tuple[int, int]] = set()
        used = 0
        for rank, k in enumerate(order):
            c, i, _ = units[k]
            wanted = [(c, i)]
            if rank == 0:  # the best sentence brings its neighbours: names and dates are often one sentence away
                wanted += [(c, j) for j in range(i - self.neighbours, i + self.neighbours + 1)
                           if j != i and 0 <= j < len(per_chunk[c])]
            for key in wanted:
                if key in chosen:
                    continue
                cost = len(self.tokenizer.tokenize(per_chunk[key[0]][key[1]])) + 1
                if used + cost > self.budget:
                    continue
                chosen.add(key)
                used += cost
            if used >= self.budget:
                break

        shown = [units[k] for k in order if units[k][:2] in chosen]
        quote = self._quote(question, shown)
        passages = []
        for c, node in enumerate(nodes):
            picked = sorted(i for cc, i in chosen if cc == c)
            if not picked:
                continue
            parts, last = [], None
            for i in picked:
                if last is not None and i != last + 1:
                    parts.append("...")
                parts.append(per_chunk[c][i])
                last = i
            passages.append(Passage(node=node, text=" ".join(parts),
                                    best_sentence=quote[2] if quote and c == quote[0] else None))
        return passages
