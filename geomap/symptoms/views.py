"""Symptoms pages: my symptoms (type-ahead, opt-in) and my soulmates with their map."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from geomap.auth import member_required
from geomap.database import db
from geomap.members import queries as member_queries
from geomap.members.errors import MemberConflictError, MemberInputError
from geomap.members.forms import ROLE_LABELS
from geomap.symptoms import queries
from geomap.web.errors import RETRY_AFTER_SECONDS

bp = Blueprint("symptoms", __name__)


def _me() -> int:
    """Return the signed-in member's id."""
    return int(current_user.member_id)


@bp.get("/symptoms")
@member_required
def my_symptoms() -> str:
    """Show my symptoms, the type-ahead to add more, and the matching opt-in."""
    own = queries.my_symptoms(db.session, _me())
    return render_template("symptoms/my_symptoms.html", own=own,
                           max_symptoms=queries.MAX_SYMPTOMS)


@bp.post("/symptoms/add")
@member_required
def add() -> Any:
    """Add a symptom picked in the type-ahead (or the best match of the typed text)."""
    try:
        picked = request.form.get("hpo_id", "").strip()
        if not picked:
            matches = queries.search_terms(db.session, request.form.get("q", ""), limit=1)
            if not matches:
                raise MemberInputError(
                    _("No symptom matches what you typed: pick one from the list."))
            picked = matches[0].hpo_id
        symptom = queries.add_symptom(db.session, _me(), picked)
    except (MemberInputError, MemberConflictError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("symptoms.my_symptoms"))
    db.session.commit()
    flash(_('Added: %(label)s.', label=symptom.label))
    return redirect(url_for("symptoms.my_symptoms"))


@bp.post("/symptoms/remove")
@member_required
def remove() -> Any:
    """Remove one of my symptoms."""
    try:
        queries.remove_symptom(db.session, _me(), request.form.get("hpo_id", ""))
    except MemberInputError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("symptoms.my_symptoms"))
    db.session.commit()
    flash(_("Removed."))
    return redirect(url_for("symptoms.my_symptoms"))


@bp.post("/symptoms/matching")
@member_required
def matching() -> Any:
    """Opt in to matching on my symptoms, or withdraw."""
    try:
        choice = request.form.get("matching")
        if choice not in ("on", "off"):
            raise MemberInputError(_("Say whether you take part in matching."))
        queries.set_matching(db.session, _me(), choice == "on")
    except MemberInputError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("symptoms.my_symptoms"))
    db.session.commit()
    flash(_("You now take part in soulmate matching.") if choice == "on" else
          _("You no longer take part in matching: nobody sees your symptoms any more."))
    return redirect(url_for("symptoms.my_symptoms"))


@bp.get("/soulmates")
@member_required
def soulmates() -> Any:
    """List my soulmates for a condition (or every condition) and show them on a map."""
    own = member_queries.profile(db.session, _me())
    every = request.args.get("every") == "1"
    slug = request.args.get("condition") or (own.conditions[0] if own.conditions else "all")
    result, problem, parts, status = None, None, None, 200
    problem_link = None
    # Loaded on a worker's first soulmates question (the scoring itself runs in the
    # service's scorer process, or here when there is none).
    from geomap.symptoms import soulmates as soulmate_queries
    from geomap.symptoms.scorer_link import ScorerUnavailableError

    try:
        result = soulmate_queries.for_member(db.session, current_app, _me(),
                                             None if every else slug)
        db.session.commit()  # place labels computed for new cells are kept
        from geomap.symptoms.maps import soulmates_map  # where the map is built

        parts = soulmates_map(result.areas)
    except (MemberInputError, MemberConflictError) as exc:
        db.session.rollback()
        problem = str(exc)
        problem_link = getattr(exc, "link", None)
        status = 400 if isinstance(exc, MemberInputError) else 200
    except ScorerUnavailableError:
        db.session.rollback()
        problem = soulmate_queries.unavailable_message()
        status = 503
    return render_template(
        "symptoms/soulmates.html", result=result, problem=problem, slug=slug, every=every,
        problem_link=problem_link,
        choices=member_queries.conditions(db.session), role_labels=ROLE_LABELS, map=parts,
    ), status, ({"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {})
