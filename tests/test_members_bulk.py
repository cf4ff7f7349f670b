"""The COPY loader's bulk mode: indexes and constraints dropped, rebuilt, and enforced."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.ingest import members_bulk
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.privacy import floor_cells

CATALOG = (
    "SELECT 'index', indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
    "WHERE indrelid = ANY(CAST(:t AS regclass[])) "
    "UNION ALL SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = ANY(CAST(:t AS regclass[])) "
    "UNION ALL SELECT 'trigger', tgname, tgenabled::text FROM pg_trigger "
    "WHERE tgrelid = ANY(CAST(:t AS regclass[])) AND NOT tgisinternal ORDER BY 1, 2"
)


def catalog(session: Session) -> list[tuple]:
    return session.execute(text(CATALOG), {"t": list(members_bulk.MEMBER_TABLES)}).all()


def batch_of(n: int, pseudonyms: list[str] | None = None) -> MemberBatch:
    return MemberBatch(
        pseudonyms=pseudonyms, roles=["patient"] * n, visibilities=["map"] * n,
        contactable=[True] * n, joined_at=[datetime(2026, 2, 1, tzinfo=UTC)] * n,
        lats=np.linspace(48.0, 49.0, n), lngs=np.linspace(2.0, 3.0, n),
        conditions=[[1, 2] if i % 4 == 0 else [1] for i in range(n)],
    )


@pytest.fixture
def bulk_mode_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every load big enough for the rebuild path."""
    monkeypatch.setattr(members_bulk, "BULK_REBUILD_MIN", 1)
    monkeypatch.setattr(members_bulk, "_rebuild_worthwhile", lambda session, n: True)


def test_bulk_mode_restores_every_index_constraint_and_trigger(
    rollback_session: Session, community_deriver: KeyDeriver, bulk_mode_always: None
) -> None:
    before = catalog(rollback_session)
    ids = load_members(rollback_session, batch_of(50), community_deriver)
    assert catalog(rollback_session) == before
    loaded = rollback_session.execute(
        text("SELECT count(*) FROM member_conditions WHERE member_id = ANY(:ids)"),
        {"ids": ids.tolist()},
    ).scalar_one()
    assert loaded == 50 + 13


def test_bulk_mode_still_enforces_unique_pseudonyms(
    rollback_session: Session, community_deriver: KeyDeriver, bulk_mode_always: None
) -> None:
    taken = rollback_session.execute(text("SELECT pseudonym FROM members LIMIT 1")).scalar_one()
    with pytest.raises(IntegrityError):
        load_members(rollback_session, batch_of(3, ["fresh-a", taken, "fresh-b"]),
                     community_deriver)


def test_bulk_mode_still_enforces_the_link_tables_primary_keys(
    rollback_session: Session, community_deriver: KeyDeriver, bulk_mode_always: None
) -> None:
    """member_conditions' key is dropped during the COPY and checked when it is rebuilt."""
    twice = batch_of(3)
    twice.conditions = [[1], [2, 2], [1]]
    with pytest.raises(IntegrityError, match="pk_member_conditions"):
        load_members(rollback_session, twice, community_deriver)


