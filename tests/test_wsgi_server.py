"""gunicorn instances of ``geomap serve --prod`` side by side on one machine."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gunicorn.ctl.client import ControlClient

from geomap.wsgi_server import (
    EscapingLogger,
    QueuedHandler,
    control_socket_path,
    gunicorn_options,
)
from tests.conftest import free_port, start_gunicorn


def wait_for_socket(path: Path) -> None:
    """Wait until ``path`` is a socket (gunicorn opens it once its workers are spawned)."""
    deadline = time.monotonic() + 60
    while not path.is_socket():
        assert time.monotonic() < deadline, f"no control socket at {path}"
        time.sleep(0.1)


@pytest.fixture
def two_instances(community_url: str, tmp_path: Path) -> Iterator[list[tuple[int, object]]]:
    """Two gunicorn instances of geomap sharing one data folder, on two ports."""
    started = []
    try:
        for _ in range(2):
            port = free_port()
            started.append((port, start_gunicorn(community_url, tmp_path, port)))
        yield started
    finally:
        for _port, process in started:
            process.terminate()
            process.wait(timeout=30)


def test_each_instance_has_its_own_control_socket(two_instances, tmp_path: Path) -> None:
    paths = [control_socket_path(tmp_path, "127.0.0.1", port) for port, _ in two_instances]
    assert paths[0] != paths[1]
    for path, (_port, process) in zip(paths, two_instances, strict=True):
        assert path.is_relative_to(tmp_path.resolve())
        wait_for_socket(path)
        with ControlClient(str(path), timeout=30) as client:
            stats = client.send_command("show stats")
        # Each socket is answered by its own arbiter (the process we started).
        assert stats["pid"] == process.pid


def test_a_stop_is_quick_and_takes_the_scorer_with_it(community_url: str,
                                                     tmp_path: Path) -> None:
    # SIGTERM (systemd's stop, or a test's) with nothing in flight: the worker exits at
    # once, and the scorer is stopped by the master only. A worker leaving gunicorn's
    # run() used to stop the scorer on its way out and then hang until gunicorn killed
    # it (the 20 s graceful timeout), while the master started the scorer again.
    port = free_port()
    process = start_gunicorn(community_url, tmp_path, port)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    scorer_socket = tmp_path.resolve() / "run" / f"soulmates-{port}.sock"
    assert scorer_socket.is_socket()
    started = time.monotonic()
    process.terminate()
    _out, err = process.communicate(timeout=30)
    assert time.monotonic() - started < 10
    log = err.decode()
    scorers = {line.split("] [")[1].split("]")[0] for line in log.splitlines()
               if "soulmates scorer listening" in line}
    assert len(scorers) == 1, log[-2000:]  # started once, never again
    assert "starting it again" not in log
    assert not Path(f"/proc/{scorers.pop()}").exists()
    assert not scorer_socket.exists()


def test_options_name_a_socket_per_port_under_the_data_folder(tmp_path: Path) -> None:
    first = gunicorn_options("127.0.0.1", 5001, 2, control_socket_path(tmp_path, "127.0.0.1",
                                                                       5001))
    second = gunicorn_options("127.0.0.1", 5002, 2, control_socket_path(tmp_path, "127.0.0.1",
                                                                        5002))
    assert first["control_socket"] != second["control_socket"]
    assert Path(first["control_socket"]).parent == tmp_path.resolve() / "run"


def test_a_data_folder_too_deep_for_a_unix_socket_gets_a_short_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = control_socket_path(deep, "127.0.0.1", 5001)
    assert len(str(path)) <= 100
    assert path != control_socket_path(deep, "127.0.0.1", 5002)


def _access_logger(accesslog: str) -> EscapingLogger:
    """Return the gunicorn logger set up as ``geomap serve --prod`` sets it up."""
    from gunicorn.config import Config

    config = Config()
    for key, value in gunicorn_options("127.0.0.1", 8000, 1, Path("/nonexistent")).items():
        config.set(key, value)
    config.set("accesslog", accesslog)
    return EscapingLogger(config)


def _access_line(logger: EscapingLogger, path: str) -> None:
    logger.access_log.info("GET %s HTTP/1.1 200", path)


def _drain(logger: EscapingLogger) -> None:
    for handler in logger.access_log.handlers:
        if isinstance(handler, QueuedHandler) and handler._listener is not None:
            handler._listener.stop()
            handler._listener = None
            handler._pid = None


def test_a_reload_does_not_write_access_lines_twice(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    logger = _access_logger(str(log))
    _access_line(logger, "/one")
    logger.setup(logger.cfg)  # what SIGHUP does
    logger.setup(logger.cfg)
    _access_line(logger, "/two")
    _drain(logger)
    assert [type(h) for h in logger.access_log.handlers] == [QueuedHandler]
    lines = log.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["/one", "/two"]


def test_sigusr1_reopens_the_queued_access_log_after_rotation(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    logger = _access_logger(str(log))
    _access_line(logger, "/before")
    _drain(logger)
    log.rename(tmp_path / "access.log.1")  # logrotate moves the file, then sends SIGUSR1
    logger.reopen_files()
    _access_line(logger, "/after")
    _drain(logger)
    assert (tmp_path / "access.log.1").read_text().split()[1] == "/before"
    assert log.read_text().split()[1] == "/after"
