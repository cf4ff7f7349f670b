"""Pseudonym keys: the ASCII fast path folds exactly like the general path."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from geomap.members import pseudonyms


def general_key(pseudonym: str) -> str:
    """The general path of :func:`pseudonyms.pseudonym_key` (NFKC, case fold, skeleton)."""
    representative = pseudonyms._representatives()
    folded = pseudonyms._fold(" ".join(pseudonym.split()))
    return pseudonyms._fold("".join(representative.get(c, c) for c in folded))


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=30))
def test_ascii_pseudonyms_fold_as_the_general_path_does(pseudonym: str) -> None:
    assert pseudonyms.pseudonym_key(pseudonym) == general_key(pseudonym)


def test_every_ascii_character_folds_as_the_general_path_does() -> None:
    for char in map(chr, range(128)):
        assert pseudonyms.pseudonym_key(f"a{char}b") == general_key(f"a{char}b")


def test_look_alikes_still_share_a_key() -> None:
    assert pseudonyms.pseudonym_key("Ada") == pseudonyms.pseudonym_key("\u0410da")
    assert pseudonyms.pseudonym_key("ADA") == pseudonyms.pseudonym_key("ada")
    assert pseudonyms.pseudonym_key("l0ve") == pseudonyms.pseudonym_key("10ve")
    assert set(pseudonyms.pseudonym_key(string.printable)) <= set(string.printable)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12),
                          st.text(alphabet="aB0 .-_\n\t", max_size=12)), max_size=20))
def test_many_keys_at_once_equal_the_keys_one_by_one(names: list[str]) -> None:
    """The bulk loader's one-pass folding gives each name the key it gets alone."""
    assert pseudonyms.pseudonym_keys(names) == [pseudonyms.pseudonym_key(n) for n in names]
