"""The world map in a real Chromium: it renders, counts add up, nothing leaves 127.0.0.1."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import text

from tests.conftest import set_view


def visible_counts(page) -> list[int]:  # noqa: ANN001
    labels = page.locator(".geomap-count span[aria-hidden=true]").all_inner_texts()
    return [int(label.replace(",", "")) for label in labels]


def test_map_of_all_renders_with_counts_that_add_up(live_server, page, community_engine) -> None:
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-count", timeout=45_000)
    page.wait_for_function("() => document.querySelector('.geomap-map').dataset.loadedZoom === '2'")
    with community_engine.connect() as conn:
        total = conn.execute(
            text("SELECT published FROM published_totals t JOIN conditions c "
                 "ON c.id = t.condition_id WHERE c.slug = 'all' AND t.resolution = 1")
        ).scalar_one()
    counts = visible_counts(page)
    assert counts and all(c >= 5 for c in counts)
    assert sum(counts) == total
    # The country outlines are drawn (SVG paths in the outlines pane), after the markers.
    page.wait_for_function(
        "() => document.querySelectorAll('.leaflet-outlines-pane path').length > 100"
    )


def test_zooming_in_loads_finer_cells(live_server, page) -> None:
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-count", timeout=45_000)
    set_view(page, 50.1, 8.7, 7)
    page.wait_for_function("() => document.querySelector('.geomap-map').dataset.loadedZoom === '7'")
    # Markers come from version-stamped tiles of the new zoom, not from a box query.
    assert any(re.search(r"/tiles/all/[0-9]+/7/[0-9]+/[0-9]+\.json$", url)
               for url in page.requested_urls)
    assert not any("/cells?" in url for url in page.requested_urls)
    assert all(c >= 5 for c in visible_counts(page))


def test_the_map_requests_nothing_from_other_hosts(live_server, page) -> None:
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_selector(".geomap-count", timeout=45_000)
    page.wait_for_load_state("networkidle")
    hosts = {urlsplit(url).hostname for url in page.requested_urls if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}


# Records when the frame with the first markers is painted and when the first country
# outline path is added; tiles wait until the outlines file has arrived, so that both
# are ready at once and only the page's own ordering decides which is drawn first.
_PAINT_ORDER_PROBE = """
(function () {
  var fetchFirst = window.fetch.bind(window);
  var outlinesArrived = null;
  window.fetch = function (url, options) {
    var address = String(url);
    if (address.indexOf("countries-50m") >= 0) {
      var answer = fetchFirst(url, options);
      outlinesArrived = answer.then(function (r) { return r.clone().arrayBuffer(); });
      return answer;
    }
    if (address.indexOf("/tiles/") >= 0 && outlinesArrived) {
      return outlinesArrived
        .then(function () { return new Promise(function (r) { setTimeout(r, 100); }); })
        .then(function () { return fetchFirst(url, options); });
    }
    return fetchFirst(url, options);
  };
  new MutationObserver(function (mutations, observer) {
    if (window.__markersPainted === undefined && document.querySelector(".geomap-count")) {
      window.__markersPainted = null;
      requestAnimationFrame(function () { window.__markersPainted = performance.now(); });
    }
    if (window.__outlinesDrawn === undefined
        && document.querySelector(".leaflet-outlines-pane path")) {
      window.__outlinesDrawn = performance.now();
    }
  }).observe(document, {childList: true, subtree: true});
})();
"""


def test_first_markers_are_painted_before_the_outlines_are_drawn(live_server, page) -> None:
    # Drawing the world's outlines holds the main thread for a few hundred ms; chained
    # to the markers by a promise alone it ran before their frame was painted.
    page.add_init_script(_PAINT_ORDER_PROBE)
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_function("() => typeof window.__markersPainted === 'number' "
                           "&& typeof window.__outlinesDrawn === 'number'", timeout=45_000)
    painted, drawn = page.evaluate("[window.__markersPainted, window.__outlinesDrawn]")
    assert painted < drawn


def test_the_first_tiles_are_preloaded_and_used(live_server, page) -> None:
    # The page names the version document and the 16 tiles of zoom 2 at the current
    # version; map.js then asks for exactly those URLs, answered by the preloads (a
    # preload the page does not use would make the browser fetch the tile twice).
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_function("() => document.querySelector('.geomap-map').dataset.loadedZoom === '2'")
    preloaded = page.eval_on_selector_all("link[rel=preload]", "links => links.map(l => l.href)")
    version = page.evaluate("fetch('/api/v1/conditions/all/version').then(r => r.json())")
    tiles = [version["tiles"].format(z=2, x=x, y=y) for x in range(4) for y in range(4)]
    assert preloaded == [f"{live_server.url}/api/v1/conditions/all/version"] + [
        live_server.url + tile for tile in tiles]
    fetched = [url for url in page.requested_urls if "/tiles/all/" in url]
    assert sorted(fetched) == sorted(live_server.url + tile for tile in tiles)


def test_an_open_popup_stays_open_when_the_view_reloads_its_markers(live_server, page) -> None:
    # A popup's own pan (to fit it in the view) or the visitor's drag loads the tiles
    # of the new view; markers that are still in view stay, and so does their popup.
    # (Replacing every marker on a reload closed the popup its own pan had just opened.)
    page.goto(f"{live_server.url}/conditions/all/map")
    page.wait_for_function("() => document.querySelector('.geomap-map').dataset.loadedZoom === '2'")
    set_view(page, 50.5, 9.5, 7, animate=False)
    page.wait_for_function("() => document.querySelector('.geomap-map').dataset.loadedZoom === '7'")
    page.evaluate("""() => {
        window.__events = [];
        map_world.on('popupopen popupclose', (e) => window.__events.push(e.type));
        document.querySelector('.geomap-map')
            .addEventListener('geomap:loaded', () => window.__events.push('loaded'));
    }""")
    area = page.locator(".geomap-count[role=button], .geomap-cell").first
    area.wait_for()
    area.focus()
    page.keyboard.press("Enter")
    popup = page.locator(".geomap-popup")
    popup.wait_for()
    # A drag of more than a tile (256 px) always loads the view's tiles again.
    page.evaluate("""() => {
        window.__loadsBefore = window.__events.filter((e) => e === 'loaded').length;
        map_world.panBy([300, 0], {animate: false});
    }""")
    page.wait_for_function(
        "() => window.__events.filter((e) => e === 'loaded').length > window.__loadsBefore")
    assert page.evaluate("window.__events").count("popupclose") == 0
    assert popup.is_visible()


# A cluster's accessible name in the page's language, as map.js builds it (the fake
# cluster holds ``areas`` markers with 250 members in all). Arabic has six CLDR plural
# categories: the count is said once, by the number or by the noun (the dual
# "منطقتين", "منطقة واحدة"), never both, and the noun agrees with it.
_CLUSTER_LABEL = """(areas) => {
  const markers = [];
  for (let i = 0; i < areas; i++) markers.push({options: {count: i ? 1 : 251 - areas}});
  const icon = geomap.clusterIcon({getAllChildMarkers: () => markers});
  const box = document.createElement("div");
  box.innerHTML = icon.options.html;
  return box.querySelector(".visually-hidden").textContent;
}"""

_ZOOM_IN_AR = "كبّر الخريطة لرؤيتهم"
CLUSTER_LABELS = {
    "ar": {1: f"250 عضوًا في منطقة واحدة؛ {_ZOOM_IN_AR}",
           2: f"250 عضوًا في منطقتين؛ {_ZOOM_IN_AR}",
           3: f"250 عضوًا في 3 مناطق؛ {_ZOOM_IN_AR}",
           11: f"250 عضوًا في 11 منطقةً؛ {_ZOOM_IN_AR}",
           100: f"250 عضوًا في 100 منطقة؛ {_ZOOM_IN_AR}"},
    "en": {1: "250 members in 1 area; zoom in to see them",
           2: "250 members in 2 areas; zoom in to see them"},
    "fr": {1: "250 membres dans 1 zone ; zoomez pour les voir",
           2: "250 membres dans 2 zones ; zoomez pour les voir"},
}
MEMBER_LABELS = {
    "ar": {1: "عضو واحد", 2: "عضوان", 3: "3 أعضاء", 11: "11 عضوًا", 100: "100 عضو"},
    "en": {1: "1 member", 2: "2 members"},
    "fr": {1: "1 membre", 2: "2 membres"},
}


def test_cluster_and_area_labels_say_the_count_once_in_the_right_plural_form(
        live_server, page) -> None:
    for lang, expected in CLUSTER_LABELS.items():
        page.goto(f"{live_server.url}/conditions/all/map?lang={lang}")
        page.wait_for_function("() => window.L && window.geomap && window.geomap.clusterIcon")
        clusters = {n: page.evaluate(_CLUSTER_LABEL, n) for n in expected}
        assert clusters == expected, lang
        members = {n: page.evaluate("(n) => geomap.tn('map.members', n)", n)
                   for n in MEMBER_LABELS[lang]}
        assert members == MEMBER_LABELS[lang], lang
        for n, label in clusters.items():  # the area count appears at most once
            assert label.count(f"{n} ") <= 1 and f"({n})" not in label, label
