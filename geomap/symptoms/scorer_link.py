"""The web side of the soulmates scorer: starting it, and asking it.

:class:`ScorerProcess` runs in ``geomap serve``'s process (the development server's,
or gunicorn's master): it starts ``python -m geomap.symptoms.scorer`` with a fresh
authentication key, and starts it again whenever it ends. :class:`ScorerLink` is a
web worker's end: a few open connections, reused, each opened again once if the
scorer restarted under it. Neither imports numpy nor the scoring code
(:mod:`geomap.symptoms.scorer`): that is the point of the scorer.

An app is told where its scorer is by :func:`attach` (``GEOMAP_SOULMATES_SCORER``, set
by ``geomap serve`` after ``create_app``, never from the environment); an app without
one scores in its own process (tests, ``create_app`` served by other means).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

from flask import Flask

from geomap.paths import fits_unix_socket

log = logging.getLogger(__name__)

CONFIG_KEY = "GEOMAP_SOULMATES_SCORER"
# Seconds a web worker waits for an answer (the first search of a condition reads its
# whole pack: 1-3 s at 1,000,000 members).
ANSWER_TIMEOUT = 30.0
# Seconds either end waits on each read or write of the connect and the key handshake,
# so that a frozen scorer (or worker) fails that one connection instead of blocking.
HANDSHAKE_TIMEOUT = 5.0
# Connections a web worker keeps open (more are opened under load, then closed).
_IDLE_KEPT = 8
_MAX_ANSWER = 1 << 20


class ScorerUnavailableError(RuntimeError):
    """The soulmates scorer does not answer just now (HTTP 503: try again shortly)."""


@dataclass(frozen=True)
class ScorerAddress:
    """Where a service's scorer listens and the key it answers to."""

    socket: Path
    authkey: bytes


def socket_path(data_folder: Path, port: int) -> Path | None:
    """Return the socket of the scorer of the service on ``port``.

    ``<data dir>/run/soulmates-<port>.sock``, or None when that path is too long for a
    Unix socket: the socket stays under the data folder or there is none (soulmates
    are then scored in the web workers).
    """
    path = Path(data_folder).resolve() / "run" / f"soulmates-{port}.sock"
    return path if fits_unix_socket(path) else None


def limit_waits(connection: Connection | socket.socket, seconds: float) -> None:
    """Make each blocking read, write (or connect) on ``connection`` end in OSError.

    After ``seconds`` (SO_RCVTIMEO and SO_SNDTIMEO; 0: wait as long as it takes).
    """
    value = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
    with socket.socket(fileno=os.dup(connection.fileno())) as sock:  # the same socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def attach(app: Flask, address: ScorerAddress | None) -> Flask:
    """Have ``app`` ask the scorer at ``address`` (None: score in process); return ``app``."""
    app.config[CONFIG_KEY] = address
    return app


def link_for(app: Flask) -> ScorerLink | None:
    """Return ``app``'s link to its scorer (one per process), or None to score in process."""
    address = app.config.get(CONFIG_KEY)
    if address is None:
        return None
    link = app.extensions.get("geomap.scorer_link")
    if link is None or link.pid != os.getpid():  # connections are not shared across forks
        link = app.extensions["geomap.scorer_link"] = ScorerLink(address)
    return link


