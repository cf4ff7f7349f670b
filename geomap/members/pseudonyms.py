"""Pseudonym keys: one key for every spelling that looks or reads the same.

``name``, ``Name``, ``NAME`` and ``nаme`` (with a Cyrillic ``а``) must not belong to
four different people. :func:`pseudonym_key` folds case (Unicode case folding after
NFKC, so full-width and styled letters fold too), drops invisible format characters,
and maps every character to the representative of its confusable set, in the manner
of the Unicode TR39 *skeleton*. The confusable sets come from Unicode's
``confusables.txt`` as shipped in the ``confusable-homoglyphs`` package; each set is a
prototype and the characters that look like it, and we take as representative its
smallest ASCII member (else its smallest code point). The database keeps the key in
``members.pseudonym_key`` under a unique index, so no two members share one.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

_MARKS = "\u200e\u200f"  # the data wraps right-to-left homoglyphs in direction marks


@lru_cache(maxsize=1)
def _representatives() -> dict[str, str]:
    """Return each confusable character's set representative (single characters only)."""
    from confusable_homoglyphs import confusables  # ~7 MB: loaded where a pseudonym is set

    neighbours: dict[str, set[str]] = defaultdict(set)
    for char, homoglyphs in confusables.confusables_data.items():
        for homoglyph in homoglyphs:
            other = "".join(c for c in homoglyph["c"] if c not in _MARKS)
            if len(char) == 1 and len(other) == 1:
                neighbours[char].add(other)
                neighbours[other].add(char)
    representative: dict[str, str] = {}
    for start in neighbours:
        if start in representative:
            continue
        members, todo = set(), [start]
        while todo:
            char = todo.pop()
            if char not in members:
                members.add(char)
                todo.extend(neighbours[char] - members)
        ascii_members = [c for c in members if c.isascii()]
        chosen = min(ascii_members or members)
        representative.update(dict.fromkeys(members, chosen))
    return representative


def _fold(value: str) -> str:
    """Return ``value`` NFKC-normalised and case-folded, without format characters."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


@lru_cache(maxsize=1)
def _ascii_table() -> dict[int, str]:
    """Return a str.translate table: each ASCII character to its set representative.

    The representative of a set with an ASCII member is ASCII, so ASCII maps to ASCII.
    """
    representative = _representatives()
    return {code: representative.get(chr(code), chr(code)).lower() for code in range(128)}


def pseudonym_key(pseudonym: str) -> str:
    """Return the key under which ``pseudonym`` must be unique (case and look-alikes folded).

    Pure and deterministic: equal for ``"Ada"``, ``"ADA"`` and ``"Аda"`` (Cyrillic А);
    leading and trailing spaces are ignored and inner runs of spaces count as one.
    ASCII pseudonyms (most of them, and every generated one) take a fast path with
    the same result: NFKC is the identity on ASCII, case folding is ``lower`` and
    ASCII has no format characters.
    """
    if pseudonym.isascii():
        return " ".join(pseudonym.split()).lower().translate(_ascii_table())
    representative = _representatives()
    folded = _fold(" ".join(pseudonym.split()))
    mapped = "".join(representative.get(c, c) for c in folded)
    return _fold(mapped)


_OTHER_ASCII_SPACES = "\t\r\x0b\x0c\x1c\x1d\x1e\x1f"  # besides " " and "\n"


def pseudonym_keys(pseudonyms: Sequence[str]) -> list[str]:
    """Return :func:`pseudonym_key` of each pseudonym, many at once (same results).

    Names that are ASCII with no whitespace but single inner spaces (every generated
    name and most imported ones) are folded together in one pass over their joined
    text; the others one by one.
    """
    joined = "\n".join(pseudonyms)
    if joined.isascii() and not any(ch in joined for ch in _OTHER_ASCII_SPACES) \
            and "  " not in joined and " \n" not in joined and "\n " not in joined \
            and not joined.startswith(" ") and not joined.endswith(" "):
        keys = joined.lower().translate(_ascii_table()).split("\n") if pseudonyms else []
        if len(keys) == len(pseudonyms):
            return keys
    return [pseudonym_key(p) for p in pseudonyms]
