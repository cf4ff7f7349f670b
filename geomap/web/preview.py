"""A preview image of a condition's world map, drawn here (no tile server, no third party).

Country outlines (Natural Earth) in an equirectangular projection, and one circle
per published cell of the world view, sized by its published count. Used as the
``og:image`` of map pages and the oEmbed ``thumbnail_url``.

Drawing needs Pillow and Shapely (~30 MB resident once imported). A web worker does
not import them: :func:`render_preview_apart` draws in a short-lived child process
(``python -m geomap.web.preview``) and hands back the PNG's bytes, so the worker's
memory stays that of the pages it serves.
"""

from __future__ import annotations

import io
import marshal
import math
import subprocess
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from PIL import Image

    from geomap.publish.published import PublishedCell

WIDTH, HEIGHT = 1200, 600  # pixels: 0.3° per pixel, the world from 90°N to 90°S
SEA, LAND, BORDER = "#cfe0ea", "#f7f4ec", "#a9a294"
MARKER, MARKER_EDGE = (196, 70, 92, 220), "#ffffff"


def _xy(lng: float, lat: float) -> tuple[float, float]:
    """Return the pixel of a point (equirectangular)."""
    return (lng + 180.0) / 360.0 * WIDTH, (90.0 - lat) / 180.0 * HEIGHT


@lru_cache(maxsize=4)
def _base(outlines: tuple[bytes, ...]) -> Image.Image:
    """Return the sea and land image of ``outlines`` (WKB), drawn once per outline set."""
    import shapely  # Pillow and Shapely only where a preview is drawn
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), SEA)
    draw = ImageDraw.Draw(image)
    for geometry in shapely.from_wkb(list(outlines)):
        polygons = getattr(geometry, "geoms", [geometry])
        for polygon in polygons:
            if polygon.geom_type != "Polygon" or polygon.is_empty:
                continue
            ring = [_xy(x, y) for x, y in polygon.exterior.coords]
            if len(ring) >= 3:
                draw.polygon(ring, fill=LAND, outline=BORDER)
    return image


class Marker(NamedTuple):
    """What a preview needs of a published cell: its centre and count."""

    lng: float
    lat: float
    count: int


def render_preview(outlines: list[bytes], cells: list[PublishedCell] | list[Marker]) -> bytes:
    """Return a PNG of the outlines with a circle per published cell (area ∝ count)."""
    from PIL import Image, ImageDraw

    image = _base(tuple(outlines)).copy().convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for cell in sorted(cells, key=lambda c: -c.count):
        x, y = _xy(cell.lng, cell.lat)
        radius = 3.0 + 1.6 * math.sqrt(cell.count)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=MARKER,
                     outline=MARKER_EDGE)
    image = Image.alpha_composite(image, layer).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


RENDER_TIMEOUT_S = 120


class PreviewRenderError(RuntimeError):
    """The child process drawing a preview failed or timed out (args: its exit status).

    Its stderr is not passed on; the view answers 503 with its own message.
    """


def render_preview_apart(outlines: list[bytes], cells: list[PublishedCell]) -> bytes:
    """Return :func:`render_preview` of the same arguments, drawn in a child process.

    The outlines (WKB) and the cells' centres and counts go to the child on its stdin
    (``marshal``: bytes, floats and ints only), the PNG comes back on its stdout.
    Published data only. Raises PreviewRenderError if the child fails or times out.
    """
    payload = marshal.dumps((list(outlines),
                             [(c.lng, c.lat, int(c.count)) for c in cells]))
    try:
        done = subprocess.run([sys.executable, "-m", "geomap.web.preview"], input=payload,
                              capture_output=True, timeout=RENDER_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreviewRenderError from exc  # for the log only: no message for visitors
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        raise PreviewRenderError(done.returncode)
    return done.stdout


def _render_from_stdin() -> None:
    """Draw the preview described on stdin (see render_preview_apart); PNG to stdout."""
    outlines, centres = marshal.loads(sys.stdin.buffer.read())  # noqa: S302 (from our parent)
    # Only the standard library and this module are imported here besides Pillow and
    # Shapely (not SQLAlchemy): the child starts in a fraction of a second.
    sys.stdout.buffer.write(render_preview(outlines, [Marker(*centre) for centre in centres]))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _render_from_stdin()
