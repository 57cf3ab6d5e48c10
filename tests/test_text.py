from assistant.text import adds_name_or_number, content_words, names, stems, word_pairs, words


def test_words_and_content_words_fold_case_and_drop_stop_words():
    assert words("Gas prices rose 5% on Monday.") == ["gas", "prices", "rose", "5", "on", "monday"]
    assert content_words("What happened to gas prices this week?") == {"happened", "gas", "prices"}


def test_word_pairs_keep_phrases_but_not_pairs_of_stop_words():
    assert word_pairs("the Prime Minister of the UK") == {("the", "prime"), ("prime", "minister"), ("minister", "of"), ("the", "uk")}


def test_names_are_the_capitalized_words():
    assert names("Honda picked LG, not Panasonic, in Ohio.") == {"honda", "lg", "panasonic", "ohio"}


def test_stems_join_the_forms_of_a_word():
    assert stems({"investing", "investment", "invest"}) == {"invest"}
    assert stems({"prices", "priced"}) == {"price"} and stems(set()) == set()


def test_a_sentence_adds_a_name_or_number_the_question_lacks():
    question = "How many people did the storm in Florida leave without power?"
    assert adds_name_or_number("About 2.6 million customers lost power.", question)  # numbers
    assert adds_name_or_number("Duke Energy crews worked through the night.", question)  # a new name
    # A sentence-initial stop word and the question's own names and numbers add nothing.
    assert not adds_name_or_number("The storm left people in Florida without power.", question)
    assert not adds_name_or_number("It hit 3 counties.", "Which 3 counties did it hit?")
