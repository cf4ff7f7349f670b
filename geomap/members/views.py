"""Member pages: settings (join the map), nearby, connections and threads, my data."""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
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
from flask_login import current_user, logout_user

from geomap.auth import member_required
from geomap.database import db
from geomap.i18n.formats import with_names
from geomap.members import nearby as nearby_queries
from geomap.members import queries, social
from geomap.members.errors import ImplausiblePointError, MemberConflictError, MemberInputError
from geomap.members.forms import (
    AGE_GROUP_LABELS,
    PHASE_LABELS,
    REPORT_REASONS,
    ROLE_LABELS,
    ConfirmForm,
    ConnectForm,
    DeleteForm,
    LocationForm,
    MessageForm,
    ProfileForm,
    ReportForm,
)
from geomap.privacy import DISTANCE_BANDS
from geomap.web.forms import select_choices

ID = "int(max=9223372036854775807)"  # a bigint: larger ids are a 404, not a 500
bp = Blueprint("members", __name__)


def _me() -> int:
    """Return the signed-in member's id."""
    return int(current_user.member_id)


def _form_errors(form: Any) -> str:
    """Return a form's errors as one readable sentence."""
    return " ".join(f"{form[name].label.text}: {'; '.join(str(e) for e in errs)}"
                    for name, errs in form.errors.items())


def _profile_form(own: queries.Profile) -> ProfileForm:
    """Return the profile form filled from the member's saved profile (never the request)."""
    return ProfileForm(formdata=None,
                       data={"conditions": list(own.conditions), "role": own.role,
                             "visibility": own.visibility, "contactable": own.contactable,
                             "introduction": own.introduction,
                             "age_group": own.age_group or "",
                             "treatment_phase": own.treatment_phase or ""})


@bp.get("/settings")
@member_required
def settings() -> str:
    """Show my conditions, role, visibility, contact choice and location."""
    own = queries.profile(db.session, _me())
    form = _profile_form(own)
    wanted = request.args.get("condition") or session.pop("join_condition", None)
    known = {c.slug for c in queries.conditions(db.session)}
    joining = None
    if wanted in known and wanted not in own.conditions:
        joining = wanted
        form.conditions.data = [*own.conditions, wanted]  # "Join" from a map preselects it
        flash(_("We ticked this map's condition for you below: press “Save and join the "
                "map” there to join it (saving your location alone does not)."))
    return _settings_page(own, form, LocationForm(), joining=joining)


def _settings_page(own: queries.Profile, form: ProfileForm, location_form: LocationForm,
                   status: int = 200, *, confirm_sea: bool = False,
                   joining: str | None = None) -> Any:
    """Render the settings page with both forms and the publish timing.

    ``confirm_sea`` offers the "my home really is at sea" box for a refused pin.
    ``joining``: the slug of a map the member came to join, preselected in the profile
    form; the location form carries it, so that saving the location first (the form at
    the top) comes back with it still ticked instead of dropping the join.
    """
    choices = queries.conditions(db.session)
    form.conditions.choices = select_choices((c.slug, c.name) for c in choices)
    timing = queries.publish_timing(db.session, current_app.config["GEOMAP_PUBLISH_INTERVAL"])
    return render_template("members/settings.html", profile=own, form=form,
                           location_form=location_form, timing=timing,
                           role_labels=ROLE_LABELS, confirm_sea=confirm_sea,
                           joining=joining), status


def _back_to_settings() -> Response:
    """Redirect to the settings page, keeping a map being joined (see _settings_page)."""
    joining = request.form.get("joining") or None
    return redirect(url_for("members.settings", condition=joining))


