"""Issue 9's journeys in a real Chromium, at desktop (1280×800) and phone (390×844) sizes.

A visitor learns the map (legend, popups, country table, keyboard markers) and joins
with the condition preselected; a member reports a message with a reason and a
moderator handles it from the queue; a hidden member is told why nearby is closed;
nearby shows who was already asked, with filters and the optional profile; a site
editor sets the embed's initial view.
"""

from __future__ import annotations

import re

import pytest
from werkzeug.wrappers import Request, Response

from tests.conftest import LiveServer, set_view
from tests.journey_helpers import (
    DESKTOP,
    PASSWORD,
    PHONE,
    add_people,
    broken_table_words,
    connect_people,
    journey_site,  # noqa: F401  (module fixture)
    open_page,
)
from tests.mail_helpers import sign_in_in_browser, stored_link

SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
AREA_NAME = re.compile(r"^[\d,]+ members?, .+ area")


# The map page's count tables: headings and number cells (kept whole on a phone too).
COUNT_TABLE_CELLS = ('.symptom-counts thead th, .symptom-counts td + td, '
                     '#country-counts thead th, #country-counts td + td')


def _tag(viewport: dict) -> str:
    return "d" if viewport["width"] > 600 else "p"


def _overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@SIZES
def test_visitor_learns_the_map_and_joins(browser, journey_site, viewport) -> None:  # noqa: F811
    page = open_page(browser, journey_site, None, viewport)
    base = journey_site.url
    page.goto(f"{base}/conditions/all/map")
    page.wait_for_selector(".geomap-map[data-loaded-zoom]")
    # One viewport tag, and it allows pinch zoom.
    assert page.locator("meta[name=viewport]").count() == 1
    assert "user-scalable=no" not in page.content()
    # The skip link is the first stop of the keyboard and leads to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.locator(".skip-link").is_visible()
    # The map has most of the first screen, on a phone too (the heading above it is
    # short: its top was at 420 of 844 px before the phone layout).
    top = page.locator(".leaflet-container").bounding_box()["y"]
    assert top <= 0.4 * viewport["height"], top
    # The count tables' headings and numbers keep their words whole, on a phone too.
    broken = broken_table_words(page, COUNT_TABLE_CELLS)
    assert broken["cells"] > 3 and broken["broken"] == [], broken
    # The legend explains both marker kinds and the sizes.
    legend = page.inner_text("#map-legend")
    assert "One area with at least 5 members" in legend and "grouped" in legend
    assert page.locator(".legend-sizes li").count() == 5
    assert page.locator(".legend-sizes li").first.inner_text().strip() == "5–9"  # k = 5
    # The country table: published numbers only.
    page.click("#counts-by-country summary")
    rows = page.locator("#country-counts tbody tr")
    assert rows.count() > 3
    total = int(page.inner_text("#published-total").replace(",", ""))
    shown = [int(t.replace(",", "")) for t in
             page.locator("#country-counts tbody td").all_inner_texts() if t[0].isdigit()]
    assert shown and all(n >= 5 for n in shown) and sum(shown) <= total
    # On a phone the attribution leaves the scale bar alone.
    scale = page.locator(".leaflet-control-scale").bounding_box()
    attribution = page.locator(".leaflet-control-attribution").bounding_box()
    assert not _overlap(scale, attribution)
    # Zoomed in, single areas are named and focusable; Enter opens the popup.
    set_view(page, 50.5, 9.5, 7)
    page.wait_for_function("() => document.querySelector('.geomap-map').dataset.loadedZoom === '7'")
    area = page.get_by_role("button", name=AREA_NAME).first
    area.wait_for()
    area.focus()
    page.keyboard.press("Enter")
    popup = page.locator(".geomap-popup")
    popup.wait_for()
    assert re.match(r"[\d,]+ members", popup.locator("strong").inner_text())
    assert "never a person's location" in popup.inner_text()
    # "Join to connect with them": sign-up names the map being joined, the mailed link
    # carries it through verification (opened in another browser), settings tick it.
    popup.get_by_role("link", name="Join to connect with them").click()
    page.wait_for_url(f"{base}/signup")
    joining = page.inner_text("#joining")
    assert re.match(r"You are joining the .+ map\.", joining)
    name = f"joiner-{_tag(viewport)}"
    email = f"{name}@example.org"
    page.fill("#pseudonym", name)
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.check("#consent")
    page.check("#terms")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/signup/sent")
    assert page.inner_text("#joining").startswith(joining.split(" map")[0])
    link = stored_link(journey_site.data_dir, email, "/verify/")
    page.context.close()
    other = open_page(browser, journey_site, None, viewport)
    other.goto(link)
    other.wait_for_url(re.compile(r".*/login\?next=.*"))
    sign_in_in_browser(other, email, PASSWORD)
    other.wait_for_url(re.compile(r".*/settings\?condition=all"))
    assert other.is_checked("#profile-form input[value=all]")
    assert other.locator("text=We ticked this map's condition").count() == 1
    other.context.close()