class ScorerLink:
    """A web worker's connections to the scorer, shared by its threads (one per request)."""

    def __init__(self, address: ScorerAddress, timeout: float = ANSWER_TIMEOUT,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """Connect lazily to the scorer at ``address``; timeouts in seconds."""
        self.address = address
        self.timeout = timeout
        self.handshake_timeout = handshake_timeout
        self.pid = os.getpid()
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> Connection:
        # multiprocessing's Client, with each wait of the connect and handshake bounded.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            limit_waits(sock, self.handshake_timeout)
            sock.connect(str(self.address.socket))
        except OSError as exc:  # no scorer, or its queue is full
            sock.close()
            raise ScorerUnavailableError(type(exc).__name__) from None
        connection = Connection(sock.detach())
        try:
            answer_challenge(connection, self.address.authkey)
            deliver_challenge(connection, self.address.authkey)
            limit_waits(connection, 0)  # answers are awaited with poll(timeout)
        except (OSError, EOFError, AuthenticationError) as exc:  # frozen, or another key
            connection.close()
            raise ScorerUnavailableError(type(exc).__name__) from None
        return connection

    def best(self, condition: int | None, terms: Iterable[int], exclude: Iterable[int],
             limit: int) -> list[tuple[int, int, str]]:
        """Return the scorer's (member id, floor cell, label) of the ``limit`` best soulmates.

        The same answer as :func:`geomap.symptoms.candidates.best` over the condition's
        pack (None: every condition). Raises ScorerUnavailableError when the scorer is
        down, does not answer within ``timeout`` seconds, or failed on this query.
        """
        request = json.dumps(["best", condition, [int(t) for t in terms],
                              sorted(int(m) for m in exclude), int(limit)]).encode()
        for attempt in range(2):
            with self._lock:
                connection = self._idle.pop() if self._idle and attempt == 0 else None
            reused = connection is not None
            if connection is None:
                connection = self._connect()
            try:
                connection.send_bytes(request)
                if not connection.poll(self.timeout):
                    connection.close()
                    raise ScorerUnavailableError("no answer in time")
                kind, payload = json.loads(connection.recv_bytes(_MAX_ANSWER))
            except (OSError, EOFError) as exc:
                connection.close()
                if reused:  # kept from before a restart, like every idle one: anew
                    self.close()
                    continue
                raise ScorerUnavailableError(type(exc).__name__) from None
            with self._lock:
                if len(self._idle) < _IDLE_KEPT:
                    self._idle.append(connection)
                    connection = None
            if connection is not None:
                connection.close()
            if kind != "ok":
                raise ScorerUnavailableError(f"scoring failed ({payload})")
            return [(int(member), int(cell), str(label)) for member, cell, label in payload]
        raise ScorerUnavailableError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class ScorerProcess:
    """Runs the scorer as a child process, starting it again whenever it ends, until stopped.

    ``environment``: the child's (default: this process's; it reads the database
    settings from it). The key is new for each ScorerProcess and reaches the child on
    its standard input, never on its command line or in its environment.
    """

    RESTART_WAITS = (0.5, 1.0, 2.0, 5.0, 10.0)  # seconds, after each successive quick end

    def __init__(self, socket: Path, environment: dict[str, str] | None = None,
                 log_to: Any = None) -> None:
        """Prepare (not start) the scorer on ``socket``; ``log_to``: its stderr (default ours)."""
        self.address = ScorerAddress(Path(socket), secrets.token_bytes(32))
        self.environment = environment
        self.log_to = log_to
        self.starts = 0
        self._stop = threading.Event()
        self._child: subprocess.Popen | None = None
        self._child_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="soulmates-scorer", daemon=True)
        self._owner = os.getpid()  # the process that runs it; forks (web workers) do not

    @property
    def pid(self) -> int | None:
        """Return the running scorer's process id (None between runs)."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def start(self, wait: float = 10.0) -> ScorerProcess:
        """Start the scorer and keep it running; wait up to ``wait`` s until it listens."""
        self.address.socket.unlink(missing_ok=True)  # a killed scorer's, else seen as ready
        self._thread.start()
        self.wait_listening(wait)
        return self

    def wait_listening(self, wait: float) -> bool:
        """Return whether the scorer's socket is there within ``wait`` seconds."""
        waited = 0.0
        while waited < wait and not self._stop.is_set():
            if self.address.socket.is_socket() and self.pid is not None:
                return True
            self._stop.wait(0.05)
            waited += 0.05
        return False

    def _spawn(self) -> subprocess.Popen:
        # Not through a shell; the key on stdin. The parent's stdout/stderr: its log.
        child = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
            [sys.executable, "-m", "geomap.symptoms.scorer", "--socket",
             str(self.address.socket)],
            stdin=subprocess.PIPE, stderr=self.log_to, env=self.environment, close_fds=True)
        assert child.stdin is not None
        child.stdin.write(self.address.authkey.hex().encode() + b"\n")
        child.stdin.close()
        self.starts += 1
        return child

    def _run(self) -> None:
        quick_ends = 0
        while not self._stop.is_set():
            with self._child_lock:
                if self._stop.is_set():
                    return
                self._child = child = self._spawn()
            started = time.monotonic()
            code = child.wait()
            if self._stop.is_set():
                return
            quick_ends = quick_ends + 1 if time.monotonic() - started < 30 else 0
            wait = self.RESTART_WAITS[min(quick_ends, len(self.RESTART_WAITS) - 1)]
            log.warning("soulmates scorer ended (exit status %s); starting it again in %.1f s",
                        code, wait)
            self._stop.wait(wait)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the scorer (SIGTERM, then SIGKILL after ``timeout`` seconds) for good.

        Only in the process that created this object: a forked web worker leaving
        gunicorn's ``run()`` on its way out passes through the same ``finally`` and
        must neither stop the service's scorer nor remove its socket.
        """
        if os.getpid() != self._owner:
            return
        self._stop.set()
        with self._child_lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.address.socket.unlink(missing_ok=True)
