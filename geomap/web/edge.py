"""The edge every request passes first: URL segments, query strings, forms and JSON bodies.

Whatever a route does later, it never sees a NUL byte or another control character in
a path segment or query string, a NUL in a form field, or a JSON body that is nested
deeper than ``MAX_JSON_DEPTH``, holds a lone surrogate or a NUL, or a number longer than
``MAX_JSON_DIGITS`` digits (which no float holds). Those requests end here with a 400
(404 for a path segment no route can match), as JSON on the API and as a page elsewhere.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Request, Response, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest, ClientDisconnected
from werkzeug.routing import UnicodeConverter
from werkzeug.wsgi import get_input_stream

MAX_BODY_BYTES = 1024 * 1024  # MAX_CONTENT_LENGTH: no route reads more
# Per kind of body: geomap's forms and JSON bodies are a few hundred bytes; a
# message is at most 2,000 characters.
BODY_LIMITS = {
    "application/json": 64 * 1024,
    "application/x-www-form-urlencoded": 64 * 1024,
    "multipart/form-data": 256 * 1024,
}
OTHER_BODY_LIMIT = 64 * 1024
MAX_JSON_DEPTH = 32
MAX_JSON_DIGITS = 20  # a bigint has 19; longer integers are not a number geomap reads
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class SafeSegmentConverter(UnicodeConverter):
    """The default ``<name>`` converter, refusing control characters in a path segment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.regex = self.regex.replace("[^/]", r"[^/\x00-\x1f\x7f]")


class JSONBodyError(ValueError):
    """A JSON text geomap does not read; the message says why."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise JSONBodyError(_('numbers may have at most %(max_json_digits)s digits',
                              max_json_digits=MAX_JSON_DIGITS))
    return int(text)


def _parse_constant(name: str) -> float:
    raise JSONBodyError(_('%(name)s is not a JSON number', name=name))


def check_json_value(value: Any) -> None:
    """Raise JSONBodyError if ``value`` (parsed JSON) is too deep or holds bad text."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise JSONBodyError(_('JSON may be nested at most %(max_json_depth)s levels deep',
                                  max_json_depth=MAX_JSON_DEPTH))
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise JSONBodyError(_("text may not contain a NUL character"))
    if _SURROGATE.search(text):
        raise JSONBodyError(_("text may not contain a lone surrogate (\\ud800-\\udfff)"))


def loads_checked(data: str | bytes) -> Any:
    """Parse a JSON text as geomap reads request bodies; raise JSONBodyError otherwise."""
    try:
        value = json.loads(data, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        raise JSONBodyError(
            _('JSON may be nested at most %(max_json_depth)s levels deep',
              max_json_depth=MAX_JSON_DEPTH)) from None
    except UnicodeDecodeError:
        raise JSONBodyError(_("the body is not UTF-8")) from None
    except JSONBodyError:
        raise
    except ValueError as exc:
        raise JSONBodyError(_('not valid JSON (%(value)s)',
                              value=exc.args[0].split(':')[0])) from None
    check_json_value(value)
    return value


class CheckedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading with ``loads_checked``."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse ``s`` with geomap's limits (see the module docstring)."""
        return loads_checked(s)


class GeomapRequest(Request):
    """Flask's request, saying why a JSON body was refused."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Refuse the body with a 400 that says what is wrong with it."""
        if e is None:
            raise BadRequest(_("Send a JSON body (Content-Type: application/json)."))
        raise BadRequest(_('The JSON body cannot be read: %(e)s.', e=e))


def has_control_characters(text: str) -> bool:
    """Return whether ``text`` holds a C0 control character other than tab/CR/LF, or DEL."""
    return bool(_CONTROL.search(text))


def body_limit(limit: int) -> Any:
    """Decorate a view whose request body may be up to ``limit`` bytes (default by type)."""

    def decorate(view: Any) -> Any:
        view.geomap_body_limit = limit
        return view

    return decorate


def _body_limit() -> int:
    """Return the largest body the current route accepts."""
    view = current_app.view_functions.get(request.endpoint or "")
    declared = getattr(view, "geomap_body_limit", None)
    if declared is not None:
        return min(declared, current_app.config["MAX_CONTENT_LENGTH"] or MAX_BODY_BYTES)
    return BODY_LIMITS.get(request.mimetype, OTHER_BODY_LIMIT)


def _check_request() -> None:
    """Refuse query strings, forms and JSON bodies geomap does not read."""
    request.max_content_length = _body_limit()
    for key, value in request.args.items(multi=True):
        if has_control_characters(key) or has_control_characters(value) \
                or "\n" in value or "\r" in value:
            raise BadRequest(_('The query parameter %(key)r holds a control character.',
                               key=key[:40]))
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if request.is_json:
            request.get_json()  # parsed and checked once; routes read the cached value
        elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in request.form.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    raise BadRequest(_('The form field %(key)r holds a NUL character.',
                                       key=key[:40]))


def drain_unread_body(response: Response) -> Response:
    """Read what the view left of a body (up to MAX_CONTENT_LENGTH) before answering.

    An unread body stays on a keep-alive connection; gunicorn would then have to close
    the connection after the answer, and the client's next request on it would meet a
    reset. Bodies over MAX_CONTENT_LENGTH are not read: the connection closes.
    """
    length = request.content_length
    if not length or length > (current_app.config["MAX_CONTENT_LENGTH"] or MAX_BODY_BYTES):
        return response
    stream = request.__dict__.get("stream")
    if stream is None:
        stream = get_input_stream(request.environ, max_content_length=None)
    try:
        while stream.read(64 * 1024):
            pass
    except (OSError, ClientDisconnected):
        pass
    return response


def init_app(app: Flask) -> None:
    """Install the safe converters, the checked JSON reader and the request checks.

    Call before any blueprint is registered: rules compile their converters when added.
    """
    app.url_map.converters["default"] = SafeSegmentConverter
    app.url_map.converters["string"] = SafeSegmentConverter
    app.json_provider_class = CheckedJSONProvider
    app.json = CheckedJSONProvider(app)
    app.request_class = GeomapRequest
    app.config.setdefault("MAX_CONTENT_LENGTH", MAX_BODY_BYTES)
    app.config.setdefault("MAX_FORM_MEMORY_SIZE", 256 * 1024)
    app.config.setdefault("MAX_FORM_PARTS", 200)
    app.before_request(_check_request)
    app.after_request(drain_unread_body)
