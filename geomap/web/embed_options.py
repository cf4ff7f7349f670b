"""The options an embedded map takes from its query string, and the iframe snippet.

Options are validated strictly (a readable 400 for a bad value) and put back in one
canonical order, so equal options give equal URLs and ETags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from flask_babel import gettext as _
from markupsafe import Markup, escape

from geomap.i18n import LOCALES
from geomap.privacy import MAX_ZOOM

DEFAULT_CENTER = (25.0, 10.0)
DEFAULT_ZOOM = 2
MIN_ZOOM = 1
HEIGHT_RANGE = (100, 4000)  # pixels
SIZE_RANGE = (200, 4000)  # pixels, for iframe width and height
DEFAULT_SIZE = (640, 480)
SIZES = {"small": (400, 300), "medium": (640, 480), "large": (960, 600)}


class EmbedOptionError(ValueError):
    """A query option an embed cannot use; the message says why (safe to show)."""


@dataclass(frozen=True)
class EmbedOptions:
    """How an embedded map looks: fixed height or fill the frame, initial view, tiles."""

    height: int | None = None  # None: fill the frame
    lat: float = DEFAULT_CENTER[0]
    lng: float = DEFAULT_CENTER[1]
    zoom: int = DEFAULT_ZOOM
    tiles: bool = False
    lang: str | None = None  # a shipped locale; None: the viewer's browser language

    def query(self, tiles_enabled: bool) -> dict[str, str]:
        """Return the non-default options as query parameters, in a canonical order."""
        params: dict[str, str] = {}
        if self.height is not None:
            params["height"] = str(self.height)
        if (self.lat, self.lng) != DEFAULT_CENTER:
            params["lat"] = _number(self.lat)
            params["lng"] = _number(self.lng)
        if self.zoom != DEFAULT_ZOOM:
            params["zoom"] = str(self.zoom)
        if tiles_enabled and not self.tiles:
            params["tiles"] = "off"
        if self.lang:
            params["lang"] = self.lang
        return params

    def query_string(self, tiles_enabled: bool) -> str:
        """Return :meth:`query` encoded, empty when every option is a default."""
        return urlencode(self.query(tiles_enabled))


def _number(value: float) -> str:
    """Return ``value`` with at most five decimals and no trailing zeros."""
    return f"{value:.5f}".rstrip("0").rstrip(".")


def _int_in(args: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    """Return the whole number ``args[name]`` within low..high, None if absent."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise EmbedOptionError(_('%(name)s must be a whole number from %(low)s to %(high)s.',
                                 name=name, low=low, high=high)) from None
    if not low <= value <= high:
        raise EmbedOptionError(_('%(name)s must be a whole number from %(low)s to %(high)s.',
                                 name=name, low=low, high=high))
    return value


def _float_in(args: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    """Return the finite number ``args[name]`` within low..high, None if absent."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise EmbedOptionError(_('%(name)s must be a number from %(low)s to %(high)s.',
                                 name=name, low=format(low, 'g'), high=format(high, 'g')))
    return round(value, 5)


def parse_embed_options(args: Mapping[str, str], tiles_enabled: bool) -> EmbedOptions:
    """Return the embed options in ``args``, or raise EmbedOptionError.

    ``tiles`` defaults to the operator's choice; ``tiles=on`` is refused when the
    operator has not enabled a tile server.
    """
    height = _int_in(args, "height", *HEIGHT_RANGE)
    lat = _float_in(args, "lat", -85.0, 85.0)
    lng = _float_in(args, "lng", -180.0, 180.0)
    if (lat is None) != (lng is None):
        raise EmbedOptionError(_("lat and lng go together: give both or neither."))
    zoom = _int_in(args, "zoom", MIN_ZOOM, MAX_ZOOM)
    raw_tiles = args.get("tiles", "")
    if raw_tiles not in ("", "on", "off"):
        raise EmbedOptionError(_("tiles must be 'on' or 'off'."))
    if raw_tiles == "on" and not tiles_enabled:
        raise EmbedOptionError(_("This server has no map tiles enabled; leave tiles out."))
    raw_lang = args.get("lang", "")
    lang = embed_language(raw_lang)
    if raw_lang and lang is None:
        raise EmbedOptionError(_("lang must be one of %(languages)s.",
                                 languages=", ".join(LOCALES)))
    return EmbedOptions(
        height=height,
        lat=DEFAULT_CENTER[0] if lat is None else lat,
        lng=DEFAULT_CENTER[1] if lng is None else lng,
        zoom=DEFAULT_ZOOM if zoom is None else zoom,
        tiles=tiles_enabled and raw_tiles != "off",
        lang=lang,
    )


def embed_language(raw: str | None) -> str | None:
    """Return the shipped locale an embed's ``lang`` names ("de", "pt-BR" → "pt"), or None."""
    if not raw or len(raw) > 16:
        return None
    base = raw.strip().replace("_", "-").split("-")[0].lower()
    return base if base in LOCALES else None


def parse_size(args: Mapping[str, str], width_name: str, height_name: str) -> tuple[int, int]:
    """Return the iframe (width, height) in ``args``, defaults where absent."""
    width = _int_in(args, width_name, *SIZE_RANGE)
    height = _int_in(args, height_name, *SIZE_RANGE)
    return (width or DEFAULT_SIZE[0], height or DEFAULT_SIZE[1])


def parse_max_size(args: Mapping[str, str]) -> tuple[int, int]:
    """Return the oEmbed (width, height) for ``maxwidth`` and ``maxheight``.

    A maximum outside our size range is clamped into it, as WordPress's provider does
    (a consumer asking for 150 px gets our smallest, 200 px, rather than an error);
    a value that is no whole number raises EmbedOptionError.
    """
    sizes = []
    for name, default in (("maxwidth", DEFAULT_SIZE[0]), ("maxheight", DEFAULT_SIZE[1])):
        value = _int_in(args, name, -(2**31), 2**31)
        sizes.append(default if value is None else min(max(value, SIZE_RANGE[0]),
                                                       SIZE_RANGE[1]))
    return sizes[0], sizes[1]


def iframe_snippet(src: str, width: int, height: int, title: str, styled: bool = True) -> Markup:
    """Return the iframe element that embeds the map at ``src`` (every value escaped).

    The frame is ``width`` wide at most and shrinks with a narrower column (phones).
    ``styled=False`` leaves out the style attribute (our own pages' CSP refuses inline
    styles; their stylesheet sizes the frame).
    """
    style = Markup(' style="border:0;width:100%;max-width:{}px"').format(int(width))
    return Markup(
        '<iframe src="{}" width="{}" height="{}" title="{}"{} '
        'loading="lazy" referrerpolicy="no-referrer"></iframe>'
    ).format(src, int(width), int(height), escape(title), style if styled else Markup(""))
