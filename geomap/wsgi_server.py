"""Production serving: gunicorn workers with graceful shutdown.

Equivalent command line: ``MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=262144 gunicorn -w 2
-k gthread --threads 8 -b 127.0.0.1:5000 'geomap:create_app()'``, except for the
soulmates scorer process that :func:`run_gunicorn` starts beside the workers (without
it, each worker scores soulmates itself: geomap.symptoms.scorer).
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import hashlib
import logging
import os
import queue
import tempfile
import threading
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from geomap.paths import fits_unix_socket
from geomap.symptoms.scorer_link import ScorerAddress, ScorerProcess, socket_path
from geomap.web.errors import EscapeControlCharacters, escape_for_log

_M_ARENA_MAX = -8  # mallopt parameters, glibc malloc.h
_M_MMAP_THRESHOLD = -3


class GeomapServer(BaseApplication):
    """gunicorn running ``geomap.create_app()`` in each worker.

    ``scorer``: where the service's soulmates scorer listens (None: workers score
    soulmates themselves).
    """

    def __init__(self, options: dict[str, Any], scorer: ScorerAddress | None = None) -> None:
        """Keep the gunicorn ``options`` for load_config."""
        self.options = options
        self.scorer = scorer
        super().__init__()

    def load_config(self) -> None:
        """Apply our options to gunicorn's config."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):  # noqa: ANN201
        """Create the app in the worker (after fork, so no connection is shared)."""
        from geomap import create_app
        from geomap.symptoms.scorer_link import attach

        return attach(create_app(), self.scorer)


# The access log keeps no query string (members' place searches live there) and no
# referrer (which may hold one): method, path, protocol, status, size, agent, time.
ACCESS_LOG_FORMAT = '%(h)s - - %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'


def _stop_listener(listener: QueueListener) -> None:
    """Write what is queued and stop the writer thread (once; later calls do nothing)."""
    if listener._thread is not None:
        listener.stop()


class QueuedHandler(QueueHandler):
    """Hands records to a writer thread of the process that logs: a write costs a queue put.

    The thread is started on the first record of each process, so that a forked gunicorn
    worker gets its own; it is stopped (its queue drained) at exit.
    """

    def __init__(self, handlers: list[logging.Handler]) -> None:
        """Write through ``handlers`` from a background thread."""
        super().__init__(queue.SimpleQueue())
        self.targets = handlers
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._listener: QueueListener | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Queue ``record`` (formatted here), starting this process's writer if needed."""
        if self._pid != os.getpid():
            with self._start_lock:
                if self._pid != os.getpid():
                    self.queue = queue.SimpleQueue()
                    self._listener = QueueListener(self.queue, *self.targets,
                                                   respect_handler_level=True)
                    self._listener.start()
                    atexit.register(_stop_listener, self._listener)
                    self._pid = os.getpid()
        super().emit(record)

    def reopen(self) -> None:
        """Reopen the files written to (log rotation); records in flight wait for it."""
        for target in self.targets:
            if isinstance(target, logging.FileHandler):
                target.acquire()
                try:
                    if target.stream:
                        target.close()
                        target.stream = target._open()
                finally:
                    target.release()

    def close(self) -> None:
        """Write what is queued, stop this process's writer and close the targets."""
        if self._listener is not None and self._pid == os.getpid():
            _stop_listener(self._listener)
        for target in self.targets:
            target.close()
        super().close()


class EscapingLogger(Logger):
    """gunicorn's logger, escaping control characters in every access and error line.

    Access lines are written by a background thread (:class:`QueuedHandler`).
    """

    def setup(self, cfg: Any) -> None:
        """Set up gunicorn's handlers, then escape what reaches the error log.

        Runs again on a configuration reload (SIGHUP): the previous queued access
        handler is drained and replaced, not wrapped, so no line is written twice.
        """
        for handler in list(self.access_log.handlers):
            if isinstance(handler, QueuedHandler):
                self.access_log.removeHandler(handler)
                handler.close()
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.addFilter(EscapeControlCharacters())
        targets = list(self.access_log.handlers)
        if targets:
            for handler in targets:
                self.access_log.removeHandler(handler)
            self.access_log.addHandler(QueuedHandler(targets))

    def reopen_files(self) -> None:
        """Reopen the log files (SIGUSR1, after rotation), the queued access log's too."""
        super().reopen_files()
        for handler in self.access_log.handlers:
            if isinstance(handler, QueuedHandler):
                handler.reopen()

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        """Return gunicorn's access log atoms with control characters escaped."""
        return {key: escape_for_log(value) if isinstance(value, str) else value
                for key, value in super().atoms(resp, req, environ, request_time).items()}


class DropQueryStrings(logging.Filter):
    """Cut query strings out of werkzeug's request lines (``geomap serve`` without --prod)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, its request line without ``?query``."""
        if record.args and isinstance(record.args, tuple) and isinstance(record.args[0], str):
            line = record.args[0]
            if "?" in line:
                method, _, rest = line.partition(" ")
                target, _, protocol = rest.rpartition(" ")
                record.args = (f"{method} {target.split('?', 1)[0]} {protocol}",
                               *record.args[1:])
        return True