@bp.get("/join/<slug>")
def join(slug: str) -> Response:
    """Join a condition's map: sign up (or, if signed in, settings) with it preselected."""
    if slug not in {c.slug for c in queries.conditions(db.session)}:
        abort(404, description=_('There is no condition %(slug)r.', slug=slug[:64]))
    if current_user.is_authenticated and current_user.member_id is not None:
        return redirect(url_for("members.settings", condition=slug))
    session["join_condition"] = slug
    if current_user.is_authenticated:  # an admin or moderator: no member profile
        return redirect(url_for("pages.condition_map", slug=slug))
    return redirect(url_for("auth.signup"))


@bp.post("/settings")
@member_required
def save_settings() -> Any:
    """Save my conditions, role, visibility and contact choice."""
    form = ProfileForm()
    form.conditions.choices = select_choices(
        (c.slug, c.name) for c in queries.conditions(db.session))
    if not form.validate_on_submit():
        flash(_form_errors(form) or _("Please check the form."), "error")
        return _settings_page(queries.profile(db.session, _me()), form, LocationForm(), 400)
    try:
        queries.update_profile(
            db.session, _me(), role=form.role.data, visibility=form.visibility.data,
            contactable=bool(form.contactable.data), condition_slugs=form.conditions.data or [],
        )
        queries.update_about(db.session, _me(), introduction=form.introduction.data,
                             age_group=form.age_group.data,
                             treatment_phase=form.treatment_phase.data)
    except MemberInputError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("members.settings"))
    db.session.commit()
    flash(_("Saved. The map shows your change after the next publish."))
    return redirect(url_for("members.settings"))


@bp.post("/settings/location")
@member_required
def location() -> Any:
    """Set my location from a picked city or a dropped pin."""
    form = LocationForm()
    if not form.validate_on_submit():
        flash(_form_errors(form) or _("Please check the form."), "error")
        return _back_to_settings()
    floor = current_app.config["GEOMAP_FLOOR_RESOLUTION"]
    try:
        if form.place_id.data:
            place = queries.set_location_to_place(db.session, _me(), form.place_id.data,
                                                  floor=floor)
            message = _("Your location is now %(place)s. Only you see it; the map shows your "
                        "area after the next publish.", place=place.label)
        elif form.lat.data or form.lng.data:
            queries.set_location(db.session, _me(), form.lat.data, form.lng.data, floor=floor,
                                 allow_sea=request.form.get("allow_sea") == "1")
            message = _("Your location is now the pin you dropped. Only you see it; the map "
                        "shows your area after the next publish.")
        elif form.city.data:
            named = queries.place_named(db.session, form.city.data)
            place = queries.set_location_to_place(db.session, _me(), named.id, floor=floor)
            message = _("Your location is now %(place)s. Only you see it; the map shows your "
                        "area after the next publish.", place=place.label)
        else:
            raise MemberInputError(_("Pick a city or drop a pin on the map."))
    except ImplausiblePointError as exc:
        # Keep the pin and offer to confirm it: a real home at sea or on a tiny island.
        db.session.rollback()
        flash(_("That pin is not saved: it does not look like a home (%(reason)s). If it is "
                "right, tick the box below and save again.", reason=exc.reason), "error")
        return _settings_page(queries.profile(db.session, _me()),
                              _profile_form(queries.profile(db.session, _me())), form, 400,
                              confirm_sea=True, joining=request.form.get("joining") or None)
    except MemberInputError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back_to_settings()
    db.session.commit()
    flash(message)
    return _back_to_settings()


