"""Where geomap's non-Python files are, in a checkout and in an installed package."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource(name: str) -> Path:
    """Return the folder ``name`` (templates, static, db): in the package, else the checkout."""
    packaged = _PACKAGE / name
    return packaged if packaged.exists() else _PACKAGE.parent / name
