"""The database handle and the declarative base.

``db`` is created unbound; :meth:`Database.init_app` gives each app its own session
factory (kept in ``app.extensions``), so several apps can live in one process. A
request gets one session, closed at teardown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask, current_app, g
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


PUBLIC_ROLE = "geomap_public"

log = logging.getLogger(__name__)
T = TypeVar("T")


class Base(DeclarativeBase):
    """Declarative base of every geomap table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Return an engine for ``url`` with pooling suited to a web worker.

    Its connections start with JIT compilation off (``-c jit=off``). geomap's statements
    are short reads and batch writes: once tables have statistics, a statement estimated
    above ``jit_above_cost`` (a large viewport, for one) spent ~80 ms compiling 109
    functions to run 2 ms (EXPLAIN ANALYZE at 1M members), and a full publish took the
    same 6.5-6.9 s with JIT as without.
    """
    options: dict[str, Any] = dict(pool_pre_ping=True, pool_size=5, max_overflow=10,
                                   connect_args={"options": "-c jit=off"})
    options.update(kwargs)
    return create_engine(url, **options)


def make_public_engine(url: str, **kwargs: Any) -> Engine:
    """Return an engine whose connections run as the read-only public role.

    The role may read published aggregates only (migration 0001). Where the
    database has no such role (a server on which geomap could not create it), the
    main role is used and a warning is logged once per connection.

    Public reads are single statements: the engine runs in autocommit (no BEGIN and
    ROLLBACK round trips) and without a pre-ping per checkout; a read that meets a
    dropped connection is retried once instead (:func:`read_retrying`).
    """
    options: dict[str, Any] = dict(pool_pre_ping=False, isolation_level="AUTOCOMMIT")
    options.update(kwargs)
    engine = make_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _set_role(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET ROLE {PUBLIC_ROLE}")
        except Exception:  # a raw psycopg error: SQLAlchemy has not wrapped it yet
            dbapi_connection.rollback()
            log.warning("role %s is missing; public reads use the main role", PUBLIC_ROLE)
        else:
            dbapi_connection.commit()
        finally:
            cursor.close()

    return engine


def read_engine(config: Mapping[str, Any]) -> Engine:
    """Return the engine of the public read path: the replica if one is configured.

    ``GEOMAP_REPLICA_URL`` (a hot standby of the main database) takes the public reads
    (published cells and totals, conditions, region counts, the publish version) off
    the primary; unset, they go to the main database. Either way connections run as
    the read-only public role, so nothing on this path can write.
    """
    url = config.get("GEOMAP_REPLICA_URL") or config["GEOMAP_DATABASE_URL_RESOLVED"]
    return make_public_engine(url)


def read_retrying(session: Session, read: Callable[[Session], T]) -> T:
    """Return ``read(session)``, run a second time if the first met a dropped connection.

    Engines of the public read path do not pre-ping each connection they hand out; a
    connection the server closed (a restart, an idle timeout) shows up as a DBAPIError
    with ``connection_invalidated``, after which the pool holds fresh connections only.
    Any other error, or a second failure, is raised.
    """
    try:
        return read(session)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        session.rollback()
        return read(session)


class Database:
    """Hands out the current app's sessions: full ones, and public read-only ones."""

    def init_app(self, app: Flask) -> None:
        """Give ``app`` its session factories and close each request's sessions at teardown.

        Tests may pass ``GEOMAP_SESSIONS`` (a sessionmaker bound to a connection in a
        transaction they roll back) instead of a URL; public reads then share it unless
        ``GEOMAP_REPLICA_URL`` is set. Public sessions come from :func:`read_engine`.
        """
        sessions = app.config.get("GEOMAP_SESSIONS")
        public = sessions
        if sessions is None:
            url = app.config["GEOMAP_DATABASE_URL_RESOLVED"]
            sessions = sessionmaker(make_engine(url), expire_on_commit=False)
        if public is None or app.config.get("GEOMAP_REPLICA_URL"):
            public = sessionmaker(read_engine(app.config), expire_on_commit=False)
        app.extensions["geomap.sessions"] = sessions
        app.extensions["geomap.public_sessions"] = public
        app.teardown_appcontext(self._close_session)

    @property
    def session(self) -> Session:
        """Return the session of the current app context, opening it if needed."""
        if "db_session" not in g:
            g.db_session = self.new_session()
        return g.db_session

    @property
    def public_session(self) -> Session:
        """Return the current app context's session as the read-only public role.

        Public pages, embeds and the public API read through this session only: it
        cannot see member tables (tests/test_public_path.py).
        """
        if "db_public_session" not in g:
            g.db_public_session = current_app.extensions["geomap.public_sessions"]()
        return g.db_public_session

    def new_session(self) -> Session:
        """Return a new session of the current app, outside the request's."""
        return current_app.extensions["geomap.sessions"]()

    def _close_session(self, _exc: BaseException | None) -> None:
        for key in ("db_session", "db_public_session"):
            session = g.pop(key, None)
            if session is not None:
                session.close()


db = Database()
