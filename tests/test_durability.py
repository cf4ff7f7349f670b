"""Committed means kept: a PostgreSQL crash loses no write the app has acknowledged.

The test runs its own embedded cluster (the session cluster is not disturbed), lets
writer threads change locations (API) and join conditions (settings page) through the
app, kills PostgreSQL with ``pg_ctl stop -m immediate`` mid-run, restarts it and checks
that every write answered 200/302 is there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from geomap import create_app, embedded_pg
from geomap.config import load_settings
from geomap.geo import reference
from geomap.migrate import upgrade
from geomap.session import session_scope
from tests.conftest import app_config, free_port
from tests.members_helpers import add_member, sign_in

WRITERS = 4
ACKS_BEFORE_CRASH = 120


@pytest.fixture
def crash_cluster(tmp_path: Path) -> Iterator[embedded_pg.Cluster]:
    """An embedded cluster of this test only, with the schema and reference data."""
    settings = load_settings({"GEOMAP_DATA_DIR": str(tmp_path / "data"),
                              "GEOMAP_DB_PORT": str(free_port())})
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    try:
        engine = create_engine(cluster.url)
        upgrade(engine)
        with session_scope(engine) as session:
            reference.import_places(session)
            reference.import_countries(session)
        engine.dispose()
        yield cluster
    finally:
        embedded_pg.destroy(cluster)


def _setting(cluster: embedded_pg.Cluster, name: str) -> str:
    engine = create_engine(cluster.url)
    with engine.connect() as conn:
        value = conn.execute(text(f"SHOW {name}")).scalar_one()
    engine.dispose()
    return value


class Writer(threading.Thread):
    """Signed in as one member: alternates location changes and condition joins."""

    def __init__(self, app, account_id: int, member_id: int, index: int,  # noqa: ANN001
                 acked: list[int]) -> None:
        super().__init__(daemon=True)
        self.client = app.test_client()
        sign_in(self.client, account_id)
        self.member_id = member_id
        self.index = index
        self.acked = acked  # shared counter of acknowledged writes
        self.location: tuple[float, float] | None = None  # last acknowledged
        self.location_in_flight: tuple[float, float] | None = None
        self.conditions: tuple[str, ...] | None = None
        self.conditions_in_flight: tuple[str, ...] | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        step = 0
        while not self.stop.is_set():
            step += 1
            try:
                if step % 2:
                    point = (round(40 + self.index + step * 1e-4, 6),
                             round(-3 + step * 1e-4, 6))
                    self.location_in_flight = point
                    response = self.client.put("/api/v1/me/location",
                                               json={"lat": point[0], "lng": point[1]})
                    ok = response.status_code == 200
                    if ok:
                        self.location, self.location_in_flight = point, None
                else:
                    chosen = ("all",) if step % 4 else ("all", "aml")
                    self.conditions_in_flight = chosen
                    response = self.client.post("/settings", data={
                        "role": "patient", "visibility": "map", "contactable": "y",
                        "conditions": list(chosen)})
                    ok = response.status_code == 302
                    if ok:
                        self.conditions, self.conditions_in_flight = chosen, None
            except Exception:  # noqa: BLE001 - the database is gone: stop writing
                ok = False
            if not ok:
                return
            self.acked.append(1)


def test_acknowledged_writes_survive_a_crash(crash_cluster, tmp_path) -> None:
    assert _setting(crash_cluster, "synchronous_commit") == "on"
    assert _setting(crash_cluster, "fsync") == "on"
    assert _setting(crash_cluster, "full_page_writes") == "on"
    assert _setting(crash_cluster, "wal_compression") == "lz4"
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=crash_cluster.url,
                                WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False))
    engine = create_engine(crash_cluster.url)
    with session_scope(engine) as session:
        conditions = session.execute(text("SELECT slug FROM conditions")).scalars().all()
        if "aml" not in conditions:
            pytest.skip("needs a second condition to join")
        members = [add_member(session, f"writer-{i}") for i in range(WRITERS)]
    engine.dispose()

    acked: list[int] = []
    writers = [Writer(app, account, member, i, acked)
               for i, (account, member) in enumerate(members)]
    for writer in writers:
        writer.start()
    while len(acked) < ACKS_BEFORE_CRASH and any(w.is_alive() for w in writers):
        time.sleep(0.01)
    assert embedded_pg.crash(crash_cluster)
    for writer in writers:
        writer.stop.set()
        writer.join(timeout=60)
    assert len(acked) >= ACKS_BEFORE_CRASH
    embedded_pg.start(crash_cluster)

    engine = create_engine(crash_cluster.url)
    lost = 0
    with engine.connect() as conn:
        for writer in writers:
            point = conn.execute(text(
                "SELECT round(ST_Y(location::geometry)::numeric, 6)::float, "
                "round(ST_X(location::geometry)::numeric, 6)::float "
                "FROM member_locations WHERE member_id = :id"), {"id": writer.member_id}).first()
            kept = tuple(point) if point else None
            # The one write in flight at the crash may or may not have committed.
            if writer.location is not None and kept not in (writer.location,
                                                            writer.location_in_flight):
                lost += 1
            joined = tuple(sorted(conn.execute(text(
                "SELECT c.slug FROM member_conditions mc JOIN conditions c "
                "ON c.id = mc.condition_id WHERE mc.member_id = :id"),
                {"id": writer.member_id}).scalars()))
            if writer.conditions is not None and joined not in (
                    tuple(sorted(writer.conditions)),
                    tuple(sorted(writer.conditions_in_flight or ()))):
                lost += 1
    engine.dispose()
    assert lost == 0


def test_while_the_database_is_down_cached_viewports_are_served(crash_cluster,
                                                                tmp_path) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=crash_cluster.url))
    client = app.test_client()
    viewport = "/api/v1/conditions/all/cells?zoom=2&bbox=-30,20,40,60"
    cached = client.get(viewport)
    assert cached.status_code == 200
    assert client.get("/readyz").status_code == 200

    embedded_pg.stop(crash_cluster)
    time.sleep(1.5)  # past the cache's version check interval: it must ask (and fail)
    again = client.get(viewport)
    assert again.status_code == 200 and again.data == cached.data

    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["database"] == "unavailable"
    api = client.get("/api/v1/conditions")
    assert api.status_code == 503 and api.headers["Retry-After"] == "30"
    assert api.get_json()["error"]["code"] == "service_unavailable"
    page = client.get("/")
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    assert "try again" in page.get_data(as_text=True)
    uncached = client.get("/api/v1/conditions/all/cells?zoom=4&bbox=0,0,10,10")
    assert uncached.status_code == 503

    embedded_pg.start(crash_cluster)
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/v1/conditions").status_code == 200


def test_embedded_shared_buffers_are_a_quarter_of_memory_within_bounds() -> None:
    """The embedded cluster's shared_buffers: a quarter of the memory, 128 MB to 1 GB."""
    from geomap.embedded_pg import memory_bytes, shared_buffers_mb

    mb = 2 ** 20
    assert shared_buffers_mb(256 * mb) == 128
    assert shared_buffers_mb(2048 * mb) == 512
    assert shared_buffers_mb(24 * 1024 * mb) == 1024
    assert memory_bytes() > 0