@SIZES
def test_embed_popup_invites_to_join_in_a_new_tab(browser, journey_site,  # noqa: F811
                                                  viewport) -> None:
    base = journey_site.url
    embed_url = f"{base}/embed/conditions/all/map?lat=50.5&lng=9.5&zoom=7"
    html = (f'<!doctype html><html lang="en"><head><title>Partner</title></head><body>'
            f'<iframe src="{embed_url}" width="340" height="420" title="Map"></iframe>'
            f"</body></html>")

    @Request.application
    def partner(request: Request) -> Response:
        return Response(html, mimetype="text/html")

    with LiveServer(partner) as other_origin:
        page = open_page(browser, journey_site, None, viewport)
        page.goto(other_origin.url)
        frame = page.frame_locator("iframe")
        frame.locator(".geomap-map[data-loaded-zoom='7']").wait_for(state="attached")
        area = frame.get_by_role("button", name=AREA_NAME).first
        area.focus()
        page.keyboard.press("Enter")
        join = frame.locator(".geomap-popup").get_by_role("link",
                                                          name="Join to connect with them")
        assert join.get_attribute("target") == "_blank"
        assert "noopener" in join.get_attribute("rel")
        assert page.context.cookies() == []  # the embed sets no cookie
        with page.context.expect_page() as opened:
            join.focus()  # by keyboard: the popup may still be panning into view
            page.keyboard.press("Enter")
        tab = opened.value
        tab.wait_for_url(f"{base}/signup")
        assert tab.inner_text("#joining").startswith("You are joining the ")
        assert page.url == other_origin.url + "/"  # the partner page stays
        page.context.close()


@SIZES
def test_report_handled_from_the_moderation_queue(browser, journey_site,  # noqa: F811
                                                  viewport) -> None:
    tag = _tag(viewport)
    ids = add_people(journey_site, (f"reporter-{tag}", {"lat": 48.1, "lng": 11.6}),
                     (f"seller-{tag}", {"lat": 48.2, "lng": 11.5}))
    connection = connect_people(journey_site, ids[f"reporter-{tag}"], f"seller-{tag}",
                                ["Hi there", f"Buy my cure {tag}", "Last chance"])
    member = open_page(browser, journey_site, f"reporter-{tag}@example.org", viewport)
    base = journey_site.url
    member.goto(f"{base}/connections/{connection}")
    member.locator(".message", has_text=f"Buy my cure {tag}").locator(".report-button").click()
    # The report asks for a reason: the form is not sent without one.
    member.click("#send-report")
    assert member.evaluate(
        "document.querySelector('#report-form input[name=reason]').validity.valueMissing")
    assert member.url.endswith("/report")
    member.check("#report-form input[value=misinformation]")
    member.fill("#details", "Sells a fake cure")
    member.click("#send-report")
    member.wait_for_selector("text=the message was reported to the moderators")
    # The moderator sees it in context and hides the message.
    moderator = open_page(browser, journey_site, "mod@example.org", viewport)
    moderator.goto(f"{base}/moderation")
    report = moderator.locator(".report", has_text=f"seller-{tag}")
    report.wait_for()
    text = report.inner_text()
    assert "Hi there" in text and f"Buy my cure {tag}" in text and "Last chance" in text
    assert "Sells a fake cure" in text and "@example.org" not in text
    report.locator("input[value=hide]").check()
    report.locator("textarea").fill("Fake cure")
    report.locator("button[type=submit]").click()
    moderator.wait_for_selector("text=The message is hidden.")
    assert moderator.locator(".report", has_text=f"seller-{tag}").count() == 0
    # The admin reads it in the log; the member sees the message hidden.
    admin = open_page(browser, journey_site, "boss@example.org", viewport)
    admin.goto(f"{base}/moderation/log")
    row = admin.locator("#moderation-log tr", has_text=f"seller-{tag}")
    assert "hide" in row.inner_text() and "mod@example.org" in row.inner_text()
    member.goto(f"{base}/connections/{connection}")
    assert f"Buy my cure {tag}" not in member.inner_text("#thread")
    assert "A moderator has hidden this message" in member.inner_text("#thread")
    # Blocking asks first.
    member.click(".block-button")
    member.wait_for_selector(f"text=Block seller-{tag}?")
    member.click("#confirm-block")
    member.wait_for_selector(f"text=seller-{tag} is blocked.")
    for page in (member, moderator, admin):
        page.context.close()


