"""Errors as JSON on the API and as readable pages on the site; never a bare 500.

API errors have one shape, ``{"error": {"code", "message", "status", "title"}}``:
``code`` is the HTTP reason in snake case (``bad_request``, ``not_found``,
``too_many_requests``, ``service_unavailable``...), ``message`` a sentence for people.
Log lines escape control characters, so a ``%0A`` in a path cannot start a forged line.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_for_log(text: str) -> str:
    """Return ``text`` with control characters (newlines included) as hex escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", text)


class EscapeControlCharacters(logging.Filter):
    """A handler filter that escapes control characters in every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its escaped form; keep every record."""
        message = record.getMessage()
        escaped = escape_for_log(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


def wants_json() -> bool:
    """Return whether the current request is an API request."""
    return request.path.startswith(("/api/", "/tiles/")) or request.path == "/oembed"


def error_code(error: HTTPException) -> str:
    """Return the machine-readable code of an HTTP error: its reason in snake case."""
    return re.sub(r"[^a-z0-9]+", "_", (error.name or "error").lower()).strip("_")


def render_error(error: HTTPException):  # noqa: ANN201
    """Return ``error`` as JSON on the API, as a page elsewhere."""
    return _render(error)


def _titles() -> dict[int, str]:
    """Return the reason phrases shown to people, in the viewer's language."""
    return {
        400: _("Bad request"), 401: _("Sign in needed"), 403: _("Forbidden"),
        404: _("Not found"), 405: _("Method not allowed"), 406: _("Not acceptable"),
        409: _("Conflict"), 410: _("Gone"), 413: _("Request too large"),
        415: _("Unsupported media type"), 422: _("Unprocessable content"),
        429: _("Too many requests"), 500: _("Internal server error"),
        501: _("Not implemented"), 503: _("Service unavailable"),
    }


def _default_messages() -> dict[int, str]:
    """Return the sentences for errors raised without one of our own (werkzeug's default)."""
    return {
        400: _("The request was not understood; please check it and try again."),
        401: _("Sign in to use this."),
        403: _("You may not open this page."),
        404: _("There is nothing at this address. Check it, or start from the list of "
               "conditions."),
        405: _("This address does not accept that method."),
        406: _("This address cannot answer in a form your browser accepts."),
        409: _("This cannot be done in the current state."),
        410: _("This is gone for good."),
        413: _("What was sent is too large."),
        415: _("What was sent is not in a form this address accepts."),
        422: _("What was sent cannot be used; please check it."),
        429: _("Too many requests; please wait a little and try again."),
        500: _("Something went wrong on our side; please try again."),
        501: _("This is not supported."),
        503: _("The service is not available just now; please try again in a minute."),
    }


def _render(error: HTTPException):  # noqa: ANN202
    status = error.code or 500
    title = _titles().get(status, error.name)
    message = error.description
    if not message or message == type(error).description:
        message = _default_messages().get(status, message or title)
    if wants_json():  # plain text: a sentence made as HTML (names in <bdi>) loses its tags
        plain = message.striptags() if isinstance(message, Markup) else str(message)
        response = jsonify(error={"code": error_code(error), "message": plain,
                                  "status": status, "title": title})
    else:
        response = current_app.make_response(
            render_template("error.html", status=status, title=title, message=message))
    response.status_code = status
    if error.response is None:
        for name, value in error.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
    return response


def database_unavailable(error: BaseException) -> bool:
    """Return whether ``error`` means the database is down or went away mid-request."""
    if isinstance(error, OperationalError | InterfaceError | PendingRollbackError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def _database_unavailable(error: Exception):  # noqa: ANN202
    # Log the kind only: driver messages may quote query parameters.
    log.warning("database unavailable (%s) on %s %s", type(error).__name__, request.method,
                escape_for_log(request.path))
    unavailable = ServiceUnavailable(
        _("The map's database is not answering just now; please try again in a minute."),
        retry_after=RETRY_AFTER_SECONDS)
    return _render(unavailable)


def _unexpected(error: Exception):  # noqa: ANN202
    if database_unavailable(error):
        return _database_unavailable(error)
    if current_app.testing:
        raise error
    # Log the type and place only: exception messages may quote request values.
    log.error("unhandled %s on %s %s", type(error).__name__, request.method,
              escape_for_log(request.path))
    return _render(InternalServerError(
        _("Something went wrong on our side; please try again.")))


def init_app(app: Flask) -> None:
    """Register the error handlers and escape control characters in the app's logs."""
    app.register_error_handler(HTTPException, _render)
    app.register_error_handler(Exception, _unexpected)
    for handler in app.logger.handlers:
        handler.addFilter(EscapeControlCharacters())
