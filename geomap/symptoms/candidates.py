"""Exact soulmate scoring from a per-worker cache that follows a change log.

A web worker keeps, per condition (or every condition), the opted-in listable
soulmate profiles in compact arrays (:class:`Pack`): member ids, floor cells, each
profile's terms as 16-bit indices into one shared :class:`TermTable` (the ancestors
and information content of the terms in use, shared by every pack), and each
profile's self-score. A search scores them exactly (Resnik best-match average, the
same figure as :class:`geomap.symptoms.similarity.SetScorer`), every one of them: the
query's half of the best-match average from bit masks (:func:`_thermometer`), both
halves in one vector step per profile term, profiles grouped by length
(:func:`_scores`). The result is the exact top ``limit``.

Freshness (migration 0013p): every statement on ``soulmate_profiles`` or
``nearby_members`` takes the next ``soulmate_state.version`` and logs the members it
touched in ``soulmate_changes``. A pack remembers the version it was read at; a search
reads the members changed since, and re-reads only those (:func:`_apply`). A bulk
statement, a change of the terms or a pruned log gives a new ``epoch``: packs are read
again whole. So a search never uses stale symptoms and never lists a member who
withdrew. Blocks are read at each search.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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

# At most this many profile terms are cached per worker (plus per-profile arrays):
# least recently used packs are dropped beyond it.
CACHE_TERMS = 2_000_000
# Labels are checked on the best limit + exclusions + this many scores first.
REACH_MARGIN = 16
# Profiles of one length scored per numpy step (bounds the temporaries).
CHUNK = 16384
# More changed members than this (or a tenth of a pack) since a pack was read: read it
# whole rather than patch it.
PATCH_LIMIT = 5_000


@dataclass(frozen=True)
class TermTable:
    """The terms in use, their ancestors and information content (shared by all packs).

    ``hpo`` holds the term ids (position = the term's index in packs); the pairs
    (``pair_term``, ``pair_ancestor``) list each term's ancestors (self included),
    grouped by term from ``pair_starts``; ``pair_ic`` is each ancestor's IC and
    ``self_ic`` each term's best ancestor IC.
    """

    epoch: str
    hpo: np.ndarray
    pair_starts: np.ndarray
    pair_ancestor: np.ndarray
    pair_ic: np.ndarray
    self_ic: np.ndarray

    def index(self) -> dict[int, int]:
        """Return term id -> index."""
        return {int(t): i for i, t in enumerate(self.hpo.tolist())}


@dataclass(frozen=True)
class Pack:
    """The candidates of one condition (or every condition) as of one log version.

    ``ids``, ``cells``, ``lengths`` and ``self_scores`` have one entry per profile,
    profiles ordered by their number of terms. ``flat`` holds their terms as indices
    into the shared :class:`TermTable` ``terms``, one block per length: ``blocks``
    lists (first profile, length L, profiles n, first position in ``flat``) and a
    block holds the first term of each of its n profiles, then the second, ... (an
    (L, n) array), so that a search combines term j of every profile in one vector
    step (:func:`_scores`).
    """

    epoch: str
    version: int
    terms: TermTable
    ids: np.ndarray
    cells: np.ndarray
    lengths: np.ndarray
    flat: np.ndarray
    self_scores: np.ndarray
    blocks: tuple[tuple[int, int, int, int], ...]

    @property
    def size(self) -> int:
        """Return the number of cached profile terms (the cache's budget unit)."""
        return int(self.flat.size) + int(self.ids.size)

    def profile_terms(self) -> np.ndarray:
        """Return every profile's terms one profile after the other (pack order)."""
        parts = [self.flat[at:at + length * count].reshape(length, count).T.ravel()
                 for _first, length, count, at in self.blocks]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint16)


def _grouped(epoch: str, version: int, table: TermTable, ids: np.ndarray, cells: np.ndarray,
             lengths: np.ndarray, terms: np.ndarray, self_scores: np.ndarray) -> Pack:
    """Return a Pack of profiles given one after the other (``terms``), grouped by length."""
    starts = _starts(lengths)
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    blocks, parts, at = [], [], 0
    edges = np.flatnonzero(np.diff(sorted_lengths.astype(np.int64))) + 1
    for lo, hi in zip(np.concatenate([[0], edges]).tolist(),
                      np.concatenate([edges, [order.size]]).tolist(), strict=True):
        if hi <= lo:
            continue
        length = int(sorted_lengths[lo])
        chosen = starts[order[lo:hi]]
        parts.append(terms[chosen[None, :] + np.arange(length, dtype=np.int64)[:, None]].ravel())
        blocks.append((lo, length, hi - lo, at))
        at += length * (hi - lo)
    flat = np.concatenate(parts).astype(np.uint16) if parts else np.zeros(0, np.uint16)
    return Pack(epoch, version, table, ids[order], cells[order], sorted_lengths, flat,
                self_scores[order], tuple(blocks))


_lock = threading.Lock()
_packs: OrderedDict[int | None, Pack] = OrderedDict()
_terms: list[TermTable] = []  # the current shared table (at most one)


def state_token(session: Session) -> str:
    """Return the current soulmates state token (changes with any profile or index change)."""
    return str(session.execute(text("SELECT token FROM soulmate_state")).scalar_one())


def _numbers(csv: str | None, dtype: type) -> np.ndarray:
    """Return the integers of a comma-separated string as an array (no Python int each)."""
    if not csv:
        return np.zeros(0, dtype=dtype)
    return np.fromstring(csv, dtype=np.int64, sep=",").astype(dtype, copy=False)


def _term_table(session: Session, epoch: str, needed: np.ndarray,
                base: TermTable | None = None) -> TermTable:
    """Return the shared term table of ``epoch`` holding at least the ``needed`` term ids.

    ``base``: the table of a pack being patched. The answer then extends it (its term
    indices stay valid), also when the shared table was dropped or rebuilt meanwhile.
    """
    with _lock:
        table = _terms[0] if _terms and _terms[0].epoch == epoch else None
    if base is not None and (table is None or table.hpo.size < base.hpo.size
                             or not np.array_equal(table.hpo[:base.hpo.size], base.hpo)):
        table = base
    known = table.hpo if table is not None else np.zeros(0, np.int64)
    missing = np.setdiff1d(needed, known)
    if table is not None and missing.size == 0:
        return table
    rows = session.execute(
        text("SELECT t.id, t.ancestors, t.self_ic, "
             "(SELECT array_agg(coalesce(a.ic, 0) ORDER BY o.n) FROM unnest(t.ancestors) "
             "WITH ORDINALITY AS o (id, n) LEFT JOIN hpo_terms a ON a.id = o.id) "
             "FROM hpo_terms t WHERE t.id = ANY(CAST(:ids AS int[])) ORDER BY t.id"),
        {"ids": missing.tolist()},
    ).all()
    hpo = np.concatenate([known, np.array([r[0] for r in rows], np.int64)])
    sizes = np.array([len(r[1]) for r in rows], np.int64)
    old_pairs = table.pair_ancestor.size if table is not None else 0
    new_starts = old_pairs + np.concatenate([[0], np.cumsum(sizes)[:-1]]) if rows else _EMPTY
    index_of = {int(t): i for i, t in enumerate(hpo.tolist())}
    if table is None:
        table = TermTable(epoch, _EMPTY, _EMPTY, np.zeros(0, np.int64),
                          np.zeros(0, np.float64), np.zeros(0, np.float64))
    built = TermTable(
        epoch, hpo,
        np.concatenate([table.pair_starts, new_starts]).astype(np.int64),
        np.concatenate([table.pair_ancestor,
                        np.array([a for r in rows for a in r[1]], np.int64)]),
        np.concatenate([table.pair_ic,
                        np.array([float(v) for r in rows for v in r[3]], np.float64)]),
        np.concatenate([table.self_ic, np.array([r[2] for r in rows], np.float64)]),
    )
    if len(index_of) >= 2 ** 16:
        raise ValueError("more than 65,535 symptom terms in use")
    with _lock:
        if not _terms or _terms[0].epoch != epoch or _terms[0].hpo.size < built.hpo.size:
            _terms[:] = [built]
    return built


_EMPTY = np.zeros(0, np.int64)

_PROFILES = (
    "WITH c AS (SELECT member_id, min(floor_cell) AS cell FROM nearby_members "
    "WHERE (CAST(:condition AS smallint) IS NULL OR condition_id = :condition) {members} "
    "GROUP BY member_id), j AS MATERIALIZED (SELECT p.member_id, c.cell, p.terms "
    "FROM c JOIN soulmate_profiles p ON p.member_id = c.member_id "
    "WHERE cardinality(p.terms) > 0) "
    "SELECT string_agg(member_id::text, ',' ORDER BY member_id), "
    "string_agg(cell::text, ',' ORDER BY member_id), "
    "string_agg(cardinality(terms)::text, ',' ORDER BY member_id), "
    "string_agg(array_to_string(terms, ','), ',' ORDER BY member_id) FROM j "
    "GROUP BY member_id >> 16 ORDER BY member_id >> 16"
)


def _read_profiles(session: Session, condition: int | None, epoch: str,
                   members: list[int] | None, base: TermTable | None = None) -> tuple:
    """Read the listable opted-in profiles (of ``members`` only, when given) as arrays.

    Rows of comma-separated numbers, so that no Python object is made per profile or
    term: the worker's memory stays flat. Returns (term table, ids, cells, lengths,
    terms as table indices, self-scores).
    """
    members_filter = ("AND member_id = ANY(CAST(:members AS bigint[]))"
                      if members is not None else "")
    # One row per range of 65,536 member ids: libpq keeps its input buffer as large as
    # the largest row it has read, for as long as the connection lives.
    rows = session.execute(
        text(_PROFILES.format(members=members_filter)),
        {"condition": condition} | ({"members": members} if members is not None else {}),
    ).all()

    ids, cells, lengths, all_terms = (
        np.concatenate([_numbers(row[index], np.int64) for row in rows] or [_EMPTY])
        for index in range(4))
    rows.clear()
    used, inverse = np.unique(all_terms, return_inverse=True)
    table = _term_table(session, epoch, used, base)
    index_of = table.index()
    position = np.array([index_of[int(t)] for t in used.tolist()], np.int64)
    flat = position[inverse].astype(np.uint16)
    starts = np.zeros(ids.size, dtype=np.int64)
    if ids.size:
        np.cumsum(lengths[:-1], out=starts[1:])
    self_scores = (np.add.reduceat(table.self_ic[flat], starts) / lengths if ids.size
                   else np.zeros(0, dtype=np.float64))
    id_type = np.int32 if ids.size == 0 or ids.max() < 2 ** 31 else np.int64
    return (table, ids.astype(id_type), cells, lengths.astype(np.uint16), flat, self_scores)


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Return each profile's first position in ``flat`` (int64) from the lengths."""
    starts = np.zeros(lengths.size, dtype=np.int64)
    if lengths.size:
        np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def _state(session: Session, since: int) -> tuple[int, str, int, list[int], bool]:
    """Return (version, epoch, pruned_to, members changed after ``since``, mine).

    One snapshot. ``mine``: this transaction wrote the state (its changes are not
    committed, so what it reads must not be kept).
    """
    version, epoch, pruned_to, changed, mine = session.execute(
        text("SELECT s.version, s.epoch, s.pruned_to, "
             "(SELECT array_agg(DISTINCT c.member_id) FROM soulmate_changes c "
             "WHERE c.version > :since AND c.version <= s.version), "
             "coalesce(s.writer = pg_current_xact_id_if_assigned(), false) "
             "FROM soulmate_state s"),
        {"since": since},
    ).one()
    return int(version), str(epoch), int(pruned_to), list(changed or []), bool(mine)


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_malloc_tuned: list[bool] = []


def _tune_malloc() -> None:
    """Give large blocks back to the system at once (glibc only; once per process).

    glibc raises its mmap threshold each time a large block is freed, so after the
    first read of a pack the multi-megabyte temporaries of reads and searches come
    from the heap, which keeps them: the worker's RSS grew by ~50 MB at 1,000,000
    members. A fixed 256 kB threshold keeps every array above it in its own mapping.
    """
    if _malloc_tuned:
        return
    _malloc_tuned.append(True)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
    except OSError:  # not glibc: nothing to tune
        pass


def _build(session: Session, condition: int | None, version: int, epoch: str) -> Pack:
    """Read the opted-in listable profiles of ``condition`` (None: any) into a Pack."""
    _tune_malloc()
    table, ids, cells, lengths, flat, self_scores = _read_profiles(session, condition, epoch, None)
    return _grouped(epoch, version, table, ids, cells, lengths, flat, self_scores)


def _apply(session: Session, old: Pack, condition: int | None, version: int,
           changed: list[int]) -> Pack:
    """Return ``old`` with the ``changed`` members re-read (removed when no longer listed)."""
    table, ids, cells, lengths, flat, self_scores = _read_profiles(
        session, condition, old.epoch, changed, old.terms)  # old.flat indexes old.terms
    keep = ~np.isin(old.ids, np.asarray(changed, dtype=np.int64))
    added = _grouped(old.epoch, version, table, ids.astype(old.ids.dtype), cells, lengths,
                     flat, self_scores)
    return _merge(old, keep, added, version, table)


def _merge(old: Pack, keep: np.ndarray, added: Pack, version: int, table: TermTable) -> Pack:
    """Return the profiles of ``old`` where ``keep``, and those of ``added``, as one Pack.

    Block by block (length by length), so the terms are copied once, in order.
    """
    parts: dict[int, list[tuple[Pack, np.ndarray, np.ndarray]]] = {}
    for pack, chosen in ((old, keep), (added, None)):
        for first, length, count, at in pack.blocks:
            block = pack.flat[at:at + length * count].reshape(length, count)
            if chosen is None:
                rows = np.arange(first, first + count)
            else:
                kept = chosen[first:first + count]
                rows, block = first + np.flatnonzero(kept), block[:, kept]
            parts.setdefault(length, []).append((pack, rows, block))
    ids, cells, lengths, self_scores, flat, blocks = [], [], [], [], [], []
    first = at = 0
    for length in sorted(parts):
        for pack, rows, _block in parts[length]:
            ids.append(pack.ids[rows])
            cells.append(pack.cells[rows])
            lengths.append(pack.lengths[rows])
            self_scores.append(pack.self_scores[rows])
        count = sum(rows.size for _pack, rows, _block in parts[length])
        flat.append(np.concatenate([block for *_rest, block in parts[length]], axis=1).ravel())
        if count:
            blocks.append((first, length, count, at))
        first += count
        at += length * count
    return Pack(old.epoch, version, table, np.concatenate(ids or [old.ids[:0]]),
                np.concatenate(cells or [old.cells[:0]]),
                np.concatenate(lengths or [old.lengths[:0]]),
                np.concatenate(flat or [old.flat[:0]]).astype(np.uint16),
                np.concatenate(self_scores or [old.self_scores[:0]]), tuple(blocks))


def follow(session: Session, condition: int | None, cached: Pack | None
           ) -> tuple[Pack, bool]:
    """Return the Pack of ``condition`` as of now from ``cached``, and whether to keep it.

    ``cached`` is returned as is when nothing changed, patched with the members
    changed since its version (few changes), or replaced by one read whole (a new
    epoch, a pruned log, many changes, or no ``cached``). Not to be kept when this
    transaction wrote the state itself (its changes may yet roll back).
    """
    version, epoch, pruned_to, changed, mine = _state(
        session, cached.version if cached else 2 ** 62)
    if cached is not None and cached.epoch == epoch and cached.version >= pruned_to:
        if cached.version == version:
            return cached, not mine
        if len(changed) <= max(PATCH_LIMIT, cached.ids.size // 10):
            return _apply(session, cached, condition, version, changed), not mine
    return _build(session, condition, version, epoch), not mine


def pack(session: Session, condition: int | None) -> Pack:
    """Return the Pack of ``condition`` (None: any) as of now: cached, patched or read whole."""
    with _lock:
        cached = _packs.get(condition)
    current, keep = follow(session, condition, cached)
    if current is cached:
        with _lock:
            if condition in _packs:
                _packs.move_to_end(condition)
        return current
    return _keep(condition, current) if keep else current


def _keep(condition: int | None, built: Pack) -> Pack:
    """Store ``built`` as the pack of ``condition`` unless a newer one is there; return it."""
    with _lock:
        current = _packs.get(condition)
        if current is None or current.epoch != built.epoch or current.version < built.version:
            _packs[condition] = built
        _packs.move_to_end(condition)
        while len(_packs) > 1 and sum(p.size for p in _packs.values()) > CACHE_TERMS:
            _packs.popitem(last=False)
        if _terms and _terms[0].epoch != built.epoch:
            _terms.clear()
    return built


def clear() -> None:
    """Drop every cached Pack and the term table (tests, benchmarks)."""
    with _lock:
        _packs.clear()
        _terms.clear()


def _query_scores(candidates: Pack, my_terms: list[int], session: Session) -> tuple:
    """Return (Resnik of each query term with each table term, the query's self-score).

    The first is an (n query terms, n table terms) array.
    """
    table = candidates.terms
    rows = session.execute(
        text("SELECT id, ancestors, self_ic FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": list(my_terms)},
    ).all()
    mine = {row[0]: row[1] for row in rows}
    own = self_score(my_terms, {row[0]: row[2] for row in rows})
    scores = np.zeros((len(my_terms), table.hpo.size), dtype=np.float64)
    for row, term in enumerate(my_terms):  # every term is its own ancestor: no empty group
        common = np.isin(table.pair_ancestor, np.asarray(mine[term], dtype=np.int64))
        scores[row] = np.maximum.reduceat(np.where(common, table.pair_ic, 0.0),
                                          table.pair_starts)
    return scores, own


def _thermometer(term_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (bit masks of each table term, byte look-up table) for exact best matches.

    A query term's best match in a profile is the highest of the few distinct values
    of its row of ``term_scores`` (Resnik: the IC of one of its ancestors) that some
    profile term reaches. One bit per (query term, distinct value v > 0) is set for
    the table terms scoring at least v; OR-ed over a profile's terms, the bits of a
    query term read as a thermometer, and its best match is the sum of the steps
    (v minus the next lower value) of its set bits. So the first half of the
    best-match average is a linear function of the OR of the profile's masks: summed
    byte by byte from ``lookup`` (position × 256 byte values).

    Returns masks as a (table terms, words) uint64 array and lookup as a
    (8 × words, 256) float64 array.
    """
    rows, steps = [], []
    for row in term_scores:
        values = np.unique(row[row > 0])[::-1]  # descending, distinct
        if values.size:
            rows.append(row[None, :] >= values[:, None])
            steps.append(values - np.append(values[1:], 0.0))
    if not rows:
        return np.zeros((term_scores.shape[1], 1), np.uint64), np.zeros((8, 256))
    bits = np.concatenate(rows)
    step = np.concatenate(steps)
    words = -(-bits.shape[0] // 64)
    padded = np.zeros((bits.shape[1], words * 64), dtype=bool)  # (table terms, bits)
    padded[:, :bits.shape[0]] = bits.T
    masks = np.packbits(padded, axis=1, bitorder="little").view("<u8")
    step = np.concatenate([step, np.zeros(words * 64 - step.size)]).reshape(-1, 8)
    byte_bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1,
                              bitorder="little").astype(np.float64)  # (256, 8)
    return np.ascontiguousarray(masks.astype(np.uint64)), step @ byte_bits.T


def _scores(candidates: Pack, masks: np.ndarray, lookup: np.ndarray,
            best_of_term: np.ndarray) -> np.ndarray:
    """Return the exact Resnik BMA numerator (both halves) of every profile of the pack.

    Block by block (profiles of one length L): the OR of the masks and the sum of
    ``best_of_term`` over term 1..L of every profile, one vector step per term.
    """
    out = np.empty(candidates.ids.size, dtype=np.float64)
    columns = [np.ascontiguousarray(masks[:, w]) for w in range(masks.shape[1])]
    used = [position for position in range(lookup.shape[0]) if lookup[position].any()]
    for first_profile, length, count, at in candidates.blocks:
        for lo in range(0, count, CHUNK):  # small temporaries: flat worker memory
            hi = min(lo + CHUNK, count)
            block = candidates.flat[at:at + length * count].reshape(length, count)[:, lo:hi]
            terms = [block[j].astype(np.intp) for j in range(length)]
            ored = np.empty((hi - lo, len(columns)), dtype=np.uint64)
            for word, column in enumerate(columns):
                acc = column[terms[0]]
                for term in terms[1:]:
                    acc |= column[term]
                ored[:, word] = acc
            total = best_of_term[terms[0]]
            for term in terms[1:]:
                total += best_of_term[term]
            as_bytes = ored.view(np.uint8)
            for position in used:
                total += lookup[position][as_bytes[:, position]]
            out[first_profile + lo:first_profile + hi] = total
    return out


def best(session: Session, candidates: Pack, my_terms: list[int], exclude: set[int],
         limit: int) -> list[tuple[int, int, str]]:
    """Return (member id, floor cell, label) of the ``limit`` most similar soulmates.

    Every candidate of ``candidates`` but ``exclude`` counts, by its exact Resnik
    best-match average against ``my_terms`` (:func:`_thermometer`, :func:`_scores`:
    one pass per 64 bits of thresholds and one for the second half, over the whole
    pack); only members with a label count; the best scores first, ties by member id.
    """
    if candidates.ids.size == 0 or not my_terms:
        return []
    term_scores, own = _query_scores(candidates, my_terms, session)
    masks, lookup = _thermometer(term_scores)
    score = (_scores(candidates, masks, lookup, term_scores.max(axis=0))
             / (len(my_terms) + candidates.lengths))
    excluded = np.fromiter(exclude, dtype=np.int64)
    reach = limit + excluded.size + REACH_MARGIN  # the best scores first; widened if short
    while True:
        if reach >= score.size:
            pool = np.arange(score.size)
        else:  # every profile scoring at least the reach-th score (ties included)
            pool = np.flatnonzero(score >= np.partition(score, score.size - reach)[-reach])
        scale = np.sqrt(own * candidates.self_scores[pool])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = score[pool] / scale
        listed = (scale > 0) & (ratio >= SIMILAR_FROM)
        if excluded.size:
            listed &= ~np.isin(candidates.ids[pool], excluded)
        # Enough listed among the best ``reach``: no profile outside can outrank them.
        if listed.sum() >= limit or pool.size == score.size:
            break
        reach *= 8
    pool, ratio = pool[listed], ratio[listed]
    order = np.lexsort((candidates.ids[pool], -score[pool]))[:limit]
    pool, ratio = pool[order], ratio[order]
    return [(int(candidates.ids[i]), int(candidates.cells[i]),
             VERY_SIMILAR if r >= VERY_SIMILAR_FROM else SIMILAR)
            for i, r in zip(pool.tolist(), ratio.tolist(), strict=True)]
