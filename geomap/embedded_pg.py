"""The embedded PostgreSQL + PostGIS cluster geomap runs when no database URL is set.

The cluster lives in ``<data dir>/pg`` and listens on 127.0.0.1 only, with a
password generated once into the data folder. PostgreSQL refuses to run as root, so
under root the server runs as the unprivileged ``postgres`` user Debian creates (or
``nobody``); if that user cannot reach the data folder (e.g. a checkout under
/root), the cluster is kept under /var/lib/geomap instead.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from geomap.config import data_dir, stored_secret

SUPERUSER = "geomap"
DATABASE = "geomap"
# geomap's settings file in the data folder, rewritten at each start (:func:`write_settings`).
SETTINGS_FILE = "geomap.conf"


class EmbeddedError(RuntimeError):
    """The embedded cluster cannot be set up or started; the message says why."""


def pg_bindir() -> Path:
    """Return the bin folder of the newest installed PostgreSQL server."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*") if (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.name) if p.name.isdigit() else 0,
    )
    if not versions:
        raise EmbeddedError(
            "PostgreSQL is not installed. Install it with:\n"
            "    sudo apt-get install postgresql postgresql-15-postgis-3\n"
            "(on a newer Debian, the postgresql-N-postgis-3 matching its PostgreSQL), "
            "or run `make run`, which installs them."
        )
    bindir = versions[-1] / "bin"
    major = versions[-1].name
    if not Path(f"/usr/share/postgresql/{major}/extension/postgis.control").exists():
        raise EmbeddedError(
            f"PostGIS for PostgreSQL {major} is not installed. Install it with:\n"
            f"    sudo apt-get install postgresql-{major}-postgis-3"
        )
    return bindir


@dataclass(frozen=True)
class Cluster:
    """Where the embedded cluster lives and who runs it."""

    pgdata: Path
    port: int
    password: str
    run_as: str | None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's geomap database."""
        return (
            f"postgresql+psycopg://{SUPERUSER}:{quote(self.password)}"
            f"@127.0.0.1:{self.port}/{DATABASE}"
        )

    @property
    def logfile(self) -> Path:
        """The server's log file."""
        return self.pgdata.parent / "postgresql.log"


