"""Where geomap's non-Python files are, in a checkout and in an installed package."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def checkout() -> Path | None:
    """Return the checkout geomap runs from (the folder of its pyproject.toml), or None.

    None for an installed package: its files live in site-packages.
    """
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "geomap").is_dir() else None


def resource(name: str) -> Path:
    """Return the folder ``name`` (templates, static, db): in the package, else the checkout."""
    packaged = _PACKAGE / name
    return packaged if packaged.exists() else _PACKAGE.parent / name


# A Unix socket's path must fit sockaddr_un.sun_path: 108 bytes on Linux, with the
# terminating NUL; 100 leaves room for a non-ASCII character or two.
SUN_PATH_MAX = 100


def fits_unix_socket(path: Path) -> bool:
    """Whether ``path`` is short enough to bind a Unix socket at (:data:`SUN_PATH_MAX`)."""
    return len(str(path).encode()) <= SUN_PATH_MAX
