"""Languages in a real Chromium: every page in every shipped language, Arabic right to left.

Every page of tests/test_pages_browser.py's PAGES table is fetched in each shipped locale,
once with ``?lang=`` and once with ``Accept-Language``: the same status as in English,
``<html lang dir>`` of that locale, no placeholder or template syntax left in the text and
a complete string catalogue for the scripts. Arabic pages are then laid out in Chromium:
the header and the map page mirror (brand on the right, text aligned right), Leaflet's
controls keep working, no side scroll, and axe-core finds nothing. Screenshots of the
Arabic header and map page are kept in the test's temporary folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from geomap.i18n import LOCALES
from tests.journey_helpers import (
    DESKTOP,
    PHONE,
    axe_violations,
    describe,
    horizontal_overflow,
    journey_site,  # noqa: F401  (module fixture)
    open_page,
    signed_in_state,
)
from tests.test_pages_browser import MAP_READY, PAGES

SHIPPED = [code for code in LOCALES if code != "en"]
LEFTOVERS = re.compile(r"%\(\w+\)[sdr]|\{\{|\{%|\bgettext\(|\b_\(")


def _with_lang(path: str, locale: str) -> str:
    return path + ("&" if "?" in path else "?") + f"lang={locale}"


def _visible_text(html: str) -> str:
    """Return the page's text without scripts, styles and tags (what a reader sees)."""
    html = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", html)
    return re.sub(r"<[^>]+>", " ", html)


def _check(response, locale: str, what: str) -> None:  # noqa: ANN001
    if 300 <= response.status < 400:  # a redirect (the join link): its target has a row
        assert response.headers.get("location"), what
        return
    html = response.text()
    match = re.search(r'<html lang="([\w-]+)" dir="(rtl|ltr)"', html)
    assert match, f"{what}: no <html lang dir>"
    assert match.groups() == (locale, "rtl" if locale == "ar" else "ltr"), what
    leftovers = LEFTOVERS.findall(_visible_text(html))
    assert leftovers == [], f"{what}: {leftovers}"
    block = re.search(r'<script type="application/json" id="geomap-messages">(.*?)</script>',
                      html, re.S)
    if block:  # the scripts' strings: every one present and filled in
        messages = json.loads(block.group(1))
        empty = [key for key, value in messages.items()
                 if not value or (isinstance(value, dict) and not all(value.values()))]
        assert empty == [], f"{what}: {empty}"


@pytest.fixture(scope="module")
def fetchers(browser, journey_site):  # noqa: ANN001, F811
    """One request context per signed-in person (cookies of a real sign-in)."""
    contexts = {}

    def fetch(who: str | None, url: str, headers: dict | None = None):  # noqa: ANN202
        if who not in contexts:
            contexts[who] = browser.new_context(
                storage_state=signed_in_state(browser, journey_site, who))
        return contexts[who].request.get(url, headers=headers or {}, max_redirects=0)

    yield fetch
    for context in contexts.values():
        context.close()


@pytest.mark.parametrize("row", PAGES, ids=[row[0] for row in PAGES])
def test_every_page_renders_in_every_shipped_language(journey_site, fetchers,  # noqa: F811
                                                      row) -> None:
    name, path, who, _ready = row
    url = journey_site.url + path.format(**journey_site.ids)
    english = fetchers(who, url, {"Accept-Language": "en"})
    assert english.status < 500, name
    _check(english, "en", f"{name} (en)")
    for locale in SHIPPED:
        by_query = fetchers(who, _with_lang(url, locale))
        assert by_query.status == english.status, f"{name} ?lang={locale}"
        _check(by_query, locale, f"{name} ?lang={locale}")
        by_header = fetchers(who, url, {"Accept-Language": f"{locale},en;q=0.5"})
        assert by_header.status == english.status, f"{name} Accept-Language {locale}"
        _check(by_header, locale, f"{name} Accept-Language {locale}")


def _box(page, selector: str) -> dict:  # noqa: ANN001
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box


