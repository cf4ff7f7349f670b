"""The publish step on a real PostGIS: k-anonymity, totals, indistinguishability."""

from __future__ import annotations

import h3.api.basic_int as h3i
import numpy as np
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.publish import publish
from tests.conftest import FLOOR, K


def published_rows(session: Session) -> list[tuple]:
    return session.execute(
        text(
            "SELECT condition_id, resolution, cell, cell_resolution, count, lat, lng "
            "FROM published_cells ORDER BY 1, 2, 3"
        )
    ).all()


def test_every_published_count_is_at_least_k(rollback_session: Session) -> None:
    smallest = rollback_session.execute(text("SELECT min(count) FROM published_cells")).scalar()
    assert smallest is not None and smallest >= K


def test_published_plus_remainder_equals_members_on_the_map(rollback_session: Session) -> None:
    on_map = dict(
        rollback_session.execute(
            text(
                "SELECT mc.condition_id, count(*) FROM member_conditions mc "
                "JOIN members m ON m.id = mc.member_id WHERE m.visibility = 'map' GROUP BY 1"
            )
        ).all()
    )
    rows = rollback_session.execute(
        text(
            "SELECT t.condition_id, t.resolution, t.members_on_map, t.published, "
            "coalesce((SELECT sum(count) FROM published_cells p WHERE p.condition_id = "
            "t.condition_id AND p.resolution = t.resolution), 0) FROM published_totals t"
        )
    ).all()
    assert rows
    for condition_id, _resolution, members, published_total, marker_sum in rows:
        assert members == on_map.get(condition_id, 0)
        assert marker_sum == published_total <= members


def test_hidden_and_country_only_members_are_not_on_the_map(rollback_session: Session) -> None:
    before = published_rows(rollback_session)
    rollback_session.execute(
        text("UPDATE members SET visibility = 'hidden' WHERE id IN "
             "(SELECT id FROM members WHERE visibility = 'map' ORDER BY id LIMIT 400)")
    )
    publish(rollback_session, k=K, floor=FLOOR)
    after = published_rows(rollback_session)
    assert sum(r[4] for r in after if r[1] == 0) < sum(r[4] for r in before if r[1] == 0)


def test_publish_skips_when_nothing_changed(rollback_session: Session) -> None:
    first = publish(rollback_session, k=K, floor=FLOOR)
    second = publish(rollback_session, k=K, floor=FLOOR, only_if_changed=True)
    assert second.skipped and second.version == first.version


def random_point_in_cell(cell: int, u: float, v: float) -> tuple[float, float]:
    """Return a point inside ``cell`` chosen by u, v in [0, 1)."""
    boundary = h3i.cell_to_boundary(cell)
    polygon = shapely.Polygon([(lng, lat) for lat, lng in boundary])
    min_x, min_y, max_x, max_y = polygon.bounds
    for step in range(200):
        x = min_x + ((u + step * 0.618) % 1.0) * (max_x - min_x)
        y = min_y + ((v + step * 0.382) % 1.0) * (max_y - min_y)
        if h3i.latlng_to_cell(y, x, FLOOR) == cell:
            return y, x
    return h3i.cell_to_latlng(cell)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member_index=st.integers(0, 2999), u=st.floats(0, 0.999), v=st.floats(0, 0.999))
def test_published_output_is_identical_when_a_point_moves_within_its_cell(
    rollback_session: Session, community_deriver: KeyDeriver, member_index: int, u: float,
    v: float,
) -> None:
    session = rollback_session
    member_id, cell = session.execute(
        text("SELECT member_id, floor_cell FROM member_locations ORDER BY member_id "
             "OFFSET :i LIMIT 1"),
        {"i": member_index},
    ).one()
    lat, lng = random_point_in_cell(cell, u, v)
    publish(session, k=K, floor=FLOOR)
    before = published_rows(session)
    savepoint = session.begin_nested()
    keys = community_deriver.derive(np.array([lat]), np.array([lng]))
    assert int(keys.floor_cells[0]) == cell
    session.execute(
        text("UPDATE member_locations SET location = ST_MakePoint(:lng, :lat)::geography, "
             "floor_cell = :cell WHERE member_id = :id"),
        {"lng": lng, "lat": lat, "cell": int(keys.floor_cells[0]), "id": member_id},
    )
    publish(session, k=K, floor=FLOOR)
    assert published_rows(session) == before
    savepoint.rollback()


def test_bulk_load_derives_keys(rollback_session: Session,
                                community_deriver: KeyDeriver) -> None:
    batch = MemberBatch(
        pseudonyms=["hamburg-one", "offshore-two"],
        roles=["patient", "carer"],
        visibilities=["map", "map"],
        contactable=[True, False],
        joined_at=[np.datetime64("2026-01-01").astype(object)] * 2,
        lats=np.array([53.55, 0.0]),
        lngs=np.array([9.99, -30.0]),
        conditions=[[1], [1, 2]],
    )
    ids = load_members(rollback_session, batch, community_deriver)
    rows = rollback_session.execute(
        text("SELECT member_id, country_code, region_code, floor_cell FROM member_locations "
             "WHERE member_id = ANY(:ids) ORDER BY member_id"),
        {"ids": ids.tolist()},
    ).all()
    assert rows[0][1:3] == ("DE", "DE.04")
    assert rows[0][3] == h3i.latlng_to_cell(53.55, 9.99, FLOOR)
    assert rows[1][1:3] == (None, None)  # mid-Atlantic: no country
