"""Sign up, sign in, sign out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from geomap.auth.accounts import AccountError, create_member_account, find_by_email
from geomap.auth.forms import LoginForm, SignupForm
from geomap.database import db

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    """Sign in with email and password."""
    form = LoginForm()
    if form.validate_on_submit():
        account = find_by_email(db.session, form.email.data or "")
        if account is not None and account.check_password(form.password.data or ""):
            login_user(account)
            return redirect(_safe_next(request.args.get("next")) or url_for("pages.index"))
        flash("Email or password is wrong.", "error")
    return render_template("auth/login.html", form=form), (400 if form.errors else 200)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> str | Response:
    """Create a member account."""
    form = SignupForm()
    if form.validate_on_submit():
        try:
            account = create_member_account(
                db.session,
                pseudonym=form.pseudonym.data or "",
                email=form.email.data or "",
                password=form.password.data or "",
            )
        except AccountError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            login_user(account)
            flash("Welcome to geomap! Now choose your conditions and where you are.")
            return redirect(_after_signup())
    return render_template("auth/signup.html", form=form), (400 if form.errors else 200)


def _after_signup() -> str:
    try:
        return url_for("members.settings")
    except Exception:  # the members area may not be installed in this app
        return url_for("pages.index")


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out."""
    logout_user()
    flash("You are signed out.")
    return redirect(url_for("pages.index"))


@bp.app_context_processor
def _account_in_templates() -> dict:
    return {"account": current_user}
