"""The site's pages: the list of conditions and each condition's world map."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template

from geomap import published
from geomap.database import db
from geomap.web.api import healthz
from geomap.web.maps import first_viewport_url, world_map

bp = Blueprint("pages", __name__)
MOST_ACTIVE = 24  # conditions listed on the home page; the rest are searched or indexed
INITIAL_ZOOM = 2  # the whole world: its cells can be preloaded (maps.first_viewport_url)
bp.add_url_rule("/healthz", view_func=healthz)


@bp.get("/")
def index() -> str:
    """Show the condition search and the most active conditions with their members."""
    return render_template(
        "index.html",
        conditions=published.conditions(db.public_session, limit=MOST_ACTIVE),
        state=published.publish_state(db.public_session),
    )


@bp.get("/conditions/<slug>/map")
def condition_map(slug: str) -> str:
    """Show the world map of one condition."""
    condition = published.condition(db.public_session, slug)
    if condition is None:
        abort(404, description=published.missing_condition_message(db.public_session, slug))
    config = current_app.config
    parts = world_map(
        slug=slug,
        tiles=config["GEOMAP_TILES"],
        tiles_attribution=config["GEOMAP_TILES_ATTRIBUTION"],
        center=(25.0, 10.0),
        zoom=INITIAL_ZOOM,
    )
    return render_template(
        "map.html",
        condition=condition,
        state=published.publish_state(db.public_session),
        map=parts,
        k=config["GEOMAP_K"],
        preload_url=first_viewport_url(slug, INITIAL_ZOOM),
    )


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Serve the site icon where browsers look for it."""
    return current_app.send_static_file("geomap/favicon.svg")
