"""Symptoms: the HPO vocabulary, my symptoms, soulmate matching, the symptom picture."""

from __future__ import annotations

from flask import Flask

# scope -> (setting, endpoints, methods): soulmate searches share nearby's limit
# setting; symptom edits have their own (an attacker probing one term at a time).
RATE_LIMITED: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "soulmates": ("GEOMAP_NEARBY_RATE_LIMIT", ("symptoms.soulmates", "symptoms_api.soulmates"),
                  ("GET",)),
    "symptom-edits": (
        "GEOMAP_SYMPTOMS_RATE_LIMIT",
        ("symptoms.add", "symptoms.remove", "symptoms.matching", "symptoms_api.add",
         "symptoms_api.remove", "symptoms_api.matching"),
        ("POST", "PUT", "DELETE"),
    ),
}


def init_app(app: Flask) -> None:
    """Register the symptoms pages and API and their rate limits (after the members area)."""
    from geomap.members.limits import limit_routes
    from geomap.symptoms import api, views

    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    limit_routes(app, RATE_LIMITED)
