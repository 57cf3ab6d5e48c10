"""Hybrid retrieval: score and rank fusion, BM25 persisted and kept current, filters, as-of
preference, diversity, chunk windows."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from pydantic import ValidationError
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from assistant.articles import make_article
from assistant.errors import AssistantError
from assistant.retrieval import (
    FUSION_FEATURES, FUSION_MODEL_FILE, NewsRetriever, RetrievalFilters, apply_recency, candidate_features,
    day_number, diversify, fuse_learned, fuse_ranks, fuse_scores, fusion_logits, join_chunks, load_fusion_model,
)
from assistant.settings import Settings
from assistant.store import KEYWORD_DIR, NewsStore

from .conftest import make_settings


def node(node_id: str, article: str = "a", text: str = "", published: str | None = None) -> NodeWithScore:
    meta = {"article_id": article}
    if published:
        meta["published_day"] = day_number(dt.date.fromisoformat(published))
    return NodeWithScore(node=TextNode(id_=node_id, text=text or node_id, metadata=meta), score=0.0)


def test_defaults_are_the_documented_ones():
    s = Settings()
    assert s.retrieval_mode == "hybrid" and s.fusion == "learned" and s.candidates == 50
    assert s.vector_weight == 0.5 and s.rrf_k == 60.0 and s.window_chunks == 0
    assert s.max_chunks_per_article == 2 and s.duplicate_jaccard == 0.8
    assert s.recency_half_life_days > 0 and s.context_top_k >= 3 and s.stale_index_days == 30


def test_weighted_reciprocal_rank_fusion():
    vector = [node("x"), node("y"), node("z")]
    keyword = [node("z"), node("w")]
    fused = fuse_ranks([vector, keyword], [0.5, 0.5], k=60)
    scores = {n.node.node_id: n.score for n in fused}
    assert scores["z"] == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert scores["x"] == pytest.approx(0.5 / 61)
    assert [n.node.node_id for n in fused][0] == "z"  # found by both: first
    only_vector = fuse_ranks([vector, keyword], [1.0, 0.0], k=60)
    assert [n.node.node_id for n in only_vector] == ["x", "y", "z"]


def test_relative_score_fusion_keeps_a_clear_winner_ahead():
    vector = [node("x"), node("y"), node("z")]
    for n, score in zip(vector, (0.9, 0.5, 0.4)):
        n.score = score
    keyword = [node("y"), node("w")]
    for n, score in zip(keyword, (12.0, 2.0)):
        n.score = score
    fused = fuse_scores([vector, keyword], [0.5, 0.5])
    scores = {n.node.node_id: n.score for n in fused}
    assert scores["x"] == pytest.approx(0.5)  # best vector score, no keyword match
    assert scores["y"] == pytest.approx(0.5 * 0.2 + 0.5)  # normalized 0.1/0.5 and 1.0
    assert scores["z"] == pytest.approx(0.0) and scores["w"] == pytest.approx(0.0)
    assert [n.node.node_id for n in fused][:2] == ["y", "x"]
    assert [n.node.node_id for n in fuse_scores([vector, []], [0.5, 0.5])][0] == "x"


def test_recency_prefers_recent_articles_and_halves_per_half_life():
    old = node("old", published="2024-01-01")
    new = node("new", published="2024-03-01")
    undated = node("undated")
    for n in (old, new, undated):
        n.score = 1.0
    ranked = [old, undated, new]
    apply_recency(ranked, dt.date(2024, 3, 1), half_life_days=30)
    assert [n.node.node_id for n in ranked] == ["new", "undated", "old"]
    assert new.score == 1.0 and undated.score == pytest.approx(0.5)
    assert old.score == pytest.approx(0.5 ** (60 / 30))


def test_diversity_caps_chunks_per_article_and_drops_near_duplicates():
    story = "Oil prices rose sharply on Monday after the cartel announced deep production cuts for the summer"
    ranked = [
        node("a1", "A", "first chunk of article A about oil"),
        node("a2", "A", "second chunk of article A about gas"),
        node("a3", "A", "third chunk of article A about coal"),
        node("b1", "B", story + "."),
        node("c1", "C", story + " , Reuters reported."),  # the same wire story on another site
        node("d1", "D", "Something else entirely."),
    ]
    kept = [n.node.node_id for n in diversify(ranked, max_per_article=2, duplicate_jaccard=0.8)]
    assert kept == ["a1", "a2", "b1", "d1"]
    assert len(diversify(ranked, max_per_article=0, duplicate_jaccard=1.0)) == 6


def test_diversity_leaves_a_better_chunks_neighbours_to_its_window():
    ranked = [node("A#4", "A"), node("A#5", "A"), node("A#7", "A"), node("B#0", "B"), node("A#3", "A")]
    with_windows = [n.node.node_id for n in diversify(ranked, 3, 1.0, window=1)]
    assert with_windows == ["A#4", "A#7", "B#0"]  # A#5 and A#3 are inside A#4's window
    assert [n.node.node_id for n in diversify(ranked, 3, 1.0, window=0, limit=2)] == ["A#4", "A#5"]


def test_results_come_with_neighbouring_chunks_of_their_article(tmp_path):
    # Ten paragraphs of about 60 tokens: several chunks, each sentence in exactly one paragraph.
    paragraphs = [f"Paragraph {i} is about the harbour of town number {i}. " + "The ferry runs often. " * 8
                  for i in range(10)]
    paragraphs[5] = "The lighthouse keeper Ingrid Solberg retired after forty years. " + "The ferry runs often. " * 8
    settings = make_settings(tmp_path / "index")
    store = NewsStore(settings, create=True)
    store.ingest([make_article(article_id="harbour", title="Harbour news", text="\n\n".join(paragraphs))],
                 show_progress=False)
    assert store.chunk_count() >= 3
    question = "Who is the lighthouse keeper who retired?"
    alone = NewsRetriever(settings.model_copy(update={"window_chunks": 0}), store).retrieve(question).nodes[0]
    ranked = NewsRetriever(settings.model_copy(update={"window_chunks": 1}), store).retrieve(question)
    window = ranked.nodes[0]
    assert "Ingrid Solberg" in alone.node.get_content() and "Ingrid Solberg" in window.node.get_content()
    assert window.node.node_id == alone.node.node_id
    assert len(window.node.get_content()) > len(alone.node.get_content())
    text = window.node.get_content()
    assert alone.node.get_content() in text  # the chunk itself, whole, inside its window
    # Neighbours are joined without repeating the chunks' overlap.
    for i in range(10):
        assert text.count(f"town number {i}.") <= 1
    assert window.node.metadata["title"] == "Harbour news"
    # Where each chunk lies in the window, with its own score: the centre keeps the window's,
    # its neighbours (weaker matches) less.
    parts = ranked.part_scores[window.node.node_id]
    assert len(parts) >= 2
    centre = [(a, b) for a, b, score in parts if score == window.score]
    assert len(centre) == 1 and text[slice(*centre[0])].strip() == alone.node.get_content().strip()
    assert all(score < window.score for a, b, score in parts if (a, b) != centre[0])
    assert parts[0][0] == 0 and parts[-1][1] == len(text)


def test_joined_chunks_know_where_each_chunk_lies():
    text = "One sentence here. Two sentences here. Three sentences here. Four sentences here."
    cut = [(0, 38), (19, 60), (60, len(text))]  # the first two overlap by one sentence
    chunks = [TextNode(text=text[a:b].strip(), start_char_idx=a, end_char_idx=b) for a, b in cut]
    joined, spans = join_chunks(chunks)
    assert joined == text
    assert [joined[a:b].strip() for a, b in spans] == [c.get_content() for c in chunks]


@pytest.fixture
def archive(tmp_path):
    settings = make_settings(tmp_path / "index")
    store = NewsStore(settings, create=True)
    store.ingest([
        make_article(article_id="old-gas", title="Gas prices", site="a.com", published="2023-01-10",
                     text="Gas prices fell to $3.10 a gallon this week, the motor club said."),
        make_article(article_id="new-gas", title="Gas prices", site="b.com", published="2023-06-10",
                     text="Gas prices rose to $3.60 a gallon this week, the motor club said."),
        make_article(article_id="code", title="Recall", site="a.com", published="2023-06-01",
                     text="The recall covers model XJ-9000 units built in the spring."),
        make_article(article_id="future", title="Gas prices", site="a.com", published="2023-12-01",
                     text="Gas prices hit $2.90 a gallon this week, the motor club said."),
    ], show_progress=False)
    return settings


def ids(ranked) -> list[str]:
    return [n.node.metadata["article_id"] for n in ranked.nodes]


def test_keyword_index_is_persisted_and_follows_ingest(archive):
    store = NewsStore(archive)
    assert (archive.index_dir / KEYWORD_DIR).is_dir()
    assert store.keyword_index().chunk_count == store.chunk_count() == 4
    store.ingest([make_article(article_id="late", title="Late", text="A zeppelin landed in Ohio.")], show_progress=False)
    # The same store object searches its rebuilt index at once (as the chat does after an upload)...
    assert [n.node.metadata["article_id"] for n in store.keyword_index().search("zeppelin", 5)] == ["late"]
    # ...and a new process loads it from disk.
    reopened = NewsStore(archive)
    assert reopened.keyword_index().chunk_count == 5
    found = reopened.keyword_index().search("zeppelin", 5)
    assert [n.node.metadata["article_id"] for n in found] == ["late"]


def test_bm25_finds_rare_tokens_and_fusion_keeps_them(archive):
    retriever = NewsRetriever(archive, NewsStore(archive))
    assert ids(retriever.retrieve("XJ-9000"))[0] == "code"
    bm25_only = NewsRetriever(archive.model_copy(update={"retrieval_mode": "bm25"}), NewsStore(archive))
    assert ids(bm25_only.retrieve("XJ-9000")) == ["code"]


def test_filters_apply_to_both_retrievers(archive):
    retriever = NewsRetriever(archive, NewsStore(archive))
    only_b = retriever.retrieve("gas prices gallon", RetrievalFilters(sites=("b.com",)))
    assert ids(only_b) == ["new-gas"]
    early = retriever.retrieve("gas prices gallon", RetrievalFilters(until=dt.date(2023, 3, 1)))
    assert ids(early) == ["old-gas"]
    window = retriever.retrieve("XJ-9000", RetrievalFilters(since=dt.date(2023, 5, 1), until=dt.date(2023, 7, 1)))
    assert set(ids(window)) <= {"new-gas", "code"}


def test_as_of_excludes_later_articles_and_prefers_recent_ones(archive):
    retriever = NewsRetriever(archive, NewsStore(archive))
    in_june = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 6, 12)))
    assert in_june[0] == "new-gas" and "future" not in in_june
    in_january = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 1, 11)))
    assert in_january == ["old-gas"]
    in_december = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 12, 2)))
    assert in_december[0] == "future"


def test_an_archive_that_ended_long_before_the_as_of_day_counts_ages_from_its_newest_article(archive):
    """Asked today, an archive whose newest article is from 2023-12-01 would show every article as
    about three years old; its ages count from that newest article (plus the grace day) instead."""
    scored = lambda retriever, day: [(n.node.node_id, round(n.score, 9)) for n in  # noqa: E731
                                     retriever.retrieve("What happened to gas prices this week?", as_of=day).nodes]
    store = NewsStore(archive)
    retriever, from_as_of = NewsRetriever(archive, store), NewsRetriever(archive.model_copy(
        update={"stale_index_days": 0}), store)
    today, archive_end = dt.date(2026, 12, 6), dt.date(2023, 12, 2)
    assert retriever.age_anchor(today, day_number(dt.date(2023, 12, 1))) == archive_end
    assert scored(retriever, today) == scored(retriever, archive_end)
    assert scored(from_as_of, today) != scored(retriever, today)  # the setting's 0 keeps the old behaviour
    # An index with articles up to the as-of day, or close to it, is unchanged.
    assert scored(retriever, dt.date(2023, 6, 12)) == scored(from_as_of, dt.date(2023, 6, 12))
    assert retriever.age_anchor(dt.date(2023, 12, 20), day_number(dt.date(2023, 12, 1))) == dt.date(2023, 12, 20)


def ingest_crowded_by_later_articles(store: NewsStore) -> None:
    """Nine 2024 articles on gas prices and one from 2020 that only a filtered search reaches."""
    later = [make_article(article_id=f"later-{i}", title="Gas prices", published=f"2024-0{1 + i % 9}-15",
                          text=f"Gas prices rose to $3.{i}0 a gallon this week, the motor club said.") for i in range(9)]
    early = make_article(article_id="early", title="Fuel costs", published="2020-05-01",
                         text="Pump prices for gasoline eased slightly, drivers reported.")
    store.ingest(later + [early], show_progress=False)


def test_as_of_search_falls_back_to_the_filtered_query_when_later_articles_crowd_the_top(tmp_path):
    settings = make_settings(tmp_path / "index", candidates=2, retrieval_mode="vector")
    store = NewsStore(settings, create=True)
    ingest_crowded_by_later_articles(store)
    retriever = NewsRetriever(settings, store)
    # Unfiltered, the 6 nearest (2 candidates x headroom 3) are all later than the as-of date...
    nearest = retriever._nearest("What happened to gas prices?", 6, None)
    assert all(n.node.metadata["article_id"].startswith("later") for n in nearest)
    # ...so the filtered query runs and still finds the one article that existed then.
    assert ids(retriever.retrieve("What happened to gas prices?", as_of=dt.date(2020, 6, 1))) == ["early"]
    assert ids(retriever.retrieve("What happened to gas prices?", as_of=dt.date(2024, 1, 20)))[0] == "later-0"


def test_learned_fusion_features_describe_each_candidate():
    vector = [node("a#0", "A", "Honda picked LG for its battery plant", "2023-06-01"),
              node("b#3", "B", "Toyota sales rose", "2022-06-01")]
    keyword = [node("a#0", "A", "Honda picked LG for its battery plant", "2023-06-01"),
               node("c#1", "C", "Honda battery partner named")]
    for n, score in zip([*vector, *keyword], (0.8, 0.4, 9.0, 3.0)):
        n.score = score
    nodes, rows = candidate_features("Who is Honda's battery partner?", dt.date(2023, 6, 2), vector, keyword)
    assert [n.node.node_id for n in nodes] == ["a#0", "b#3", "c#1"] and rows.shape == (3, len(FUSION_FEATURES))
    a, b, c = (dict(zip(FUSION_FEATURES, row)) for row in rows)
    assert a["found by both retrievers"] == 1.0 and b["found by both retrievers"] == 0.0
    assert b["cosine (the list's lowest if absent)"] == pytest.approx(0.4)
    assert c["cosine (the list's lowest if absent)"] == pytest.approx(0.4)  # BM25-only: the list's lowest
    assert c["BM25 score, min-max within its list (0 if absent)"] == 0.0 and b["BM25 score, min-max within its list (0 if absent)"] == 0.0
    assert a["log(1 + article age in days at the question's date)"] == pytest.approx(math.log1p(1))
    assert c["log(1 + article age in days at the question's date)"] == pytest.approx(math.log1p(365))  # undated
    assert b["log(1 + position in its article)"] == pytest.approx(math.log1p(3))
    share = "share of the question's content words in the chunk"  # of honda, battery, partner
    assert (a[share], b[share], c[share]) == pytest.approx((2 / 3, 0.0, 1.0))
    pairs = "share of the question's word pairs that the chunk has as adjacent words"  # is honda, honda s, s battery, battery partner
    assert (a[pairs], c[pairs]) == pytest.approx((0.0, 1 / 4))
    new_names = "log(1 + capitalized words in the chunk that the question does not have)"
    assert (a[new_names], b[new_names], c[new_names]) == pytest.approx((math.log1p(1), math.log1p(1), 0.0))  # LG; Toyota
    assert a["log(1 + words in the chunk)"] == pytest.approx(math.log1p(7))
    undated_question = candidate_features("Who is Honda's battery partner?", None, vector, keyword)[1]
    assert (undated_question[:, FUSION_FEATURES.index("log(1 + article age in days at the question's date)")] == 0).all()


def test_shipped_fusion_model_prefers_recent_chunks_that_match_the_question():
    model = load_fusion_model(FUSION_MODEL_FILE)
    assert model["kind"] == "trees"
    # It names the weeks it learned from, which benchmarks use to tell in-sample from out-of-sample.
    assert len(model["weeks"]) >= 30 and all(len(w) == 8 and w.isdigit() for w in model["weeks"])
    recent = node("new#0", "new", "Gas prices rose to $3.60 a gallon", "2023-06-10")
    older = node("old#0", "old", "Gas prices rose to $3.60 a gallon", "2021-06-10")
    for n in (recent, older):
        n.score = 0.7
    ranked = fuse_learned("What happened to gas prices?", dt.date(2023, 6, 12), [older, recent], [], model)
    assert [n.node.node_id for n in ranked] == ["new#0", "old#0"] and 0 < ranked[1].score < ranked[0].score < 1
    # Same cosine, same date: the chunk that holds the question's words and is found by BM25 too wins.
    matching = node("match#0", "m", "Gas prices fell this week, to $3.20 a gallon", "2023-06-10")
    other = node("other#0", "o", "The central bank held interest rates this week", "2023-06-10")
    for n in (matching, other):
        n.score = 0.6
    keyword = [NodeWithScore(node=matching.node, score=4.0)]
    ranked = fuse_learned("What happened to gas prices this week?", dt.date(2023, 6, 12), [other, matching], keyword, model)
    assert [n.node.node_id for n in ranked] == ["match#0", "other#0"]


@pytest.mark.parametrize("kind", ["trees", "logistic"])
def test_an_exported_fusion_model_scores_as_scikit_learn_does_after_a_round_trip(tmp_path, kind):
    # The serving side walks the exported trees with numpy; it must give scikit-learn's own scores.
    from benchmarks.learned_fusion import MODELS, Question, export, fit

    rng = np.random.default_rng(0)
    questions = []
    for week in range(6):
        features = rng.normal(size=(80, len(FUSION_FEATURES)))
        labels = (features[:, 2] + 0.5 * features[:, 10] * features[:, 1] + rng.normal(scale=0.5, size=80) > 1).astype(int)
        questions.append(Question(str(week), [], np.zeros(80), features, labels))
    fitted = fit(MODELS[kind], questions)
    path = tmp_path / "fusion_model.json"
    path.write_text(json.dumps({"features": list(FUSION_FEATURES), **export(fitted, questions)}))
    served = load_fusion_model(path)
    unseen = rng.normal(size=(200, len(FUSION_FEATURES)))
    assert served["kind"] == kind
    assert np.allclose(fusion_logits(served, unseen), fitted.decision_function(unseen), atol=1e-9)


def test_training_sets_merge_into_one_and_may_not_share_weeks():
    # --train-questions may be repeated: the sets' weeks, questions and indexes become one training set.
    from benchmarks.learned_fusion import merged
    from benchmarks.tune_retrieval import DevelopmentWeeks

    settings = Settings()
    a = DevelopmentWeeks(["qa"], ["20220708"], settings, {"20220708": settings}, " --questions a", "from `a`")
    b = DevelopmentWeeks(["qb1", "qb2"], ["20220701"], settings, {"20220701": settings}, " --questions b", "from `b`")
    both = merged([a, b])
    assert both.weeks == ["20220701", "20220708"]
    assert both.questions == ["qa", "qb1", "qb2"]
    assert set(both.indexes) == {"20220701", "20220708"}
    assert both.flags == " --questions a --questions b" and both.chosen == "from `a` and from `b`"
    with pytest.raises(SystemExit, match="share weeks"):
        merged([a, a])


def test_benchmark_setting_grids_parse_booleans_and_numbers():
    # --set values are typed by the parser (for the tables and labels) and validated where the tuning
    # benchmarks apply them (with_overrides): model_copy(update=...) alone took "false" as truthy.
    from benchmarks.tune_retrieval import setting_grid, with_overrides

    names, grid = setting_grid(["retry_declined=false,true", "context_budget_tokens=330,450"])
    assert names == ["retry_declined", "context_budget_tokens"]
    assert grid[0] == {"retry_declined": False, "context_budget_tokens": 330}
    assert [row["retry_declined"] for row in grid] == [False, False, True, True]
    assert Settings().model_copy(update=grid[0]).retry_declined is False
    assert setting_grid(["fusion=rrf", "vector_weight=0.25"])[1] == [{"fusion": "rrf", "vector_weight": 0.25}]
    # Where the values are applied they are validated, whatever the parser made of them.
    base = Settings(context_budget_tokens=330)
    overridden = with_overrides(base, {"retry_declined": "false"})
    assert overridden.retry_declined is False
    assert overridden.context_budget_tokens == 330
    with pytest.raises(ValidationError):
        with_overrides(base, {"fusion": "best"})
    with pytest.raises(SystemExit, match="unknown setting"):
        with_overrides(base, {"retry_declinde": False})


def test_a_damaged_fusion_model_is_a_one_line_error(tmp_path):
    damaged = tmp_path / "fusion_model.json"
    damaged.write_text(json.dumps({"features": list(FUSION_FEATURES), "kind": "trees", "baseline": 0.1}))
    with pytest.raises(AssistantError, match="cannot read the fusion model"):
        load_fusion_model(damaged)


def test_a_fusion_model_trained_on_other_features_is_refused(tmp_path):
    stale = tmp_path / "fusion_model.json"
    stale.write_text(json.dumps({"features": ["something else"], "mean": [0], "scale": [1], "coef": [1], "intercept": 0}))
    with pytest.raises(AssistantError, match="other features"):
        load_fusion_model(stale)


def test_a_missing_fusion_model_is_a_one_line_error(tmp_path):
    with pytest.raises(AssistantError, match="cannot read the fusion model"):
        load_fusion_model(tmp_path / "deleted.json")


@pytest.mark.parametrize("fusion", ["relative_score", "rrf"])
def test_fixed_fusions_keep_rare_tokens_filters_and_the_as_of_preference(archive, fusion):
    # The tests above run the default (learned) fusion; the fixed ones must do the same.
    fixed = archive.model_copy(update={"fusion": fusion})
    retriever = NewsRetriever(fixed, NewsStore(fixed))
    assert ids(retriever.retrieve("XJ-9000"))[0] == "code"
    in_june = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 6, 12)))
    assert in_june[0] == "new-gas" and "future" not in in_june
    in_december = ids(retriever.retrieve("What happened to gas prices this week?", as_of=dt.date(2023, 12, 2)))
    assert in_december[0] == "future"
    assert ids(retriever.retrieve("gas prices gallon", RetrievalFilters(sites=("b.com",)))) == ["new-gas"]


def test_one_retriever_alone_keeps_its_own_scores_under_the_learned_default(archive):
    # The model was trained on both retrievers' candidates; vector-only ranks by min-max cosine
    # (weighted 0.5 like the fixed fusion), so its best chunk scores exactly 0.5, not a probability.
    vector_only = archive.model_copy(update={"retrieval_mode": "vector"})
    ranked = NewsRetriever(vector_only, NewsStore(vector_only)).retrieve("gas prices gallon")
    assert ranked.nodes[0].score == pytest.approx(0.5)
    hybrid = NewsRetriever(archive, NewsStore(archive)).retrieve("gas prices gallon")
    assert hybrid.nodes[0].score != pytest.approx(0.5)  # the learned fusion's probability


def test_a_zero_half_life_turns_the_learned_fusions_date_preference_off(archive):
    question, june = "What happened to gas prices this week?", dt.date(2023, 6, 12)
    dated = NewsRetriever(archive, NewsStore(archive)).retrieve(question, as_of=june)
    undated = archive.model_copy(update={"recency_half_life_days": 0.0})
    flat = NewsRetriever(undated, NewsStore(undated)).retrieve(question, as_of=june)
    assert "future" not in ids(flat)  # the as-of date still hides later articles...
    scores = {n.node.metadata["article_id"]: n.score for n in flat.nodes}
    dated_scores = {n.node.metadata["article_id"]: n.score for n in dated.nodes}
    # ...but the January article is no longer discounted for its age against the June one.
    assert scores["old-gas"] / scores["new-gas"] > dated_scores["old-gas"] / dated_scores["new-gas"]


def test_the_question_is_embedded_once_for_search_fallback_and_sentence_selection(tmp_path, monkeypatch):
    from assistant.answer import NewsAssistant

    # The as-of fallback case above: an unfiltered and a filtered vector search, then sentence selection.
    settings = make_settings(tmp_path / "index", candidates=2, min_relevance=0.0)  # no gate: selection runs
    store = NewsStore(settings, create=True)
    ingest_crowded_by_later_articles(store)
    assistant = NewsAssistant(settings, store)
    embedded: list[str] = []
    embed_class = type(assistant.retriever.embed_model)
    original = embed_class._get_query_embedding
    monkeypatch.setattr(embed_class, "_get_query_embedding",
                        lambda self, query: embedded.append(query) or original(self, query))
    retrieval = assistant.retrieve("What happened to gas prices?", as_of=dt.date(2020, 6, 1))
    assert retrieval.retrieved_ids == ["early"] and retrieval.sources
    assert embedded == ["What happened to gas prices?"]


def test_filtered_vector_search_hands_chroma_the_kept_ids_and_matches_its_where_filter(archive):
    settings = archive.model_copy(update={"retrieval_mode": "vector"})
    store = NewsStore(settings)
    retriever = NewsRetriever(settings, store)
    calls = []
    nearest = retriever._nearest

    def spy(question, k, metadata_filters, ids=None):
        calls.append((metadata_filters is not None, ids))
        return nearest(question, k, metadata_filters, ids=ids)

    retriever._nearest = spy
    text = "gas prices gallon"
    question = QueryBundle(text, embedding=retriever.embed_model.get_query_embedding(text))
    for filters in (RetrievalFilters(sites=("a.com",)), RetrievalFilters(until=dt.date(2023, 3, 1)),
                    RetrievalFilters(since=dt.date(2023, 5, 1), sites=("a.com", "b.com"))):
        calls.clear()
        by_ids = [n.node.node_id for n in retriever._vector_search(question, filters)]
        assert len(calls) == 1 and calls[0][0] is False and calls[0][1]  # the ids, no Chroma where-filter
        by_where = [n.node.node_id for n in nearest(question, settings.candidates, filters.to_metadata_filters())]
        assert by_ids == by_where and by_ids
    calls.clear()
    assert retriever._vector_search(question, RetrievalFilters(since=dt.date(2024, 1, 1))) == [] and calls == []

    # An id the keyword index still lists but Chroma no longer holds: Chroma's own filter answers.
    keyword = store.keyword_index()
    keyword.node_ids = np.append(keyword.node_ids, "gone#0")
    keyword.days = np.append(keyword.days, keyword.days[0])
    keyword.sites = np.append(keyword.sites, "a.com")
    calls.clear()
    found = [n.node.metadata["article_id"] for n in retriever._vector_search(question, RetrievalFilters(sites=("a.com",)))]
    assert set(found) == {"old-gas", "code", "future"} and [c[0] for c in calls] == [False, True]


def test_warm_up_loads_the_search_side_before_the_first_question(archive, tmp_path):
    store = NewsStore(archive)
    retriever = NewsRetriever(archive, store)
    assert store._keyword is None
    retriever.warm_up()
    assert store._keyword is not None and store._keyword.chunk_count == 4
    empty = make_settings(tmp_path / "empty")
    NewsRetriever(empty, NewsStore(empty, create=True)).warm_up()  # nothing to load, no error
