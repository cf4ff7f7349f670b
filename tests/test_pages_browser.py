"""Every page, in a real Chromium: no side scroll, no axe-core or CSP violation.

Widths are checked at 360 px under the real Content-Security-Policy (no refusal may be
logged); axe-core runs at desktop and phone sizes.

PAGES is the one table of pages: add a row when a page is added. Each row is
(name, path, who is signed in, what to wait for). Paths may hold {connection},
{message}, {report} and {closed_entry} from the journey community
(tests/journey_helpers.py).
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
UNVERIFIED = "eve-unverified@example.org"
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
    ("sign up to join a map", "/join/all", None, "#joining"),
    ("check your mail", "/signup/sent", None, "#check-mail"),
    ("reset request", "/reset", None, "main h1"),
    ("reset sent", "/reset/sent", None, "main h1"),
    ("reset link used up", "/reset/not-a-token", None, "main h1"),
    ("privacy", "/privacy", None, "main h1"),
    ("terms", "/terms", None, "main h1"),
    ("account", "/account", MEMBER, "main h1"),
    ("change password", "/account/password", MEMBER, "main h1"),
    ("unverified account", "/account", UNVERIFIED, "main h1"),
    ("my symptoms", "/symptoms", MEMBER, "main h1"),
    ("soulmates and their map", "/soulmates?condition=all", MEMBER,
     "#map_soulmates[data-areas]"),
    ("soulmates closed", "/soulmates", "cy-wren@example.org", "main h1"),
    ("catalogue", "/conditions", None, "main h1"),
    ("catalogue search", "/conditions?q=leukaemia", None, "main h1"),
    ("catalogue entry with a map", "/conditions/all", None, "main h1"),
    ("catalogue entry without a map", "/conditions/{closed_entry}", MEMBER, "main h1"),
    ("admin catalogue", "/admin/conditions/", ADMIN, "main h1"),
    ("API reference", "/api/v1/docs", None, ".opblock"),
]
IDS = [row[0] for row in PAGES]


def _visit(browser, site, row, viewport, bypass_csp=True, console=None):  # noqa: ANN001, ANN202
    _name, path, who, ready = row
    page = open_page(browser, site, who, viewport, bypass_csp=bypass_csp)
    if console is not None:
        page.on("console", lambda message: console.append(message.text))
    page.goto(site.url + path.format(**site.ids))
    page.wait_for_selector(ready, state="attached")
    page.wait_for_load_state("networkidle")
    return page


@pytest.mark.parametrize("row", PAGES, ids=IDS)
def test_no_page_scrolls_sideways_at_360_px_or_breaks_the_csp(browser, journey_site,  # noqa: F811
                                                              row) -> None:
    console: list[str] = []
    page = _visit(browser, journey_site, row, NARROW, bypass_csp=False, console=console)
    try:
        assert horizontal_overflow(page) <= 0, f"{row[0]} is wider than 360 px"
        refused = [m for m in console if "Content Security Policy" in m]
        assert refused == [], f"{row[0]}: {refused}"
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
