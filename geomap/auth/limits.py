"""Throttles on sign-in, sign-up and mailed links (Flask-Limiter, the members' limiter).

Failed sign-ins count twice: per client address (``GEOMAP_LOGIN_RATE_LIMIT``) and per
email address tried, known or not (``GEOMAP_LOGIN_ACCOUNT_RATE_LIMIT``). Each setting
stacks windows (a minute, an hour, a day), so a client that keeps failing waits longer
and longer: first a minute, then up to an hour, then a day. Successful sign-ins do not
count. Sign-ups, reset requests and new verification mails share one budget per client
(``GEOMAP_SIGNUP_RATE_LIMIT``; only requests answered with a redirect count). Over a
limit the answer is 429, the same for known and unknown emails.
"""

from __future__ import annotations

import hashlib

from flask import Flask, current_app, request
from flask_babel import gettext as _
from flask_limiter import Limiter


def _MESSAGE() -> str:  # noqa: N802 - a constant, in the viewer's language
    return _("Too many attempts; please wait a while and try again.")


def client_key() -> str:
    """Return the client a request counts against: its remote address."""
    return f"addr:{request.remote_addr or 'unknown'}"


def email_key() -> str:
    """Return the email address a sign-in tries, hashed (no addresses in the storage)."""
    email = (request.form.get("email") or "").strip().lower()[:254]
    return "email:" + hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()[:32]


def _failed(response: object) -> bool:
    return getattr(response, "status_code", 500) != 302


def _created(response: object) -> bool:
    return getattr(response, "status_code", 500) == 302


def init_app(app: Flask) -> None:
    """Throttle the account routes of ``app`` with its limiter (``geomap.limiter``)."""
    limiter: Limiter = app.extensions["geomap.limiter"]
    login = app.view_functions["auth.login"]
    login = limiter.limit(lambda: current_app.config["GEOMAP_LOGIN_ACCOUNT_RATE_LIMIT"],
                          key_func=email_key, scope="login-email", methods=["POST"],
                          deduct_when=_failed, error_message=_MESSAGE)(login)
    login = limiter.limit(lambda: current_app.config["GEOMAP_LOGIN_RATE_LIMIT"],
                          key_func=client_key, scope="login-client", methods=["POST"],
                          deduct_when=_failed, error_message=_MESSAGE)(login)
    app.view_functions["auth.login"] = login
    mailing = limiter.shared_limit(lambda: current_app.config["GEOMAP_SIGNUP_RATE_LIMIT"],
                                   scope="account-mail", key_func=client_key,
                                   methods=["POST"], deduct_when=_created,
                                   error_message=_MESSAGE)
    for endpoint in ("auth.signup", "auth.reset_request", "auth.resend_verification"):
        app.view_functions[endpoint] = mailing(app.view_functions[endpoint])
