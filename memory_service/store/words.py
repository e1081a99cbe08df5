"""The words of a search, backend-neutral: how message text and queries are split and folded, so every
backend indexes and looks up the same terms and no query text is ever read as query syntax."""

from __future__ import annotations

import functools
import re
import threading
import unicodedata

import snowballstemmer

MAX_TOKENS = 64
# Letters and digits only, like FTS5's unicode61 tokenizer; underscores separate words there too.
_WORD = re.compile(r"[^\W_]+")
_porter = snowballstemmer.stemmer("porter")
_porter_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def fold(word: str) -> str:
    """A word as the index stores it (unicode61, remove_diacritics 2): lower case with a final sigma as σ,
    and a Latin letter's marks dropped ("Zürich" is "zurich", "İstanbul" is "istanbul"); other scripts keep
    their marks, as the tokenizer does."""
    letters: list[str] = []
    latin = False  # whether the last base letter was Latin, so the marks after it go
    for char in unicodedata.normalize("NFD", word.lower().replace("ς", "σ")):
        if unicodedata.combining(char):
            if not latin:
                letters.append(char)
            continue
        latin = char.isascii()
        letters.append(char)
    return unicodedata.normalize("NFC", "".join(letters))


def terms(query: str) -> list[str]:
    """The query's distinct words as index terms, at most MAX_TOKENS of them. Any text is only words
    here: FTS5 syntax (quotes, AND, NEAR, column filters) means nothing."""
    return list(dict.fromkeys(fold(word) for word in _WORD.findall(query)))[:MAX_TOKENS]


@functools.lru_cache(maxsize=8192)
def stem(term: str) -> str:
    """A folded term as SQLite's porter tokenizer indexes it (the Porter stemmer; words of one or two
    letters are kept as they are, as that tokenizer keeps them)."""
    if len(term) <= 2:
        return term
    with _porter_lock:  # a Snowball stemmer keeps its working state in the object
        return str(_porter.stemWord(term))


def stems(query: str) -> list[str]:
    """`terms(query)`, stemmed, without repeats."""
    return list(dict.fromkeys(stem(term) for term in terms(query)))


def folded_text(content: str) -> str:
    """Every word of `content`, folded, in order and separated by spaces: what a backend without the
    unicode61 tokenizer indexes, so it finds exactly the words `terms` looks up."""
    return " ".join(fold(word) for word in _WORD.findall(content))
