"""Errors the members queries raise, with messages safe to show to the member."""

from __future__ import annotations


class MemberInputError(ValueError):
    """Bad input from the member (HTTP 400); the message says what to fix."""


class MemberNotFoundError(LookupError):
    """A member, connection or message the caller may not see, or that does not exist (404)."""


class MemberConflictError(RuntimeError):
    """The request cannot be done in the current state, e.g. no location yet (409)."""
