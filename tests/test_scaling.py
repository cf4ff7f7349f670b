"""The schema stays ready for distribution by condition (docs/scaling.md)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# Tables that grow with the membership and hold per-condition data: Citus distributes
# them by condition_id, which therefore has to be in their primary key.
LARGE_PER_CONDITION_TABLES = (
    "member_conditions",
    "published_cells",
    "published_totals",
    "publish_floor_counts",
    "publish_leftovers",
    "publish_dirty",
)
# Tables with a condition_id that stay small (one row per condition or so) and may key
# otherwise; add a table here only with a reason.
# catalogue_entries: the condition catalogue (~17,000 rows, a Citus reference table);
# its condition_id only links an entry to its map.
SMALL_TABLES: frozenset[str] = frozenset({"catalogue_entries"})
# Per-member tables: distributed by member id instead (documented in the guide).
PER_MEMBER_TABLES = ("members", "member_locations")


def primary_key(session: Session, table: str) -> list[str]:
    return session.execute(
        text(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)"
        ),
        {"t": table},
    ).scalars().all()


def test_every_large_table_has_condition_id_first_in_its_primary_key(
    rollback_session: Session,
) -> None:
    for table in LARGE_PER_CONDITION_TABLES:
        assert primary_key(rollback_session, table)[0] == "condition_id", table


def test_every_table_with_a_condition_id_column_keys_on_it(rollback_session: Session) -> None:
    tables = rollback_session.execute(
        text(
            "SELECT c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND c.column_name = 'condition_id' "
            "AND t.table_type = 'BASE TABLE'"
        )
    ).scalars().all()
    missing = [
        t for t in tables
        if t not in SMALL_TABLES and "condition_id" not in primary_key(rollback_session, t)
    ]
    assert missing == []
    assert set(LARGE_PER_CONDITION_TABLES) <= set(tables)


def test_per_member_tables_key_on_the_member(rollback_session: Session) -> None:
    assert primary_key(rollback_session, "members") == ["id"]
    assert primary_key(rollback_session, "member_locations") == ["member_id"]
