"""The label audit's classes (benchmarks.label_audit.classify) on small hand-made articles."""

import datetime as dt

from assistant.articles import Article
from assistant.evaluation.questions import Question
from benchmarks.label_audit import classify


def article(text: str, published: str = "2023-02-26") -> Article:
    return Article(id="", title="", text=text, published=published)


def audit(*articles: Article) -> str:
    found = {f"a{i}": a for i, a in enumerate(articles)}
    question = Question(id="q", question="Which team won the Carabao Cup final on Sunday at Wembley?",
                        answers=["Manchester United"],
                        choices=["Manchester United", "Newcastle", "Liverpool", "Chelsea"],
                        date=dt.date(2023, 2, 27), answer_article_ids=list(found))
    return classify(question, found, grace_days=1)


def test_a_passage_on_the_story_published_by_the_questions_day_is_on_story():
    assert audit(article("Manchester United won the Carabao Cup final at Wembley on Sunday, beating Newcastle.")) \
        == "on story"


def test_the_same_passage_published_after_the_question_is_hidden_by_the_as_of_rule():
    assert audit(article("Manchester United won the Carabao Cup final at Wembley on Sunday.",
                         published="2023-03-05")) == "after the question"


def test_a_quiz_listing_every_choice_beside_the_answer_is_a_quiz_page():
    quiz = "1. Which team won the Carabao Cup final on Sunday?\nManchester United\nNewcastle\nLiverpool\nChelsea"
    assert audit(article(quiz)) == "quiz page"


def test_the_answer_named_in_a_passage_about_something_else_is_elsewhere():
    assert audit(article("Liverpool thrashed Manchester United 4-0 in midweek, their biggest league win in years.")) \
        == "elsewhere"


def test_one_article_on_story_outweighs_a_quiz_page_and_a_passage_elsewhere():
    assert audit(article("Liverpool thrashed Manchester United 4-0 in midweek."),
                 article("Which team won the Carabao Cup final?\nManchester United\nNewcastle\nLiverpool\nChelsea"),
                 article("Manchester United won the Carabao Cup final at Wembley on Sunday.")) == "on story"