@SIZES
def test_hidden_member_is_told_why_nearby_is_closed(browser, journey_site,  # noqa: F811
                                                    viewport) -> None:
    tag = _tag(viewport)
    add_people(journey_site, (f"shy-{tag}", {"lat": 53.55, "lng": 10.0, "visibility": "hidden"}))
    page = open_page(browser, journey_site, f"shy-{tag}@example.org", viewport)
    page.goto(f"{journey_site.url}/nearby?condition=all")
    explanation = page.inner_text("#nearby-reciprocity")
    assert "Only members who can be found" in explanation
    assert page.locator(".nearby-member").count() == 0
    page.goto(f"{journey_site.url}/connect/bo-heron")
    assert "Only members who can be found" in page.inner_text("#connect-reciprocity")
    assert page.locator("#connect-form").count() == 0
    page.context.close()


@SIZES
def test_nearby_shows_requests_filters_and_profiles(browser, journey_site,  # noqa: F811
                                                   viewport) -> None:
    tag = _tag(viewport)
    ids = add_people(journey_site,
                     (f"seeker-{tag}", {"lat": 47.37, "lng": 8.54}),
                     (f"friend-{tag}", {"lat": 47.4, "lng": 8.5}),
                     (f"carer-{tag}", {"lat": 47.35, "lng": 8.6, "role": "carer"}))
    connect_people(journey_site, ids[f"seeker-{tag}"], f"friend-{tag}", [])
    page = open_page(browser, journey_site, f"seeker-{tag}@example.org", viewport)
    base = journey_site.url
    page.goto(f"{base}/nearby?condition=all&band=0")
    friend = page.locator(".nearby-member", has_text=f"friend-{tag}")
    assert "Connected" in friend.inner_text() and friend.locator(".connect-link").count() == 0
    page.select_option("#nearby-role", "carer")
    page.click("#nearby-form button[type=submit]")
    page.wait_for_url(re.compile(r".*role=carer.*"))
    names = page.locator(".nearby-member .pseudonym").all_inner_texts()
    assert f"carer-{tag}" in names and f"friend-{tag}" not in names
    # The carer fills in the optional profile; the seeker sees it, then asks.
    carer = open_page(browser, journey_site, f"carer-{tag}@example.org", viewport)
    carer.goto(f"{base}/settings")
    carer.select_option("#age_group", "adult")
    carer.select_option("#treatment_phase", "survivorship")
    carer.fill("#introduction", "Cared for my brother through transplant.")
    carer.click("#save-profile")
    carer.wait_for_selector("text=Saved.")
    page.reload()
    entry = page.locator(".nearby-member", has_text=f"carer-{tag}")
    assert "Cared for my brother" in entry.inner_text() and "Survivorship" in entry.inner_text()
    entry.locator(".connect-link").click()
    page.click("#connect-form button[type=submit]")
    page.wait_for_selector(f"text=Your request was sent to carer-{tag}.")
    page.goto(f"{base}/nearby?condition=all&band=0&role=carer")
    entry = page.locator(".nearby-member", has_text=f"carer-{tag}")
    assert "Requested" in entry.inner_text() and entry.locator(".connect-link").count() == 0
    page.context.close()
    carer.context.close()


@SIZES
def test_embed_editor_sets_the_initial_view(browser, journey_site, viewport) -> None:  # noqa: F811
    page = open_page(browser, journey_site, None, viewport)
    page.goto(f"{journey_site.url}/conditions/all/map")
    page.click("#embed-link")
    page.wait_for_selector("#embed-snippet")
    assert page.locator("#embed-condition").input_value() == "all"
    page.fill("#embed-lat", "48.1")
    page.fill("#embed-lng", "11.6")
    page.fill("#embed-zoom", "6")
    page.locator("#embed-zoom").dispatch_event("change")
    page.wait_for_function(
        "() => document.getElementById('embed-snippet').value.includes('zoom=6')")
    snippet = page.input_value("#embed-snippet")
    assert "lat=48.1&amp;lng=11.6&amp;zoom=6" in snippet and "max-width:" in snippet
    frame = page.frame_locator("#embed-preview iframe")
    frame.locator(".geomap-map[data-loaded-zoom='6']").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.context.close()


@SIZES
def test_admin_choropleth_has_a_legend(browser, journey_site, viewport) -> None:  # noqa: F811
    page = open_page(browser, journey_site, "boss@example.org", viewport)
    page.goto(f"{journey_site.url}/admin/regions")
    page.wait_for_selector(".geomap-map[data-coloured]", state="attached")
    legend = page.locator(".choropleth-legend")
    assert "Members per country" in legend.inner_text()
    items = legend.locator("li").all_inner_texts()
    assert items[0] == "none" and len(items) >= 3
    assert re.search(r"or more$", items[-1])
    page.context.close()
