"""Tokenising, stop words and lexicon sentiment, without a request."""

from __future__ import annotations

import pytest

from cognition_service.sentiment import Tally, label, tally
from cognition_service.text import clauses, content_words, search_terms, sentences, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("Don’t panic", ["don't", "panic"]),  # typographic apostrophe is one word with it
        ("snake_case and kebab-case", ["snake", "case", "and", "kebab", "case"]),
        ("Café über 42", ["café", "über", "42"]),
        ("", []),
        ("?!...", []),
    ],
)
def test_words(text, expected):
    assert words(text) == expected


def test_content_words_drop_stop_words_numbers_short_words_and_possessives():
    assert content_words("The project's budget is 42 and it is in EU: the budget!") == \
        ["project", "budget", "budget"]


@pytest.mark.parametrize(
    ("query", "sent"),
    [
        ("What was the launch code for the falcon project?", "launch code falcon project"),
        ("falcon FALCON falcon", "falcon"),  # repeats add nothing to an OR search
        ("to be or not to be", "to be or not to be"),  # only stop words: search for it as written
        ("???", "???"),
    ],
)
def test_search_terms_strip_stop_words_when_something_remains(query, sent):
    assert search_terms(query) == sent


def test_sentences_split_at_terminal_punctuation_and_line_breaks():
    assert sentences("First one. Second one! Third?\nFourth line 3.5 stays") == \
        ["First one.", "Second one!", "Third?", "Fourth line 3.5 stays"]


def test_clauses_split_at_punctuation():
    assert clauses("No, it is good; not bad") == [["no"], ["it", "is", "good"], ["not", "bad"]]


@pytest.mark.parametrize(
    ("text", "positive", "negative"),
    [
        ("I like this", 1, 0),
        ("I dislike this", 0, 1),  # "like" inside "dislike" is not a hit
        ("I DISLIKE it, I like it", 1, 1),
        ("likely unlikeable likeness", 0, 0),  # whole words only
        ("This is not good", 0, 1),
        ("not bad at all", 1, 0),
        ("I don't like it", 0, 1),
        ("I don’t really like it", 0, 1),  # typographic apostrophe, one word between
        ("I dont like it", 0, 1),
        ("No, it is good", 1, 0),  # the comma ends the negation's reach
        ("not that it was ever very good", 1, 0),  # more than three words away
        ("never had a problem", 1, 0),
        ("good great terrible", 2, 1),
        ("The meeting is at noon", 0, 0),
    ],
)
def test_tally_counts_whole_words_and_flips_negated_ones(text, positive, negative):
    assert tally(text) == Tally(positive, negative)


@pytest.mark.parametrize(
    ("counted", "score", "expected_label"),
    [
        (Tally(0, 0), 0.0, "neutral"),
        (Tally(3, 0), 1.0, "positive"),
        (Tally(0, 2), -1.0, "negative"),
        (Tally(1, 1), 0.0, "neutral"),
        (Tally(3, 2), 0.2, "positive"),
        (Tally(4, 5), -0.1111, "neutral"),
        (Tally(1, 2), -0.3333, "negative"),
    ],
)
def test_tally_score_is_in_range_and_labelled(counted, score, expected_label):
    assert counted.score == score
    assert -1.0 <= counted.score <= 1.0
    assert counted.label == expected_label == label(score)
