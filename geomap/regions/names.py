"""Readable names of countries and first-level regions.

Countries are named by pycountry. A region is named by the polygon an operator loaded,
by pycountry for ISO 3166-2 codes (and GeoNames codes that are the same letters), and
otherwise after the most populous gazetteer place in it (GeoNames admin1 codes are
mostly numbers, which no standard names).
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
        return "Kosovo" if code == "XK" else code
    return getattr(country, "common_name", None) or country.name


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


def region_names(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """Return a readable name for each region code ('DE-HH' or GeoNames 'DE.04')."""
    wanted = sorted({code for code in codes if code})
    if not wanted:
        return {}
    names: dict[str, str] = dict(
        session.execute(
            text("SELECT code, name FROM regions WHERE level = 'admin1' AND code = ANY(:codes)"),
            {"codes": wanted},
        ).all()
    ) if session.execute(text("SELECT to_regclass('regions') IS NOT NULL")).scalar() else {}
    geonames = []
    for code in wanted:
        if code in names:
            continue
        country, sep, admin1 = code.partition(".")
        iso = code if not sep else (f"{country}-{admin1}" if admin1.isalpha() else None)
        name = _iso_subdivision(iso) if iso else None
        if name:
            names[code] = name
        elif sep:
            geonames.append(code)
        else:
            names[code] = code
    if geonames:
        hints = session.execute(
            text(
                "SELECT DISTINCT ON (country_code, admin1_code) "
                "country_code || '.' || admin1_code, name FROM places "
                "WHERE country_code || '.' || admin1_code = ANY(:codes) "
                "ORDER BY country_code, admin1_code, population DESC, id"
            ),
            {"codes": geonames},
        ).all()
        hinted = dict(hints)
        for code in geonames:
            names[code] = f"{hinted[code]} region" if code in hinted else code
    return names
