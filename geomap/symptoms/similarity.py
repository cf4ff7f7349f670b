"""Ontology-aware similarity of symptom sets: Resnik term similarity, best-match average.

Resnik similarity of two terms is the information content (IC) of their most
informative common ancestor (a term is its own ancestor). Two sets are compared by
the best-match average (BMA): the mean, over the terms of both sets, of each term's
best Resnik match in the other set. This is hpo3's
``HPOSet.similarity(other, kind="omim", method="resnik", combine="BMA")``, computed
here from the ancestors and IC stored in PostgreSQL (docs/soulmates.md explains the
choice with the ranking benchmark of bench/soulmates.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

VERY_SIMILAR = "very similar"
SIMILAR = "similar"
# Thresholds on the normalised score (BMA / geometric mean of both self-scores).
VERY_SIMILAR_FROM = 0.6
SIMILAR_FROM = 0.3


def resnik(a: int, b: int, ancestors: Mapping[int, Sequence[int]],
           ic: Mapping[int, float]) -> float:
    """Return the Resnik similarity of terms ``a`` and ``b`` (IC of the best common ancestor)."""
    common = set(ancestors[a]) & set(ancestors[b])
    return max((ic.get(term, 0.0) for term in common), default=0.0)


def bma(first: Sequence[int], second: Sequence[int], ancestors: Mapping[int, Sequence[int]],
        ic: Mapping[int, float]) -> float:
    """Return the best-match average of Resnik similarities between two term sets (0 if empty)."""
    import numpy as np  # where sets are scored, not wherever the labels are named

    if not first or not second:
        return 0.0
    scores = np.array([[resnik(a, b, ancestors, ic) for b in second] for a in first])
    return float((scores.max(axis=1).sum() + scores.max(axis=0).sum()) / sum(scores.shape))


class SetScorer:
    """Scores one query set against many candidate sets, vectorised.

    ``ancestors`` must hold every query and candidate term (self included); ``ic``
    the IC of at least every ancestor of a query term (others count as 0: a common
    ancestor is always an ancestor of a query term).
    """

    def __init__(self, query: Sequence[int], ancestors: Mapping[int, Sequence[int]],
                 ic: Mapping[int, float]) -> None:
        """Prepare the IC matrix of the query terms over their ancestors."""
        import numpy as np

        self.query = list(query)
        self.ancestors = ancestors
        columns = sorted({a for term in self.query for a in ancestors[term]})
        self._column = {a: i for i, a in enumerate(columns)}
        self._weights = np.zeros((len(self.query), len(columns)), dtype=np.float64)
        for row, term in enumerate(self.query):
            for a in ancestors[term]:
                self._weights[row, self._column[a]] = ic.get(a, 0.0)
        self._cache: dict[int, np.ndarray] = {}

    def _term_scores(self, terms: Sequence[int]) -> np.ndarray:
        """Return the Resnik similarity of each query term with each of ``terms``."""
        import numpy as np

        missing = [t for t in dict.fromkeys(terms) if t not in self._cache]
        if missing:
            hits = np.zeros((len(missing), len(self._column)), dtype=bool)
            for row, term in enumerate(missing):
                cols = [self._column[a] for a in self.ancestors[term] if a in self._column]
                hits[row, cols] = True
            for start in range(0, len(missing), 256):  # bounded memory per chunk
                chunk = hits[start:start + 256, None, :] * self._weights[None, :, :]
                scores = chunk.max(axis=2, initial=0.0)
                for row, term in enumerate(missing[start:start + 256]):
                    self._cache[term] = scores[row]
        return np.stack([self._cache[t] for t in terms], axis=1)

    def score(self, candidate: Sequence[int]) -> float:
        """Return the Resnik best-match average of the query set and ``candidate``."""
        if not self.query or not candidate:
            return 0.0
        scores = self._term_scores(candidate)
        return float((scores.max(axis=1).sum() + scores.max(axis=0).sum()) / sum(scores.shape))


def self_score(terms: Sequence[int], self_ic: Mapping[int, float]) -> float:
    """Return a set's Resnik BMA with itself: the mean of its terms' best ancestor IC.

    A term's best match in its own set is itself (Resnik of a term with any other is
    at most the best IC among its own ancestors), so no pairwise work is needed.
    """
    import numpy as np

    return float(np.mean([self_ic[t] for t in terms])) if terms else 0.0


def similarity_label(score: float, own_score: float, other_score: float) -> str | None:
    """Return "very similar", "similar" or None (not a soulmate) from BMA scores.

    The score is normalised by the geometric mean of both sets' self-scores, so that
    members with many specific symptoms do not outrank everyone by their IC alone.
    """
    import numpy as np

    scale = float(np.sqrt(own_score * other_score))
    if scale <= 0:
        return None
    ratio = score / scale
    if ratio >= VERY_SIMILAR_FROM:
        return VERY_SIMILAR
    if ratio >= SIMILAR_FROM:
        return SIMILAR
    return None
