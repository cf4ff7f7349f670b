"""Settings: typed, documented in the README, a clear error for a bad value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from geomap.config import SETTINGS, ConfigError, check_environment, data_dir, load_settings
from geomap.paths import checkout

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_parse() -> None:
    settings = load_settings({})
    assert settings["GEOMAP_K"] == 5
    assert settings["GEOMAP_FLOOR_RESOLUTION"] == 5
    assert settings["GEOMAP_TILES"] == "off"
    assert settings["GEOMAP_DATABASE_URL"] is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("GEOMAP_K", "five"), ("GEOMAP_K", "1"), ("GEOMAP_FLOOR_RESOLUTION", "12"),
     ("GEOMAP_TILES", "ftp://x"), ("GEOMAP_PUBLISH_INTERVAL", "-3")],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_unknown_geomap_variable_is_reported() -> None:
    with pytest.raises(ConfigError, match="GEOMAP_KK"):
        check_environment({"GEOMAP_KK": "5"})


def test_readme_documents_every_setting_with_its_default() -> None:
    readme = README.read_text()
    for setting in SETTINGS:
        row = re.search(rf"^\| `{setting.name}` \| (.*?) \|", readme, re.MULTILINE)
        assert row, f"{setting.name} is missing from the README settings table"
        default = setting.default or "(unset)"
        assert f"`{default}`" in row.group(1) or default in row.group(1), setting.name


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text()[:1500]
    assert head.index("make run") < head.index("make test")


def test_cli_reports_a_bad_setting_readably(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geomap.cli", "db", "status"],
        env={"GEOMAP_K": "zero", "GEOMAP_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0
    assert "GEOMAP_K" in result.stderr and "Traceback" not in result.stderr


def test_a_relative_data_folder_is_the_checkouts_from_any_folder(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A relative data folder (the default `var`) is the checkout's, wherever one runs.

    `geomap import` run from another folder made a second cluster there (a newcomer's
    report).
    """
    root = checkout()
    assert root is not None and (root / "Makefile").is_file()
    wanted = tmp_path / "data"
    monkeypatch.chdir(tmp_path / "..")
    relative = os.path.relpath(wanted, root)
    assert data_dir(load_settings({"GEOMAP_DATA_DIR": relative})) == wanted.resolve()
    assert load_settings({})["GEOMAP_DATA_DIR"] == "var"
