"""The soulmates scorer: one long-lived process per service that holds the packs and scores.

``geomap serve`` (the development server and ``--prod``'s gunicorn master) starts it
(:class:`geomap.symptoms.scorer_link.ScorerProcess`): ``python -m
geomap.symptoms.scorer --socket <data dir>/run/soulmates-<port>.sock``, its
authentication key on standard input. It keeps the packed candidate profiles of each
condition (:mod:`geomap.symptoms.candidates`, kept in step by the soulmates change
log) and numpy once for the whole service, instead of once per web worker; web
workers send it a query and get back the exact top of :func:`candidates.best`, then
do the rest (place labels, bands, keyed order) as before
(:func:`geomap.symptoms.soulmates.soulmates`).

Transport: :mod:`multiprocessing.connection` over a Unix socket (mode 0600: the
process's umask) with its HMAC challenge on each new connection; messages are JSON
(``send_bytes``), never pickles. A request is ``["best", condition id or null,
[term ids], [excluded member ids], limit]``; the answer ``["ok", [[member id, floor
cell, label], ...]]`` or ``["error", kind]``. A query holds a member's symptoms:
nothing of a request or an answer is logged, only the kind of a failure.

The scorer reads the database itself (its own engine, every transaction read only)
and exits when the process that started it is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from geomap.symptoms import candidates
from geomap.symptoms.scorer_link import HANDSHAKE_TIMEOUT, limit_waits

log = logging.getLogger("geomap.symptoms.scorer")

# The longest request accepted (bytes of JSON): 30 terms and a few thousand exclusions.
MAX_REQUEST = 1 << 20
# Seconds between checks that the starting process is still there.
PARENT_CHECK = 1.0


def check_request(request: Any) -> tuple[int | None, list[int], set[int], int]:
    """Return (condition id or None, terms, excluded ids, limit) of a decoded request.

    Raises ValueError for anything else.
    """
    if not (isinstance(request, list) and len(request) == 5 and request[0] == "best"):
        raise ValueError("not a scoring request")
    _kind, condition, terms, exclude, limit = request

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not (condition is None or whole(condition)) or not whole(limit) or limit < 0:
        raise ValueError("bad condition or limit")
    if not (isinstance(terms, list) and isinstance(exclude, list)
            and all(whole(t) for t in terms) and all(whole(m) for m in exclude)):
        raise ValueError("bad terms or exclusions")
    return condition, terms, set(exclude), limit


def score(engine: Engine, condition: int | None, terms: list[int], exclude: set[int],
          limit: int) -> list[tuple[int, int, str]]:
    """Return :func:`candidates.best` of a query: (member id, floor cell, label), best first.

    One read-only transaction: the condition's pack as of now (cached, patched from
    the change log, or read whole), then the query's scores.
    """
    with Session(engine) as session:
        found = candidates.best(session, candidates.pack(session, condition), terms, exclude,
                                limit)
        session.rollback()
    return found


def _answer(connection: Connection, engine: Engine, authkey: bytes) -> None:
    """Check one web worker's key, then answer its requests until it closes."""
    with connection:
        # The handshake of multiprocessing's Listener, here in the connection's own
        # thread and bounded in time: a frozen or wrong client blocks no other one.
        try:
            limit_waits(connection, HANDSHAKE_TIMEOUT)
            deliver_challenge(connection, authkey)
            answer_challenge(connection, authkey)
            limit_waits(connection, 0)  # a kept connection waits for requests at will
        except (OSError, EOFError, AuthenticationError) as exc:
            log.warning("refused a connection (%s)", type(exc).__name__)
            return
        while True:
            try:
                raw = connection.recv_bytes(MAX_REQUEST)
            except (EOFError, OSError):
                return
            try:
                query = check_request(json.loads(raw))
                answer: list[Any] = ["ok", score(engine, *query)]
            except Exception as exc:  # the kind only: a message could quote the query
                log.error("soulmates scoring failed (%s)", type(exc).__name__)
                answer = ["error", type(exc).__name__]
            try:
                connection.send_bytes(json.dumps(answer).encode())
            except OSError:
                return


def serve(listener: Listener, engine: Engine, authkey: bytes) -> None:
    """Accept web workers' connections on ``listener``, one thread each, until closed.

    ``listener`` checks no key itself (:func:`listen`): each connection's thread
    checks ``authkey`` first.
    """
    while True:
        try:
            connection = listener.accept()
        except OSError:  # the listener was closed: stop
            return
        threading.Thread(target=_answer, args=(connection, engine, authkey), daemon=True,
                         name="soulmates-scorer-connection").start()


def read_only_engine(url: str) -> Engine:
    """Return an engine whose every transaction is read only (the scorer writes nothing)."""
    from geomap.database import make_engine

    engine = make_engine(url, pool_size=4, max_overflow=12)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET default_transaction_read_only = on")
        cursor.close()
        dbapi_connection.commit()

    return engine


def listen(socket: Path) -> Listener:
    """Return a listener on the Unix socket ``socket`` (a stale one is replaced), mode 0600.

    It checks no key: :func:`serve` does, in each connection's thread.
    """
    socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if socket.is_socket():  # left by a scorer that was killed: nobody listens there
        socket.unlink()
    previous = os.umask(0o077)  # owner only from the start: no window to connect in
    try:
        listener = Listener(str(socket), family="AF_UNIX", backlog=64)
    finally:
        os.umask(previous)
    socket.chmod(0o600)  # read-write for the owner, as connecting needs: nothing else
    return listener


def _exit_with_parent(parent: int, socket: Path) -> None:
    """End this process once the process that started it is gone (checked every second)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    socket.unlink(missing_ok=True)
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Run the scorer: the key on stdin (hex), the database from the usual settings."""
    from geomap.config import load_settings
    from geomap.embedded_pg import database_url

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    parent = os.getppid()
    engine = read_only_engine(database_url(load_settings(os.environ)))
    listener = listen(args.socket)

    def stop(_signal: int, _frame: Any) -> None:
        args.socket.unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=_exit_with_parent, args=(parent, args.socket), daemon=True,
                     name="soulmates-scorer-parent").start()
    log.info("soulmates scorer listening on %s", args.socket)
    serve(listener, engine, authkey)


if __name__ == "__main__":
    main()
