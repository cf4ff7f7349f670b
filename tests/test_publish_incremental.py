"""Incremental publish on a real PostGIS: it gives exactly what a full publish gives."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import h3.api.basic_int as h3i
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.publish import EXTRA_PUBLISHERS, publish
from tests.conftest import DEMO_MEMBERS, FLOOR, K


def snapshot(session: Session) -> tuple[list, ...]:
    """Every published row, the stored floor counts and leftovers, in a fixed order.

    Region and symptom rows without their version (the publish that last wrote them).
    """
    cells = session.execute(
        text("SELECT condition_id, resolution, cell, cell_resolution, count, lat, lng "
             "FROM published_cells ORDER BY 1, 2, 3")
    ).all()
    totals = session.execute(
        text("SELECT condition_id, resolution, members_on_map, published "
             "FROM published_totals ORDER BY 1, 2")
    ).all()
    floor = session.execute(
        text("SELECT condition_id, floor_cell, members FROM publish_floor_counts ORDER BY 1, 2")
    ).all()
    regions = session.execute(
        text("SELECT condition_id, level, code, country_code, name, count "
             "FROM published_regions ORDER BY 1, 2, 3")
    ).all()
    symptoms = session.execute(
        text("SELECT condition_id, term_id, members, reporting FROM published_symptoms "
             "ORDER BY 1, 2")
    ).all()
    leftovers = session.execute(
        text("SELECT condition_id, cell, members FROM publish_leftovers ORDER BY 1, 2")
    ).all()
    return cells, totals, floor, regions, symptoms, leftovers


def dirty_deltas(session: Session) -> set[tuple[int, int, int]]:
    return set(
        session.execute(text("SELECT condition_id, floor_cell, delta FROM publish_dirty")).all()
    )


def member_on_map(session: Session, index: int) -> tuple[int, int]:
    return session.execute(
        text("SELECT ml.member_id, ml.floor_cell FROM member_locations ml "
             "JOIN members m ON m.id = ml.member_id AND m.visibility = 'map' "
             "ORDER BY ml.member_id OFFSET :i LIMIT 1"),
        {"i": index},
    ).one()


def member_at(session: Session, index: int) -> tuple[int, int, float, float]:
    return session.execute(
        text("SELECT member_id, floor_cell, ST_Y(location::geometry), ST_X(location::geometry) "
             "FROM member_locations ORDER BY member_id OFFSET :i LIMIT 1"),
        {"i": index % session.execute(text("SELECT count(*) FROM member_locations")).scalar_one()},
    ).one()


def test_publish_is_incremental_after_a_full_one(rollback_session: Session) -> None:
    first = publish(rollback_session, k=K, floor=FLOOR, full=True)
    second = publish(rollback_session, k=K, floor=FLOOR)
    assert (first.kind, second.kind) == ("full", "incremental")
    assert second.rows_written == 0
    assert second.version == first.version + 1
    assert second.published_cells == first.published_cells


def test_a_changed_k_forces_a_full_publish(rollback_session: Session) -> None:
    publish(rollback_session, k=K, floor=FLOOR)
    assert publish(rollback_session, k=K + 1, floor=FLOOR).kind == "full"


def test_hiding_a_member_records_minus_one_in_their_cell(rollback_session: Session) -> None:
    session = rollback_session
    publish(session, k=K, floor=FLOOR)
    member_id, cell = member_on_map(session, 10)
    conditions = session.execute(
        text("SELECT condition_id FROM member_conditions WHERE member_id = :m"), {"m": member_id}
    ).scalars().all()
    session.execute(text("UPDATE members SET visibility = 'hidden' WHERE id = :m"),
                    {"m": member_id})
    assert dirty_deltas(session) == {(c, cell, -1) for c in conditions}
    session.execute(text("UPDATE members SET visibility = 'map' WHERE id = :m"),
                    {"m": member_id})
    assert dirty_deltas(session) == {(c, cell, 0) for c in conditions}
    publish(session, k=K, floor=FLOOR)
    assert dirty_deltas(session) == set()


def test_deleting_a_member_records_minus_one_once(rollback_session: Session) -> None:
    session = rollback_session
    publish(session, k=K, floor=FLOOR)
    member_id, cell = member_on_map(session, 20)
    conditions = session.execute(
        text("SELECT condition_id FROM member_conditions WHERE member_id = :m"), {"m": member_id}
    ).scalars().all()
    session.execute(text("DELETE FROM members WHERE id = :m"), {"m": member_id})
    assert dirty_deltas(session) == {(c, cell, -1) for c in conditions}


def test_moving_a_member_records_minus_one_and_plus_one(rollback_session: Session) -> None:
    session = rollback_session
    publish(session, k=K, floor=FLOOR)
    member_id, cell = member_on_map(session, 30)
    _other, to_cell = member_on_map(session, 1500)
    assume_cells_differ = cell != to_cell
    session.execute(text("UPDATE member_locations SET floor_cell = :f WHERE member_id = :m"),
                    {"f": to_cell, "m": member_id})
    deltas = dirty_deltas(session)
    if assume_cells_differ:
        assert {(f, d) for _c, f, d in deltas} == {(cell, -1), (to_cell, 1)}


def test_a_bypassed_trigger_is_caught_and_recounted(rollback_session: Session) -> None:
    session = rollback_session
    publish(session, k=K, floor=FLOOR, full=True)
    member_id, _cell = member_on_map(session, 40)
    empty_cell = h3i.latlng_to_cell(0.0, -30.0, FLOOR)  # mid-Atlantic: nobody there
    session.execute(text("SELECT set_config('geomap.track_dirty', 'off', true)"))
    session.execute(text("UPDATE member_locations SET floor_cell = :f WHERE member_id = :m"),
                    {"f": empty_cell, "m": member_id})  # not recorded: counts go stale
    session.execute(text("SELECT set_config('geomap.track_dirty', 'on', true)"))
    session.execute(text("UPDATE members SET visibility = 'hidden' WHERE id = :m"),
                    {"m": member_id})  # -1 in a cell whose stored count is 0
    publish(session, k=K, floor=FLOOR)
    after_incremental = snapshot(session)
    publish(session, k=K, floor=FLOOR, full=True)
    assert after_incremental == snapshot(session)


def test_extra_publishers_run_after_the_cells(rollback_session: Session) -> None:
    calls = []

    def count_markers(session: Session, version: int, k: int, floor: int) -> None:
        markers = session.execute(text("SELECT count(*) FROM published_cells")).scalar_one()
        calls.append((version, k, floor, markers))

    EXTRA_PUBLISHERS.append(count_markers)
    try:
        summary = publish(rollback_session, k=K, floor=FLOOR)
    finally:
        EXTRA_PUBLISHERS.remove(count_markers)
    assert calls == [(summary.version, K, FLOOR, summary.published_cells)]


change = st.one_of(
    st.tuples(st.just("move"), st.integers(0, DEMO_MEMBERS - 1), st.integers(0, DEMO_MEMBERS - 1)),
    st.tuples(st.just("visibility"), st.integers(0, DEMO_MEMBERS - 1),
              st.sampled_from(["map", "country", "hidden"])),
    st.tuples(st.just("add_condition"), st.integers(0, DEMO_MEMBERS - 1), st.integers(1, 11)),
    st.tuples(st.just("drop_conditions"), st.integers(0, DEMO_MEMBERS - 1), st.just(0)),
    st.tuples(st.just("delete"), st.integers(0, DEMO_MEMBERS - 1), st.just(0)),
    st.tuples(st.just("join"), st.integers(0, DEMO_MEMBERS - 1), st.integers(1, 12)),
)


def apply_change(session: Session, deriver: KeyDeriver, kind: str, index: int,
                 value: object) -> None:
    member_id, _cell, lat, lng = member_at(session, index)
    if kind == "move":
        _other, cell, to_lat, to_lng = member_at(session, int(value))
        session.execute(
            text("UPDATE member_locations SET location = ST_MakePoint(:lng, :lat)::geography, "
                 "floor_cell = :cell WHERE member_id = :m"),
            {"lng": to_lng, "lat": to_lat, "cell": cell, "m": member_id},
        )
    elif kind == "visibility":
        session.execute(text("UPDATE members SET visibility = :v WHERE id = :m"),
                        {"v": value, "m": member_id})
    elif kind == "add_condition":
        session.execute(
            text("INSERT INTO member_conditions (condition_id, member_id) VALUES (:c, :m) "
                 "ON CONFLICT DO NOTHING"),
            {"c": value, "m": member_id},
        )
    elif kind == "drop_conditions":
        session.execute(text("DELETE FROM member_conditions WHERE member_id = :m"),
                        {"m": member_id})
    elif kind == "delete":
        session.execute(text("DELETE FROM members WHERE id = :m"), {"m": member_id})
    elif kind == "join":
        n = int(value)
        batch = MemberBatch(
            pseudonyms=None, roles=["patient"] * n, visibilities=["map"] * n,
            contactable=[True] * n, joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * n,
            lats=np.full(n, lat), lngs=np.full(n, lng), conditions=[[1 + i % 3] for i in range(n)],
        )
        load_members(session, batch, deriver)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(change, min_size=1, max_size=12))
def test_incremental_publish_equals_a_full_publish(
    rollback_session: Session, community_deriver: KeyDeriver, changes: list
) -> None:
    session = rollback_session
    savepoint = session.begin_nested()
    try:
        publish(session, k=K, floor=FLOOR)
        for kind, index, value in changes:
            apply_change(session, community_deriver, kind, index, value)
        incremental = publish(session, k=K, floor=FLOOR)
        after_incremental = snapshot(session)
        full = publish(session, k=K, floor=FLOOR, full=True)
        assert incremental.kind == "incremental" and full.kind == "full"
        assert after_incremental == snapshot(session)
        assert incremental.members_on_map == full.members_on_map
    finally:
        savepoint.rollback()  # every example starts from the same community


def test_a_publish_waits_for_a_writer_in_flight_and_applies_its_change(
    fresh_db_url: str,
) -> None:
    from sqlalchemy import create_engine

    from geomap.session import session_scope

    engine = create_engine(fresh_db_url)
    try:
        with session_scope(engine) as session:
            n = 40
            batch = MemberBatch(
                pseudonyms=None, roles=["patient"] * n, visibilities=["map"] * n,
                contactable=[True] * n, joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * n,
                lats=np.full(n, 48.85), lngs=np.full(n, 2.35), conditions=[[1]] * n,
            )
            ids = load_members(session, batch, KeyDeriver(session, FLOOR))
        with session_scope(engine) as session:
            before = publish(session, k=K, floor=FLOOR)
        writer = engine.connect()
        writer_tx = writer.begin()
        writer.execute(text("UPDATE members SET visibility = 'hidden' WHERE id = :m"),
                       {"m": int(ids[0])})
        results = []

        def run_publish() -> None:
            with session_scope(engine) as session:
                results.append(publish(session, k=K, floor=FLOOR))

        publisher = threading.Thread(target=run_publish)
        publisher.start()
        publisher.join(timeout=1.0)
        assert publisher.is_alive()  # waiting for the writer's transaction
        writer_tx.commit()
        writer.close()
        publisher.join(timeout=30)
        assert results[0].kind == "incremental"
        assert results[0].members_on_map == before.members_on_map - 1
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM publish_dirty")).scalar_one() == 0
    finally:
        engine.dispose()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1), max_size=50))
def test_bigint_array_parameter_round_trips(rollback_session: Session, values: list[int]) -> None:
    """The publish's binary bigint[] parameter reaches PostgreSQL unchanged, empty too."""
    from geomap.publish.step import _array, _fetch_ints, _send_arrays_binary

    _send_arrays_binary(rollback_session)
    back = _fetch_ints(rollback_session, "SELECT v, i FROM unnest(CAST(%(a)s AS bigint[])) "
                       "WITH ORDINALITY AS t (v, i) ORDER BY i",
                       {"a": _array(np.array(values, dtype=np.int64))}, 2)
    assert back[:, 0].tolist() == values
    length = rollback_session.execute(text("SELECT cardinality(CAST(:a AS smallint[]))"),
                                      {"a": _array(np.array(values[:3], np.int64) % 100)}
                                      ).scalar_one()
    assert length == len(values[:3])


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1), max_size=50))
def test_bigint_array_result_loads_as_numpy(rollback_session: Session, values: list[int]) -> None:
    """A binary bigint[] result comes back as the same integers, in order; none as empty."""
    from geomap.publish.step import _array, _fetch_columns, _send_arrays_binary

    _send_arrays_binary(rollback_session)
    back, order = _fetch_columns(
        rollback_session, "SELECT array_agg(v ORDER BY i), array_agg(i ORDER BY i) "
        "FROM unnest(CAST(%(a)s AS bigint[])) WITH ORDINALITY AS t (v, i)",
        {"a": _array(np.array(values, dtype=np.int64))}, 2)
    assert back.dtype == np.int64 and back.tolist() == values
    assert order.tolist() == list(range(1, len(values) + 1))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 16 - 1)),
                max_size=50))
def test_row_addresses_round_trip(rollback_session: Session,
                                  addresses: list[tuple[int, int]]) -> None:
    """Row addresses (ctid) go to PostgreSQL as a binary tid[] and come back unchanged."""
    from geomap.publish.step import TidArray, _fetch_columns, _send_arrays_binary

    _send_arrays_binary(rollback_session)
    packed = np.array([(block << 16) | offset for block, offset in addresses], np.int64)
    as_text, back = _fetch_columns(
        rollback_session, "SELECT array_agg(length(t::text)::bigint ORDER BY i), "
        "array_agg(t ORDER BY i) FROM unnest(CAST(%(t)s AS tid[])) WITH ORDINALITY AS u (t, i)",
        {"t": TidArray(packed)}, 2)
    assert back.tolist() == packed.tolist()
    assert as_text.tolist() == [len(f"({block},{offset})") for block, offset in addresses]
