"""The public read path cannot reach member tables, by construction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from geomap.database import make_engine, make_public_engine

PACKAGE = Path(__file__).resolve().parents[1] / "geomap"
PRIVATE_TABLES = ("member_locations", "members", "member_conditions", "accounts")


@pytest.mark.parametrize("table", PRIVATE_TABLES)
def test_public_role_cannot_read_member_tables(community_url: str, table: str) -> None:
    engine = make_public_engine(community_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == "geomap_public"
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"SELECT * FROM {table} LIMIT 1"))
    finally:
        engine.dispose()


def test_public_role_reads_published_aggregates(community_url: str) -> None:
    engine = make_public_engine(community_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM published_cells")).scalar() > 0
            assert conn.execute(text("SELECT count(*) FROM published_regions")).scalar() > 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("make", [make_engine, make_public_engine])
def test_statements_are_never_jit_compiled(community_url: str, make) -> None:
    """A large viewport's estimate passed jit_above_cost once analysed: 82 ms of JIT."""
    from geomap.publish import published

    engine = make(community_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW jit")).scalar() == "off"
            conn.execute(text("SET jit_above_cost = 0"))  # whatever the estimate
            where, params = published._viewport_where("all", 2, None, None)
            plan = "\n".join(conn.execute(text(
                "EXPLAIN (ANALYZE) " + published._VIEWPORT_JSON_SQL.format(where=where)),
                params).scalars())
            assert "JIT:" not in plan
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", ["published_totals", "publish_runs"])
def test_public_role_cannot_read_the_true_member_count(community_url: str, table: str) -> None:
    """``members_on_map`` includes the unpublished remainder: operators only."""
    engine = make_public_engine(community_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT count(version) FROM {table}")).scalar() > 0
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"SELECT members_on_map FROM {table} LIMIT 1"))
    finally:
        engine.dispose()


def test_public_views_use_only_the_public_session() -> None:
    for module in ("web/pages.py", "web/api.py", "web/embed.py"):
        tree = ast.parse((PACKAGE / module).read_text())
        attributes = {
            node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "db"
        }
        assert attributes <= {"public_session"}, (module, attributes)
