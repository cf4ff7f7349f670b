"""Moderation pages: the report queue (moderators, admins) and the audit log (admins)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import RadioField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from geomap.auth import admin_required, moderator_required
from geomap.database import db
from geomap.members.errors import MemberInputError, MemberNotFoundError
from geomap.moderation import queue
from geomap.web.forms import select_choices

bp = Blueprint("moderation", __name__, url_prefix="/moderation")
ID = "int(max=9223372036854775807)"

ACTION_LABELS = {
    "dismiss": _l("Dismiss: nothing against the rules"),
    "warn": _l("Warn the sender (they see the note below)"),
    "hide": _l("Hide the message"),
    "suspend": _l("Suspend the sender (no contact, not listed)"),
    "delete": _l("Delete the sender's account"),
}


class ActionForm(FlaskForm):
    """A moderator's decision on one report."""

    action = RadioField(_l("Action"), choices=select_choices(ACTION_LABELS.items()),
                        validators=[DataRequired(message=_l("Choose an action."))])
    note = TextAreaField(_l("Note (the warning text for a warning; kept in the log)"),
                         validators=[Optional(), Length(max=queue.NOTE_MAX)])


class LiftForm(FlaskForm):
    """A moderator lifts one member's suspension."""

    note = TextAreaField(_l("Note (kept in the log)"),
                         validators=[Optional(), Length(max=queue.NOTE_MAX)])


@bp.get("", endpoint="queue")
@moderator_required
def queue_page() -> str:
    """List open reports, oldest first, each with its message in context; and suspensions."""
    reports = queue.open_reports(db.session)
    return render_template("moderation/queue.html", reports=reports, form=ActionForm(),
                           suspended=queue.suspended_members(db.session), lift_form=LiftForm())


def _moderate(form: FlaskForm, invalid: str, action: Callable[[], str]) -> Response:
    """Validate ``form``, run ``action`` (which returns a summary) and commit; back to the queue.

    A form error or a MemberInputError / MemberNotFoundError from ``action`` is flashed
    (``invalid`` when the form gave no message) and nothing is written.
    """
    if not form.validate_on_submit():
        flash(" ".join(str(e) for errs in form.errors.values() for e in errs) or invalid,
              "error")
        return redirect(url_for("moderation.queue"))
    try:
        summary = action()
    except (MemberInputError, MemberNotFoundError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("moderation.queue"))
    db.session.commit()
    flash(_("%(summary)s The action is in the moderation log.", summary=summary))
    return redirect(url_for("moderation.queue"))


@bp.post(f"/members/<{ID}:member_id>/unsuspend")
@moderator_required
def lift(member_id: int) -> Response:
    """Lift a member's suspension and log it."""
    form = LiftForm()
    return _moderate(form, _("Please try again."), lambda: queue.lift_suspension(
        db.session, member_id=member_id, moderator=current_user.email, note=form.note.data))


@bp.post(f"/reports/<{ID}:report_id>")
@moderator_required
def act(report_id: int) -> Response:
    """Carry out a moderator's action on one report and log it."""
    form = ActionForm()
    return _moderate(form, _("Please choose an action."), lambda: queue.act(
        db.session, report_id=report_id, action=form.action.data,
        moderator=current_user.email, note=form.note.data))


@bp.get("/log")
@admin_required
def log() -> str:
    """Show the moderation audit log (admins only)."""
    return render_template("moderation/log.html", entries=queue.audit_log(db.session))
