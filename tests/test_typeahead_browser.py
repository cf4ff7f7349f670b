"""The settings page's city type-ahead driven by the keyboard alone, and a pin at sea.

Real Chromium against a real PostGIS, at desktop (1280x800) and phone (390x844) sizes:
Tab to the combobox, type, move with the arrow keys (aria-activedescendant and
aria-selected follow), Enter picks, Escape closes, a nonsense name says so, an ambiguous
name is never picked silently, and the list is readable and drawn above the pin map.
"""

from __future__ import annotations

import pytest

from geomap import create_app
from tests.conftest import LiveServer, app_config
from tests.test_members_browser import sign_up

VIEWPORTS = [pytest.param((1280, 800), id="desktop"), pytest.param((390, 844), id="phone")]


def tab_to(page, element_id: str, limit: int = 60) -> None:  # noqa: ANN001
    """Press Tab until the element with ``element_id`` has the focus."""
    for _ in range(limit):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    pytest.fail(f"Tab never reached #{element_id}")


def active_state(page) -> tuple[str | None, list[str]]:  # noqa: ANN001
    """Return the input's aria-activedescendant and the ids of options marked selected."""
    descendant = page.get_attribute("#city-input", "aria-activedescendant")
    selected = page.eval_on_selector_all(
        "#city-suggestions [role=option][aria-selected=true]", "els => els.map(e => e.id)")
    return descendant, selected


def assert_list_visible_and_on_top(page) -> None:  # noqa: ANN001
    """Each option in view is readable and is what the browser hits at its centre."""
    checks = page.evaluate("""() => {
      const rgb = (s) => (s.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
      const lum = (c) => { const [r, g, b] = c.map(v => { v /= 255;
        return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
      const out = [];
      for (const li of document.querySelectorAll('#city-suggestions li')) {
        const box = li.getBoundingClientRect();
        const x = box.left + box.width / 2, y = box.top + box.height / 2;
        const shown = document.getElementById('city-suggestions').getBoundingClientRect();
        if (y < Math.max(0, shown.top) || y > Math.min(innerHeight, shown.bottom)
            || x < 0 || x > innerWidth) continue;  // scrolled out of the list or the window
        const hit = document.elementFromPoint(x, y);
        let bg = getComputedStyle(li).backgroundColor, el = li;
        while (bg === 'rgba(0, 0, 0, 0)' && el.parentElement) {
          el = el.parentElement; bg = getComputedStyle(el).backgroundColor; }
        const text = li.querySelector('.city-name') || li;
        const a = lum(rgb(getComputedStyle(text).color)), b = lum(rgb(bg));
        out.push({id: li.id, onTop: li.contains(hit), hit: hit && hit.outerHTML.slice(0, 80),
                  contrast: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
      }
      const zoom = document.querySelector('#pin-map .leaflet-control-zoom');
      const list = document.getElementById('city-suggestions').getBoundingClientRect();
      let zoomCovered = null;
      if (zoom) {
        const z = zoom.getBoundingClientRect();
        const left = Math.max(z.left, list.left), right = Math.min(z.right, list.right);
        const top = Math.max(z.top, list.top), bottom = Math.min(z.bottom, list.bottom);
        if (right > left && bottom > top) {
          const hit = document.elementFromPoint((left + right) / 2, (top + bottom) / 2);
          zoomCovered = document.getElementById('city-suggestions').contains(hit);
        }
      }
      return {options: out, zoomCovered};
    }""")
    assert checks["options"], "no option of the list is in view"
    for option in checks["options"]:
        assert option["onTop"], f"{option['id']} is covered by {option['hit']}"
        assert option["contrast"] >= 4.5, f"{option['id']} contrast {option['contrast']:.2f}"
    # At both sizes the open list reaches down over the pin map's zoom control.
    assert checks["zoomCovered"] is not None, "the list no longer overlaps the zoom control"
    assert checks["zoomCovered"], "the zoom control is drawn over the list"


# Pixels from the pin map's middle to its one marker (None unless there is one marker).
CHOSEN_MARKER_OFFSET = """() => {
  const box = document.getElementById('pin-map').getBoundingClientRect();
  const dots = [...document.querySelectorAll('#pin-map path.leaflet-interactive')];
  if (dots.length !== 1) return null;
  const r = dots[0].getBoundingClientRect();
  return [r.left + r.width / 2 - (box.left + box.width / 2),
          r.top + r.height / 2 - (box.top + box.height / 2)];
}"""


