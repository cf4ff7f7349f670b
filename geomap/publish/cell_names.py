"""The area labels' parts cached per H3 cell (``cell_area_names``).

A marker's centre is its H3 cell's centre, so its area label (the most populous
gazetteer place within about one cell edge, at most 50 km, else the country outline
containing the centre; see :mod:`geomap.publish.published`) is a function of the cell
alone. Computing it per marker and per request cost 50–100 ms of a viewport cache miss at 1,000,000
members; the viewport query now joins this table and computes only the cells missing
from it.

:func:`name_new_cells` runs after a publish has committed, as its own transaction (the
CLI and the publish schedule call it): it names the published cells without a row, in
one set-based statement, so the first publish names every cell and later ones only the
new cells. :func:`forget` empties the table when places or outlines are re-imported.
Reference data only (published cells and public places and countries), no member data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.publish.published import _LABEL_RADII, COUNTRY_LOOKUP, PLACE_LOOKUP

_NAME_SQL = (
    "INSERT INTO cell_area_names "
    "(cell, place, place_country, place_country_code, country, country_code) "
    "SELECT cell, pp[1], pp[2], pp[3], cp[1], cp[2] FROM ("
    "SELECT m.cell, (" + PLACE_LOOKUP + ") AS pp, (" + COUNTRY_LOOKUP + ") AS cp FROM ("
    "SELECT DISTINCT ON (cell) cell, cell_resolution, lat, lng FROM published_cells s "
    "WHERE NOT EXISTS (SELECT 1 FROM cell_area_names n WHERE n.cell = s.cell) "
    "ORDER BY cell) m) named "
    + "ON CONFLICT (cell) DO NOTHING"
)


@dataclass(frozen=True)
class Naming:
    """What one naming did: ``cells`` rows added, in ``seconds`` (wall time)."""

    cells: int
    seconds: float


def name_new_cells(session: Session) -> Naming:
    """Insert the label parts of every published cell not named yet; return what it did.

    One INSERT … SELECT over the distinct missing cells, computed exactly as the viewport
    query computes them (same radii, ordering and tie-breaks). Runs in the caller's
    transaction; a concurrent naming of the same cell is ignored (ON CONFLICT).
    """
    started = time.perf_counter()
    inserted = session.execute(text(_NAME_SQL), {"radii": _LABEL_RADII}).rowcount
    return Naming(int(inserted or 0), round(time.perf_counter() - started, 3))


def forget(session: Session) -> None:
    """Empty the cache, in the caller's transaction (places or outlines are replaced).

    The viewport query computes the labels of the cells until the next publish names
    them again.
    """
    if session.execute(text("SELECT to_regclass('cell_area_names') IS NOT NULL")).scalar():
        session.execute(text("DELETE FROM cell_area_names"))
