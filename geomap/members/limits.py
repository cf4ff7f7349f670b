"""Rate limits on nearby searches, location changes and contact (Flask-Limiter).

Counts live where ``GEOMAP_RATELIMIT_STORAGE_URL`` says: ``memory://`` (the default)
counts in each worker process, which is right for one process only; a Redis URL
shares every count between all workers and machines (``geomap serve --prod`` with
several workers should use one). When Redis is unreachable the limiter counts in
memory meanwhile rather than failing requests.

Each app gets its own limiter (so several apps in one process keep separate counts),
keyed by account when signed in (read from the session cookie, no query), else by
address. The limits are settings; a page and its API twin share one budget (a shared
scope). Flask's ``RATELIMIT_ENABLED`` turns them off (tests that play an attacker
with unlimited queries do so).
"""

from __future__ import annotations

from flask import Flask, current_app, request, session
from flask_babel import gettext as _
from flask_limiter import Limiter

# scope -> (setting, endpoints, methods limited)
RATE_LIMITED: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "nearby": ("GEOMAP_NEARBY_RATE_LIMIT", ("members.nearby", "members_api.nearby"), ("GET",)),
    "location": (
        "GEOMAP_LOCATION_RATE_LIMIT",
        ("members.location", "members_api.location"),
        ("POST", "PUT"),
    ),
    "contact": (
        "GEOMAP_CONTACT_RATE_LIMIT",
        ("members.connect", "members.thread", "members_api.connect", "members_api.messages"),
        ("POST",),
    ),
}


def rate_key() -> str:
    """Return whom a request counts against: the signed-in account, else the address.

    The account is read from the signed session cookie (Flask-Login's ``_user_id``,
    ``"<account id>.<session version>"``), not loaded from the database: a request
    over its budget is refused without a query. A session whose account is gone or
    signed out elsewhere still counts against that account id (and is refused by the
    sign-in check that follows).
    """
    account_id = str(session.get("_user_id") or "").partition(".")[0]
    if account_id.isdigit() and len(account_id) <= 19:
        return f"account:{account_id}"
    return f"addr:{request.remote_addr or 'unknown'}"


def init_app(app: Flask) -> None:
    """Give ``app`` its own limiter (storage per the settings) and limit the member routes."""
    storage = app.config.get("GEOMAP_RATELIMIT_STORAGE_URL", "memory://")
    limiter = Limiter(
        key_func=rate_key,
        storage_uri=storage,
        strategy="moving-window",
        headers_enabled=True,
        key_prefix="geomap",
        in_memory_fallback_enabled=not storage.startswith("memory://"),
    )
    limiter.init_app(app)
    app.extensions["geomap.limiter"] = limiter
    limit_routes(app, RATE_LIMITED)


def limit_routes(app: Flask,
                 limited: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]) -> None:
    """Put ``app``'s limiter (:func:`init_app`) on registered routes.

    ``limited``: scope -> (setting holding the limit, e.g. "10/minute"; endpoints that
    share that one budget; HTTP methods counted). Over the limit: 429 with a message.
    """
    limiter = app.extensions["geomap.limiter"]
    for scope, (setting, endpoints, methods) in limited.items():
        shared = limiter.shared_limit(
            lambda setting=setting: current_app.config[setting],
            scope=scope,
            methods=list(methods),
            error_message=lambda: _("Too many requests; please wait a little and try again."),
        )
        for endpoint in endpoints:
            app.view_functions[endpoint] = shared(app.view_functions[endpoint])
