"""What a search looks for: an ILIKE pattern, and the index keys every match must hold.

The index (migration 0005) keys each task by its owner and the trigrams pg_trgm makes of its
title and description (lower-cased words, padded with spaces) that are three ASCII letters or
digits, or a space and the first two of a word: the trigrams of a word's end and of its first
letter alone are left out, as the ones a search can use least. A task that contains `q` holds
those trigrams of `q`'s words, and of a word's start where `q` surely starts one. Only ASCII
letters and digits are taken as word characters and only ASCII is lower-cased here, so the keys
are never more than a match holds, whatever the database's locale makes of other characters.
"""

import re

WORD = re.compile(r"[A-Za-z0-9]+")


def contains(text: str) -> str:
    """An ILIKE pattern for `text` anywhere: its own %, _ and \\ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _separator(text: str, index: int) -> bool:
    """Whether text[index] is there and surely ends a word: ASCII, and no letter or digit."""
    return 0 <= index < len(text) and text[index].isascii() and not text[index].isalnum()


def search_keys(owner: str, text: str) -> list[str]:
    """The owner's trigram keys that every task containing `text` holds (maybe none: a search
    without three letters or digits in a row, or two after a separator, has nothing to look up
    and walks the owner's tasks instead)."""
    trigrams: set[str] = set()
    for word in WORD.finditer(text):
        padded = (" " if _separator(text, word.start() - 1) else "") + word.group().lower()
        trigrams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return [f"{owner} {trigram}" for trigram in sorted(trigrams)]
