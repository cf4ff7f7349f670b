"""Accounts, sign-in and the permission decorators routes declare.

Passwords are hashed with Werkzeug's scrypt; sessions are Flask-Login's (cookies
HttpOnly, SameSite=Lax, Secure over HTTPS) and carry the account's session version, so
sign-out, a password change or reset, and account deletion end every session of the
account; every form carries a CSRF token (Flask-WTF). An account whose email is not yet
verified may sign in and fill in settings, but cannot set a location (so it is neither
on the map nor findable), search nearby or contact anyone (:data:`VERIFIED_ONLY`).
Permission checks sit where a route is declared::

    @bp.get("/admin/regions")
    @admin_required
    def regions(): ...
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import Forbidden

from geomap.auth.models import Account
from geomap.database import db
from geomap.i18n import N_

F = TypeVar("F", bound=Callable[..., Any])

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = N_("Please sign in to continue.")
login_manager.localize_callback = gettext  # flashed in the viewer's language
csrf = CSRFProtect()


# endpoint -> methods an account with an unverified email may not use
VERIFIED_ONLY: dict[str, tuple[str, ...]] = {
    "members.location": ("POST",),
    "members_api.location": ("PUT", "POST"),
    "members.nearby": ("GET",),
    "members_api.nearby": ("GET",),
    "members.connect": ("GET", "POST"),
    "members_api.connect": ("POST",),
    "members.thread": ("POST",),
    "members_api.messages": ("POST",),
}


@login_manager.user_loader
def _load_account(user_id: str) -> Account | None:
    """Load the account of a session: ``"<id>.<session version>"`` (plain ``"<id>"``: 0)."""
    account_id, _, version = user_id.partition(".")
    if not account_id.isdigit() or not (version or "0").isdigit() or len(user_id) > 40:
        return None
    account = db.session.get(Account, int(account_id))
    if account is None or account.session_version != int(version or "0"):
        return None
    return account


def require_verified(app: Flask) -> None:
    """Wrap the views :data:`VERIFIED_ONLY` lists so that unverified accounts are refused.

    Call it once their blueprints are registered and before rate limits wrap them
    (:func:`geomap.members.init_app`): the limit then runs first, so a request over its
    budget is refused without loading the account.
    """
    for endpoint, methods in VERIFIED_ONLY.items():
        view = app.view_functions.get(endpoint)
        if view is not None:
            app.view_functions[endpoint] = _verified_only(view, methods)


def _verified_only(view: F, methods: tuple[str, ...]) -> F:
    """Return ``view`` refusing ``methods`` to signed-in accounts not yet verified."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if (request.method in methods and current_user.is_authenticated
                and not current_user.email_verified):
            from geomap.web.errors import render_error

            return render_error(Forbidden(
                gettext("Please confirm your email address first: follow the link we mailed "
                        "you (your account page can send a new one).")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


@login_manager.unauthorized_handler
def _unauthorized():  # noqa: ANN202
    from flask import flash, redirect, url_for

    from geomap.web.errors import wants_json

    if wants_json():
        abort(401, description=gettext("Sign in to use this."))
    flash(login_manager.login_message)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def admin_required(view: F) -> F:
    """Let only signed-in admins through: anonymous users go to sign-in, members get 403."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403, description=gettext("This page is for admins only."))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def moderator_required(view: F) -> F:
    """Let only signed-in moderators and admins through: others get sign-in or 403."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.can_moderate:
            abort(403, description=gettext("This page is for moderators only."))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def member_required(view: F) -> F:
    """Let only signed-in members (accounts with a member profile) through."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.member_id is None:
            abort(403, description=gettext("This needs a member profile; admins have none."))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def stateless(view: F) -> F:
    """Serve ``view`` without sessions: no Set-Cookie and no ``Vary: Cookie`` (embeds)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        g.geomap_stateless = True
        return view(*args, **kwargs)

    wrapped.geomap_stateless = True  # type: ignore[attr-defined]  # see is_stateless
    return wrapped  # type: ignore[return-value]


def is_stateless() -> bool:
    """Whether the current request goes to a :func:`stateless` view (known from routing on).

    Unlike ``g.geomap_stateless`` this holds before the view runs (locale selection in
    a before-request check, say).
    """
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "geomap_stateless", False))


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, marked Secure whenever served over HTTPS."""

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        """Save the session, except on stateless (embed) responses."""
        if g.get("geomap_stateless"):
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Return True for HTTPS requests (behind a proxy: with ProxyFix in front)."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def init_app(app: Flask) -> None:
    """Set up sign-in sessions, CSRF protection and cookie flags."""
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    app.session_interface = _SessionInterface()
    login_manager.init_app(app)
    csrf.init_app(app)
