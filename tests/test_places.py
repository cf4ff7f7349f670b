"""The place matcher shared by the type-ahead and the importer (issue 8, place search)."""

from __future__ import annotations

import unicodedata

import pytest
from sqlalchemy.orm import Session

from geomap.geo import places


@pytest.fixture(scope="module")
def session(community_engine):
    with Session(community_engine) as session:
        yield session


@pytest.mark.parametrize("typed,name,country", [
    ("Kiev", "Kyiv", "UA"),
    ("Cologne", "Köln", "DE"),
    ("München", "Munich", "DE"),
    ("Bombay", "Mumbai", "IN"),
    ("Saigon", "Ho Chi Minh City", "VN"),
    ("Prishtina", "Pristina", "XK"),
    ("Москва", "Moscow", "RU"),
    ("St Louis", "St. Louis", "US"),
    ("Saint Malo", "Saint-Malo", "FR"),
    ("St Gallen", "Sankt Gallen", "CH"),
    ("St. Gallen", "Sankt Gallen", "CH"),
    ("Bodo", "Bodø", "NO"),
    ("Aarhus", "Århus", "DK"),
    (unicodedata.normalize("NFD", "Zürich"), "Zürich", "CH"),
    ("ZÜRICH", "Zürich", "CH"),
    ("Lodz", "Łódź", "PL"),
    ("Gießen", "Gießen", "DE"),
    ("Giessen", "Gießen", "DE"),
])
def test_what_people_type_finds_the_place(session, typed: str, name: str, country: str) -> None:
    found = places.search(session, typed, limit=10)
    assert any(p.name == name and p.country_code == country for p in found), \
        [(p.name, p.country_code) for p in found]
    exact = places.exact(session, [typed], [country]).get(places.fold(typed), [])
    assert any(p.name == name for p in exact)


def test_folding_rules() -> None:
    assert places.fold("Sankt Gallen") == places.fold("St. Gallen") == places.fold("st-gallen")
    assert places.fold("Sainte-Foy") == places.fold("Ste Foy")
    assert places.fold("Bodø") == "bodo" and places.fold("Łódź") == "lodz"
    assert places.fold("Æbeltoft") == "aebeltoft" and places.fold("Straße") == "strasse"
    assert places.fold("ＭＵＮＩＣＨ") == "munich"  # NFKC: full-width letters
    assert places.fold("  ") == "" and places.fold("!!!") == ""


def test_suggestions_are_ranked_by_population_and_show_region_and_country(session) -> None:
    found = places.search(session, "Springfield", limit=10)
    assert len(found) >= 5
    populations = [p.population for p in found]
    assert populations == sorted(populations, reverse=True)
    for place in found:
        assert place.region and place.country and place.region in place.label
    # Each Springfield is told apart by its region: the labels differ.
    assert len({p.label for p in found}) == len(found)


def test_an_ambiguous_name_is_settled_only_by_a_region(session) -> None:
    candidates = places.exact(session, ["Springfield"], ["US"])[places.fold("Springfield")]
    assert len(candidates) > 1
    illinois = places.settle(candidates, "Illinois")
    assert len(illinois) == 1 and illinois[0].region == "Illinois"
    assert places.settle(candidates, "Atlantis") == []