def tune_malloc(arenas: int = 2, mmap_threshold: int = 256 * 1024) -> None:
    """Keep threaded workers small: cap glibc's malloc arenas, fix its mmap threshold.

    Each thread of a gthread worker otherwise gets its own arena, and resident memory
    grows with fragmentation across them (``MALLOC_ARENA_MAX``). glibc also raises its
    mmap threshold each time a large block is freed, after which the multi-megabyte
    temporaries of a search (h3 rings, numpy arrays, result rows) come from the heap
    and stay resident: a fixed threshold (``MALLOC_MMAP_THRESHOLD_``) gives every block
    above it back when freed (~10 MB less after the first nearby search). Inherited by
    the workers gunicorn forks. No-op where glibc is not the C library.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    except (OSError, AttributeError):
        pass


def control_socket_path(data_folder: Path, host: str, port: int) -> Path:
    """Return the gunicorn control socket of the instance serving ``host:port``.

    gunicorn (25.1 and later) opens a control socket for ``gunicornc`` at
    ``$XDG_RUNTIME_DIR/gunicorn.ctl`` or ``~/.gunicorn/gunicorn.ctl`` by default: one
    path for every instance of the same user on the machine, so a second instance
    takes the first one's socket over. Each geomap instance gets its own under the data
    folder (``<data dir>/run/gunicorn-<host>-<port>.ctl``), or, if that path is too long
    for a Unix socket, in the temporary folder under a name derived from it.
    """
    path = Path(data_folder).resolve() / "run" / f"gunicorn-{host}-{port}.ctl"
    if not fits_unix_socket(path):
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"geomap-gunicorn-{digest}.ctl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def gunicorn_options(host: str, port: int, workers: int,
                     control_socket: Path | None = None) -> dict[str, Any]:
    """Return the gunicorn settings of ``geomap serve --prod``.

    ``control_socket`` is this instance's gunicornc socket (see
    :func:`control_socket_path`); None takes the one under the configured data folder.
    """
    if control_socket is None:
        control_socket = control_socket_path(_configured_data_folder(), host, port)
    return {
        "bind": f"{host}:{port}",
        "control_socket": str(control_socket),
        "workers": workers,
        "worker_class": "gthread",
        # More threads than a worker's share of keep-alive clients: a gthread worker
        # whose threads are all busy stops polling its idle connections, and their next
        # requests wait (hundreds of ms under load with 4 threads and 8 clients).
        "threads": 8,
        "graceful_timeout": 20,
        "timeout": 60,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": "geomap.wsgi_server.EscapingLogger",
        # Recycle workers now and then, not every few seconds: at thousands of requests
        # a second a low limit restarts workers mid-load (a second of imports and a
        # cold cache each time); memory is bounded anyway (the cells cache has a cap).
        "max_requests": 1_000_000,
        "max_requests_jitter": 100_000,
    }


def _configured_data_folder() -> Path:
    from geomap.config import data_dir, load_settings

    return data_dir(load_settings(os.environ))


def preload_modules() -> None:
    """Import in the master what every worker's app imports, so that workers share it.

    Builds one app and drops it: its modules (Flask, SQLAlchemy, the blueprints ...)
    stay imported and each forked worker starts from them, copy-on-write, instead of
    importing its own copy; ``gc.freeze`` keeps the collector from writing to (and so
    copying) those objects in the workers. Workers still create their own app after the
    fork (no connection or lock is shared); no connection is opened here. A resident
    page shared this way still counts in every worker's RSS, but once in their PSS.
    """
    from geomap import create_app

    create_app()
    gc.collect()
    gc.freeze()


def start_scorer(data_folder: Path, port: int) -> ScorerProcess | None:
    """Start the soulmates scorer of the service on ``port`` (kept running until stopped).

    None, with a warning, when the data folder's path is too long for its Unix socket:
    the web workers then score soulmates themselves.
    """
    path = socket_path(data_folder, port)
    if path is None:
        logging.getLogger(__name__).warning(
            "the data folder's path is too long for the soulmates scorer's socket; "
            "web workers score soulmates themselves")
        return None
    return ScorerProcess(path).start()


def run_gunicorn(host: str, port: int, workers: int, data_folder: Path | None = None,
                 scorer: bool = True) -> None:
    """Serve with gunicorn until stopped (SIGTERM finishes requests in flight).

    The instance's control socket lives under ``data_folder`` (default: the configured
    data folder), so several instances on one machine each keep their own; so does
    its soulmates scorer (:func:`start_scorer`; ``scorer`` False: none, workers score
    soulmates themselves), stopped with the server.
    """
    tune_malloc()
    preload_modules()
    folder = data_folder if data_folder is not None else _configured_data_folder()
    process = start_scorer(folder, port) if scorer else None
    try:
        GeomapServer(gunicorn_options(host, port, workers,
                                      control_socket_path(folder, host, port)),
                     process.address if process is not None else None).run()
    finally:
        if process is not None:
            process.stop()
