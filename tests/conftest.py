"""Fixtures: a real PostgreSQL + PostGIS cluster started by the suite itself.

The suite runs its own embedded cluster in a temporary data folder on a free port
(or uses GEOMAP_TEST_DATABASE_URL, a server you provide, for the template database
``geomap_test_template`` it creates there). Reference data and a deterministic demo
community are loaded once into a template database; each test that writes gets its
own copy or a rolled-back transaction.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from geomap import create_app, embedded_pg
from geomap.catalogue.load import import_catalogue
from geomap.config import load_settings
from geomap.geo import prepared, reference
from geomap.geo.derive import COAST_KM, KeyDeriver
from geomap.ingest.members_bulk import load_members
from geomap.migrate import upgrade
from geomap.publish import publish
from geomap.publish.cell_names import name_new_cells
from geomap.session import session_scope
from geomap.symptoms.vocabulary import import_vocabulary

K = 5
FLOOR = 5
DEMO_MEMBERS = 3000
DEMO_SEED = 7
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(database_url: str, data_dir: Path, port: int) -> subprocess.Popen:
    """Start ``run_gunicorn`` on 127.0.0.1:``port``; return its process once it listens.

    One worker, the options of ``geomap serve --prod``, ``data_dir`` as its data folder.
    """
    env = {**os.environ, "GEOMAP_DATABASE_URL": database_url,
           "GEOMAP_DATA_DIR": str(data_dir), "GEOMAP_SECRET_KEY": "test-secret",
           "GEOMAP_K": "5", "GEOMAP_FLOOR_RESOLUTION": "5"}
    process = subprocess.Popen(
        [sys.executable, "-c",
         f"from geomap.wsgi_server import run_gunicorn; run_gunicorn('127.0.0.1', {port}, 1)"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("gunicorn did not start: " + process.stderr.read().decode()[-2000:])
            time.sleep(0.1)


@pytest.fixture(scope="session")
def suite_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded_pg.Cluster | None]:
    """The suite's own embedded cluster, running; None with GEOMAP_TEST_DATABASE_URL."""
    if os.environ.get("GEOMAP_TEST_DATABASE_URL"):
        yield None
        return
    settings = load_settings(
        {
            "GEOMAP_DATA_DIR": str(tmp_path_factory.mktemp("geomap-data")),
            "GEOMAP_DB_PORT": str(free_port()),
        }
    )
    cluster = embedded_pg.cluster_for(settings)
    embedded_pg.start(cluster)
    try:
        yield cluster
    finally:
        embedded_pg.destroy(cluster)


@pytest.fixture(scope="session")
def server_url(suite_cluster: embedded_pg.Cluster | None) -> str:
    """URL of the PostgreSQL server's maintenance database (postgres)."""
    provided = os.environ.get("GEOMAP_TEST_DATABASE_URL")
    url = provided if suite_cluster is None else suite_cluster.url
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def standby_cluster(suite_cluster: embedded_pg.Cluster | None,
                    server_url: str) -> Iterator[embedded_pg.Cluster]:
    """A real hot standby of the suite's cluster (pg_basebackup -R), streaming from it.

    Started once, after the suite's databases that exist by then; databases created
    later on the primary reach it by replay like any other change.
    """
    if suite_cluster is None:
        pytest.skip("a streaming replica needs the suite's own cluster "
                    "(GEOMAP_TEST_DATABASE_URL is set)")
    standby = embedded_pg.standby_for(suite_cluster, free_port())
    try:
        embedded_pg.start_standby(suite_cluster, standby)
        yield standby
    finally:
        embedded_pg.destroy(standby)


def _admin_engine(server_url: str) -> Engine:
    return create_engine(server_url, isolation_level="AUTOCOMMIT", pool_size=1)


