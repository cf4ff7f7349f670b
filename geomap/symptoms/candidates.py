"""Exact soulmate scoring of every candidate at once, from a per-worker cache.

A web worker keeps, per condition (or every condition), the opted-in listable
soulmate profiles in compact arrays (:class:`Pack`): member ids, floor cells, each
profile's terms as indices into the terms in use, and each profile's self-score. A
search scores all of them exactly (Resnik best-match average, the same figure as
:class:`geomap.symptoms.similarity.SetScorer`) in one numpy pass and keeps the best.

The cache is valid while ``soulmate_state.token`` (migration 0012s) is unchanged:
triggers give it a new random token on any change to the profiles (symptoms, opt-in,
withdrawal), the nearby index or the terms, so a search never uses stale symptoms and
never lists a member who withdrew. Blocks are read at each search.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.symptoms.similarity import (
    SIMILAR,
    SIMILAR_FROM,
    VERY_SIMILAR,
    VERY_SIMILAR_FROM,
    self_score,
)

# At most this many profile terms are cached per worker (uint16 or int32 each, plus
# per-profile arrays): least recently used packs are dropped beyond it.
CACHE_TERMS = 2_000_000
# Profiles scored per numpy step (bounds the temporaries, which glibc may keep per thread).
CHUNK = 2048


@dataclass(frozen=True)
class Pack:
    """The candidates of one condition (or every condition) as of one state token.

    ``ids``, ``cells``, ``starts``, ``lengths`` and ``self_scores`` have one entry per
    profile (ordered by member id); ``flat`` holds every profile's terms as indices into
    ``terms``; ``term_ancestors`` and ``term_ancestor_of`` list each (term in use,
    ancestor) pair; ``ic`` maps those ancestors to their information content.
    """

    token: str
    ids: np.ndarray
    cells: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    flat: np.ndarray
    self_scores: np.ndarray
    terms: np.ndarray
    term_ancestors: np.ndarray
    term_ancestor_of: np.ndarray
    ic: dict[int, float]

    @property
    def size(self) -> int:
        """Return the number of cached profile terms (the cache's budget unit)."""
        return int(self.flat.size) + int(self.ids.size)


_lock = threading.Lock()
_packs: OrderedDict[int | None, Pack] = OrderedDict()


def state_token(session: Session) -> str:
    """Return the current soulmates state token (changes with any profile or index change)."""
    return str(session.execute(text("SELECT token FROM soulmate_state")).scalar_one())


def _numbers(csv: str | None, dtype: type) -> np.ndarray:
    """Return the integers of a comma-separated string as an array (no Python int each)."""
    if not csv:
        return np.zeros(0, dtype=dtype)
    return np.fromstring(csv, dtype=np.int64, sep=",").astype(dtype, copy=False)


def _build(session: Session, condition: int | None, token: str) -> Pack:
    """Read the opted-in listable profiles of ``condition`` (None: any) into a Pack.

    One row of comma-separated numbers (ids, cells, lengths, terms, by member id), so
    that no Python object is made per profile or term: the worker's memory stays flat.
    """
    ids_csv, cells_csv, lengths_csv, terms_csv = session.execute(
        text("WITH c AS (SELECT member_id, min(floor_cell) AS cell FROM nearby_members "
             "WHERE CAST(:condition AS smallint) IS NULL OR condition_id = :condition "
             "GROUP BY member_id), j AS MATERIALIZED (SELECT p.member_id, c.cell, p.terms "
             "FROM c JOIN soulmate_profiles p ON p.member_id = c.member_id) "
             "SELECT string_agg(member_id::text, ',' ORDER BY member_id), "
             "string_agg(cell::text, ',' ORDER BY member_id), "
             "string_agg(cardinality(terms)::text, ',' ORDER BY member_id), "
             "string_agg(array_to_string(terms, ','), ',' ORDER BY member_id) FROM j"),
        {"condition": condition},
    ).one()
    ids = _numbers(ids_csv, np.int64)
    lengths = _numbers(lengths_csv, np.int32)
    all_terms = _numbers(terms_csv, np.int64)
    used, inverse = np.unique(all_terms, return_inverse=True)
    flat = inverse.astype(np.uint16 if used.size < 2 ** 16 else np.int32)
    starts = np.zeros(ids.size, dtype=np.int64)
    if ids.size:
        np.cumsum(lengths[:-1], out=starts[1:])
    term_rows = session.execute(
        text("SELECT id, ancestors, self_ic FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": used.tolist()},
    ).all()
    position = {int(t): i for i, t in enumerate(used.tolist())}
    self_ic = np.zeros(used.size, dtype=np.float64)
    for row in term_rows:
        self_ic[position[row[0]]] = row[2]
    of = np.array([position[row[0]] for row in term_rows for _a in row[1]], dtype=np.int64)
    ancestors = np.array([a for row in term_rows for a in row[1]], dtype=np.int64)
    ic = dict(session.execute(
        text("SELECT id, ic FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": np.unique(ancestors).tolist()},
    ).all())
    # self_score of each profile: the mean of its terms' self IC
    self_scores = (np.add.reduceat(self_ic[flat], starts) / lengths if ids.size
                   else np.zeros(0, dtype=np.float64))
    return Pack(token, ids, _numbers(cells_csv, np.int64), starts, lengths, flat,
                self_scores, used, ancestors, of, ic)


def pack(session: Session, condition: int | None) -> Pack:
    """Return the cached Pack of ``condition`` (None: any), rebuilt when the state changed."""
    token = state_token(session)
    with _lock:
        cached = _packs.get(condition)
        if cached is not None and cached.token == token:
            _packs.move_to_end(condition)
            return cached
    built = _build(session, condition, token)
    if state_token(session) != token:  # changed while reading: use once, do not keep
        return built
    with _lock:
        _packs[condition] = built
        _packs.move_to_end(condition)
        while len(_packs) > 1 and sum(p.size for p in _packs.values()) > CACHE_TERMS:
            _packs.popitem(last=False)
    return built


def clear() -> None:
    """Drop every cached Pack (tests; the token makes this unnecessary for correctness)."""
    with _lock:
        _packs.clear()


def best(session: Session, candidates: Pack, my_terms: list[int], exclude: set[int],
         limit: int) -> list[tuple[int, int, str]]:
    """Return (member id, floor cell, label) of the ``limit`` most similar soulmates.

    Every candidate of ``candidates`` but ``exclude`` is scored exactly by Resnik
    best-match average against ``my_terms``; only members with a label count; the
    best scores first, ties by member id. Reads the query terms' ancestors and IC.
    """
    if candidates.ids.size == 0 or not my_terms:
        return []
    rows = session.execute(
        text("SELECT id, ancestors, self_ic FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": list(my_terms)},
    ).all()
    mine = {row[0]: row[1] for row in rows}
    own = self_score(my_terms, {row[0]: row[2] for row in rows})
    columns = np.array(sorted({a for t in my_terms for a in mine[t]}), dtype=np.int64)
    query_ic = dict(session.execute(
        text("SELECT id, ic FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": columns.tolist()},
    ).all())
    weights = np.zeros((len(my_terms), columns.size), dtype=np.float64)
    for row, term in enumerate(my_terms):
        for a in mine[term]:
            weights[row, np.searchsorted(columns, a)] = query_ic.get(a, 0.0)
    # Resnik of each query term with each term in use: the best IC of a common ancestor.
    hit = np.isin(candidates.term_ancestors, columns)
    pair_term = candidates.term_ancestor_of[hit]
    pair_column = np.searchsorted(columns, candidates.term_ancestors[hit])
    term_scores = np.zeros((len(my_terms), candidates.terms.size), dtype=np.float64)
    for row in range(len(my_terms)):
        np.maximum.at(term_scores[row], pair_term, weights[row, pair_column])
    best_of_term = term_scores.max(axis=0)
    scores = np.empty(candidates.ids.size, dtype=np.float64)
    for lo in range(0, candidates.ids.size, CHUNK):  # small temporaries: flat worker memory
        hi = min(lo + CHUNK, candidates.ids.size)
        start = candidates.starts[lo]
        end = candidates.starts[hi] if hi < candidates.ids.size else candidates.flat.size
        flat = candidates.flat[start:end].astype(np.intp)
        starts = candidates.starts[lo:hi] - start
        first = np.zeros(hi - lo, dtype=np.float64)
        for row in range(len(my_terms)):  # each query term's best match in each profile
            first += np.maximum.reduceat(term_scores[row][flat], starts)
        second = np.add.reduceat(best_of_term[flat], starts)
        scores[lo:hi] = (first + second) / (len(my_terms) + candidates.lengths[lo:hi])
    scale = np.sqrt(own * candidates.self_scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(scale > 0, scores / np.where(scale > 0, scale, 1.0), -1.0)
    keep = ratio >= SIMILAR_FROM
    if exclude:
        keep &= ~np.isin(candidates.ids, np.fromiter(exclude, dtype=np.int64))
    chosen = np.flatnonzero(keep)
    if chosen.size > limit:  # everyone scoring at least the limit-th best, then exact order
        floor = np.partition(scores[chosen], chosen.size - limit)[chosen.size - limit]
        chosen = chosen[scores[chosen] >= floor]
    order = chosen[np.lexsort((candidates.ids[chosen], -scores[chosen]))][:limit]
    return [(int(candidates.ids[i]), int(candidates.cells[i]),
             VERY_SIMILAR if ratio[i] >= VERY_SIMILAR_FROM else SIMILAR) for i in order]
