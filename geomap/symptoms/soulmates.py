"""My soulmates: opted-in members whose symptoms are most like mine, and their map.

Who may be listed: members in the nearby index (on the map and contactable) with the
condition (or any condition when widened), who opted in to matching, minus blocks
either way; the searcher must be listable too (reciprocity) and opted in.

Every candidate is scored exactly by Resnik best-match average
(:mod:`geomap.symptoms.similarity`) in one numpy pass over the cached profiles of
the condition (:mod:`geomap.symptoms.candidates`, kept in step by the soulmates
change log); the best ``limit`` by score (ties by member id) are listed. Under
``geomap serve`` the scoring runs in the service's scorer process
(:mod:`geomap.symptoms.scorer`), so that web workers hold neither numpy nor the
packs; without one (tests, an app served by other means) it runs in process.
Others see a coarse label, never a score; only the symptoms both list; the place
label and distance band exactly as nearby gives them (floor cells only); order
within a label is keyed (HMAC), not by score.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h3.api.basic_int as h3i
from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.members.errors import MemberConflictError, MemberInputError
from geomap.members.nearby import band_runs, cell_labels
from geomap.privacy import DISTANCE_BANDS, cell_distance_km, distance_band, keyed_order
from geomap.symptoms.similarity import VERY_SIMILAR, SetScorer, self_score, similarity_label

if TYPE_CHECKING:
    from flask import Flask

    from geomap.symptoms.scorer_link import ScorerLink

SOULMATES_MAX = 30
_LABEL_ORDER = {VERY_SIMILAR: 0}


def _needs(message: str, link: str) -> MemberConflictError:
    """Return the error for a missing step; ``link`` names the page that fixes it."""
    error = MemberConflictError(message)
    error.link = link  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True)
class SharedSymptom:
    """A symptom both members list."""

    hpo_id: str
    label: str


@dataclass(frozen=True)
class Soulmate:
    """A soulmate as the searcher may see them: no point, no score, shared symptoms only."""

    pseudonym: str
    role: str
    similarity: str
    place: str
    distance_band: str
    shared_symptoms: tuple[SharedSymptom, ...]


@dataclass(frozen=True)
class SoulmateArea:
    """One area of the soulmates map: a floor cell's centre and who is there."""

    cell: str
    lat: float
    lng: float
    place: str
    pseudonyms: tuple[str, ...]


@dataclass(frozen=True)
class Soulmates:
    """My soulmates for a condition (or every condition), and their areas."""

    condition: str | None
    members: tuple[Soulmate, ...]
    areas: tuple[SoulmateArea, ...]


def _searcher(session: Session, member_id: int, condition_slug: str | None
              ) -> tuple[int | None, int, list[int], set[int]]:
    """Return (condition id or None, my floor cell, my terms, members blocked either way).

    Raises when I may not search (one round trip after the condition's).
    """
    condition = None
    if condition_slug is not None:
        if len(condition_slug) > 64 or "\x00" in condition_slug:
            raise MemberInputError(_("There is no such condition."))
        condition = session.execute(
            text("SELECT id FROM conditions WHERE slug = :slug"), {"slug": condition_slug}
        ).scalar_one_or_none()
        if condition is None:
            raise MemberInputError(_('There is no condition %(condition_slug)r.',
                                     condition_slug=condition_slug))
    row = session.execute(
        text("SELECT (SELECT floor_cell FROM member_locations WHERE member_id = :id), "
             "EXISTS (SELECT 1 FROM nearby_members WHERE member_id = :id "
             "AND (CAST(:condition AS smallint) IS NULL OR condition_id = :condition)), "
             "(SELECT terms FROM soulmate_profiles WHERE member_id = :id), "
             "EXISTS (SELECT 1 FROM symptom_matching WHERE member_id = :id), "
             "ARRAY(SELECT blocked_id FROM member_blocks WHERE blocker_id = :id UNION "
             "SELECT blocker_id FROM member_blocks WHERE blocked_id = :id)"),
        {"id": member_id, "condition": condition},
    ).one()
    cell, listable, terms, opted_in, blocked = row
    if cell is None:
        raise _needs(_("Set your location in your settings first."), "settings")
    if not listable:
        raise _needs(
            _("Only members who are on the map, can be contacted and have this condition "
              "can see soulmates: change that in your settings first."), "settings")
    if not opted_in:
        raise _needs(_("Take part in matching on your symptoms page first."), "symptoms")
    if not terms:
        raise _needs(_("Add at least one symptom first."), "symptoms")
    return ((int(condition) if condition is not None else None), int(cell), list(terms),
            {int(member) for member in blocked})


def soulmates(session: Session, *, member_id: int, condition_slug: str | None, secret: str,
              max_km: float, limit: int = SOULMATES_MAX,
              scorer: ScorerLink | None = None) -> Soulmates:
    """Return my most similar opted-in soulmates (``condition_slug`` None: every condition).

    ``scorer``: the service's scorer process scores the candidates (None: this
    process does, loading numpy and the packs). Raises MemberInputError for an
    unknown condition, MemberConflictError when the member may not search (no
    location, not listable, not opted in, no symptoms) and
    :class:`geomap.symptoms.scorer_link.ScorerUnavailableError` when the scorer does
    not answer.
    """
    condition, my_cell, my_terms, blocked = _searcher(session, member_id, condition_slug)
    if scorer is not None:
        found = scorer.best(condition, my_terms, blocked | {member_id}, limit)
    else:
        from geomap.symptoms import candidates  # numpy and the packs, in this process

        found = candidates.best(session, candidates.pack(session, condition), my_terms,
                                blocked | {member_id}, limit)
    cells = {member: cell for member, cell, _label in found}
    picked = [(member, label) for member, _cell, label in found]
    picked.sort(key=lambda item: (_LABEL_ORDER.get(item[1], 1),
                                  keyed_order(secret, member_id, item[0])))
    return _describe(session, member_id, my_cell, my_terms, picked, cells,
                     condition_slug, max_km)


