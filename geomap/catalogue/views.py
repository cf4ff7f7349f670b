"""Pages of the catalogue: search, A-Z index, a condition's page, requests, curation.

The admins' curation page holds the request queue and the audit log.

Public pages read through the public session; a member's request and the admins'
changes write through the full one. Admin routes are declared with
:func:`geomap.auth.admin_required`, the request route with ``member_required``.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as flask_session
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import text

from geomap.auth import admin_required, member_required
from geomap.catalogue import curate, search
from geomap.database import db
from geomap.i18n.formats import with_names
from geomap.i18n.names import localised
from geomap.publish import published
from geomap.web.openapi import CatalogueList, CatalogueQuery, answers, contract

bp = Blueprint("catalogue", __name__)
admin_bp = Blueprint("catalogue_admin", __name__, url_prefix="/admin/conditions")
SEARCH_LIMIT = 20
SUGGEST_LIMIT = 8


def _page_number() -> int:
    """Return the ``page`` query argument, or abort 400 when it is not a whole number."""
    value = request.args.get("page", "1")
    if not value.isdigit() or not 1 <= int(value) <= 10_000:
        abort(400, description=_("The page must be a whole number from 1."))
    return int(value)


@bp.get("/conditions")
def index() -> str:
    """Search the catalogue (``q``) or browse it from A to Z (``letter``, ``page``)."""
    query = request.args.get("q", "").strip()
    hits, error = [], None
    if query:
        try:
            hits = localised(db.public_session,
                             search.search(db.public_session, query, SEARCH_LIMIT))
        except ValueError as exc:
            error = str(exc)
    letter = request.args.get("letter", "A")
    page = None
    try:
        page_number = _page_number()
        if not query:  # a search shows its results and the letters, not a letter's page
            page = search.az_index(db.public_session, letter, page_number)
    except ValueError as exc:
        abort(400, description=str(exc))
    if page is not None and page.page > page.pages:
        abort(404, description=_('The index of %(letter)s has %(pages)s pages.',
                                 letter=page.letter, pages=page.pages))
    return render_template(
        "catalogue/index.html", query=query, hits=hits, error=error, index=page,
        letters=(*search.LETTERS, search.OTHER),
    )


@bp.get("/api/v1/catalogue")
@contract.validate(query=CatalogueQuery, resp=answers(CatalogueList), tags=["public"])
def suggest() -> Response:
    """Answer the search box: the best matches of ``q`` as JSON."""
    try:
        hits = search.search(db.public_session, request.args.get("q", ""), SUGGEST_LIMIT)
    except ValueError as exc:
        abort(400, description=str(exc))
    return jsonify(
        conditions=[
            {
                "slug": h.slug, "name": h.name, "code": h.code, "enabled": h.enabled,
                "published": h.published, "matched": h.matched, "locale": h.locale,
                "url": url_for("catalogue.entry", slug=h.slug),
            }
            for h in hits
        ]
    )


@bp.get("/conditions/<slug>")
def entry(slug: str) -> str:
    """Show a catalogue condition: its names and codes, its map or a way to ask for one."""
    page = search.entry_page(db.public_session, slug)
    if page is None:
        abort(404, description=_('There is no condition %(slug)r in the catalogue.', slug=slug))
    asked = False
    member_id = getattr(current_user, "member_id", None)
    if member_id is not None and not page.hit.enabled:
        found = curate.find_entry(db.session, slug)
        asked = found is not None and curate.has_requested(db.session, found, member_id)
    return render_template("catalogue/entry.html", page=page, asked=asked)


@bp.post("/conditions/<slug>/request")
@member_required
def request_map(slug: str) -> Response:
    """Record the signed-in member's wish for this condition's map."""
    found = curate.find_entry(db.session, slug)
    if found is None or found.slug != slug:
        abort(404, description=_('There is no condition %(slug)r in the catalogue.', slug=slug))
    try:
        added = curate.request_map(db.session, found, current_user.member_id)
    except curate.CatalogueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("catalogue.entry", slug=slug))
    db.session.commit()
    if added:
        flash(with_names(_('Thank you: we will tell you here when the map of %(name)s opens.'),
                         name=found.name), "ok")
    else:
        flash(with_names(_('You have already asked for the map of %(name)s.'), name=found.name),
              "ok")
    return redirect(url_for("catalogue.entry", slug=slug))


def _tell_opened_maps() -> None:
    """Tell a signed-in member, once, about the maps they asked for that have opened.

    Runs in a short transaction of its own before anything else of the request
    touches the database (the account id comes from Flask-Login's session key), so
    that marking the notice as given never waits for the view.
    """
    account_id = flask_session.get("_user_id")
    if not account_id or not str(account_id).isdigit() or request.method != "GET" or \
            request.path.startswith(("/api/", "/static/", "/embed", "/oembed", "/healthz")):
        return
    with db.new_session() as session, session.begin():
        member_id = session.execute(
            text("SELECT member_id FROM accounts WHERE id = :id"), {"id": int(account_id)}
        ).scalar_one_or_none()
        opened = curate.take_opened_maps(session, member_id) if member_id else []
    for condition in opened:
        flash(with_names(_('The map of %(name)s you asked for is open now.'),
                         name=condition.name), "ok")


# --- admin ----------------------------------------------------------------------


def _actor() -> str:
    """Return how the audit log names the signed-in admin."""
    return f"admin:{current_user.email}"


@admin_bp.get("/")
@admin_required
def curation() -> str:
    """Curate the catalogue: search, open or close maps, the request queue, the audit log."""
    query = request.args.get("q", "").strip()
    hits, error = [], None
    if query:
        try:
            hits = search.search(db.session, query, SEARCH_LIMIT)
        except ValueError as exc:
            error = str(exc)
    return render_template(
        "catalogue/admin.html", query=query, hits=hits, error=error,
        queue=curate.request_queue(db.session), audit=curate.audit_log(db.session),
        enabled=published.conditions(db.session),
    )


CHANGES = ("enable", "disable", "rename", "add-synonym")


@admin_bp.post("/<slug>/<change>")
@admin_required
def change(slug: str, change: str) -> Response:
    """Apply one audited change to the condition ``slug``, then return to the page."""
    if change not in CHANGES:
        abort(404, description=_("That change does not exist."))
    found = curate.find_entry(db.session, slug)
    if found is None or found.slug != slug:
        abort(404, description=_('There is no condition %(slug)r in the catalogue.', slug=slug))
    try:
        if change == "enable":
            curate.enable(db.session, found, _actor())
            message = with_names(_("%(name)s has a map from the next publish on."),
                                 name=found.name)
        elif change == "disable":
            curate.disable(db.session, found, _actor())
            message = with_names(_("The map of %(name)s closes at the next publish."),
                                 name=found.name)
        elif change == "rename":
            renamed = curate.rename(db.session, found, request.form.get("name", ""), _actor())
            message = with_names(_("%(name)s is now called %(new_name)s."), name=found.name,
                                 new_name=renamed.name)
        else:
            synonym = request.form.get("synonym", "")
            curate.add_synonym(db.session, found, synonym, _actor(),
                               locale=request.form.get("locale", "en") or "en")
            message = with_names(_("%(name)s can now be found as %(synonym)s."),
                                 name=found.name, synonym=synonym.strip())
    except curate.CatalogueError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("catalogue_admin.curation", q=request.form.get("q") or None))
    db.session.commit()
    flash(message, "ok")
    return redirect(url_for("catalogue_admin.curation", q=request.form.get("q") or None))


def init_app(app: Flask) -> None:
    """Register the catalogue's pages and the opened-map notices."""
    app.register_blueprint(bp)
    app.register_blueprint(admin_bp)
    app.before_request(_tell_opened_maps)
