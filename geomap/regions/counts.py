"""Exact member counts per country and first-level region, for admins only.

Admin counts use the country and region of each member's exact point (derived when
it was written); they are exact, never published, and never show a point. One scan
of the member tables gives the per-region, per-role counts and the monthly joins
(grouping sets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.models import ROLES
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


def region_report(session: Session, condition_id: int | None, condition: str,
                  country: str | None = None, today: date | None = None) -> RegionReport:
    """Return the exact counts per country and region of members with a location.

    ``condition_id`` None counts every member once, whatever their conditions;
    ``country`` limits the report to one country.
    """
    today = today or datetime.now(UTC).date()
    months = month_starts(today)
    where = ["true"]
    params: dict[str, object] = {"since": datetime.combine(months[0], time(), UTC)}
    if condition_id is not None:
        where.append(
            "EXISTS (SELECT 1 FROM member_conditions mc WHERE mc.member_id = ml.member_id "
            "AND mc.condition_id = :condition)"
        )
        params["condition"] = condition_id
    if country is not None:
        where.append("ml.country_code = :country")
        params["country"] = country
    month = (
        "CASE WHEN m.joined_at >= :since THEN "
        "to_char(m.joined_at AT TIME ZONE 'UTC', 'YYYY-MM') END"
    )
    rows = session.execute(
        text(
            f"SELECT ml.country_code, ml.region_code, m.role, {month}, count(*), "
            "GROUPING(ml.country_code) "
            "FROM member_locations ml JOIN members m ON m.id = ml.member_id "
            f"WHERE {' AND '.join(where)} "
            f"GROUP BY GROUPING SETS ((ml.country_code, ml.region_code, m.role), ({month}))"
        ),
        params,
    ).all()
    monthly = {start.strftime("%Y-%m"): 0 for start in months}
    countries: dict[str | None, CountryRow] = {}
    regions: dict[tuple[str | None, str | None], RegionRow] = {}
    for country_code, region_code, role, month, count, by_month in rows:
        if by_month:
            if month in monthly:
                monthly[month] += count
            continue
        country_row = countries.get(country_code)
        if country_row is None:
            country_row = countries[country_code] = CountryRow(
                country_code, country_name(country_code),
                country_numeric(country_code) if country_code else None,
            )
        region_row = regions.get((country_code, region_code))
        if region_row is None:
            region_row = regions[(country_code, region_code)] = RegionRow(region_code, NO_REGION)
            country_row.regions.append(region_row)
        country_row.total += count
        country_row.by_role[role] += count
        region_row.total += count
        region_row.by_role[role] += count
    names = region_names(session, {code for _, code in regions if code})
    for (_, code), region_row in regions.items():
        if code:
            region_row.name = names.get(code, code)
    ordered = sorted(countries.values(), key=lambda row: (-row.total, row.name))
    for country_row in ordered:
        country_row.regions.sort(key=lambda row: (-row.total, row.name))
    by_role = dict.fromkeys(ROLES, 0)
    for country_row in ordered:
        for role, count in country_row.by_role.items():
            by_role[role] += count
    return RegionReport(
        condition=condition,
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
