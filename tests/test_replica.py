"""The public read path served from a streaming replica (GEOMAP_REPLICA_URL).

The standby is a real hot standby of the suite's cluster (``pg_basebackup -R``,
tests/conftest.py ``standby_cluster``): what the app's public API answers from it is
what the primary published, once the standby has replayed that far.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from geomap import create_app, embedded_pg
from geomap.database import db
from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.publish import publish
from geomap.session import session_scope
from geomap.web.api import cells_cache
from tests.conftest import FLOOR, K, app_config
from tests.test_auth import sign_up

REPLAY_DEADLINE = 120.0  # seconds; a generous bound on a loaded CI machine, not a figure


def replica_url_of(primary_url: str, standby: embedded_pg.Cluster) -> str:
    """Return ``primary_url`` with the standby's port: the same database, replicated."""
    return make_url(primary_url).set(port=standby.port).render_as_string(hide_password=False)


def wait_for_replay(primary: Engine, replica: Engine) -> None:
    """Wait until the replica has replayed everything the primary has written so far.

    The replay position is read through the standby's ``postgres`` database: the test's
    own database may not exist there yet (its CREATE DATABASE is replayed too).
    """
    with primary.connect() as conn:
        lsn = conn.execute(text("SELECT pg_current_wal_lsn()")).scalar_one()
    standby = create_engine(replica.url.set(database="postgres"))
    deadline = time.monotonic() + REPLAY_DEADLINE
    try:
        while True:
            with standby.connect() as conn:
                caught_up = conn.execute(
                    text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"),
                    {"lsn": lsn},
                ).scalar_one()
            if caught_up:
                return
            assert time.monotonic() < deadline, f"the standby did not replay up to {lsn}"
            time.sleep(0.05)
    finally:
        standby.dispose()


def add_members(engine: Engine, n: int, lat: float, lng: float) -> None:
    """Load ``n`` members on the map at one place, with condition 1."""
    with session_scope(engine) as session:
        batch = MemberBatch(
            pseudonyms=None, roles=["patient"] * n, visibilities=["map"] * n,
            contactable=[True] * n, joined_at=[datetime(2026, 1, 1, tzinfo=UTC)] * n,
            lats=np.full(n, lat), lngs=np.full(n, lng), conditions=[[1]] * n,
        )
        load_members(session, batch, KeyDeriver(session, FLOOR))


def publish_on(engine: Engine) -> None:
    """Publish on ``engine`` (the primary)."""
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)


@pytest.fixture
def replica_setup(fresh_db_url: str, standby_cluster: embedded_pg.Cluster, tmp_path):
    """An app on a fresh primary database whose public reads go to the standby."""
    replica_url = replica_url_of(fresh_db_url, standby_cluster)
    primary = create_engine(fresh_db_url)
    replica = create_engine(replica_url)
    add_members(primary, 40, 48.85, 2.35)
    publish_on(primary)
    wait_for_replay(primary, replica)
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                GEOMAP_REPLICA_URL=replica_url))
    try:
        yield app, primary, replica
    finally:
        with replica.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_resume()"))
        for engine in (db_engines(app)):
            engine.dispose()
        primary.dispose()
        replica.dispose()


def db_engines(app) -> list[Engine]:  # noqa: ANN001
    """Return the engines of ``app``'s full and public sessions."""
    return [app.extensions[key].kw["bind"]
            for key in ("geomap.sessions", "geomap.public_sessions")]


def published_total(client, slug: str = "all") -> int:  # noqa: ANN001
    """Return the published member total of ``slug`` from the public conditions list."""
    listing = client.get("/api/v1/conditions").get_json()["conditions"]
    return next(c["published_members"] for c in listing if c["slug"] == slug)


def test_the_replica_is_a_read_only_hot_standby(replica_setup) -> None:
    _app, primary, replica = replica_setup
    with replica.connect() as conn:
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
        with pytest.raises(Exception, match="read-only transaction"):
            conn.execute(text("CREATE TABLE replica_write_probe (x int)"))
    with primary.connect() as conn:
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False


def test_public_api_shows_a_publish_once_the_replica_has_replayed_it(replica_setup) -> None:
    app, primary, replica = replica_setup
    client = app.test_client()
    assert published_total(client) == 40
    first = client.get("/api/v1/conditions/all/cells?zoom=3").get_json()
    assert first["properties"]["total"] == 40
    first_version = first["properties"]["publish_version"]
    assert client.get("/healthz").get_json()["publish_version"] == first_version

    # Replay paused: a publish on the primary is not seen, since reads go to the replica.
    with replica.connect() as conn:
        conn.execute(text("SELECT pg_wal_replay_pause()"))
    add_members(primary, 25, -33.87, 151.21)
    publish_on(primary)
    assert published_total(client) == 40
    assert client.get("/healthz").get_json()["publish_version"] == first_version

    with replica.connect() as conn:
        conn.execute(text("SELECT pg_wal_replay_resume()"))
    wait_for_replay(primary, replica)
    with app.app_context():
        cells_cache().clear()  # the worker's version check would see it within a second
    assert published_total(client) == 65
    later = client.get("/api/v1/conditions/all/cells?zoom=3").get_json()
    assert later["properties"]["total"] == 65
    assert later["properties"]["publish_version"] > first_version
    assert sum(f["properties"]["count"] for f in later["features"]) == 65
    regions = client.get("/api/v1/conditions/all/regions?level=country").get_json()
    assert {"AU", "FR"} <= {row["code"] for row in regions["regions"]}


def test_writes_go_to_the_primary_never_to_the_replica(replica_setup) -> None:
    app, primary, _replica = replica_setup
    with app.app_context():
        assert db.session.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False
        assert db.public_session.execute(text("SELECT pg_is_in_recovery()")).scalar_one()
    client = app.test_client()
    response = sign_up(client, pseudonym="replica-otter", email="replica@example.org")
    assert response.status_code == 302 and response.headers["Location"] == "/signup/sent"
    with primary.connect() as conn:
        assert conn.execute(text(
            "SELECT count(*) FROM members WHERE pseudonym = 'replica-otter'")).scalar_one() == 1


def test_without_a_replica_public_reads_use_the_main_database(app, community_url) -> None:
    with app.app_context():
        port, recovering = db.public_session.execute(
            text("SELECT inet_server_port(), pg_is_in_recovery()")).one()
    assert port == make_url(community_url).port and recovering is False
