"""Incremental private snapshots (admin counts, nearby index) equal a full rebuild."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.publish import publish, refresh_snapshots
from geomap.publish.snapshots import take_dirty_members, wants_full_rebuild
from tests.conftest import DEMO_MEMBERS, FLOOR, K
from tests.test_publish_incremental import member_at


def snapshots(session: Session) -> tuple[list, list, list, list]:
    """Every row of the private snapshots, in a fixed order."""
    regions = session.execute(
        text("SELECT condition_id, country_code, region_code, role, count, region_name "
             "FROM admin_region_counts ORDER BY 1, 2, 3, 4")
    ).all()
    months = session.execute(
        text("SELECT condition_id, country_code, month, count FROM admin_monthly_joins "
             "ORDER BY 1, 2, 3")
    ).all()
    nearby = session.execute(
        text("SELECT condition_id, floor_cell, member_id, role, order_key FROM nearby_members "
             "ORDER BY 1, 2, 3")
    ).all()
    counted = session.execute(text("SELECT * FROM admin_counted ORDER BY member_id")).all()
    return regions, months, nearby, counted


def dirty_members(session: Session) -> set[int]:
    return set(session.execute(text("SELECT member_id FROM snapshot_dirty")).scalars())


def settle(session: Session) -> None:
    """Publish and refresh so that nothing is marked (the state every example starts from)."""
    publish(session, k=K, floor=FLOOR, snapshots=False)
    refresh_snapshots(session)
    assert dirty_members(session) == set()


MEMBER = st.integers(0, DEMO_MEMBERS - 1)
change = st.one_of(
    st.tuples(st.just("move"), MEMBER, MEMBER),
    st.tuples(st.just("visibility"), MEMBER, st.sampled_from(["map", "country", "hidden"])),
    st.tuples(st.just("contactable"), MEMBER, st.booleans()),
    st.tuples(st.just("suspend"), MEMBER, st.booleans()),
    st.tuples(st.just("role"), MEMBER, st.sampled_from(["patient", "carer", "researcher"])),
    st.tuples(st.just("joined"), MEMBER, st.integers(0, 30)),
    st.tuples(st.just("add_condition"), MEMBER, st.integers(1, 11)),
    st.tuples(st.just("drop_conditions"), MEMBER, st.just(0)),
    st.tuples(st.just("drop_location"), MEMBER, st.just(0)),
    st.tuples(st.just("delete"), MEMBER, st.just(0)),
    st.tuples(st.just("join"), MEMBER, st.integers(1, 12)),
)


def apply_change(session: Session, deriver: KeyDeriver, kind: str, index: int,
                 value: object) -> None:
    """Apply one change of the kind a member, a moderator or an import makes."""
    member_id, _cell, lat, lng = member_at(session, index)
    params = {"m": member_id, "v": value}
    if kind == "move":
        _other, cell, to_lat, to_lng = member_at(session, int(value))
        session.execute(
            text("UPDATE member_locations SET location = ST_MakePoint(:lng, :lat)::geography, "
                 "floor_cell = :cell WHERE member_id = :m"),
            {"lng": to_lng, "lat": to_lat, "cell": cell, "m": member_id},
        )
    elif kind == "visibility":
        session.execute(text("UPDATE members SET visibility = :v WHERE id = :m"), params)
    elif kind == "contactable":
        session.execute(text("UPDATE members SET contactable = :v WHERE id = :m"), params)
    elif kind == "suspend":
        session.execute(
            text("UPDATE members SET suspended_at = CASE WHEN :v THEN now() END WHERE id = :m"),
            params,
        )
    elif kind == "role":
        session.execute(text("UPDATE members SET role = :v WHERE id = :m"), params)
    elif kind == "joined":
        session.execute(
            text("UPDATE members SET joined_at = joined_at - make_interval(days => :v * 17) "
                 "WHERE id = :m"),
            params,
        )
    elif kind == "add_condition":
        session.execute(
            text("INSERT INTO member_conditions (condition_id, member_id) VALUES (:v, :m) "
                 "ON CONFLICT DO NOTHING"),
            params,
        )
    elif kind == "drop_conditions":
        session.execute(text("DELETE FROM member_conditions WHERE member_id = :m"), params)
    elif kind == "drop_location":
        session.execute(text("DELETE FROM member_locations WHERE member_id = :m"), params)
    elif kind == "delete":
        session.execute(text("DELETE FROM members WHERE id = :m"), params)
    elif kind == "join":
        n = int(value)
        batch = MemberBatch(
            pseudonyms=None, roles=["carer"] * n, visibilities=["map"] * n,
            contactable=[i % 2 == 0 for i in range(n)],
            joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * n,
            lats=np.full(n, lat), lngs=np.full(n, lng),
            conditions=[[1 + i % 3] for i in range(n)],
        )
        load_members(session, batch, deriver)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(change, min_size=1, max_size=12))
def test_incremental_snapshots_equal_a_full_rebuild(
    rollback_session: Session, community_deriver: KeyDeriver, changes: list
) -> None:
    session = rollback_session
    savepoint = session.begin_nested()
    try:
        settle(session)
        for kind, index, value in changes:
            apply_change(session, community_deriver, kind, index, value)
        marked = take_dirty_members(session)
        assert not wants_full_rebuild(session, marked)  # the incremental path is tested
        session.execute(text("INSERT INTO snapshot_dirty SELECT unnest(CAST(:ids AS bigint[]))"),
                        {"ids": marked.tolist()})
        summary = publish(session, k=K, floor=FLOOR)  # incremental, snapshots with it
        assert summary.kind == "incremental"
        assert dirty_members(session) == set()
        after_incremental = snapshots(session)
        refresh_snapshots(session, full=True)
        assert after_incremental == snapshots(session)
    finally:
        savepoint.rollback()  # every example starts from the same community


def test_a_change_marks_only_the_member_it_touches(rollback_session: Session) -> None:
    session = rollback_session
    settle(session)
    member_id, *_ = member_at(session, 7)
    session.execute(text("UPDATE members SET introduction = 'hello' WHERE id = :m"),
                    {"m": member_id})
    assert dirty_members(session) == set()  # nothing the snapshots count changed
    session.execute(text("UPDATE members SET contactable = NOT contactable WHERE id = :m"),
                    {"m": member_id})
    assert dirty_members(session) == {member_id}


def test_an_unchanged_community_refreshes_without_writing(rollback_session: Session) -> None:
    session = rollback_session
    settle(session)
    before = snapshots(session)
    refresh_snapshots(session)
    assert snapshots(session) == before


def test_a_truncate_or_new_polygons_ask_for_a_full_rebuild(rollback_session: Session) -> None:
    session = rollback_session
    settle(session)
    assert not wants_full_rebuild(session, take_dirty_members(session))
    session.execute(text("UPDATE snapshot_state SET places_key = 'other polygons'"))
    assert wants_full_rebuild(session, take_dirty_members(session))
    refresh_snapshots(session)
    assert not wants_full_rebuild(session, take_dirty_members(session))
    session.execute(text("TRUNCATE snapshot_state"))
    assert wants_full_rebuild(session, take_dirty_members(session))


def test_a_large_import_asks_for_a_full_rebuild(rollback_session: Session,
                                               community_deriver: KeyDeriver) -> None:
    session = rollback_session
    settle(session)
    from geomap.ingest import members_bulk

    n = 30
    batch = MemberBatch(
        pseudonyms=None, roles=["patient"] * n, visibilities=["map"] * n,
        contactable=[True] * n, joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * n,
        lats=np.full(n, 48.85), lngs=np.full(n, 2.35), conditions=[[1]] * n,
    )
    ids = load_members(session, batch, community_deriver)
    assert dirty_members(session) == set(ids.tolist())
    members_bulk.mark_snapshots_dirty(session, 1, members_bulk.SNAPSHOT_MARK_MAX + 1)
    assert 0 in dirty_members(session)
    assert wants_full_rebuild(session, take_dirty_members(session))


def test_after_a_full_rebuild_a_small_share_of_changes_stays_incremental(
        rollback_session: Session, monkeypatch) -> None:
    """The full-or-incremental choice reads the counted members right after a rebuild.

    A full rebuild TRUNCATEs ``admin_counted`` (its reltuples becomes -1); read as no
    members, every change of more than ``INCREMENTAL_MIN`` members rebuilt everything
    (a 1 % change at 3,000,000 members did). Here the minimum is lowered so that a
    handful of marks stands for that change.
    """
    from geomap.publish import snapshots as snapshots_module

    session = rollback_session
    settle(session)
    refresh_snapshots(session, full=True)
    counted = session.execute(text("SELECT count(*) FROM admin_counted")).scalar_one()
    assert snapshots_module.counted_members(session) == counted
    assert counted >= 40
    monkeypatch.setattr(snapshots_module, "INCREMENTAL_MIN", 2)
    few = np.arange(1, 6, dtype=np.int64)  # 5 marks: above the minimum, under 25 %
    assert not wants_full_rebuild(session, few)
    many = np.arange(1, counted // 4 + 2, dtype=np.int64)  # over 25 % of the counted
    assert wants_full_rebuild(session, many)


def test_counted_members_without_statistics_is_exact(rollback_session: Session) -> None:
    from geomap.publish.snapshots import counted_members

    session = rollback_session
    settle(session)
    counted = session.execute(text("SELECT count(*) FROM admin_counted")).scalar_one()
    rows = session.execute(text("SELECT * FROM admin_counted")).all()
    session.execute(text("TRUNCATE admin_counted"))  # reltuples -1: no statistics
    assert session.execute(text(
        "SELECT reltuples FROM pg_class WHERE oid = 'admin_counted'::regclass")).scalar_one() < 0
    assert counted_members(session) == 0
    columns = ", ".join(rows[0]._fields)
    params = ", ".join(f":{c}" for c in rows[0]._fields)
    session.execute(text(f"INSERT INTO admin_counted ({columns}) VALUES ({params})"),
                    [r._asdict() for r in rows])
    assert counted_members(session) == counted


def test_marked_members_probe_the_member_tables_by_index(rollback_session: Session) -> None:
    """The nearby rows of marked members are read by index, whatever the statistics say.

    With joins limited to nested loops (``index_probes``), member tables without
    statistics (a bulk load not yet analysed) were scanned whole once per marked member:
    3.1 s instead of 0.02 s for 961 marked members of 100,000 (bench/compare.py). The
    statement now runs with sequential scans off; its plan is read as it runs.
    """
    from sqlalchemy import event

    from geomap.publish.nearby_index import MARKED_WANTED_SQL, update_nearby_members

    session = rollback_session
    settle(session)
    seen: list[tuple[str, str]] = []

    def explain(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if statement == MARKED_WANTED_SQL or statement.startswith("DELETE FROM nearby_members"):
            probe = cursor.connection.cursor()
            probe.execute("SHOW enable_seqscan")
            setting = probe.fetchone()[0]
            probe.execute("EXPLAIN " + statement)
            seen.append((setting, "\n".join(row[0] for row in probe.fetchall())))

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", explain)
    try:
        update_nearby_members(session, [1, 2, 3])
    finally:
        event.remove(connection, "before_cursor_execute", explain)
    [(setting, wanted), (_setting, delete)] = seen
    assert setting == "off"
    for table in ("members", "member_locations", "member_conditions"):
        assert f"Seq Scan on {table} " not in wanted, wanted
    # The stale rows are found by probing the member index with the marked ids, not by
    # walking all of nearby_members (9,849 marked of 1,000,000 members took 1.3 s).
    assert "Index Cond: (member_id = ANY" in delete, delete
    assert "Seq Scan on nearby_members" not in delete, delete
    # The settings are back as they were.
    assert session.execute(text("SELECT current_setting('enable_seqscan'), "
                                "current_setting('enable_hashjoin')")).one() == ("on", "on")
