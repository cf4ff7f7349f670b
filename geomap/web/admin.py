"""Admin pages: exact member counts per country and region, with CSV and JSON export.

Every route is declared with :func:`geomap.auth.admin_required`: anonymous visitors
are sent to sign in, members get 403. Counts are exact; no page shows a point.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext

from geomap.auth import admin_required
from geomap.database import db
from geomap.models import ROLES
from geomap.publish import published
from geomap.publish.admin_counts import (
    RegionReport,
    refresh_admin_counts,
    region_report,
    report_rows,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")

_COUNTRY = re.compile(r"^[A-Z]{2}$")
# Every condition at once. Not "all": that is the slug of acute lymphocytic leukemia.
EVERY_CONDITION = "every"


def _report() -> RegionReport:
    """Return the report the query string asks for (condition, optional country)."""
    slug = request.args.get("condition") or EVERY_CONDITION
    condition_id = None
    if slug != EVERY_CONDITION:
        condition = published.condition(db.session, slug)
        if condition is None:
            abort(404, description=gettext('There is no condition %(slug)r.', slug=slug))
        condition_id = condition.id
    country = request.args.get("country") or None
    if country is not None:
        country = country.upper()
        if not _COUNTRY.match(country):
            abort(400, description=gettext("country must be a two-letter ISO 3166-1 code."))
    return region_report(db.session, condition_id, slug, country)


@bp.app_template_filter("thousands")
def thousands(number: int) -> str:
    """Format a count with the locale's digit grouping (12,345; 12.345 in de)."""
    from geomap.i18n.formats import number as localised

    return localised(number)


def _no_store(response: Response) -> Response:
    """Keep exact counts out of shared and browser caches."""
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/regions")
@admin_required
def regions() -> Response:
    """Show the exact counts per country and region, a monthly chart and a choropleth."""
    report = _report()
    # Imported where a map page is built, not at start-up.
    from geomap.web.choropleth import country_choropleth

    choropleth = country_choropleth(
        {row.code: row.total for row in report.countries if row.code}
    )
    peak = max((count for _, count in report.joined_by_month), default=0)
    return _no_store(
        Response(
            render_template(
                "admin/regions.html",
                report=report,
                roles=ROLES,
                conditions=published.conditions(db.session),
                country=request.args.get("country", "").upper(),
                every=EVERY_CONDITION,
                choropleth=choropleth,
                peak=peak,
            )
        )
    )


@bp.get("/regions.csv")
@admin_required
def regions_csv() -> Response:
    """Download the counts per region as CSV (one row per region, totals add up)."""
    report = _report()
    buffer = io.StringIO()
    fields = ["condition", "country_code", "country", "region_code", "region", "members",
              *ROLES]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in report_rows(report):
        # Names come from reference data, but guard spreadsheets against formulas anyway.
        writer.writerow({key: _csv_safe(value) for key, value in row.items()})
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="geomap-regions-{report.condition}.csv"'
    )
    return _no_store(response)


def _csv_safe(value: object) -> object:
    """Quote a text cell that a spreadsheet would read as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@bp.get("/regions.json")
@admin_required
def regions_json() -> Response:
    """Return the counts per country and region as JSON."""
    report = _report()
    body = asdict(report)
    body["counted_at"] = report.counted_at.isoformat() if report.counted_at else None
    return _no_store(jsonify(body))


@bp.post("/regions/refresh")
@admin_required
def refresh_regions() -> Response:
    """Recount the members now instead of waiting for the next publish."""
    session = db.session
    seconds = refresh_admin_counts(session)
    session.commit()
    flash(gettext('Counted again in %(seconds)s s.', seconds=format(seconds, '.1f')))
    condition = request.form.get("condition") or EVERY_CONDITION
    return redirect(url_for("admin.regions", condition=condition))
