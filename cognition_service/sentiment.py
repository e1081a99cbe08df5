"""Lexicon sentiment: whole-word hits from two small word lists, flipped by a nearby negation."""

from __future__ import annotations

from dataclasses import dataclass

from cognition_service.text import clauses

POSITIVE = frozenset("""
good great excellent amazing awesome fantastic wonderful brilliant superb perfect nice lovely beautiful
love loved loves loving like liked likes enjoy enjoyed enjoying enjoyable happy glad pleased delighted
excited exciting fun thank thanks thankful grateful appreciate appreciated helpful useful easy smooth
fast clear impressive impressed recommend best better win won success successful works worked fixed
solved calm comfortable cool fine favourite favorite hope hopeful proud
""".split())

NEGATIVE = frozenset("""
bad terrible awful horrible dreadful poor worse worst hate hated hates dislike disliked dislikes
annoying annoyed angry upset sad unhappy disappointed disappointing frustrated frustrating confusing
confused broken bug buggy crash crashed crashes fail failed fails failing failure problem problems
wrong error errors slow ugly useless difficult painful boring bored worried worry afraid scared
stuck mess messy expensive tired sick rude unfortunately regret
""".split())

NEGATORS = frozenset("""
not no never none nobody nothing neither nor without hardly barely cannot cant dont doesnt didnt isnt
wasnt arent werent wont wouldnt couldnt shouldnt aint havent hasnt hadnt
""".split())

NEGATION_WINDOW = 3
"""How many words before a sentiment word a negator may stand ("not very good", "don't really like")."""

LABEL_THRESHOLD = 0.2
"""A score at or beyond ±0.2 is labelled positive/negative; anything closer to 0 is neutral."""


@dataclass(frozen=True)
class Tally:
    """Counted sentiment hits of some text; a negated hit counts for the opposite side."""

    positive: int = 0
    negative: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.positive + other.positive, self.negative + other.negative)

    @property
    def score(self) -> float:
        """(positive - negative) / (positive + negative): in [-1, 1], 0 when there are no hits."""
        hits = self.positive + self.negative
        return 0.0 if hits == 0 else round((self.positive - self.negative) / hits, 4)

    @property
    def label(self) -> str:
        return label(self.score)


def label(score: float) -> str:
    if score >= LABEL_THRESHOLD:
        return "positive"
    if score <= -LABEL_THRESHOLD:
        return "negative"
    return "neutral"


def is_negator(word: str) -> bool:
    return word in NEGATORS or word.endswith("n't")


def tally(text: str) -> Tally:
    """Count the sentiment words of `text`. A negator among the `NEGATION_WINDOW` words before a sentiment
    word, in the same clause, flips it: "not good" is negative, "not bad" positive."""
    positive = negative = 0
    for clause in clauses(text):
        for index, word in enumerate(clause):
            polarity = 1 if word in POSITIVE else -1 if word in NEGATIVE else 0
            if polarity == 0:
                continue
            if any(is_negator(before) for before in clause[max(0, index - NEGATION_WINDOW):index]):
                polarity = -polarity
            if polarity > 0:
                positive += 1
            else:
                negative += 1
    return Tally(positive, negative)
