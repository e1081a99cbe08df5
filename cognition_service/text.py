"""Plain-text building blocks of retrieval and analysis: words, stop words, clauses and sentences.

Nothing here knows about HTTP or messages; every function takes and returns plain strings.
"""

from __future__ import annotations

import re

# A word is a run of letters/digits, optionally joined by apostrophes ("don't", "user's"); underscores
# separate words, as they do in the Memory Service's full-text index.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
# Punctuation that ends a clause also ends the reach of a negation ("No, it is good" is not negated).
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]\n\u2026\u2014]+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\u2026])\s+|\n+")

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
during each else even ever few for from further get gets got had hadn't has hasn't have haven't having he
he'd he'll he's her here here's hers herself him himself his how how's however i i'd i'll i'm i've if in
into is isn't it it's its itself just let's like me might more most much must mustn't my myself no nor
not now of off on once only or other ought our ours ourselves out over own please quite rather really
same shall shan't she she'd she'll she's should shouldn't so some such than that that's the their
theirs them themselves then there there's these they they'd they'll they're they've this those
through to too under until up upon us very was wasn't we we'd we'll we're we've were weren't what
what's when when's where where's whether which while who who's whom why why's will with won't would
wouldn't yet you you'd you'll you're you've your yours yourself yourselves
hi hello hey ok okay yes yeah oh um uh well also still though just maybe able one two three
""".split())
"""English function words and chat filler. "like" is here because as a search or topic term it is
almost always "looks like"/"would like"; sentiment scoring does not use this list."""


def normalise(text: str) -> str:
    """Lower-case `text` and unify typographic apostrophes, so "Don’t" and "don't" are one word."""
    return text.translate(_APOSTROPHES).lower()


def words(text: str) -> list[str]:
    """Every word of `text`, lower-cased, in order (whole words only: "dislike" never yields "like")."""
    return _WORD.findall(normalise(text))


def content_word(word: str) -> str | None:
    """`word` as a term worth counting, or None for stop words, numbers and one- or two-letter words.
    A possessive "'s" is dropped so "project's" counts as "project"."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) < 3 or word in STOP_WORDS or word.isdigit():
        return None
    return word


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning (see `content_word`), in order, repeats kept."""
    found = (content_word(word) for word in words(text))
    return [word for word in found if word is not None]


def search_terms(query: str) -> str:
    """The query to send to full-text search: its words without stop words, or the query unchanged when
    nothing would remain (a search for "to be or not to be" still searches for something)."""
    kept = [word for word in words(query) if word not in STOP_WORDS]
    return " ".join(dict.fromkeys(kept)) if kept else query


def clauses(text: str) -> list[list[str]]:
    """The words of `text` grouped by clause (split at punctuation), for scoping negation."""
    return [found for part in _CLAUSE_BREAK.split(text) if (found := words(part))]


def sentences(text: str) -> list[str]:
    """`text` split into sentences at terminal punctuation followed by space, and at line breaks."""
    return [part.strip() for part in _SENTENCE_BREAK.split(text) if part and part.strip()]