@bp.get("/nearby")
@member_required
def nearby() -> Any:
    """List members with a condition near me, by distance band."""
    own = queries.profile(db.session, _me())
    slug = request.args.get("condition") or (own.conditions[0] if own.conditions else "all")
    choices = queries.conditions(db.session)
    result, problem = None, None
    role_filter, band_filter = request.args.get("role", ""), request.args.get("band", "")
    reach = social.reach_problem(db.session, _me())
    if reach is None:
        try:
            page = nearby_queries.parse_page(request.args.get("page"))
            role, band = nearby_queries.parse_filters(role_filter, band_filter)
            result = nearby_queries.nearby(
                db.session, member_id=_me(), condition_slug=slug, page=page,
                secret=current_app.config["SECRET_KEY"],
                max_km=current_app.config["GEOMAP_NEARBY_MAX_KM"], role=role, band=band,
            )
            db.session.commit()  # place labels computed for new cells are kept
        except (MemberInputError, MemberConflictError) as exc:
            db.session.rollback()
            problem = str(exc)
    filters = {key: value for key, value in (("role", role_filter), ("band", band_filter))
               if value}
    return render_template("members/nearby.html", result=result, problem=problem,
                           reach=reach, slug=slug, choices=choices, role_labels=ROLE_LABELS,
                           age_labels=AGE_GROUP_LABELS, phase_labels=PHASE_LABELS,
                           bands=[label for _upper, label in DISTANCE_BANDS],
                           role_filter=role_filter, band_filter=band_filter, filters=filters,
                           max_km=current_app.config["GEOMAP_NEARBY_MAX_KM"],
                           has_location=own.location is not None), (400 if problem and
                                                                     own.location else 200)


@bp.route("/connect/<pseudonym>", methods=["GET", "POST"])
@member_required
def connect(pseudonym: str) -> Any:
    """Send a connection request to a member."""
    social.member_id_by_pseudonym(db.session, pseudonym)  # 404 for unknown members
    form = ConnectForm()
    if form.validate_on_submit():
        try:
            social.request_connection(db.session, _me(), pseudonym, form.message.data)
        except (MemberInputError, MemberConflictError) as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(with_names(_('Your request was sent to %(pseudonym)s.'), pseudonym=pseudonym))
            return redirect(url_for("members.connections"))
    elif form.errors:
        flash(_form_errors(form), "error")
    reach = social.reach_problem(db.session, _me())
    return render_template("members/connect.html", pseudonym=pseudonym, form=form,
                           reach=reach), (400 if form.errors else 200)


@bp.get("/connections")
@member_required
def connections() -> str:
    """Show my requests, connections and blocks."""
    items = social.connections(db.session, _me())
    return render_template(
        "members/connections.html",
        incoming=[c for c in items if c.incoming and c.status == "pending"],
        outgoing=[c for c in items if not c.incoming and c.status == "pending"],
        accepted=[c for c in items if c.status == "accepted"],
        blocked=social.blocked_members(db.session, _me()),
        form=ConfirmForm(),
        role_labels=ROLE_LABELS, age_labels=AGE_GROUP_LABELS, phase_labels=PHASE_LABELS,
    )


@bp.post(f"/connections/<{ID}:connection_id>/<any(accept, decline):answer>")
@member_required
def respond(connection_id: int, answer: str) -> Response:
    """Accept or decline a request sent to me."""
    if not ConfirmForm().validate_on_submit():
        abort(400, description=_("The form has expired; please try again."))
    try:
        social.respond(db.session, _me(), connection_id, accept=answer == "accept")
    except MemberConflictError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("members.connections"))
    db.session.commit()
    if answer == "accept":
        flash(_("Accepted: you can now write to each other."))
        return redirect(url_for("members.thread", connection_id=connection_id))
    flash(_("Declined."))
    return redirect(url_for("members.connections"))


@bp.route(f"/connections/<{ID}:connection_id>", methods=["GET", "POST"])
@member_required
def thread(connection_id: int) -> Any:
    """Show a conversation and write in it."""
    form = MessageForm()
    status = 200
    if form.validate_on_submit():
        try:
            social.send_message(db.session, _me(), connection_id, form.body.data)
        except (MemberInputError, MemberConflictError) as exc:
            db.session.rollback()
            flash(str(exc), "error")
            status = 400
        else:
            db.session.commit()
            return redirect(url_for("members.thread", connection_id=connection_id))
    elif form.errors and request.method == "POST":
        flash(_form_errors(form), "error")
        status = 400
    conversation = social.thread(db.session, _me(), connection_id)
    db.session.commit()  # read receipts
    return render_template("members/thread.html", thread=conversation, form=MessageForm(),
                           action_form=ConfirmForm(), report_form=ReportForm()), status