def _text_box(page, selector: str) -> dict:  # noqa: ANN001
    """Return the box of the text inside ``selector`` (not of its block)."""
    return page.evaluate(
        """(selector) => {
            const el = document.querySelector(selector);
            const range = document.createRange();
            range.selectNodeContents(el);
            const r = range.getBoundingClientRect();
            const b = el.getBoundingClientRect();
            return {left: r.left, right: r.right, blockLeft: b.left, blockRight: b.right};
        }""", selector)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_an_arabic_page_lays_out_right_to_left(browser, journey_site, viewport,  # noqa: F811
                                               tmp_path: Path) -> None:
    pages = {}
    for locale in ("en", "ar"):
        page = open_page(browser, journey_site, None, viewport)
        page.goto(f"{journey_site.url}/?lang={locale}")
        page.wait_for_selector("main h1")
        pages[locale] = page
    try:
        ar, en = pages["ar"], pages["en"]
        assert ar.evaluate("getComputedStyle(document.body).direction") == "rtl"
        width = viewport["width"]
        # The brand sits at the start of the line: left in English, right in Arabic.
        brand_en, brand_ar = _box(en, ".site-header .brand"), _box(ar, ".site-header .brand")
        assert brand_en["x"] < width / 2 < brand_ar["x"] + brand_ar["width"]
        assert brand_ar["x"] + brand_ar["width"] > width - 60
        # The language switch is at the end of the header: after the brand, leftwards.
        switch_ar = _box(ar, "#language-switch")
        assert switch_ar["x"] < brand_ar["x"]
        # Headings and paragraphs start on the right.
        heading = _text_box(ar, "main h1")
        assert heading["blockRight"] - heading["right"] < 2
        assert heading["left"] - heading["blockLeft"] > 2
        paragraph = _text_box(ar, ".intro p")
        assert abs(paragraph["blockRight"] - paragraph["right"]) < 12
        assert horizontal_overflow(ar) <= 0
        ar.locator(".site-header").screenshot(path=str(tmp_path / "header-ar.png"))
        assert (tmp_path / "header-ar.png").stat().st_size > 1000
        violations = axe_violations(ar)
        assert violations == [], describe(violations)
    finally:
        for page in pages.values():
            page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_arabic_map_page_mirrors_and_its_map_still_works(browser, journey_site,  # noqa: F811
                                                             viewport, tmp_path: Path) -> None:
    page = open_page(browser, journey_site, None, viewport)
    try:
        page.goto(f"{journey_site.url}/conditions/all/map?lang=ar")
        page.wait_for_selector(MAP_READY, state="attached")
        heading = _text_box(page, ".map-heading h1")
        assert heading["blockRight"] - heading["right"] < 2  # starts on the right
        # Leaflet keeps its own left-to-right geometry: zoom buttons top left, inside the map.
        frame = _box(page, ".map-frame")
        zoom_in = _box(page, ".leaflet-control-zoom-in")
        assert frame["x"] <= zoom_in["x"] < frame["x"] + 80
        assert page.evaluate(
            "getComputedStyle(document.querySelector('.leaflet-container')).direction") == "ltr"
        before = page.get_attribute(MAP_READY, "data-loaded-zoom")
        page.click(".leaflet-control-zoom-in")
        page.wait_for_function(
            "(before) => document.querySelector('.geomap-map').dataset.loadedZoom !== before",
            arg=before)
        # The legend and the table read right to left, numbers in the locale's digits.
        legend = _text_box(page, "#legend-title")
        assert legend["blockRight"] - legend["right"] < 2
        assert page.evaluate("getComputedStyle(document.querySelector('.map-legend')).direction"
                             ) == "rtl"
        # A marker's accessible name is a whole sentence from the catalogue, filled in.
        label = page.locator(".geomap-count .visually-hidden").first.text_content()
        assert label and "%(" not in label and "map." not in label
        assert horizontal_overflow(page) <= 0
        page.screenshot(path=str(tmp_path / "map-ar.png"))
        assert (tmp_path / "map-ar.png").stat().st_size > 5000
        violations = axe_violations(page)
        assert violations == [], describe(violations)
    finally:
        page.context.close()


def test_map_areas_are_named_in_the_pages_language(browser, journey_site) -> None:  # noqa: F811
    # The cells carry the place and the country's ISO code beside the English label; the
    # Spanish map names the country as the browser's CLDR data does ("Alemania").
    page = open_page(browser, journey_site, None, DESKTOP)
    try:
        page.goto(f"{journey_site.url}/conditions/all/map?lang=es")
        page.wait_for_selector(MAP_READY, state="attached")
        names: list[str] = []
        for _ in range(8):
            names = page.eval_on_selector_all(
                ".geomap-cell .visually-hidden", "els => els.map(e => e.textContent)")
            if names:
                break
            before = page.get_attribute(MAP_READY, "data-loaded-zoom")
            page.click(".leaflet-control-zoom-in")
            page.wait_for_function(
                "(before) => document.querySelector('.geomap-map').dataset.loadedZoom "
                "!== before", arg=before)
        assert names, "no area marker after zooming in"
        english = [name for name in names if re.search(r" area, |\barea\b", name)]
        assert english == []
        spanish = page.evaluate(
            "() => new Intl.DisplayNames(['es'], {type: 'region'}).of('DE')")
        assert spanish == "Alemania"
        assert any(re.search(r"Zona (de .+, |: )\w", name) for name in names), names
        # The place (a GeoNames name, in any script) is isolated for bidirectional text.
        assert any(re.search("Zona de \u2068[^\u2068\u2069]+\u2069, \\w", name)
                   for name in names), names
    finally:
        page.context.close()
