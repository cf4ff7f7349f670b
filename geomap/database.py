"""The database handle and the declarative base.

``db`` is created unbound; :meth:`Database.init_app` gives each app its own session
factory (kept in ``app.extensions``), so several apps can live in one process. A
request gets one session, closed at teardown.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every geomap table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Return an engine for ``url`` with pooling suited to a web worker."""
    options: dict[str, Any] = dict(pool_pre_ping=True, pool_size=5, max_overflow=10)
    options.update(kwargs)
    return create_engine(url, **options)


class Database:
    """Hands out the current app's sessions."""

    def init_app(self, app: Flask) -> None:
        """Give ``app`` a session factory and close each request's session at teardown.

        Tests may pass ``GEOMAP_SESSIONS`` (a sessionmaker bound to a connection in a
        transaction they roll back) instead of a URL.
        """
        sessions = app.config.get("GEOMAP_SESSIONS")
        if sessions is None:
            engine = make_engine(app.config["GEOMAP_DATABASE_URL_RESOLVED"])
            sessions = sessionmaker(engine, expire_on_commit=False)
        app.extensions["geomap.sessions"] = sessions
        app.teardown_appcontext(self._close_session)

    @property
    def session(self) -> Session:
        """Return the session of the current app context, opening it if needed."""
        if "db_session" not in g:
            g.db_session = self.new_session()
        return g.db_session

    def new_session(self) -> Session:
        """Return a new session of the current app, outside the request's."""
        return current_app.extensions["geomap.sessions"]()

    def _close_session(self, _exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


db = Database()