def memory_bytes() -> int:
    """Return the memory this machine (or its cgroup, when limited) offers, in bytes."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return physical
    return min(physical, int(limit)) if limit.isdigit() else physical


def shared_buffers_mb(memory: int) -> int:
    """Return the embedded cluster's ``shared_buffers`` in MB for ``memory`` bytes.

    A quarter of the memory (PostgreSQL's usual advice), at least 128 MB and at most
    1 GB. An incremental publish at 1,000,000 members and 1,000 maps reads and
    rewrites pages all over ~380 MB of publish tables; with 256 MB the server wrote
    out ~40,000 dirty pages itself (and flushed the WAL for them) during each publish.
    """
    return max(128, min(1024, memory // 4 // 2**20))


def _service_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise EmbeddedError("running as root, but there is no 'postgres' user to run PostgreSQL as")


def _reachable_by(user: str, path: Path) -> bool:
    probe = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(path)], capture_output=True, check=False
    )
    return probe.returncode == 0


def cluster_for(settings: dict[str, Any]) -> Cluster:
    """Return the embedded cluster that ``settings`` describe (not necessarily running)."""
    folder = data_dir(settings)
    user = _service_user()
    pgdata = folder / "pg" / "data"
    if user and not _reachable_by(user, folder):
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        pgdata = Path("/var/lib/geomap") / digest / "data"
    return Cluster(
        pgdata=pgdata,
        port=settings["GEOMAP_DB_PORT"],
        password=stored_secret(settings, "db_password"),
        run_as=user,
    )


def _run(cluster: Cluster, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    command = [str(pg_bindir() / args[0]), *args[1:]]
    if cluster.run_as:
        command = ["runuser", "-u", cluster.run_as, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


def _prepare_dirs(cluster: Cluster) -> None:
    cluster.pgdata.parent.mkdir(parents=True, exist_ok=True)
    if cluster.run_as:
        entry = pwd.getpwnam(cluster.run_as)
        shutil.chown(cluster.pgdata.parent, entry.pw_uid, entry.pw_gid)
        cluster.pgdata.parent.chmod(0o700)


def init(cluster: Cluster) -> bool:
    """Create the cluster if it does not exist; return whether it was created."""
    if (cluster.pgdata / "PG_VERSION").exists():
        return False
    _prepare_dirs(cluster)
    pwfile = cluster.pgdata.parent / "initdb.pw"
    pwfile.write_text(cluster.password + "\n")
    if cluster.run_as:
        entry = pwd.getpwnam(cluster.run_as)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pwfile.chmod(0o600)
    try:
        result = _run(
            cluster,
            [
                "initdb",
                "-D",
                str(cluster.pgdata),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise EmbeddedError(f"initdb failed:\n{result.stderr.strip()}")
    write_settings(cluster)
    return True


def server_settings(memory: int) -> str:
    """Return geomap's PostgreSQL settings (postgresql.conf lines) for ``memory`` bytes."""
    return (
        "# geomap's settings: written by geomap at each start of the embedded cluster\n"
        "# (geomap db start): edits here are lost. Your own settings go in\n"
        "# postgresql.auto.conf (ALTER SYSTEM), which is read after this file.\n"
        "listen_addresses = '127.0.0.1'\n"
        "unix_socket_directories = ''\n"
        f"shared_buffers = {shared_buffers_mb(memory)}MB\n"
        "work_mem = 64MB\n"
        "maintenance_work_mem = 256MB\n"
        "max_wal_size = 2GB\n"
        # A publish right after a checkpoint writes every touched page whole into
        # the WAL (~300 MB at 1M members and 1,000 maps against ~27 MB otherwise):
        # compressed, and checkpoints spaced so that most publishes (every 5 min)
        # do not follow one. Durability is unchanged (fsync, full_page_writes on).
        "wal_compression = lz4\n"
        "checkpoint_timeout = 15min\n"
        "max_connections = 100\n"
        "synchronous_commit = on\n"
    )


def write_settings(cluster: Cluster) -> None:
    """Write :func:`server_settings` into the cluster's ``geomap.conf``, included last.

    Done at each start, so that a cluster created by an older geomap runs with the
    current settings too (its postgresql.conf gets the include line once, at its
    end: later lines win over the settings an older geomap appended there).
    """
    conf = cluster.pgdata / "postgresql.conf"
    include = f"include_if_exists = '{SETTINGS_FILE}'"
    if include not in conf.read_text().splitlines():
        with conf.open("a") as out:
            out.write(f"\n# geomap embedded cluster\n{include}\n")
    settings = cluster.pgdata / SETTINGS_FILE
    settings.write_text(server_settings(memory_bytes()))
    if cluster.run_as:
        entry = pwd.getpwnam(cluster.run_as)
        os.chown(settings, entry.pw_uid, entry.pw_gid)
    settings.chmod(0o600)


def is_running(cluster: Cluster) -> bool:
    """Return whether the cluster's server is up."""
    if not (cluster.pgdata / "PG_VERSION").exists():
        return False
    return _run(cluster, ["pg_ctl", "status", "-D", str(cluster.pgdata)]).returncode == 0


def start(cluster: Cluster) -> bool:
    """Initialise and start the cluster and its database; return whether it was started."""
    init(cluster)
    if is_running(cluster):
        return False
    write_settings(cluster)
    result = _run(
        cluster,
        [
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(cluster.pgdata),
            "-l",
            str(cluster.logfile),
            "-o",
            f"-p {cluster.port}",
        ],
    )
    if result.returncode != 0:
        log = cluster.logfile.read_text()[-2000:] if cluster.logfile.exists() else ""
        raise EmbeddedError(f"PostgreSQL did not start:\n{result.stderr.strip()}\n{log}")
    _ensure_database(cluster)
    return True


def _ensure_database(cluster: Cluster) -> None:
    import psycopg

    conninfo = dict(
        host="127.0.0.1", port=cluster.port, user=SUPERUSER, password=cluster.password
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(cluster: Cluster) -> bool:
    """Stop the cluster's server; return whether it was running."""
    if not is_running(cluster):
        return False
    result = _run(cluster, ["pg_ctl", "stop", "-w", "-m", "fast", "-D", str(cluster.pgdata)])
    if result.returncode != 0:
        raise EmbeddedError(f"PostgreSQL did not stop:\n{result.stderr.strip()}")
    return True


def destroy(cluster: Cluster) -> None:
    """Stop the cluster and delete its data folder (throwaway clusters: tests, benchmarks).

    A cluster kept under /var/lib/geomap (the root fallback) is not inside the caller's
    data folder, so deleting that folder alone would leave it behind for ever.
    """
    stop(cluster)
    folder = cluster.pgdata.parent
    if folder.parent == Path("/var/lib/geomap"):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        shutil.rmtree(cluster.pgdata, ignore_errors=True)


def crash(cluster: Cluster) -> bool:
    """Kill the cluster's server as a power cut would (``pg_ctl stop -m immediate``).

    The next start replays the write-ahead log; tests and ``bench/fault.py`` use it
    to check that every acknowledged write survives. Returns whether it was running.
    """
    if not is_running(cluster):
        return False
    result = _run(cluster, ["pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(cluster.pgdata)])
    if result.returncode != 0:
        raise EmbeddedError(f"PostgreSQL did not stop:\n{result.stderr.strip()}")
    return True


def standby_for(primary: Cluster, port: int) -> Cluster:
    """Return a hot standby of ``primary`` on ``port`` (not necessarily created or running).

    Its data folder sits next to the primary's (``<folder>-standby``), run by the same
    user, so :func:`destroy` removes it, under /var/lib/geomap too.
    """
    folder = primary.pgdata.parent
    return Cluster(
        pgdata=folder.with_name(folder.name + "-standby") / "data",
        port=port,
        password=primary.password,
        run_as=primary.run_as,
    )


def start_standby(primary: Cluster, standby: Cluster) -> bool:
    """Create ``standby`` from a base backup of the running ``primary`` and start it.

    ``pg_basebackup -R`` copies the primary and writes the streaming configuration
    (``standby.signal`` and ``primary_conninfo``); the server then runs as a read-only
    hot standby replaying the primary's WAL. The primary's own settings allow it
    (``wal_level = replica``, WAL senders, replication from 127.0.0.1 in pg_hba.conf).
    Returns whether it was started; raises :class:`EmbeddedError` when it cannot be.
    """
    if not (standby.pgdata / "PG_VERSION").exists():
        _prepare_dirs(standby)
        result = _run(
            standby,
            [
                "pg_basebackup",
                "-D",
                str(standby.pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                SUPERUSER,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-password",
            ],
            env=dict(os.environ, PGPASSWORD=primary.password),
        )
        if result.returncode != 0:
            shutil.rmtree(standby.pgdata, ignore_errors=True)
            raise EmbeddedError(f"pg_basebackup failed:\n{result.stderr.strip()}")
        with (standby.pgdata / "postgresql.conf").open("a") as conf:
            # Long public reads are not cancelled by the primary's vacuum of old rows.
            conf.write("hot_standby = on\nhot_standby_feedback = on\n")
    return start(standby)


def database_url(settings: dict[str, Any]) -> str:
    """Return the configured database URL, or the embedded cluster's."""
    return settings["GEOMAP_DATABASE_URL"] or cluster_for(settings).url
