"""The site's pages: the list of conditions and each condition's world map."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, render_template, url_for

from geomap.database import db
from geomap.i18n.names import localised, localised_one
from geomap.publish import published
from geomap.publish.symptoms import symptom_picture
from geomap.web.api import healthz, readyz

bp = Blueprint("pages", __name__)
MOST_ACTIVE = 24  # conditions listed on the home page; the rest are searched or indexed
INITIAL_ZOOM = 2  # the whole world: its tiles can be preloaded (maps.first_fetch_urls)
# Marker circle sizes in pixels by count range, as static/geomap/map.js draws them
# (legend): (lowest count, highest count or None, size).
SIZE_STEPS = ((1, 9, 30), (10, 99, 36), (100, 999, 42), (1000, 9999, 50), (10000, None, 58))
bp.add_url_rule("/healthz", view_func=healthz)
bp.add_url_rule("/readyz", view_func=readyz)


@bp.get("/")
def index() -> str:
    """Show the condition search and the most active conditions with their members."""
    return render_template(
        "index.html",
        conditions=localised(db.public_session,
                             published.conditions(db.public_session, limit=MOST_ACTIVE)),
        state=published.publish_state(db.public_session),
    )


@bp.get("/conditions/<slug>/map")
def condition_map(slug: str) -> str:
    """Show the world map of one condition."""
    condition = published.condition(db.public_session, slug)
    if condition is None:
        abort(404, description=published.missing_condition_message(db.public_session, slug))
    condition = localised_one(db.public_session, condition)
    # Imported where a map page is built, not at start-up.
    from geomap.web.maps import first_fetch_urls, world_map

    config = current_app.config
    parts = world_map(
        slug=slug,
        tiles=config["GEOMAP_TILES"],
        tiles_attribution=config["GEOMAP_TILES_ATTRIBUTION"],
        center=(25.0, 10.0),
        zoom=INITIAL_ZOOM,
        join_url=url_for("members.join", slug=slug),
    )
    countries = sorted(
        published.region_counts(db.public_session, condition.id, "country"),
        key=lambda row: (row.count is None, -(row.count or 0), row.name),
    )
    state = published.publish_state(db.public_session)
    return render_template(
        "map.html",
        condition=condition,
        state=state,
        map=parts,
        k=config["GEOMAP_K"],
        preload_urls=first_fetch_urls(slug, INITIAL_ZOOM, state.version),
        symptom_picture=symptom_picture(db.public_session, condition.id),
        countries=countries,
        size_steps=legend_steps(config["GEOMAP_K"]),
    )


def legend_steps(k: int) -> list[tuple[int, int | None, int]]:
    """Return :data:`SIZE_STEPS` as the legend shows them: no count below ``k``.

    Every marker stands for at least k members, so the smallest range starts at k
    ("5–9", not "1–9"); a range wholly below k is left out.
    """
    return [(max(low, k), high, size) for low, high, size in SIZE_STEPS
            if high is None or high >= k]


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Serve the site icon where browsers look for it."""
    return current_app.send_static_file("geomap/favicon.svg")
