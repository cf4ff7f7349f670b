"""Synthetic demo members around gazetteer cities, deterministic for a seed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.ingest.members_bulk import MemberBatch, gc_paused
from geomap.models import ROLES

DEMO_MIN_POPULATION = 15_000  # demo members live around towns of at least this size
# Relative weights: how common each condition is among demo members.
CONDITION_WEIGHTS = {
    "all": 30, "aml": 10, "cll": 8, "cml": 6, "hodgkin-lymphoma": 8, "multiple-myeloma": 7,
    "cystic-fibrosis": 8, "multiple-sclerosis": 12, "als": 4, "sickle-cell-disease": 5,
    "huntingtons-disease": 2,
}
ROLE_WEIGHTS = (0.55, 0.2, 0.12, 0.07, 0.03, 0.03)
VISIBILITY_WEIGHTS = {"map": 0.85, "country": 0.10, "hidden": 0.05}
_ADJECTIVES = (
    "amber", "brave", "calm", "clear", "bright", "gentle", "kind", "quiet", "steady", "swift",
    "warm", "wise", "bold", "happy", "lucky", "merry", "noble", "proud", "sunny", "true",
)
_NOUNS = (
    "otter", "heron", "maple", "river", "falcon", "willow", "badger", "comet", "harbor", "lark",
    "meadow", "pine", "robin", "sparrow", "tide", "birch", "cedar", "finch", "fox", "wren",
)


def _scatter(lat0: np.ndarray, lng0: np.ndarray, distance_km: np.ndarray,
             bearing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lats = np.clip(lat0 + (distance_km * np.cos(bearing)) / 111.32, -89.9, 89.9)
    cos_lat = np.maximum(np.cos(np.radians(lats)), 0.01)
    lngs = lng0 + (distance_km * np.sin(bearing)) / (111.32 * cos_lat)
    return lats, (lngs + 180.0) % 360.0 - 180.0


@gc_paused()
def generate(session: Session, members: int, seed: int, anchor: datetime | None = None,
             on_land: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
             *, settle_in_loader: bool = False) -> tuple[MemberBatch, list[str]]:
    """Return ``members`` synthetic members and their pseudonym prefixes.

    Cities are drawn weighted by population; each member is scattered around the
    city's centre (a spread that grows with city size; with ``on_land``, scatter that
    lands in the sea is drawn again closer in); joins spread over the three years
    before ``anchor`` (default: the start of the current month). With
    ``settle_in_loader``, that sea check is left to the batch's ``settle_points``,
    which :func:`~geomap.ingest.members_bulk.load_members` runs in its derivation
    thread while the members table loads (same points, computed later).
    """
    rng = np.random.default_rng(seed)
    places = session.execute(
        text("SELECT ST_Y(point), ST_X(point), population FROM places "
             "WHERE population >= :min ORDER BY id"),
        {"min": DEMO_MIN_POPULATION},
    ).all()
    if not places:
        raise RuntimeError("no gazetteer places: run `geomap geo import` first")
    lat0 = np.array([p[0] for p in places])
    lng0 = np.array([p[1] for p in places])
    population = np.array([p[2] for p in places], dtype=np.float64)
    weights = population**0.85
    city = rng.choice(len(places), size=members, p=weights / weights.sum())
    spread_km = 2.0 + 0.5 * np.sqrt(population[city] / 1000.0)
    distance = np.abs(rng.normal(0.0, 1.0, members)) * spread_km
    bearing = rng.uniform(0.0, 2 * np.pi, members)
    lats, lngs = _scatter(lat0[city], lng0[city], distance, bearing)

    def settle() -> None:
        """Draw scatter that lands in the sea again, closer in (up to three times)."""
        for _ in range(3):
            wet = np.flatnonzero(~on_land(lats, lngs))
            if len(wet) == 0:
                break
            distance[wet] *= 0.3
            lats[wet], lngs[wet] = _scatter(lat0[city[wet]], lng0[city[wet]], distance[wet],
                                            bearing[wet])

    if on_land is not None and not settle_in_loader:
        settle()

    ids = dict(session.execute(text("SELECT slug, id FROM conditions")).all())
    slugs = [slug for slug in CONDITION_WEIGHTS if slug in ids]
    condition_p = np.array([CONDITION_WEIGHTS[s] for s in slugs], dtype=np.float64)
    condition_p /= condition_p.sum()
    primary = rng.choice(len(slugs), size=members, p=condition_p)
    secondary = rng.choice(len(slugs), size=members, p=condition_p)
    has_second = (rng.random(members) < 0.08) & (secondary != primary)
    slug_ids = [ids[s] for s in slugs]
    pairs = [[[a, b] for b in slug_ids] for a in slug_ids]  # shared small lists
    singles = [[a] for a in slug_ids]
    conditions = [
        pairs[a][b] if two else singles[a]
        for a, b, two in zip(primary.tolist(), secondary.tolist(), has_second.tolist(),
                             strict=True)
    ]
    roles = np.array(ROLES)[rng.choice(len(ROLES), size=members, p=ROLE_WEIGHTS)]
    visibility_names = list(VISIBILITY_WEIGHTS)
    visibilities = np.array(visibility_names)[
        rng.choice(len(visibility_names), size=members, p=list(VISIBILITY_WEIGHTS.values()))
    ]
    contactable = rng.random(members) < 0.8
    if anchor is None:
        now = datetime.now(UTC)
        anchor = datetime(now.year, now.month, 1, tzinfo=UTC)
    days_ago = rng.uniform(0, 3 * 365, members)
    anchor_utc = np.datetime64(anchor.astimezone(UTC).replace(tzinfo=None), "us")
    joined = anchor_utc - np.round(days_ago * 86_400_000_000).astype("timedelta64[us]")
    names = np.array([f"{a}-{n}" for a in _ADJECTIVES for n in _NOUNS], dtype=object)
    adjective = rng.integers(0, len(_ADJECTIVES), members)
    noun = rng.integers(0, len(_NOUNS), members)
    prefixes = names[adjective * len(_NOUNS) + noun].tolist()
    batch = MemberBatch(
        pseudonyms=None,
        roles=roles.tolist(),
        visibilities=visibilities.tolist(),
        contactable=contactable.tolist(),
        joined_at=joined,
        lats=lats,
        lngs=lngs,
        conditions=conditions,
        settle_points=settle if on_land is not None and settle_in_loader else None,
    )
    return batch, prefixes


def add_symptoms(session: Session, seed: int) -> int:
    """Give the demo members symptom sets from their condition (see geomap.symptoms.demo)."""
    from geomap.symptoms.demo import add_demo_symptoms

    return add_demo_symptoms(session, seed)