def for_member(session: Session, app: Flask, member_id: int,
               condition_slug: str | None) -> Soulmates:
    """Return :func:`soulmates` of ``member_id`` as ``app`` serves them.

    With ``app``'s secret and nearby radius (km), scored by its scorer process when it
    has one. Raises as :func:`soulmates` does.
    """
    from geomap.symptoms.scorer_link import link_for

    return soulmates(session, member_id=member_id, condition_slug=condition_slug,
                     secret=app.config["SECRET_KEY"], max_km=app.config["GEOMAP_NEARBY_MAX_KM"],
                     scorer=link_for(app))


def unavailable_message() -> str:
    """Return the translated message of a search refused while the scorer is down (503)."""
    return _("Soulmate matching is not available just now; please try again in a minute.")


def rank(session: Session, my_terms: list[int], candidates: list[tuple[int, list[int]]]
         ) -> list[tuple[int, str]]:
    """Return (member id, label) of the candidates that are soulmates, most similar first.

    Exact Resnik best-match average from the stored ancestors and IC (one query);
    ties keep the candidates' order.
    """
    if not candidates:
        return []
    terms = sorted({t for _m, ts in candidates for t in ts} | set(my_terms))
    rows = session.execute(
        text("SELECT id, ancestors, self_ic FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": terms},
    ).all()
    ancestors = {row[0]: row[1] for row in rows}
    self_ic = {row[0]: row[2] for row in rows}
    mine = sorted({a for t in my_terms for a in ancestors[t]})
    ic = dict(session.execute(
        text("SELECT id, ic FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"), {"ids": mine}
    ).all())
    scorer = SetScorer(my_terms, ancestors, ic)
    own = self_score(my_terms, self_ic)
    scored = []
    for position, (member, their_terms) in enumerate(candidates):
        score = scorer.score(their_terms)
        label = similarity_label(score, own, self_score(their_terms, self_ic))
        if label is not None:
            scored.append((-score, position, member, label))
    scored.sort()
    return [(member, label) for _s, _p, member, label in scored]


def band_label(my_cell: int, their_cell: int, max_km: float) -> str:
    """Return the distance band between two floor cells exactly as nearby gives it.

    Within nearby's reach the band is the ring of :func:`geomap.members.nearby.band_runs`
    that holds the cell; beyond it, the band of the centre-to-centre distance.
    """
    return band_labels(my_cell, [their_cell], max_km)[0]


def band_labels(my_cell: int, their_cells: list[int], max_km: float) -> list[str]:
    """Return :func:`band_label` of each of ``their_cells`` (one sorted look-up each)."""
    runs = [(lo, hi, band) for band, band_runs_ in enumerate(band_runs(my_cell, float(max_km)))
            for lo, hi in band_runs_]
    runs.sort()
    starts = [lo for lo, _hi, _band in runs]
    labels = []
    for cell in their_cells:
        at = bisect_right(starts, cell) - 1
        if at >= 0 and cell <= runs[at][1]:
            labels.append(DISTANCE_BANDS[runs[at][2]][1])
        else:
            labels.append(distance_band(cell_distance_km(my_cell, cell)))
    return labels


def _describe(session: Session, member_id: int, my_cell: int, my_terms: list[int],
              picked: list[tuple[int, str]], cells: dict[int, int], condition_slug: str | None,
              max_km: float) -> Soulmates:
    """Return the picked soulmates as others may see them, and their areas."""
    if not picked:
        return Soulmates(condition_slug, (), ())
    ids = [member for member, _label in picked]
    people, shared = {}, {}
    for member, pseudonym, role, hpo_ids, names in session.execute(  # one round trip
        text("SELECT m.id, m.pseudonym, m.role, s.hpo, s.names FROM members m "
             "LEFT JOIN LATERAL (SELECT array_agg(t.hpo_id ORDER BY t.id) AS hpo, "
             "array_agg(coalesce(t.layperson, t.name) ORDER BY t.id) AS names "
             "FROM member_symptoms s JOIN hpo_terms t ON t.id = s.term_id "
             "WHERE s.member_id = m.id AND s.term_id = ANY(CAST(:mine AS int[]))) s ON true "
             "WHERE m.id = ANY(CAST(:ids AS bigint[]))"),
        {"ids": ids, "mine": my_terms},
    ).all():
        people[member] = (pseudonym, role)
        shared[member] = [SharedSymptom(h, n) for h, n in zip(hpo_ids or [], names or [],
                                                                strict=True)]
    labels = cell_labels(session, sorted({cells[m] for m in ids}))
    bands = dict(zip(ids, band_labels(my_cell, [cells[m] for m in ids], max_km), strict=True))
    members = tuple(
        Soulmate(people[m][0], people[m][1], label, labels[cells[m]], bands[m], tuple(shared[m]))
        for m, label in picked
    )
    by_cell: dict[int, list[str]] = defaultdict(list)
    for m, _label in picked:
        by_cell[cells[m]].append(people[m][0])
    areas = tuple(
        SoulmateArea(h3i.int_to_str(cell), *h3i.cell_to_latlng(cell), labels[cell],
                     tuple(sorted(names)))
        for cell, names in sorted(by_cell.items())
    )
    return Soulmates(condition_slug, members, areas)
