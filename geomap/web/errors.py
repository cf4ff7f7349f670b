"""Errors as JSON on the API and as readable pages on the site; never a bare 500."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def wants_json() -> bool:
    """Return whether the current request is an API request."""
    return request.path.startswith("/api/") or request.path == "/oembed"


def render_error(error: HTTPException):  # noqa: ANN201
    """Return ``error`` as JSON on the API, as a page elsewhere."""
    return _render(error)


def _render(error: HTTPException):  # noqa: ANN202
    status = error.code or 500
    message = error.description or error.name
    if wants_json():
        return jsonify(error={"status": status, "title": error.name, "message": message}), status
    return render_template("error.html", status=status, title=error.name, message=message), status


def _unexpected(error: Exception):  # noqa: ANN202
    if current_app.testing:
        raise error
    # Log the type and place only: exception messages may quote request values.
    log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.path)
    return _render(InternalServerError("Something went wrong on our side; please try again."))


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    app.register_error_handler(HTTPException, _render)
    app.register_error_handler(Exception, _unexpected)
