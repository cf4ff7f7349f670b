"""Sign up, verify the email, sign in and out, reset or change the password, notifications.

No answer tells whether an email has an account: sign-up, sign-in and reset answer the
same page with the same status for known and unknown emails, and do the same hashing
work (the mails differ, but only the owner of the address reads them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import refresh
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from geomap import mail
from geomap.auth import accounts, csrf, passwords, tokens
from geomap.auth.forms import (
    ChangePasswordForm,
    EmailForm,
    LanguageForm,
    LoginForm,
    NewPasswordForm,
    NotificationsForm,
    SignupForm,
)
from geomap.auth.models import Account
from geomap.database import db
from geomap.i18n import remember_settings
from geomap.mail import outbox
from geomap.mail.notifications import unsubscribe_account
from geomap.members import queries as member_queries

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _send(to: str, template: str, subject: str, **context: Any) -> None:
    """Put a mail rendered from ``templates/mail/<template>.txt`` in the outbox.

    It is sent after the request, if the request commits (geomap.mail.outbox).
    """
    settings = current_app.config
    message = mail.build(settings, to=to, subject=subject,
                         body=mail.render(template, **context))
    outbox.enqueue(db.session, message)
    outbox.send_soon()


def _link(endpoint: str, **values: Any) -> str:
    """Return an absolute link for a mail (see :func:`geomap.mail.base_url`)."""
    return mail.base_url(current_app.config, request.host_url) + url_for(endpoint, **values)


def _send_verification(account: Account, pseudonym: str, condition: str | None = None) -> None:
    """Mail a verification link; ``condition`` (a slug being joined) rides along in it."""
    token = tokens.issue(db.session, account.id, "verify")
    extra = {"condition": condition} if condition else {}
    _send(account.email, "verify", _("Confirm your email address for geomap"),
          pseudonym=pseudonym, link=_link("auth.verify", token=token, **extra))


def _joining(slug: str | None) -> member_queries.ConditionChoice | None:
    """Return the condition ``slug`` a visitor is joining ("Join" on a map), if it exists."""
    if not slug or len(slug) > 64:
        return None
    return next((c for c in member_queries.conditions(db.session) if c.slug == slug), None)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with email and password (failures are throttled, see geomap.auth.limits)."""
    form = LoginForm()
    if form.validate_on_submit():
        account = accounts.authenticate(db.session, form.email.data or "",
                                        form.password.data or "")
        if account is not None:
            login_user(account)
            return redirect(_safe_next(request.args.get("next")) or url_for("pages.index"))
        flash(_("Email or password is wrong."), "error")
    return render_template("auth/login.html", form=form), (400 if form.errors else 200)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Any:
    """Create a member account; the same answer whether or not the email has one."""
    form = SignupForm()
    joining = _joining(session.get("join_condition"))
    if form.validate_on_submit():
        password = form.password.data or ""
        weak = passwords.weakness(password, email=form.email.data or "",
                                  pseudonym=form.pseudonym.data or "")
        if weak:
            form.password.errors = [weak]
        else:
            try:
                outcome = accounts.register(db.session, pseudonym=form.pseudonym.data or "",
                                            email=form.email.data or "", password=password)
            except accounts.AccountError as exc:
                db.session.rollback()
                form.pseudonym.errors = [str(exc)]
            else:
                if outcome.account is not None:
                    _send_verification(outcome.account, (form.pseudonym.data or "").strip(),
                                       joining.slug if joining else None)
                else:
                    _send(outcome.existing.email, "already_registered",
                          _("Someone tried to create a geomap account with your email"),
                          reset_link=_link("auth.reset_request"))
                db.session.commit()
                return redirect(url_for("auth.signup_sent"))
    return render_template("auth/signup.html", form=form, joining=joining), (
        400 if form.errors else 200)


@bp.get("/signup/sent")
def signup_sent() -> str:
    """Tell a new member to look for the verification mail."""
    return render_template("auth/check_mail.html", reason="signup",
                           joining=_joining(session.get("join_condition")),
                           mail_kept=mail.kept_as_files(current_app.config))


@bp.get("/verify/<token>")
def verify(token: str) -> Response:
    """Follow the mailed verification link (single use, 48 hours)."""
    account_id = tokens.consume(db.session, token, "verify")
    if account_id is None:
        db.session.rollback()
        flash(_("This confirmation link is used up or has expired. Sign in and ask for a "
              "new one."), "error")
        return redirect(url_for("auth.login"))
    account = db.session.get(Account, account_id)
    accounts.mark_verified(account)
    db.session.commit()
    flash(_("Thank you: your email address is confirmed."))
    joining = _joining(request.args.get("condition"))
    settings = url_for("members.settings", **({"condition": joining.slug} if joining else {}))
    if current_user.is_authenticated and current_user.id == account_id:
        return redirect(settings)
    flash(_("Please sign in to continue."))
    return redirect(url_for("auth.login", next=settings))


@bp.post("/verify/resend")
@login_required
def resend_verification() -> Response:
    """Mail a new verification link to the signed-in account."""
    account: Account = current_user._get_current_object()  # type: ignore[attr-defined]
    if not account.email_verified:
        _send_verification(account, _pseudonym(account))
        db.session.commit()
    flash(_("We sent you a new confirmation link."))
    return redirect(url_for("auth.account"))


