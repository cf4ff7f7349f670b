"""geomap: a private community map service for patient communities."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from geomap.config import check_environment, load_settings, secret_key
from geomap.paths import resource


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the geomap web app, configured from ``test_config`` or the environment."""
    from geomap import auth, i18n, members, moderation, symptoms
    from geomap.auth import limits as auth_limits
    from geomap.auth import views as auth_views
    from geomap.catalogue import views as catalogue_views
    from geomap.database import db
    from geomap.embedded_pg import database_url
    from geomap.web import (
        admin,
        api,
        assets,
        edge,
        embed,
        errors,
        fastpath,
        openapi,
        pages,
        security,
    )

    app = Flask(
        __name__,
        template_folder=str(resource("templates")),
        static_folder=str(resource("static")),
    )
    edge.init_app(app)
    if test_config is None:
        check_environment()
        settings = load_settings(os.environ)
    else:
        settings = load_settings(test_config)
    if test_config is not None:
        app.config.update(test_config)
    app.config.update(settings)  # parsed values win over the raw strings
    app.config["SECRET_KEY"] = secret_key(settings)
    if not app.config.get("GEOMAP_SESSIONS"):
        app.config["GEOMAP_DATABASE_URL_RESOLVED"] = database_url(settings)
    else:
        app.config["GEOMAP_DATABASE_URL_RESOLVED"] = None
    app.config.setdefault("SEND_FILE_MAX_AGE_DEFAULT", 3600)
    app.json.sort_keys = False

    db.init_app(app)
    i18n.init_app(app)
    security.init_app(app)
    assets.init_app(app)
    errors.init_app(app)
    auth.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.tiles_bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(admin.bp)
    members.init_app(app)
    auth_limits.init_app(app)
    symptoms.init_app(app)
    moderation.init_app(app)
    openapi.init_app(app)
    catalogue_views.init_app(app)
    fastpath.init_app(app)

    @app.context_processor
    def _endpoints() -> dict[str, Any]:
        return {"url_map_endpoints": set(app.view_functions)}

    return app