def test_a_cluster_made_by_an_older_geomap_runs_with_the_current_settings(tmp_path) -> None:
    # Settings used to be appended to postgresql.conf once, at initdb: a cluster
    # created then kept them. Now each start rewrites geomap.conf, included last.
    settings = load_settings({"GEOMAP_DATA_DIR": str(tmp_path / "data"),
                              "GEOMAP_DB_PORT": str(free_port())})
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    try:
        embedded_pg.stop(cluster)
        conf = cluster.pgdata / "postgresql.conf"
        old = [line for line in conf.read_text().splitlines()
               if line != f"include_if_exists = '{embedded_pg.SETTINGS_FILE}'"]
        conf.write_text("\n".join([*old, "listen_addresses = '127.0.0.1'",
                                   "unix_socket_directories = ''", "shared_buffers = 16MB",
                                   "work_mem = 4MB", "synchronous_commit = off", ""]))
        (cluster.pgdata / embedded_pg.SETTINGS_FILE).unlink()
        embedded_pg.start(cluster)
        expected = embedded_pg.shared_buffers_mb(embedded_pg.memory_bytes())
        assert _setting(cluster, "shared_buffers") == (
            f"{expected // 1024}GB" if expected % 1024 == 0 else f"{expected}MB")
        assert _setting(cluster, "work_mem") == "64MB"
        assert _setting(cluster, "synchronous_commit") == "on"
        assert _setting(cluster, "wal_compression") == "lz4"
        embedded_pg.stop(cluster)
        embedded_pg.start(cluster)  # the include is added once
        assert conf.read_text().count(embedded_pg.SETTINGS_FILE) == 1
    finally:
        embedded_pg.destroy(cluster)