def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    engine = _admin_engine(server_url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, name: str) -> None:
    engine = _admin_engine(server_url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def reference_template(server_url: str) -> str:
    """Name of a template database: schema, catalogue, places and countries, no members."""
    name = "geomap_test_reference"
    url = _create_database(server_url, name)
    engine = create_engine(url)
    upgrade(engine)
    with session_scope(engine) as session:
        reference.import_places(session)
        reference.import_countries(session)
        prepared.store(session, prepared.compute(session, COAST_KM))
        import_vocabulary(session)
        import_catalogue(session)
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def community_url(server_url: str, reference_template: str) -> str:
    """URL of a database with a published demo community (read-only for tests)."""
    from geomap.ingest import demo

    url = _create_database(server_url, "geomap_test_community", template=reference_template)
    engine = create_engine(url)
    with session_scope(engine) as session:
        deriver = KeyDeriver(session, FLOOR)
        batch, prefixes = demo.generate(session, DEMO_MEMBERS, DEMO_SEED, on_land=deriver.on_land)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
        demo.add_symptoms(session, DEMO_SEED)
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    with session_scope(engine) as session:
        name_new_cells(session)  # as the CLI and the schedule do after a publish
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def community_engine(community_url: str) -> Iterator[Engine]:
    """Engine of the published demo community."""
    engine = create_engine(community_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def community_deriver(community_engine: Engine) -> KeyDeriver:
    """Key deriver over the test reference data."""
    with Session(community_engine) as session:
        return KeyDeriver(session, FLOOR)


@pytest.fixture
def fresh_db_url(server_url: str, reference_template: str) -> Iterator[str]:
    """URL of a new database with reference data and no members, dropped afterwards."""
    name = f"geomap_test_{uuid.uuid4().hex[:10]}"
    url = _create_database(server_url, name, template=reference_template)
    yield url
    _drop_database(server_url, name)


@pytest.fixture
def rollback_session(community_engine: Engine) -> Iterator[Session]:
    """A session on the demo community whose every change is rolled back."""
    connection = community_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


def app_config(data_dir: Path, **overrides: object) -> dict:
    """Return a test configuration for create_app."""
    config = {
        "TESTING": True,
        "GEOMAP_DATA_DIR": str(data_dir),
        "GEOMAP_K": str(K),
        "GEOMAP_FLOOR_RESOLUTION": str(FLOOR),
        "GEOMAP_SECRET_KEY": "test-secret",
    }
    config.update(overrides)
    return config


@pytest.fixture
def app(community_url: str, tmp_path: Path):
    """The app over the published demo community."""
    return create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=community_url))


@pytest.fixture
def client(app):
    """A test client of the app over the demo community."""
    return app.test_client()


@pytest.fixture
def connection(community_engine: Engine) -> Iterator[object]:
    """A connection on the demo community in a transaction rolled back afterwards."""
    conn = community_engine.connect()
    transaction = conn.begin()
    yield conn
    transaction.rollback()
    conn.close()


@pytest.fixture
def session(connection) -> Iterator[Session]:  # noqa: ANN001
    """A session inside the rolled-back transaction of ``connection``."""
    with sessions_on(connection)() as s:
        yield s


def sessions_on(connection) -> sessionmaker:  # noqa: ANN001
    """Return a session factory whose sessions join ``connection``'s transaction."""
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                        expire_on_commit=False)


class LiveServer:
    """A real HTTP server on 127.0.0.1 serving an app in a thread."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    """The app over the demo community, served over HTTP on 127.0.0.1."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[object]:
    """A real SMTP server (aiosmtpd) in the test process; see tests/mail_helpers.py."""
    from tests.mail_helpers import SmtpServer

    with SmtpServer() as server:
        yield server


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, driven by Playwright (never a downloaded browser)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = os.environ.get("GEOMAP_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"{executable} is missing: install Debian's chromium (make test does)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def set_view(page, lat: float, lng: float, zoom: int, *,  # noqa: ANN001
             map_name: str = "map_world", animate: bool = True) -> None:
    """Centre the page's Leaflet map ``map_name`` on (``lat``, ``lng``) degrees at ``zoom``.

    Returns nothing on purpose: ``setView`` returns the map itself, and Playwright
    would copy that whole object graph out of the page (55 s for the world map).
    """
    options = "" if animate else ", {animate: false}"
    page.evaluate(f"void {map_name}.setView([{lat}, {lng}], {zoom}{options})")


@pytest.fixture
def page(browser) -> Iterator[object]:  # noqa: ANN001
    """A fresh browser page that records every request it makes."""
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    # Generous: CI shares two cores between the server, PostgreSQL and Chromium.
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.requested_urls = []
    page.on("request", lambda request: page.requested_urls.append(request.url))
    yield page
    context.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server the suite starts on a free 127.0.0.1 port (Debian's package)."""
    import shutil
    import subprocess
    import time

    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(executable).exists():
        pytest.skip("redis-server is not installed (scripts/bootstrap.sh installs it)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=20)


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the figures test modules measured (geography self-consistency)."""
    import sys

    module = sys.modules.get("test_geography") or sys.modules.get("tests.test_geography")
    lines = module.figures() if module is not None else []
    if lines:
        terminalreporter.section("geography figures")
        for line in lines:
            terminalreporter.write_line(line)
