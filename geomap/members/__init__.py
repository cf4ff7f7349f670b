"""The members area: joining a map, nearby members, connections and messages, my data."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, NotFound

from geomap.members.errors import MemberConflictError, MemberInputError, MemberNotFoundError

_STATUS: dict[type[Exception], type[HTTPException]] = {
    MemberInputError: BadRequest,
    MemberNotFoundError: NotFound,
    MemberConflictError: Conflict,
}


def init_app(app: Flask) -> None:
    """Register the members pages and API, their rate limits and error statuses."""
    from geomap.auth import require_verified
    from geomap.members import api, limits, views
    from geomap.web.errors import render_error

    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    require_verified(app)  # inside the rate limits: a refused request loads no account
    limits.init_app(app)
    for error, http_error in _STATUS.items():
        app.register_error_handler(
            error, lambda exc, http_error=http_error: render_error(http_error(str(exc)))
        )
