"""Errors the members queries raise, with messages safe to show to the member."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _


class MemberInputError(ValueError):
    """Bad input from the member (HTTP 400); the message says what to fix."""


class ImplausiblePointError(MemberInputError):
    """A dropped pin far from land, at (0, 0) or that looks swapped; the member may confirm it.

    ``reason`` is the validator's plain sentence (e.g. "far from land"), without coordinates.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(_("That pin does not look like a home: %(reason)s. "
                           "If it is right, confirm it (allow_sea).", reason=reason))
        self.reason = reason


class MemberNotFoundError(LookupError):
    """A member, connection or message the caller may not see, or that does not exist (404)."""


class MemberConflictError(RuntimeError):
    """The request cannot be done in the current state, e.g. no location yet (409)."""


def json_object() -> dict[str, Any]:
    """Return the current request's JSON body, which must be an object (member APIs).

    Raises MemberInputError (HTTP 400) for anything else. The body was already read
    within the edge's limits (geomap/web/edge.py).
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise MemberInputError(_("Send a JSON object (Content-Type: application/json)."))
    return body
