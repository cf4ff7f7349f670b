"""Every page, in a real Chromium: no side scroll at 360 px, no axe-core violation.

PAGES is the one table of pages: add a row when a page is added. Each row is
(name, path, who is signed in, what to wait for). Paths may hold {connection},
{message} and {report} from the journey community (tests/journey_helpers.py).
"""

from __future__ import annotations

import pytest

from tests.journey_helpers import (
    DESKTOP,
    NARROW,
    PHONE,
    axe_violations,
    describe,
    horizontal_overflow,
    journey_site,  # noqa: F401  (module fixture)
    open_page,
)

MEMBER = "ada-otter@example.org"
MODERATOR = "mod@example.org"
ADMIN = "boss@example.org"
MAP_READY = ".geomap-map[data-loaded-zoom]"

PAGES = [
    ("conditions", "/", None, "main h1"),
    ("world map", "/conditions/all/map", None, MAP_READY),
    ("embedded map", "/embed/conditions/all/map", None, MAP_READY),
    ("embed editor", "/embed", None, "#embed-snippet"),
    ("sign in", "/login", None, "main h1"),
    ("sign up", "/signup", None, "main h1"),
    ("missing page", "/conditions/no-such-condition/map", None, "main h1"),
    ("settings", "/settings", MEMBER, "#pin-map"),
    ("nearby", "/nearby?condition=all", MEMBER, ".nearby-list"),
    ("connections", "/connections", MEMBER, "main h1"),
    ("conversation", "/connections/{connection}", MEMBER, "#thread"),
    ("connect", "/connect/cy-wren", MEMBER, "#connect-form"),
    ("block", "/members/bo-heron/block", MEMBER, "#block-form"),
    ("report", "/messages/{message}/report", MEMBER, "#report-form"),
    ("my data", "/my-data", MEMBER, "main h1"),
    ("moderation queue", "/moderation", MODERATOR, ".report"),
    ("moderation log", "/moderation/log", ADMIN, "main h1"),
    ("admin regions", "/admin/regions", ADMIN, "main h1"),
]
IDS = [row[0] for row in PAGES]


def _visit(browser, site, row, viewport):  # noqa: ANN001, ANN202
    _name, path, who, ready = row
    page = open_page(browser, site, who, viewport)
    page.goto(site.url + path.format(**site.ids))
    page.wait_for_selector(ready, state="attached")
    page.wait_for_load_state("networkidle")
    return page


@pytest.mark.parametrize("row", PAGES, ids=IDS)
def test_no_page_scrolls_sideways_at_360_px(browser, journey_site, row) -> None:  # noqa: F811
    page = _visit(browser, journey_site, row, NARROW)
    try:
        assert horizontal_overflow(page) <= 0, f"{row[0]} is wider than 360 px"
    finally:
        page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("row", PAGES, ids=IDS)
def test_no_page_has_axe_violations(browser, journey_site, row, viewport) -> None:  # noqa: F811
    page = _visit(browser, journey_site, row, viewport)
    try:
        violations = axe_violations(page)
        assert violations == [], f"{row[0]}: {describe(violations)}"
    finally:
        page.context.close()
