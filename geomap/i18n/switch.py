"""The language switch on every page: a form that works without JavaScript.

``GET /language?lang=de&next=/path`` remembers the choice in a cookie; a signed-in
account posts the same form (CSRF-protected) and the choice is also saved as its
setting, which then wins over ``?lang=`` and the browser's languages.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Flask, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from geomap.i18n import COOKIE_MAX_AGE, LANG_COOKIE, remember_settings, supported

bp = Blueprint("language", __name__)


def safe_next(target: str | None) -> str:
    """Return ``target`` when it is a path on this site, else the home page."""
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target and "\n" not in target and "\r" not in target:
        return target
    return url_for("pages.index")


@bp.route("/language", methods=["GET", "POST"])
def choose() -> Response:
    """Remember the chosen language (cookie; the account's setting when signed in)."""
    values = request.form if request.method == "POST" else request.args
    chosen = supported(values.get("lang"))
    target = safe_next(values.get("next"))
    response = redirect(target, code=303)
    if chosen is None:
        return response
    if request.method == "POST" and current_user.is_authenticated:
        from geomap.database import db

        current_user.locale = chosen
        db.session.commit()
        remember_settings(current_user)
    response.set_cookie(LANG_COOKIE, chosen, max_age=COOKIE_MAX_AGE, samesite="Lax",
                        httponly=True, secure=request.is_secure)
    return response


def language_next() -> str:
    """Return this page's path and query without ``lang``: where the switch leads back."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    query = urlencode(args)
    return request.path + (f"?{query}" if query else "")


def init_app(app: Flask) -> None:
    """Register the switch's route and its template helper."""
    app.register_blueprint(bp)
    app.add_template_global(language_next)
