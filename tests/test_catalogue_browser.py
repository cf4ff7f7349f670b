"""The home-page condition search in a real Chromium, used with the keyboard only."""

from __future__ import annotations

from urllib.parse import urlsplit


def test_keyboard_search_from_the_home_page_opens_the_condition(live_server, page) -> None:
    page.goto(f"{live_server.url}/")
    box = page.locator("#condition-q-home")
    box.focus()
    page.keyboard.type("lymphoblastic")
    page.wait_for_selector("#condition-suggestions-home li[role=option]")
    names = page.locator("#condition-suggestions-home li[role=option]").all_inner_texts()
    wanted = next(i for i, text in enumerate(names) if "Acute lymphocytic leukemia" in text)
    for _ in range(wanted + 1):
        page.keyboard.press("ArrowDown")
    active = box.get_attribute("aria-activedescendant")
    assert active == f"condition-suggestions-home-{wanted}"
    assert page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    page.keyboard.press("Enter")
    page.wait_for_url("**/conditions/all")
    assert page.locator("h1").inner_text() == "Acute lymphocytic leukemia"
    assert page.locator(".map-state a.button").inner_text() == "See the world map"


def test_spanish_name_and_enter_without_a_choice_search_the_catalogue(live_server,
                                                                      page) -> None:
    page.goto(f"{live_server.url}/")
    page.locator("#condition-q-home").focus()
    page.keyboard.type("leucemia linfoblástica aguda")
    option = page.locator("#condition-suggestions-home li[role=option]").first
    option.wait_for()
    assert "Acute lymphocytic leukemia" in option.inner_text()
    assert option.locator(".matched").get_attribute("lang") == "es"
    page.keyboard.press("Enter")  # no suggestion chosen: the full results page
    page.wait_for_url("**/conditions?q=*")
    assert page.locator(".search-results li").first.inner_text().startswith(
        "Acute lymphocytic leukemia")
    hosts = {urlsplit(url).hostname for url in page.requested_urls if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}
