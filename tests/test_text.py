from assistant.text import content_words, names, stems, word_pairs, words


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
