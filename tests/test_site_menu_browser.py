"""The site header in a real Chromium: on a phone the links fold behind a Menu button.

A signed-in member's header on a phone (390×844) is at most two rows (brand and Menu
button, then the language switch), in English, French and Arabic; the menu is a
disclosure (``<button aria-expanded aria-controls>``) that opens with Enter or Space,
closes with Escape and gives its links to the keyboard; nothing moves after the first
paint; axe-core finds nothing. At desktop size (1280×800) the links are shown and the
button is not.
"""

from __future__ import annotations

import re

import pytest

from tests.journey_helpers import (
    DESKTOP,
    PHONE,
    axe_violations,
    describe,
    horizontal_overflow,
    journey_site,  # noqa: F401  (module fixture)
    open_page,
)

MEMBER = "ada-otter@example.org"  # the member with the most links in the header
LANGUAGES = ["en", "fr", "ar"]

# Rows of the header: its shown controls grouped by vertical overlap, and its inner height
# against the tallest single-line control (at least a link's line height).
HEADER_ROWS = """() => {
  const header = document.querySelector(".site-header");
  const style = getComputedStyle(header);
  const link = document.querySelector("#site-nav a");
  const line = parseFloat(getComputedStyle(link).lineHeight);
  const shown = [...header.querySelectorAll("a, button, select, label")]
    .filter((e) => e.getClientRects().length > 0)
    .map((e) => e.getBoundingClientRect())
    .sort((a, b) => a.top - b.top);
  let rows = 0, bottom = -Infinity;
  for (const box of shown) {
    if (box.top >= bottom - 1) { rows += 1; bottom = box.bottom; }
    else bottom = Math.max(bottom, box.bottom);
  }
  const box = header.getBoundingClientRect();
  return {
    rows: rows,
    inner: box.height - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom)
           - parseFloat(style.borderTopWidth) - parseFloat(style.borderBottomWidth),
    row: Math.max(line, ...shown.map((b) => b.height)),
    gap: parseFloat(style.rowGap) || 0,
    line: line,
  };
}"""

# Layout shifts since the page started (Chromium's layout-shift entries).
LAYOUT_SHIFT = """() => new Promise((resolve) => {
  let total = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) total += entry.value;
  }).observe({type: "layout-shift", buffered: true});
  setTimeout(() => resolve(total), 300);
})"""


def _focused(page) -> str:  # noqa: ANN001
    """Return a short description of the focused element (id, or tag and text)."""
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.id || (e.tagName + ':' + e.textContent.trim()); }")


def _menu_items(page) -> list:  # noqa: ANN001
    """Return the menu's focusable items (links and the sign-out button), in order."""
    return page.locator("#site-nav a, #site-nav button").all()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_signed_in_header_fits_a_phone_and_its_menu_works_by_keyboard(
        browser, journey_site, lang: str) -> None:  # noqa: F811
    page = open_page(browser, journey_site, MEMBER, PHONE)
    try:
        page.goto(f"{journey_site.url}/?lang={lang}")
        page.wait_for_selector("main h1")
        assert page.evaluate(LAYOUT_SHIFT) == 0  # folded from the first paint
        toggle = page.locator("#menu-toggle")
        assert toggle.is_visible()
        assert toggle.get_attribute("aria-expanded") == "false"
        assert toggle.get_attribute("aria-controls") == "site-nav"
        assert not page.locator("#site-nav").is_visible()
        # Two rows at most: brand and button, then the language switch, still reachable.
        rows = page.evaluate(HEADER_ROWS)
        assert rows["rows"] <= 2, rows
        assert rows["inner"] <= 2 * rows["row"] + rows["gap"] + 1, rows
        assert rows["row"] < 2.2 * rows["line"], rows
        assert page.locator("#language-select").is_visible()
        assert horizontal_overflow(page) <= 0
        # Arabic mirrors: the brand at the right, the button at the left.
        brand = page.locator(".site-header .brand").bounding_box()
        button = toggle.bounding_box()
        if lang == "ar":
            assert button["x"] < PHONE["width"] / 2 < brand["x"]
        else:
            assert brand["x"] < PHONE["width"] / 2 < button["x"]

        # Keyboard: Tab reaches the button, Enter opens, Tab walks the links, Escape closes.
        for _ in range(5):
            page.keyboard.press("Tab")
            if _focused(page) == "menu-toggle":
                break
        assert _focused(page) == "menu-toggle"
        page.keyboard.press("Enter")
        assert toggle.get_attribute("aria-expanded") == "true"
        items = _menu_items(page)
        assert len(items) >= 8  # Conditions, Nearby, ..., Account, Sign out
        for item in items:
            assert item.is_visible()
            page.keyboard.press("Tab")
            assert item.evaluate("(e) => e === document.activeElement"), _focused(page)
        violations = axe_violations(page)
        assert violations == [], describe(violations)
        page.keyboard.press("Escape")
        assert toggle.get_attribute("aria-expanded") == "false"
        assert _focused(page) == "menu-toggle"
        assert not page.locator("#site-nav").is_visible()
        # Space toggles it too; Escape with the focus on the button closes it.
        page.keyboard.press("Space")
        assert toggle.get_attribute("aria-expanded") == "true"
        assert page.locator("#site-nav").is_visible()
        page.keyboard.press("Space")
        assert toggle.get_attribute("aria-expanded") == "false"
        page.keyboard.press("Space")
        page.keyboard.press("Escape")
        assert toggle.get_attribute("aria-expanded") == "false"
        assert page.evaluate(HEADER_ROWS)["rows"] <= 2
        violations = axe_violations(page)
        assert violations == [], describe(violations)
    finally:
        page.context.close()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_on_a_desktop_the_links_are_shown_without_the_menu(browser, journey_site,  # noqa: F811
                                                           lang: str) -> None:
    page = open_page(browser, journey_site, MEMBER, DESKTOP)
    try:
        page.goto(f"{journey_site.url}/?lang={lang}")
        page.wait_for_selector("main h1")
        assert not page.locator("#menu-toggle").is_visible()
        items = _menu_items(page)
        assert len(items) >= 8
        assert all(item.is_visible() for item in items)
        assert page.locator("#language-select").is_visible()
        violations = axe_violations(page)
        assert violations == [], describe(violations)
    finally:
        page.context.close()


def test_without_the_script_the_links_stay_shown_on_a_phone(browser, journey_site) -> None:  # noqa: F811
    page = open_page(browser, journey_site, MEMBER, PHONE)
    try:
        page.route(re.compile(r"/site-menu\.js"), lambda route: route.abort())
        page.goto(f"{journey_site.url}/")
        page.wait_for_selector("main h1")
        assert not page.locator("#menu-toggle").is_visible()
        assert all(item.is_visible() for item in _menu_items(page))
    finally:
        page.context.close()