@bp.get("/members/<pseudonym>/block")
@member_required
def confirm_block(pseudonym: str) -> str:
    """Ask before blocking a member: say what blocking does."""
    social.member_id_by_pseudonym(db.session, pseudonym)  # 404 for unknown members
    return render_template("members/block.html", pseudonym=pseudonym, form=ConfirmForm())


@bp.post("/members/<pseudonym>/<any(block, unblock):action>")
@member_required
def block(pseudonym: str, action: str) -> Response:
    """Block (after the confirmation page) or unblock a member."""
    if not ConfirmForm().validate_on_submit():
        abort(400, description=_("The form has expired; please try again."))
    try:
        if action == "block":
            social.block(db.session, _me(), pseudonym)
        else:
            social.unblock(db.session, _me(), pseudonym)
    except MemberInputError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("members.connections"))
    db.session.commit()
    flash(with_names(_("%(name)s is blocked.") if action == "block"
                     else _("%(name)s is unblocked."), name=pseudonym))
    return redirect(url_for("members.connections"))


@bp.route(f"/messages/<{ID}:message_id>/report", methods=["GET", "POST"])
@member_required
def report(message_id: int) -> Any:
    """Report a message to the moderators, with a reason."""
    message = social.reportable_message(db.session, _me(), message_id)
    form = ReportForm()
    if form.validate_on_submit():
        label = REPORT_REASONS[form.reason.data]
        details = (form.details.data or "").strip()
        reason = f"{label}: {details}" if details else label
        try:
            social.report_message(db.session, _me(), message_id, reason)
        except MemberInputError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash(_("Thank you: the message was reported to the moderators. They will look "
                  "at it; you can also block the sender."))
            return redirect(url_for("members.thread", connection_id=message.connection_id))
    elif form.errors:
        flash(_form_errors(form), "error")
    return render_template("members/report.html", message=message, form=form), (
        400 if form.errors else 200)


@bp.post("/warning/acknowledge")
@member_required
def acknowledge_warning() -> Response:
    """Hide a moderator's warning once read."""
    if not ConfirmForm().validate_on_submit():
        abort(400, description=_("The form has expired; please try again."))
    queries.acknowledge_warning(db.session, _me())
    db.session.commit()
    return redirect(url_for("members.settings"))


@bp.get("/my-data")
@member_required
def my_data() -> str:
    """Offer the export of my data and the deletion of my account."""
    return render_template("members/my_data.html", form=DeleteForm())


@bp.get("/my-data/export.json")
@member_required
def export() -> Response:
    """Download everything geomap holds about me as JSON."""
    body = json.dumps(queries.export(db.session, _me()), indent=2, ensure_ascii=False)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = "attachment; filename=geomap-my-data.json"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/my-data/delete")
@member_required
def delete_account() -> Any:
    """Delete my account and everything about me."""
    form = DeleteForm()
    if not form.validate_on_submit() or form.confirm.data.strip() != "DELETE":
        flash(_("Type DELETE to confirm."), "error")
        return render_template("members/my_data.html", form=form), 400
    queries.delete_member(db.session, _me())
    db.session.commit()
    logout_user()
    flash(_("Your account and all your data are deleted. The map reflects it after the "
          "next publish."))
    return redirect(url_for("pages.index"))


@bp.app_context_processor
def _unread_in_header() -> dict:
    """Give templates the signed-in member's unread counts."""
    member_id = getattr(current_user, "member_id", None)
    if member_id is None:
        return {"unread": None, "moderation_notice": None}
    return {"unread": social.unread_counts(db.session, int(member_id)),
            "moderation_notice": social.moderation_notice(db.session, int(member_id)),
            "notice_form": ConfirmForm()}