@bp.route("/reset", methods=["GET", "POST"])
def reset_request() -> Any:
    """Ask for a password reset link; the same answer whether or not the email is known."""
    form = EmailForm()
    if form.validate_on_submit():
        account = accounts.find_by_email(db.session, form.email.data or "")
        if account is not None:
            token = tokens.issue(db.session, account.id, "reset")
            _send(account.email, "reset", _("Set a new geomap password"),
                  link=_link("auth.reset", token=token))
            db.session.commit()
        return redirect(url_for("auth.reset_sent"))
    return render_template("auth/reset_request.html", form=form), (400 if form.errors else 200)


@bp.get("/reset/sent")
def reset_sent() -> str:
    """Tell the user to look for the reset mail."""
    return render_template("auth/check_mail.html", reason="reset",
                           mail_kept=mail.kept_as_files(current_app.config))


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> Any:
    """Set a new password with a mailed link (single use, one hour); ends every session."""
    account = tokens.peek(db.session, token, "reset")
    if account is None:
        return render_template("auth/reset_invalid.html"), 410
    form = NewPasswordForm()
    if form.validate_on_submit():
        weak = passwords.weakness(form.password.data or "", email=account.email,
                                  pseudonym=_pseudonym(account))
        if weak:
            form.password.errors = [weak]
        elif tokens.consume(db.session, token, "reset") is None:
            db.session.rollback()
            return render_template("auth/reset_invalid.html"), 410
        else:
            accounts.change_password(account, form.password.data or "")
            accounts.mark_verified(account)  # the link proves the address works
            db.session.commit()
            logout_user()
            flash(_("Your password is changed and you are signed out everywhere. "
                  "Sign in with your new password."))
            return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form), (400 if form.errors else 200)


def _pseudonym(account: Account) -> str:
    if account.member_id is None:
        return ""
    from geomap.models import Member

    member = db.session.get(Member, account.member_id)
    return member.pseudonym if member else ""


@bp.get("/account")
@login_required
def account() -> str:
    """Show the account: email, confirmation, notifications, password."""
    form = NotificationsForm(notify=current_user.notify_by_email)
    language_form = LanguageForm(locale=current_user.locale or "",
                                 time_zone=current_user.time_zone or "").fill_choices()
    return render_template("auth/account.html", form=form, language_form=language_form)


@bp.post("/account/language")
@login_required
def language() -> Response:
    """Save the account's language and time zone (empty: follow the browser)."""
    form = LanguageForm().fill_choices()
    if not form.validate_on_submit():
        abort(400, description=_("Choose a language and a time zone from the lists."))
    own: Account = current_user._get_current_object()  # type: ignore[attr-defined]
    own.locale = form.locale.data or None
    own.time_zone = form.time_zone.data or None
    db.session.commit()
    remember_settings(own)
    refresh()  # this request's flash message already in the new language
    flash(_("Saved: your language and time zone."))
    return redirect(url_for("auth.account"))


@bp.post("/account/notifications")
@login_required
def notifications() -> Response:
    """Turn mail about new requests and messages on or off."""
    form = NotificationsForm()
    if not form.validate_on_submit():
        abort(400, description=_("The form was not sent correctly; please try again."))
    own: Account = current_user._get_current_object()  # type: ignore[attr-defined]
    if form.notify.data and not own.notify_by_email:
        own.notified_until = datetime.now(UTC)  # only what arrives from now on
    own.notify_by_email = bool(form.notify.data)
    db.session.commit()
    flash(_("Saved: we will mail you about new requests and messages.") if own.notify_by_email
          else _("Saved: we will not mail you about requests and messages."))
    return redirect(url_for("auth.account"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Any:
    """Change the password; every other session of the account ends."""
    form = ChangePasswordForm()
    own: Account = current_user._get_current_object()  # type: ignore[attr-defined]
    if form.validate_on_submit():
        weak = passwords.weakness(form.password.data or "", email=own.email,
                                  pseudonym=_pseudonym(own))
        if not own.check_password(form.current.data or ""):
            form.current.errors = [_("This is not your current password.")]
        elif weak:
            form.password.errors = [weak]
        else:
            accounts.change_password(own, form.password.data or "")
            db.session.commit()
            login_user(own)  # this browser stays signed in, with the new session version
            flash(_("Your password is changed; you are signed out on every other device."))
            return redirect(url_for("auth.account"))
    return render_template("auth/change_password.html", form=form), (400 if form.errors
                                                                      else 200)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out, ending every session of the account (copied cookies included)."""
    own: Account = current_user._get_current_object()  # type: ignore[attr-defined]
    accounts.end_sessions(own)
    db.session.commit()
    logout_user()
    flash(_("You are signed out."))
    return redirect(url_for("pages.index"))


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Any:
    """Ask to confirm stopping notification mails (a GET never changes anything)."""
    if unsubscribe_account(current_app.config, token) is None:
        abort(404, description=_("This unsubscribe link is not valid."))
    return render_template("auth/unsubscribe.html", token=token, done=False)


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # mail clients' one-click POST has no CSRF token; the signed token is the proof
def unsubscribe(token: str) -> Any:
    """Stop notification mails (also the one-click POST of RFC 8058 mail clients)."""
    account_id = unsubscribe_account(current_app.config, token)
    own = db.session.get(Account, account_id) if account_id is not None else None
    if own is None:
        abort(404, description=_("This unsubscribe link is not valid."))
    own.notify_by_email = False
    db.session.commit()
    return render_template("auth/unsubscribe.html", token=token, done=True)


@bp.get("/privacy")
def privacy() -> str:
    """Show the privacy page, in plain words."""
    return render_template("policy/privacy.html")


@bp.get("/terms")
def terms() -> str:
    """Show the terms of use."""
    return render_template("policy/terms.html")


@bp.app_context_processor
def _account_in_templates() -> dict:
    return {"account": current_user}