@pytest.mark.parametrize("size", VIEWPORTS)
def test_typeahead_by_keyboard_alone(fresh_db_url, tmp_path, browser, size) -> None:
    width, height = size
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(60_000)
    page = context.new_page()
    with LiveServer(app) as server:
        sign_up(page, server.url, f"keys-{width}", tmp_path)
        page.wait_for_selector("#pin-map .leaflet-control-zoom")

        # A nonsense name: the list says nothing was found, and so does the live region.
        tab_to(page, "city-input")
        page.keyboard.type("Qxzqvbnw", delay=20)
        page.wait_for_selector("#city-suggestions .city-none")
        assert "No place found" in page.inner_text("#city-suggestions")
        assert page.inner_text("#city-status") == "No place found."
        assert page.get_attribute("#city-input", "aria-expanded") == "true"
        page.keyboard.press("Escape")
        page.wait_for_selector("#city-suggestions", state="hidden")
        assert page.get_attribute("#city-input", "aria-expanded") == "false"

        # An ambiguous name: several options, the arrows move the active one.
        page.keyboard.press("Control+A")
        page.keyboard.type("Springfield", delay=20)
        page.locator("#city-suggestions .city-option").nth(1).wait_for()
        count = page.locator("#city-suggestions .city-option").count()
        assert page.inner_text("#city-status").startswith(f"{count} places found")
        assert active_state(page) == (None, [])
        page.keyboard.press("ArrowDown")
        assert active_state(page) == ("city-option-0", ["city-option-0"])
        page.keyboard.press("ArrowDown")
        assert active_state(page) == ("city-option-1", ["city-option-1"])
        page.keyboard.press("ArrowUp")
        assert active_state(page) == ("city-option-0", ["city-option-0"])
        page.keyboard.press("ArrowUp")  # wraps to the last
        assert active_state(page) == (f"city-option-{count - 1}", [f"city-option-{count - 1}"])
        page.keyboard.press("ArrowDown")
        assert_list_visible_and_on_top(page)

        # Escape closes the list; Enter then submits the bare name, which is refused
        # because several places have it: never one picked silently.
        page.keyboard.press("Escape")
        page.wait_for_selector("#city-suggestions", state="hidden")
        assert active_state(page) == (None, [])
        page.keyboard.press("Enter")
        page.wait_for_selector("text=places have that name: pick yours from the list")
        assert "You have not set a location yet." in page.inner_text("#own-location")

        # Choose the second Springfield with the keyboard and save with Enter.
        tab_to(page, "city-input")
        page.keyboard.type("Springfield", delay=20)
        page.locator("#city-suggestions .city-option").nth(1).wait_for()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        second = page.locator("#city-option-1")
        label = ", ".join(t for t in (second.locator(".city-name").inner_text(),
                                      second.locator(".city-where").inner_text()) if t)
        page.keyboard.press("Enter")
        page.wait_for_selector("#city-suggestions", state="hidden")
        assert page.input_value("#city-input") == label
        assert page.inner_text("#location-choice") == f"Chosen: {label}"
        # The pin map follows the list: one marker, at the chosen place, in its middle.
        offset = None
        for _ in range(100):
            offset = page.evaluate(CHOSEN_MARKER_OFFSET)
            if offset is not None and max(map(abs, offset)) < 3:
                break
            page.wait_for_timeout(50)
        assert offset is not None and max(map(abs, offset)) < 3, offset
        page.keyboard.press("Enter")  # the list is closed: Enter submits the form
        page.wait_for_selector(f"text=Your location is now {label}.")
        assert "only you see this" in page.inner_text("#own-location")
        page.screenshot(path=f"/tmp/typeahead_{width}.png", full_page=True)
    context.close()


def test_pin_at_sea_is_confirmed(fresh_db_url, tmp_path, browser) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url))
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)
    page = context.new_page()
    with LiveServer(app) as server:
        sign_up(page, server.url, "sea-dweller", tmp_path)
        page.wait_for_selector("#pin-map .leaflet-control-zoom")
        page.evaluate("document.getElementById('pin-map').scrollIntoView()")
        # The first view is centred on 48°N 15°E at zoom 2 (1024 px around the world):
        # 30°N 40°W, mid-Atlantic, is 156 px to the left and 67 px below the centre.
        box = page.locator("#pin-map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2 - 156, box["y"] + box["height"] / 2 + 67)
        choice = page.inner_text("#location-choice")
        assert choice.startswith("Pin dropped at ")
        lat, lng = (float(v) for v in choice.removeprefix("Pin dropped at ").split(", "))
        assert 27 < lat < 33 and -43 < lng < -37
        assert page.locator("#allow-sea").count() == 0  # offered only after a refusal
        page.click("#save-location")
        page.wait_for_selector("text=That pin is not saved")
        assert "km from land" in page.inner_text("p.flash.error")
        assert "You have not set a location yet." in page.inner_text("#own-location")
        # The pin is kept and shown; the member confirms it.
        assert page.inner_text("#location-choice").startswith("Pin dropped at ")
        page.check("#allow-sea")
        assert "My home really is at sea or on a tiny island" in page.inner_text("#confirm-sea")
        page.click("#save-location")
        page.wait_for_selector("text=Your location is now the pin you dropped.")
        assert "only you see this" in page.inner_text("#own-location")
        assert page.locator("#allow-sea").count() == 0
    context.close()