def test_bulk_mode_keeps_the_primary_key_that_foreign_keys_refer_to(
    rollback_session: Session, community_deriver: KeyDeriver, bulk_mode_always: None,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary key of members stays in place; the link tables' keys are rebuilt."""
    dropped: list[str] = []
    execute = rollback_session.execute

    def recording(statement, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if "DROP CONSTRAINT" in str(statement):
            dropped.append(str(statement).split('"')[1])
        return execute(statement, *args, **kwargs)

    monkeypatch.setattr(rollback_session, "execute", recording)
    load_members(rollback_session, batch_of(5), community_deriver)
    assert "pk_members" not in dropped
    assert {"pk_member_conditions", "pk_member_locations"} <= set(dropped)


def test_a_big_load_marks_whole_conditions_dirty(
    rollback_session: Session, community_deriver: KeyDeriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(members_bulk, "WHOLE_CONDITION_CELLS", 3)
    rollback_session.execute(text("DELETE FROM publish_dirty"))
    load_members(rollback_session, batch_of(400), community_deriver)
    dirty = rollback_session.execute(
        text("SELECT condition_id, floor_cell FROM publish_dirty ORDER BY 1")
    ).all()
    assert dirty == [(1, 0), (2, 0)]


def test_binary_copy_stores_every_field_as_given(
    rollback_session: Session, community_deriver: KeyDeriver
) -> None:
    """Points, names (non-ASCII too), flags, times and NULL regions survive the binary COPY."""
    lats = np.array([48.8566, -33.8688, 71.0, 0.5])
    lngs = np.array([2.3522, 151.2093, -8.0, -179.9999])
    batch = MemberBatch(
        pseudonyms=["Zoë Brave", "otter-2", "Ärzte-Team", "n.o"],
        roles=["patient", "carer", "relative", "organisation"],
        visibilities=["map", "country", "hidden", "map"],
        contactable=[True, False, True, False],
        joined_at=np.array(["2026-02-01T10:20:30.123456", "2020-01-01T00:00:00",
                            "1999-12-31T23:59:59", "2026-01-01T00:00:00"],
                           dtype="datetime64[us]"),
        lats=lats, lngs=lngs, conditions=[[1], [1, 2], [2], [1]],
    )
    ids = load_members(rollback_session, batch, community_deriver)
    keys = community_deriver.derive(lats, lngs)
    rows = rollback_session.execute(
        text("SELECT m.pseudonym, m.role, m.visibility, m.contactable, m.joined_at, "
             "ST_Y(l.location::geometry), ST_X(l.location::geometry), ST_SRID(l.location), "
             "l.floor_cell, l.country_code, l.region_code, "
             "(SELECT array_agg(condition_id ORDER BY condition_id) FROM member_conditions c "
             " WHERE c.member_id = m.id) "
             "FROM members m JOIN member_locations l ON l.member_id = m.id "
             "WHERE m.id = ANY(:ids) ORDER BY m.id"),
        {"ids": ids.tolist()},
    ).all()
    assert [r[0] for r in rows] == list(batch.pseudonyms)
    assert [(r[1], r[2], r[3]) for r in rows] == list(
        zip(batch.roles, batch.visibilities, batch.contactable, strict=True))
    assert [r[4] for r in rows] == [
        datetime(2026, 2, 1, 10, 20, 30, 123456, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]
    assert [r[5] for r in rows] == lats.tolist() and [r[6] for r in rows] == lngs.tolist()
    assert {r[7] for r in rows} == {4326}
    assert [r[8] for r in rows] == keys.floor_cells.tolist()
    assert [r[9] for r in rows] == keys.country_codes.tolist()
    assert [r[10] for r in rows] == keys.region_codes.tolist()
    assert [r[11] for r in rows] == [[1], [1, 2], [2], [1]]


def test_near_land_equals_the_per_point_measure(community_deriver: KeyDeriver) -> None:
    """The floor-cell shortcut of the plausibility check changes no answer."""
    rng = np.random.default_rng(3)
    # Around coasts and islands (near the limit) and anywhere on Earth.
    lats = np.concatenate([rng.uniform(35, 60, 6000), rng.uniform(-90, 90, 4000)])
    lngs = np.concatenate([rng.uniform(-12, 30, 6000), rng.uniform(-180, 180, 4000)])
    for limit in (25.0, 12.0):
        exact = np.isfinite(community_deriver.km_to_land(lats, lngs, limit))
        assert community_deriver.near_land(lats, lngs, limit).tolist() == exact.tolist()


def test_keys_after_the_near_land_check_are_those_of_their_points(
        community_deriver: KeyDeriver) -> None:
    """An import indexes its points once, and the reused cells are exactly theirs.

    Points changed since the check (or other points) are indexed anew.
    """
    rng = np.random.default_rng(5)
    lats, lngs = rng.uniform(35, 60, 5000), rng.uniform(-12, 30, 5000)
    community_deriver.near_land(lats.copy(), lngs.copy(), 25.0)
    assert community_deriver.derive(lats, lngs).floor_cells.tolist() == \
        floor_cells(lats, lngs, community_deriver.floor).tolist()
    community_deriver.near_land(lats, lngs, 25.0)
    lats[:10] = 0.5  # changed after the check, in place
    assert community_deriver.derive(lats, lngs).floor_cells.tolist() == \
        floor_cells(lats, lngs, community_deriver.floor).tolist()
