"""Exact member counts per country and first-level region, for admins only.

Admin counts are exact (unsuppressed) and never published, but like everything anyone
but the owner can see they are a function of floor cells only: the snapshot counts
members per floor cell, and each floor cell is counted in the country and region the
key deriver gives that cell (:meth:`geomap.geo.derive.KeyDeriver.cell_places`, one
call per distinct floor cell), never the region of an exact point. So a member who
moves inside their floor cell changes no admin count, even across a border. Counting
a million members takes seconds, so :func:`refresh_admin_counts` snapshots them per
condition, country, region, role and month (with every publish, or when an admin
asks), and the admin pages read the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from time import perf_counter

import h3.api.basic_int as h3i
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import deriver_for
from geomap.geo.reference import raw_connection
from geomap.models import ROLES
from geomap.regions.models import EVERY_CONDITION_ID
from geomap.regions.names import country_name, country_numeric, region_names

MONTHS = 24
NO_REGION = "Region unknown"


@dataclass
class RegionRow:
    """Members in one first-level region (or with no region known), by role."""

    code: str | None
    name: str
    total: int = 0
    by_role: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))


@dataclass
class CountryRow:
    """Members in one country, by role and by region."""

    code: str | None
    name: str
    numeric: str | None
    total: int = 0
    by_role: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    regions: list[RegionRow] = field(default_factory=list)


@dataclass
class RegionReport:
    """Every country's and region's count for a condition (or all), and monthly joins."""

    condition: str  # a condition's slug, or 'every'
    counted_at: datetime | None  # when the snapshot was taken; None: never
    total: int
    by_role: dict[str, int]
    countries: list[CountryRow]
    joined_by_month: list[tuple[str, int]]  # ('2026-11', n), oldest first, MONTHS long


def month_starts(today: date, months: int = MONTHS) -> list[date]:
    """Return the first day of each of the last ``months`` months, oldest first."""
    starts = []
    year, month = today.year, today.month
    for _ in range(months):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts[::-1]


def refresh_admin_counts(session: Session, now: datetime | None = None) -> float:
    """Recount every member per condition, country, region, role and month; return seconds.

    The distinct floor cells are placed first (key deriver, one call per cell), then
    two scans of the member tables join each member's floor cell to its place: one per
    condition (through member_conditions), one counting every member once (condition
    0). '' stands for no country or region.
    """
    started = perf_counter()
    _snapshot_floor_cell_places(session)
    month = "date_trunc('month', m.joined_at AT TIME ZONE 'UTC')::date"
    columns = (
        "p.country AS country, p.region AS region, "
        f"m.role AS role, {month} AS month, count(*) AS n, GROUPING(m.role) AS by_month"
    )
    joined = (
        "FROM member_locations ml JOIN members m ON m.id = ml.member_id "
        "JOIN admin_cell_places p ON p.floor_cell = ml.floor_cell"
    )
    session.execute(
        text(
            "CREATE TEMP TABLE admin_counts_scan ON COMMIT DROP AS "
            f"SELECT mc.condition_id AS condition_id, {columns} {joined} "
            "JOIN member_conditions mc ON mc.member_id = ml.member_id "
            "GROUP BY GROUPING SETS ("
            "(mc.condition_id, p.country, p.region, m.role), "
            f"(mc.condition_id, p.country, {month})) "
            f"UNION ALL SELECT {EVERY_CONDITION_ID}, {columns} {joined} "
            "GROUP BY GROUPING SETS ((p.country, p.region, m.role), "
            f"(p.country, {month}))"
        )
    )
    session.execute(text("DELETE FROM admin_region_counts"))
    session.execute(text("DELETE FROM admin_monthly_joins"))
    session.execute(
        text(
            "INSERT INTO admin_region_counts (condition_id, country_code, region_code, role, "
            "count) SELECT condition_id, country, region, role, n FROM admin_counts_scan "
            "WHERE by_month = 0"
        )
    )
    session.execute(
        text(
            "INSERT INTO admin_monthly_joins (condition_id, country_code, month, count) "
            "SELECT condition_id, country, month, n FROM admin_counts_scan WHERE by_month = 1"
        )
    )
    session.execute(text("DROP TABLE admin_counts_scan"))
    session.execute(text("DROP TABLE admin_cell_places"))
    # Names are looked up once here, not on every page view.
    codes = session.execute(
        text("SELECT DISTINCT region_code FROM admin_region_counts WHERE region_code <> ''")
    ).scalars().all()
    names = region_names(session, codes)
    session.execute(
        text(
            "UPDATE admin_region_counts a SET region_name = v.name "
            "FROM unnest(CAST(:codes AS text[]), CAST(:names AS text[])) AS v(code, name) "
            "WHERE a.region_code = v.code"
        ),
        {"codes": list(names), "names": list(names.values())},
    )
    seconds = perf_counter() - started
    session.execute(
        text(
            "INSERT INTO admin_counts_refresh (id, refreshed_at, seconds) "
            "VALUES (true, :now, :seconds) ON CONFLICT (id) DO UPDATE "
            "SET refreshed_at = EXCLUDED.refreshed_at, seconds = EXCLUDED.seconds"
        ),
        {"now": now or datetime.now(UTC), "seconds": seconds},
    )
    return seconds


def _snapshot_floor_cell_places(session: Session) -> None:
    """Fill a temporary table admin_cell_places (floor_cell, country, region).

    One row per distinct floor cell of a member, placed by the key deriver for that
    cell ('' where it has no country or region).
    """
    cells = np.array(
        session.execute(
            text("SELECT DISTINCT floor_cell FROM member_locations ORDER BY 1")
        ).scalars().all(),
        dtype=np.int64,
    )
    session.execute(
        text("CREATE TEMP TABLE admin_cell_places (floor_cell bigint PRIMARY KEY, "
             "country text NOT NULL, region text NOT NULL) ON COMMIT DROP")
    )
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    if len(cells) == 0:
        return
    floor = h3i.get_resolution(int(cells[0]))
    places = deriver_for(session, floor).cell_places(cells)
    with raw_connection(session).cursor().copy(
        "COPY admin_cell_places (floor_cell, country, region) FROM STDIN"
    ) as copy:
        for cell in cells.tolist():
            country, region = places[cell]
            copy.write_row((cell, country or "", region or ""))
    session.execute(text("ANALYZE admin_cell_places"))


def region_report(session: Session, condition_id: int | None, condition: str,
                  country: str | None = None, today: date | None = None) -> RegionReport:
    """Return the exact counts per country and region of members with a location.

    Read from the latest snapshot (:func:`refresh_admin_counts`). ``condition_id``
    None counts every member once, whatever their conditions; ``country`` limits
    the report to one country.
    """
    today = today or datetime.now(UTC).date()
    months = month_starts(today)
    params: dict[str, object] = {
        "condition": EVERY_CONDITION_ID if condition_id is None else condition_id,
        "since": months[0],
        "country": country,
    }
    only_country = " AND country_code = :country" if country is not None else ""
    rows = session.execute(
        text(
            "SELECT country_code, region_code, role, count, region_name "
            "FROM admin_region_counts "
            f"WHERE condition_id = :condition{only_country}"
        ),
        params,
    ).all()
    monthly = {start.strftime("%Y-%m"): 0 for start in months}
    for month, count in session.execute(
        text(
            "SELECT month, sum(count) FROM admin_monthly_joins WHERE condition_id = :condition "
            f"AND month >= :since{only_country} GROUP BY month"
        ),
        params,
    ).all():
        key = month.strftime("%Y-%m")
        if key in monthly:
            monthly[key] += int(count)
    counted_at = session.execute(
        text("SELECT refreshed_at FROM admin_counts_refresh")
    ).scalar_one_or_none()
    countries: dict[str | None, CountryRow] = {}
    regions: dict[tuple[str | None, str | None], RegionRow] = {}
    for country_code, region_code, role, count, region_name in rows:
        country_code, region_code = country_code or None, region_code or None
        country_row = countries.get(country_code)
        if country_row is None:
            country_row = countries[country_code] = CountryRow(
                country_code, country_name(country_code),
                country_numeric(country_code) if country_code else None,
            )
        region_row = regions.get((country_code, region_code))
        if region_row is None:
            region_row = regions[(country_code, region_code)] = RegionRow(
                region_code, (region_name or region_code) if region_code else NO_REGION
            )
            country_row.regions.append(region_row)
        country_row.total += count
        country_row.by_role[role] += count
        region_row.total += count
        region_row.by_role[role] += count
    ordered = sorted(countries.values(), key=lambda row: (-row.total, row.name))
    for country_row in ordered:
        country_row.regions.sort(key=lambda row: (-row.total, row.name))
    by_role = dict.fromkeys(ROLES, 0)
    for country_row in ordered:
        for role, count in country_row.by_role.items():
            by_role[role] += count
    return RegionReport(
        condition=condition,
        counted_at=counted_at,
        total=sum(row.total for row in ordered),
        by_role=by_role,
        countries=ordered,
        joined_by_month=list(monthly.items()),
    )


def report_rows(report: RegionReport) -> list[dict[str, object]]:
    """Return one flat row per region (for CSV and JSON), with the country beside it."""
    rows = []
    for country in report.countries:
        for region in country.regions:
            rows.append(
                {"condition": report.condition,
                 "country_code": country.code or "",
                 "country": country.name,
                 "region_code": region.code or "",
                 "region": region.name,
                 "members": region.total}
                | {role: region.by_role[role] for role in ROLES}
            )
    return rows
