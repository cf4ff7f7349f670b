"""Sessions outside requests (CLI, scheduler, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Yield a session in a transaction that commits on success, rolls back on error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
