"""The public symptom picture: per condition, the symptoms its members report most.

Computed by the publish step (registered as an extra publisher in geomap/publish.py),
in its transaction, so it changes in batches with the maps. Who counts: members on the
map with the condition who opted in to symptom matching and list at least one
symptom ("reporting"). Every published number is 0 or at least k, and no difference
between two numbers of a condition's picture (its published map total, its reporting
total and each symptom count) is between 1 and k-1: a count that would break this is
suppressed (complementary suppression; the most reported symptoms are kept first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

TOP_SYMPTOMS = 10
CANDIDATES = 40  # most reported terms considered per condition before suppression


@dataclass(frozen=True)
class SuppressedPicture:
    """A condition's publishable numbers: reporting total (None: nothing published) and counts."""

    reporting: int | None
    counts: tuple[tuple[int, int], ...]  # (term id, members), most reported first


def safe_with(value: int, published: Sequence[int], k: int) -> bool:
    """Return whether ``value`` may join ``published``: >= k and no difference in 1..k-1."""
    return value >= k and all(abs(value - other) == 0 or abs(value - other) >= k
                              for other in published)


def suppress_picture(map_total: int, reporting: int, counts: Sequence[tuple[int, int]],
                     k: int, top: int = TOP_SYMPTOMS) -> SuppressedPicture:
    """Return the numbers of a condition's symptom picture that may be published.

    ``map_total`` is the condition's published member total (already public);
    ``counts`` are (term id, members) pairs. The reporting total is published only if
    it is safe with the map total; then counts are taken most reported first (ties by
    term id), each only if safe with every number taken so far, up to ``top``.
    """
    if not safe_with(reporting, [map_total] if map_total else [], k):
        return SuppressedPicture(None, ())
    published = [map_total, reporting] if map_total else [reporting]
    kept: list[tuple[int, int]] = []
    for term, count in sorted(counts, key=lambda pair: (-pair[1], pair[0])):
        if len(kept) == top:
            break
        if safe_with(count, published, k):
            kept.append((term, count))
            published.append(count)
    return SuppressedPicture(reporting, tuple(kept))


def publish_symptoms(session: Session, version: int, k: int, floor: int) -> None:
    """Rebuild ``published_symptoms`` for every condition (an extra publisher of the publish step).

    Rows with term id 0 carry the reporting total; a condition with too few
    reporting members gets no rows.
    """
    del floor  # counts are per condition, not per area
    session.execute(text("DELETE FROM published_symptoms"))
    totals = dict(session.execute(text(
        "SELECT condition_id, published FROM published_totals WHERE resolution = 0")).all())
    reporting = dict(session.execute(text(
        "SELECT mc.condition_id, count(*) FROM member_conditions mc "
        "JOIN members m ON m.id = mc.member_id AND m.visibility = 'map' "
        "JOIN soulmate_profiles p ON p.member_id = mc.member_id GROUP BY 1")).all())
    rows = session.execute(text(
        "SELECT condition_id, term_id, members FROM (SELECT mc.condition_id, s.term_id, "
        "count(*) AS members, row_number() OVER (PARTITION BY mc.condition_id "
        "ORDER BY count(*) DESC, s.term_id) AS place FROM member_conditions mc "
        "JOIN members m ON m.id = mc.member_id AND m.visibility = 'map' "
        "JOIN soulmate_profiles p ON p.member_id = mc.member_id "
        "JOIN member_symptoms s ON s.member_id = mc.member_id GROUP BY 1, 2) ranked "
        "WHERE place <= :candidates"), {"candidates": CANDIDATES}).all()
    counts: dict[int, list[tuple[int, int]]] = {}
    for condition, term, members in rows:
        counts.setdefault(condition, []).append((term, members))
    out = []
    for condition, total in sorted(reporting.items()):
        picture = suppress_picture(int(totals.get(condition, 0)), int(total),
                                   counts.get(condition, []), k)
        if picture.reporting is None:
            continue
        out.append({"c": condition, "t": 0, "n": picture.reporting, "r": picture.reporting})
        out += [{"c": condition, "t": term, "n": members, "r": picture.reporting}
                for term, members in picture.counts]
    if out:
        session.execute(text(
            "INSERT INTO published_symptoms (condition_id, term_id, members, reporting, version) "
            "VALUES (:c, :t, :n, :r, :version)"), [row | {"version": version} for row in out])


@dataclass(frozen=True)
class PublishedSymptom:
    """A symptom on a condition's public picture: label, HPO id, members and share."""

    hpo_id: str
    label: str
    members: int
    share: float


@dataclass(frozen=True)
class SymptomPicture:
    """A condition's public symptom picture (published numbers only)."""

    reporting: int
    symptoms: tuple[PublishedSymptom, ...]


def symptom_picture(session: Session, condition_id: int) -> SymptomPicture | None:
    """Return the published symptom picture of a condition, or None (nothing published).

    Public read path: reads only ``published_symptoms`` and the vocabulary.
    """
    rows = session.execute(text(
        "SELECT p.term_id, t.hpo_id, coalesce(t.layperson, t.name), p.members, p.reporting "
        "FROM published_symptoms p LEFT JOIN hpo_terms t ON t.id = p.term_id "
        "WHERE p.condition_id = :c ORDER BY p.members DESC, p.term_id"), {"c": condition_id}
    ).all()
    if not rows:
        return None
    reporting = int(rows[0][4])
    return SymptomPicture(reporting, tuple(
        PublishedSymptom(row[1], row[2], int(row[3]), row[3] / reporting)
        for row in rows if row[0] != 0
    ))
