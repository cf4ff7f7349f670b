"""The map preview image (og:image, oEmbed thumbnail) and oEmbed sizes and discovery."""

from __future__ import annotations

import io

import pytest
from PIL import Image


def test_preview_is_a_png_of_the_world_with_markers(client) -> None:
    response = client.get("/conditions/all/preview.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data)).convert("RGB")
    assert image.size == (1200, 600)
    colours = {colour for _count, colour in image.getcolors(maxcolors=1 << 20)}
    assert (207, 224, 234) in colours and (247, 244, 236) in colours  # sea and land
    assert any(r > 180 and g < 110 and b < 130 for r, g, b in colours)  # markers
    again = client.get("/conditions/all/preview.png",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/conditions/nope/preview.png").status_code == 404


def test_map_pages_name_the_preview(client) -> None:
    page = client.get("/conditions/all/map").get_data(as_text=True)
    assert 'property="og:image" content="http://localhost/conditions/all/preview.png"' in page
    assert 'name="viewport"' in page and "user-scalable=no" not in page


def test_oembed_clamps_small_maxwidth_and_has_a_thumbnail(client) -> None:
    url = "http://localhost/conditions/all/map"
    small = client.get("/oembed", query_string={"url": url, "maxwidth": 120, "maxheight": 90})
    assert small.status_code == 200
    answer = small.get_json()
    assert (answer["width"], answer["height"]) == (200, 200)
    assert answer["thumbnail_url"] == "http://localhost/conditions/all/preview.png"
    assert (answer["thumbnail_width"], answer["thumbnail_height"]) == (1200, 600)
    huge = client.get("/oembed", query_string={"url": url, "maxwidth": 99999}).get_json()
    assert huge["width"] == 4000
    assert client.get("/oembed", query_string={"url": url, "maxwidth": "wide"}).status_code == 400


def test_embed_page_carries_oembed_discovery_and_the_view_in_the_snippet(client) -> None:
    embed = "/embed/conditions/all/map?lat=48.1&lng=11.5&zoom=6"
    page = client.get(embed).get_data(as_text=True)
    assert 'type="application/json+oembed"' in page
    discovery = "url=http://localhost/embed/conditions/all/map?lat%3D48.1%26lng%3D11.5%26zoom%3D6"
    assert discovery in page.replace("&amp;", "&")
    answer = client.get("/oembed", query_string={
        "url": "http://localhost" + embed, "maxwidth": 500}).get_json()
    assert "lat=48.1&amp;lng=11.5&amp;zoom=6" in answer["html"]
    assert "max-width:500px" in answer["html"]


def test_the_child_process_draws_the_same_png_as_drawing_in_process() -> None:
    import shapely

    from geomap.web.preview import Marker, render_preview, render_preview_apart

    outlines = [shapely.to_wkb(shapely.box(-10, 35, 30, 60)),
                shapely.to_wkb(shapely.box(100, -40, 150, -10))]
    markers = [Marker(8.68, 50.11, 12), Marker(2.35, 48.86, 40), Marker(130.0, -25.0, 7)]
    drawn = render_preview_apart(outlines, markers)
    assert drawn.startswith(b"\x89PNG") and drawn == render_preview(outlines, markers)


def test_a_drawing_that_fails_in_the_child_raises_a_render_error() -> None:
    from geomap.web.preview import PreviewRenderError, render_preview_apart

    with pytest.raises(PreviewRenderError):
        render_preview_apart([b"not a geometry"], [])
