"""Nearby members: who shares a condition near me, computed from floor cells only.

The observer's floor cell gives rings of cells per distance band (centre to centre,
:func:`geomap.privacy.band_rings`). Members are listed band after band, nearest first;
within a band in the searcher's order: ``nearby_members.order_key`` (a hash of the
member id) rotated to start at the searcher's secret offset
(:func:`geomap.privacy.nearby_offset`: one HMAC of the server secret per searcher, none
per candidate). The database returns the page itself (``geomap_nearby_page``, migration
0016n_nearbyx), reading a bounded number of rows per cell of a dense band, so a
search costs the same however many members live near the searcher. No exact point is
read and the order does not depend on locations, so moving any member inside their
floor cell changes no byte of any answer.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import h3.api.basic_int as h3i
from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.i18n.formats import area_name
from geomap.members.errors import MemberConflictError, MemberInputError
from geomap.members.social import CONNECTION_STATES, reach_problem_of
from geomap.models import ROLES
from geomap.privacy import DISTANCE_BANDS, band_rings, nearby_offset

PAGE_SIZE = 20
MAX_PAGE = 500
_PLACE_BOX_DEG = 0.25  # most populous place within this box around the cell centre
_NEAR_DEG = 1.5  # else the nearest place this close

# One page of the searcher's bands, nearest band first, each in the searcher's order,
# then a row (band -1) counting the members listed, up to one past the page's end, in
# one round trip: geomap_nearby_page (migration 0016n_nearbyx). A band's cells go in as
# runs of consecutive H3 indexes (see cell_runs).
_PAGE = text(
    "SELECT band, member_id, floor_cell FROM geomap_nearby_page("
    ":condition, :me, CAST(:lo AS bigint[]), CAST(:hi AS bigint[]), "
    "CAST(:bands AS integer[]), CAST(:ends AS integer[]), :skip, :take, :role, "
    "CAST(:offset AS bigint))"
)
_PAGE_MEMBERS = text(
    "SELECT p.id, m.pseudonym, m.role, p.cell, l.kind, m.introduction, "
    "m.age_group, m.treatment_phase, c.status, l.place, l.country_code, l.country "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:cells AS bigint[])) AS p(id, cell) "
    "JOIN members m ON m.id = p.id "
    "LEFT JOIN LATERAL (SELECT kind, place, country_code, country FROM cell_labels "
    "WHERE floor_cell = p.cell LIMIT 1) l ON true "
    "LEFT JOIN LATERAL (SELECT status FROM connections "
    "WHERE least(requester_id, recipient_id) = least(CAST(:me AS bigint), p.id) "
    "AND greatest(requester_id, recipient_id) = greatest(CAST(:me AS bigint), p.id) "
    "LIMIT 1) c ON true"
)
_COUNTED = -1  # the band of the row counting the members listed
_NEAR_BANDS = 3  # bands up to 100 km: asked for first, then the others if needed


@dataclass(frozen=True)
class NearbyMember:
    """One nearby member as others may see them: no point, no email."""

    pseudonym: str
    role: str
    place: str
    distance_band: str
    connection: str | None = None  # "requested", "connected" or "declined" with me
    introduction: str = ""  # the optional profile, for members' eyes only
    age_group: str | None = None
    treatment_phase: str | None = None


@dataclass(frozen=True)
class NearbyPage:
    """One page of nearby members for a condition."""

    condition: str
    page: int
    page_size: int
    members: tuple[NearbyMember, ...]
    has_next: bool


def parse_page(raw: str | None) -> int:
    """Return a page number from 1 to MAX_PAGE; raise MemberInputError otherwise."""
    if raw is None or raw == "":
        return 1
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= MAX_PAGE:
        raise MemberInputError(_('page must be a whole number from 1 to %(max_page)s.',
                                 max_page=MAX_PAGE))
    return int(raw)


def parse_filters(role: str | None, band: str | None) -> tuple[str | None, int | None]:
    """Return (role, band index) from query values (empty means any).

    ``band`` is a band's index in :data:`geomap.privacy.DISTANCE_BANDS` (0 is "<25 km").
    Raises MemberInputError for an unknown role or band.
    """
    role = role or None
    if role is not None and role not in ROLES:
        raise MemberInputError(_('role must be one of %(value)s.', value=', '.join(ROLES)))
    if band is None or band == "":
        return role, None
    if not band.isdigit() or int(band) >= len(DISTANCE_BANDS):
        raise MemberInputError(
            _('band must be a whole number from 0 to %(value)s.', value=len(DISTANCE_BANDS) - 1))
    return role, int(band)


def _search_keys(session: Session, member_id: int, condition_slug: str) -> tuple[int, int]:
    """Return (condition id, observer's floor cell) in one round trip.

    The same round trip checks that the observer may search (:func:`reach_problem_of`,
    and listed on this condition's nearby list, ``nearby_members``: on its map and
    contactable): MemberConflictError if not, MemberInputError for an unknown condition.
    """
    plausible = len(condition_slug) <= 64 and "\x00" not in condition_slug
    visibility, suspended, condition, cell, listed = session.execute(
        text("SELECT m.visibility, m.suspended_at IS NOT NULL, c.id, "
             "(SELECT floor_cell FROM member_locations WHERE member_id = :id), "
             "EXISTS (SELECT 1 FROM nearby_members n WHERE n.member_id = :id "
             "AND n.condition_id = c.id) "
             "FROM members m LEFT JOIN conditions c ON c.slug = :slug WHERE m.id = :id"),
        {"slug": condition_slug if plausible else "", "id": member_id},
    ).one()
    problem = reach_problem_of(visibility, suspended)
    if problem:
        raise MemberConflictError(problem)
    if not plausible:
        raise MemberInputError(_("There is no such condition."))
    if condition is None:
        raise MemberInputError(_('There is no condition %(condition_slug)r.',
                                 condition_slug=condition_slug))
    if cell is None:
        raise MemberConflictError(_("Set your location in your settings first."))
    if not listed:
        # Reciprocity per map: only who others can find on this condition's nearby list.
        raise MemberConflictError(_(
            "Only members on this condition's map who can be contacted can search it "
            "nearby: join the map and allow contact in your settings first."))
    return int(condition), int(cell)


def nearby(session: Session, *, member_id: int, condition_slug: str, page: int,
           secret: str, max_km: float, page_size: int = PAGE_SIZE,
           role: str | None = None, band: int | None = None) -> NearbyPage:
    """Return page ``page`` (from 1) of members with the condition near ``member_id``.

    ``role`` keeps one role only; ``band`` one distance band (an index of
    DISTANCE_BANDS). Raises MemberConflictError for members who may not search
    (reciprocity: only members on the map may, see
    :func:`geomap.members.social.reach_problem`).
    """
    condition, cell = _search_keys(session, member_id, condition_slug)
    rings = band_runs(cell, float(max_km))
    if band is not None:
        rings = tuple(runs if i == band else () for i, runs in enumerate(rings))
    start, end = (page - 1) * page_size, page * page_size
    offset = nearby_offset(secret, member_id)
    picked: list[tuple[int, int, int]] = []  # (band, member id, floor cell), in order
    counted, has_next = 0, False  # members listed in the bands asked so far
    # The near bands first (few runs, and most pages fill there), then the rest.
    for first, last in ((0, _NEAR_BANDS), (_NEAR_BANDS, len(rings))):
        bands = [i for i in range(first, min(last, len(rings))) if rings[i]]
        if not bands:
            continue
        runs = [run for i in bands for run in rings[i]]
        skip, take = max(start - counted, 0), end - max(start, counted)
        listed = 0
        for band_index, member, member_cell in session.execute(_PAGE, {
            "condition": condition, "me": member_id, "role": role, "skip": skip,
            "take": take, "offset": offset,
            "lo": _int_array(lo for lo, _hi in runs), "hi": _int_array(hi for _lo, hi in runs),
            "bands": _int_array(bands),
            "ends": _int_array(itertools.accumulate(len(rings[i]) for i in bands)),
        }):
            if band_index == _COUNTED:
                listed = member
            else:
                picked.append((band_index, member, member_cell))
        if listed > skip + take:
            has_next = True
            break
        counted += listed
    return NearbyPage(condition_slug, page, page_size,
                      _describe(session, member_id, picked), has_next)


def _int_array(values: Iterable[int]) -> str:
    """Return ``values`` as a PostgreSQL array literal (one string: quicker to send)."""
    return "{" + ",".join(map(str, values)) + "}"


def next_cell(cell: int) -> int:
    """Return the next valid H3 index after ``cell`` at its resolution, in index order.

    Digits run 0..6 (7 marks an unused digit), so the next index increments the last
    digit and carries past 6, up into the base cell.
    """
    cell_resolution = h3i.get_resolution(cell)
    for digit_resolution in range(cell_resolution, 0, -1):
        shift = (15 - digit_resolution) * 3
        digit = (cell >> shift) & 7
        if digit < 6:
            return cell + (1 << shift)
        cell -= digit << shift
    return cell + (1 << 45)


def cell_runs(cells: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Return sorted ``cells`` as runs (first, last) of consecutive H3 indexes.

    Walking :func:`next_cell` from first to last of a run visits exactly the run's
    cells; the other integers in between hold an unused digit (7), are no H3 cell and
    never occur in data, so a run can be read as one range of the floor cell index.
    """
    runs: list[list[int]] = []
    for cell in sorted(cells):
        if runs and cell == next_cell(runs[-1][1]):
            runs[-1][1] = cell
        else:
            runs.append([cell, cell])
    return tuple((first, last) for first, last in runs)


class Runs:
    """Runs (first, last) of consecutive H3 indexes, stored flat as 64-bit integers.

    16 bytes a run instead of ~115 as a tuple of tuples of Python ints: a searcher's
    cell has ~800 runs within 1,000 km (13 kB instead of 92 kB cached per cell).
    Iterating gives (first, last) pairs; ``len`` is the number of runs.
    """

    __slots__ = ("_flat",)

    def __init__(self, runs: Iterable[tuple[int, int]]) -> None:
        """Keep ``runs`` ((first, last) pairs) flat."""
        self._flat = array("q", [value for run in runs for value in run])

    def __len__(self) -> int:
        """Return the number of runs."""
        return len(self._flat) // 2

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Yield each run as (first, last)."""
        values = iter(self._flat)
        return zip(values, values, strict=True)

    def __getitem__(self, index: int) -> tuple[int, int]:
        """Return run ``index`` as (first, last)."""
        index = range(len(self))[index]
        return self._flat[2 * index], self._flat[2 * index + 1]


@lru_cache(maxsize=1024)
def band_runs(cell: int, max_km: float) -> tuple[Runs, ...]:
    """Return :func:`geomap.privacy.band_rings` of ``cell`` as :class:`Runs`, band by band.

    Only the runs are kept per searcher's cell (~13 kB at 1,000 km and resolution 5:
    ~800 runs), not the rings they come from (~0.6 MB: 13,700 cells), so a worker's
    memory grows by at most ~13 MB however many cells it has searched from.
    """
    rings = band_rings.__wrapped__(cell, max_km)  # band_rings' own cache left out
    return tuple(Runs(cell_runs(ring)) for ring in rings)


def _describe(session: Session, member_id: int,
              picked: list[tuple[int, int, int]]) -> tuple[NearbyMember, ...]:
    """Return the picked (band, member, cell) as ``member_id`` may see them."""
    if not picked:
        return ()
    # The connection state with the observer comes in the same round trip (a pair has
    # at most one connection, either way: its unordered pair is unique). Labels and
    # connections are probed per listed member through their unique indexes (LATERAL
    # ... LIMIT 1 keeps the planner from hashing whole tables whose statistics are
    # stale: the labels grow as cells are named).
    rows = session.execute(_PAGE_MEMBERS, {
        "ids": _int_array(member for _b, member, _c in picked),
        "cells": _int_array(cell for _b, _m, cell in picked), "me": member_id,
    }).all()
    members = {row[0]: row for row in rows}
    labels = {row[3]: AreaName(row[4], row[9], row[10], row[11]).text()
              for row in rows if row[4] is not None}
    missing = sorted({cell for _b, _m, cell in picked} - labels.keys())
    if missing:
        labels |= cell_labels(session, missing)
    states = {row[0]: CONNECTION_STATES[row[8]] for row in rows if row[8] is not None}
    return tuple(
        NearbyMember(members[member][1], members[member][2], labels[cell],
                     DISTANCE_BANDS[band][1], states.get(member), members[member][5],
                     members[member][6], members[member][7])
        for band, member, cell in picked
    )


class AreaName(NamedTuple):
    """A floor cell's place label, as its parts and as the English sentence.

    ``kind``: "area" (the most populous place near the centre), "near" (the nearest
    place within 1.5°), "rural" (only the country) or "remote" (nothing);
    ``country_code`` is ISO 3166-1 alpha-2, ``country`` the English name.
    """

    kind: str
    place: str | None
    country_code: str | None
    country: str | None

    @property
    def english(self) -> str:
        """The label in English ("Lyon area, France")."""
        if self.kind == "area":
            return f"{self.place} area, {self.country}"
        if self.kind == "near":
            return f"near {self.place}, {self.country}"
        return f"rural {self.country}" if self.kind == "rural" else "a remote area"

    def text(self) -> str:
        """Return the label in the request's language (English outside requests)."""
        return area_name(self.kind, self.place, self.country_code, self.country,
                         self.english)


