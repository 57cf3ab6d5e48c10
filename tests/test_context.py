"""What the model reads: sentence selection with the real packaged embedder."""

from __future__ import annotations

from llama_index.core.schema import NodeWithScore, TextNode

from assistant.chunking import embedding_model
from assistant.context import SentenceSelector, relative_scores, split_sentences
from assistant.settings import Settings

QUESTION = "Which company did Honda partner with to build electric vehicles for North America?"
# The top-ranked chunk answers, in fewer of the question's words.
ANSWERING = "Honda will co-develop affordable electric cars with General Motors for buyers in the US and Canada."
# A low-ranked chunk of another story that echoes the question's words without answering it.
ECHOING = "Which company will build electric vehicles for North America is a question many carmakers ask."


def nodes(answering_score: float, echoing_score: float) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=ANSWERING, id_="a"), score=answering_score),
            NodeWithScore(node=TextNode(text=ECHOING, id_="b"), score=echoing_score)]


def selector(retrieval_weight: float) -> SentenceSelector:
    embed = embedding_model(Settings())
    tokenizer = embed._model.tokenizer
    one_sentence = max(len(tokenizer.tokenize(s)) for s in (ANSWERING, ECHOING)) + 1
    return SentenceSelector(embed, tokenizer, budget_tokens=one_sentence, neighbours=0,
                            retrieval_weight=retrieval_weight)


def test_relative_scores_are_shares_of_the_best_and_fall_back_to_ranks():
    assert relative_scores(nodes(0.8, 0.2)) == [1.0, 0.25]
    assert relative_scores(nodes(0.0, 0.0)) == [1.0, 0.5]
    missing = nodes(0.8, 0.2)
    missing[1].score = None
    assert relative_scores(missing) == [1.0, 0.5]


def test_retrieval_score_lets_the_top_chunk_win_over_a_sentence_that_only_echoes_the_question():
    ranked = nodes(answering_score=0.9, echoing_score=0.1)
    # Scored by the sentence alone, the echo wins the one-sentence budget (the case the weight is for).
    [alone] = selector(retrieval_weight=0.0).select(QUESTION, ranked)
    assert alone.text == ECHOING
    [weighted] = selector(retrieval_weight=0.5).select(QUESTION, ranked)
    assert weighted.text == ANSWERING
    assert weighted.best_sentence == ANSWERING


def test_a_windows_sentences_count_with_their_own_chunks_score():
    # One window: the matched chunk (the answer) after a weaker neighbour that echoes the question.
    text = f"{ECHOING} {ANSWERING}"
    window = NodeWithScore(node=TextNode(text=text, id_="w"), score=0.9)
    parts = {"w": [(0, len(ECHOING), 0.1), (len(ECHOING) + 1, len(text), 0.9)]}
    others = [NodeWithScore(node=TextNode(text="Ferries run every hour in summer.", id_="x"), score=0.5)]
    # Scored as one chunk, both sentences get the window's retrieval score and the echo wins.
    [whole] = selector(retrieval_weight=0.5).select(QUESTION, [window, *others])
    assert whole.text == ECHOING
    [by_part] = selector(retrieval_weight=0.5).select(QUESTION, [window, *others], part_scores=parts)
    assert by_part.text == ANSWERING


def test_retrieval_weight_does_not_override_a_clearly_better_sentence_of_a_close_chunk():
    # Two chunks ranked nearly equal: the sentence that matches the question better is kept.
    [picked] = selector(retrieval_weight=0.5).select(QUESTION, nodes(answering_score=0.5, echoing_score=0.52))
    assert picked.text == ECHOING


def test_the_quoted_sentence_is_never_a_question():
    # A quiz page repeats the asked question word for word: it is read, but not quoted as the answer.
    asked = NodeWithScore(node=TextNode(text=f"{QUESTION} {ANSWERING}", id_="q"), score=0.9)
    embed = embedding_model(Settings())
    [passage] = SentenceSelector(embed, embed._model.tokenizer, budget_tokens=200, neighbours=0).select(QUESTION, [asked])
    assert QUESTION in passage.text  # the best match by score, kept for the model to read
    assert passage.best_sentence == ANSWERING


def test_the_quoted_sentence_names_something_the_question_does_not():
    # The echo matches the question best but names nothing it does not (Which, North, America);
    # the quote fallback shows the sentence that names the partner instead.
    both = [NodeWithScore(node=TextNode(text=f"{ECHOING} {ANSWERING}", id_="x"), score=0.9)]
    embed = embedding_model(Settings())

    def quoted(adds_names: bool) -> str:
        [passage] = SentenceSelector(embed, embed._model.tokenizer, budget_tokens=200, neighbours=0,
                                     quote_adds_names=adds_names).select(QUESTION, both)
        return passage.best_sentence

    assert quoted(adds_names=False) == ECHOING  # the best match by score
    assert quoted(adds_names=True) == ANSWERING


def test_sentences_do_not_end_at_abbreviations():
    text = ("Nichelle Nichols played Lt. Nyota Uhura. Gov. Ron DeSantis spoke in St. Louis on Jan. 5 at 3 p.m.\n"
            "The Spurs had the No. 1 pick. He left the U.S. He came back.")
    assert split_sentences(text) == [
        "Nichelle Nichols played Lt. Nyota Uhura.", "Gov. Ron DeSantis spoke in St. Louis on Jan. 5 at 3 p.m.",
        "The Spurs had the No. 1 pick.", "He left the U.S.", "He came back."]


def test_zero_cosine_weight_selects_without_embedding_sentences():
    class NoEmbedding:  # any call to the embedder fails the test
        def __getattr__(self, name):
            raise AssertionError(f"the selector used the embedder ({name})")

    tokenizer = embedding_model(Settings())._model.tokenizer
    lexical = SentenceSelector(NoEmbedding(), tokenizer, budget_tokens=200, neighbours=0, cosine_weight=0.0,
                               quote_adds_names=False)
    [passage] = lexical.select(QUESTION, [NodeWithScore(node=TextNode(text=f"{ECHOING} {ANSWERING}", id_="x"), score=0.9)])
    # Scored by the question's words alone, the echo (which shares most of them) comes first.
    assert passage.text == f"{ECHOING} {ANSWERING}" and passage.best_sentence == ECHOING


def test_only_the_best_sentences_by_words_and_rank_are_embedded():
    embed = embedding_model(Settings())
    seen: list[list[str]] = []
    encode = embed._model.encode

    def recording_encode(sentences, **kw):
        seen.append(list(sentences))
        return encode(sentences, **kw)

    embed._model.encode = recording_encode
    try:
        unrelated = "The weather stayed mild in the north. Markets closed higher on Friday."
        ranked = [NodeWithScore(node=TextNode(text=ANSWERING, id_="a"), score=0.9),
                  NodeWithScore(node=TextNode(text=unrelated, id_="u"), score=0.2)]
        selector = SentenceSelector(embed, embed._model.tokenizer, budget_tokens=200, neighbours=0, embedded_sentences=1)
        [first, second] = selector.select(QUESTION, ranked)
    finally:
        embed._model.encode = encode
    # The question itself and one sentence: the top chunk's, which shares the question's words.
    assert sorted(seen) == sorted([[QUESTION], [ANSWERING]])
    assert first.text == ANSWERING and first.best_sentence == ANSWERING
    assert second.text == unrelated  # the others still fill the budget
