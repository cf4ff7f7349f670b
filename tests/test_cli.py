"""The geomap command: embedded cluster lifecycle (idempotent), readable errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from geomap import embedded_pg
from geomap.config import load_settings
from geomap.migrate import alembic_config
from tests.conftest import free_port


def geomap(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geomap.cli", *args], env=env,
                          capture_output=True, text=True, check=False, timeout=300)


def test_embedded_cluster_start_status_stop_are_idempotent(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GEOMAP_DATA_DIR": str(tmp_path),
           "GEOMAP_DB_PORT": str(free_port())}
    try:
        first = geomap("db", "start", env=env)
        assert first.returncode == 0, first.stderr
        assert "started" in first.stdout
        again = geomap("db", "start", env=env)
        assert again.returncode == 0 and "already running" in again.stdout
        upgraded = geomap("db", "upgrade", env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
        assert upgraded.stdout.strip() == f"Schema upgraded from an empty database to {head}."
        again = geomap("db", "upgrade", env=env)
        assert again.returncode == 0 and again.stdout.strip() == f"Schema is up to date ({head})."
        status = geomap("db", "status", env=env)
        assert status.returncode == 0 and f"Schema revision: {head}" in status.stdout
    finally:
        stopped = geomap("db", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert "not running" in geomap("db", "stop", env=env).stdout
    down = geomap("db", "status", env=env)
    assert down.returncode == 3 and "not running" in down.stdout
    embedded_pg.destroy(embedded_pg.cluster_for(load_settings(
        {"GEOMAP_DATA_DIR": str(tmp_path), "GEOMAP_DB_PORT": env["GEOMAP_DB_PORT"]})))


def test_help_lists_the_commands() -> None:
    result = geomap("--help", env={"PATH": "/usr/bin:/bin"})
    for command in ("db", "geo", "demo", "publish", "serve", "admin"):
        assert command in result.stdout