def cell_labels(session: Session, cells: list[int]) -> dict[int, str]:
    """Return the place label of each floor cell in the request's language.

    Missing labels are computed from the cells' centres and cached in ``cell_labels``.
    """
    names = {
        row[0]: AreaName(*row[1:])
        for row in session.execute(
            text("SELECT floor_cell, kind, place, country_code, country FROM cell_labels "
                 "WHERE floor_cell = ANY(CAST(:cells AS bigint[]))"),
            {"cells": cells},
        ).all()
    }
    missing = [cell for cell in cells if cell not in names]
    for cell in missing:
        names[cell] = label_for_cell(session, cell)
    if missing:
        session.execute(
            text("INSERT INTO cell_labels (floor_cell, label, kind, place, country_code, "
                 "country) VALUES (:cell, :label, :kind, :place, :code, :country) "
                 "ON CONFLICT DO NOTHING"),
            [{"cell": cell, "label": names[cell].english, "kind": names[cell].kind,
              "place": names[cell].place, "code": names[cell].country_code,
              "country": names[cell].country} for cell in missing],
        )
    return {cell: name.text() for cell, name in names.items()}


def label_for_cell(session: Session, cell: int) -> AreaName:
    """Return the place label of a floor cell, from its centre only (never a member's point).

    Reads the GeoNames gazetteer (``places``) and the Natural Earth outlines
    (``countries``).
    """
    lat, lng = h3i.cell_to_latlng(cell)
    params = {"lat": lat, "lng": lng}
    centre = "ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)"
    row = session.execute(
        text(
            "SELECT p.name, p.country_code, coalesce(c.name, p.country_code) FROM places p "
            "LEFT JOIN countries c ON c.code = p.country_code "
            f"WHERE p.point && ST_Expand({centre}, :box) "
            "ORDER BY p.population DESC, p.id LIMIT 1"
        ),
        params | {"box": _PLACE_BOX_DEG},
    ).one_or_none()
    if row is not None:
        return AreaName("area", *row)
    row = session.execute(
        text(
            "SELECT p.name, p.country_code, coalesce(c.name, p.country_code) FROM places p "
            "LEFT JOIN countries c ON c.code = p.country_code "
            f"WHERE p.point && ST_Expand({centre}, :near) "
            f"ORDER BY p.point <-> {centre}, p.id LIMIT 1"
        ),
        params | {"near": _NEAR_DEG},
    ).one_or_none()
    if row is not None:
        return AreaName("near", *row)
    row = session.execute(
        text(f"SELECT code, name FROM countries WHERE ST_Intersects(geom, {centre}) "
             "ORDER BY code LIMIT 1"),
        params,
    ).one_or_none()
    return AreaName("rural", None, *row) if row else AreaName("remote", None, None, None)
