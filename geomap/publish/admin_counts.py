"""Exact member counts per country and first-level region, for admins only.

Admin counts are exact (unsuppressed) and never published, but like everything anyone
but the owner can see they are a function of floor cells only: the snapshot counts
members per floor cell, and each floor cell is counted in the country and region the
key deriver gives that cell (:meth:`geomap.geo.derive.KeyDeriver.cell_places`, one
call per distinct floor cell), never the region of an exact point. So a member who
moves inside their floor cell changes no admin count, even across a border. Counting
a million members takes seconds, so :func:`refresh_admin_counts` snapshots them per
condition, country, region, role and month (with a full publish, or when an admin
asks), :func:`update_admin_counts` brings the snapshot in step for the members changed
since (with every incremental publish), and the admin pages read the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from time import perf_counter

import h3.api.basic_int as h3i
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.models import ROLES
from geomap.publish.nearby_index import index_probes, member_table
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


SNAPSHOT_LOCK = 0x736E_6170  # "snap": one snapshot refresh at a time
_MONTH = "date_trunc('month', m.joined_at AT TIME ZONE 'UTC')::date"
# What the admin counts count a member under: the place of their floor cell, their
# role, the month they joined and their conditions (sorted; '{}' for none).
_COUNTED = (
    "SELECT ml.member_id, p.country AS country_code, p.region AS region_code, m.role, "
    f"{_MONTH} AS month, coalesce(c.conditions, CAST('{{}}' AS smallint[])) AS conditions "
    "FROM member_locations ml JOIN members m ON m.id = ml.member_id "
    "JOIN admin_cell_places p ON p.floor_cell = ml.floor_cell "
)


def refresh_admin_counts(session: Session, now: datetime | None = None) -> float:
    """Recount every member per condition, country, region, role and month; return seconds.

    The full rebuild (used by a full publish, when an admin asks, and whenever an
    incremental refresh cannot be trusted): the distinct floor cells are placed first
    (key deriver, one call per cell), every member with a location is written to
    ``admin_counted`` under their place, role, month and conditions, and the counts
    are summed from it: once per condition and once for every member (condition 0).
    '' stands for no country or region. Pending dirty members stay marked: applying
    them later is a no-op for the counts (their stored state is the current one).
    """
    from geomap.geo.derive import polygons_key

    started = perf_counter()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SNAPSHOT_LOCK})
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    _snapshot_floor_cell_places(session, None)
    session.execute(text("TRUNCATE admin_counted"))
    session.execute(
        text(
            f"INSERT INTO admin_counted {_COUNTED}"
            "LEFT JOIN (SELECT member_id, array_agg(condition_id ORDER BY condition_id) "
            "AS conditions FROM member_conditions GROUP BY 1) c ON c.member_id = ml.member_id"
        )
    )
    session.execute(text("DROP TABLE admin_cell_places"))
    # Statistics for the refilled table: the sums below and later incremental refreshes
    # (their joins and their full-or-incremental choice) plan from them.
    session.execute(text("ANALYZE admin_counted"))
    session.execute(text("DELETE FROM admin_region_counts"))
    session.execute(text("DELETE FROM admin_monthly_joins"))
    session.execute(
        text(
            "INSERT INTO admin_region_counts (condition_id, country_code, region_code, role, "
            "count) SELECT cid, country_code, region_code, role, count(*) FROM admin_counted, "
            f"unnest(conditions || CAST({EVERY_CONDITION_ID} AS smallint)) AS cid "
            "GROUP BY 1, 2, 3, 4"
        )
    )
    session.execute(
        text(
            "INSERT INTO admin_monthly_joins (condition_id, country_code, month, count) "
            "SELECT cid, country_code, month, count(*) FROM admin_counted, "
            f"unnest(conditions || CAST({EVERY_CONDITION_ID} AS smallint)) AS cid "
            "GROUP BY 1, 2, 3"
        )
    )
    _name_regions(session, only_unnamed=False)
    session.execute(
        text(
            "INSERT INTO snapshot_state (id, places_key) VALUES (true, :key) "
            "ON CONFLICT (id) DO UPDATE SET places_key = EXCLUDED.places_key"
        ),
        {"key": polygons_key(session)},
    )
    return _record_refresh(session, started, now)


def update_admin_counts(session: Session, member_ids: Sequence[int],
                        now: datetime | None = None) -> float:
    """Bring the admin counts in step for ``member_ids`` only; return seconds.

    Each member's stored contribution (``admin_counted``) is subtracted and their
    current one added, summed per count row, so the cost follows the number of
    members changed, not the membership. Exactly equal to a full rebuild as long as
    the places of floor cells have not changed since it (the caller checks
    :func:`places_changed`). Members without a location any more simply drop out.
    """
    started = perf_counter()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SNAPSHOT_LOCK})
    with index_probes(session):
        _update_admin_counts(session, member_ids)
    _name_regions(session, only_unnamed=True)
    return _record_refresh(session, started, now)


def _update_admin_counts(session: Session, member_ids: Sequence[int]) -> None:
    """Apply the marked members to the admin counts (see :func:`update_admin_counts`)."""
    member_table(session, "admin_marked", member_ids)
    _snapshot_floor_cell_places(session, "admin_marked")
    session.execute(
        text(
            f"CREATE TEMP TABLE admin_counted_new ON COMMIT DROP AS {_COUNTED}"
            "JOIN admin_marked d ON d.member_id = ml.member_id "
            "LEFT JOIN LATERAL (SELECT array_agg(condition_id ORDER BY condition_id) "
            "AS conditions FROM member_conditions WHERE member_id = ml.member_id) c ON true"
        )
    )
    session.execute(
        text(
            "CREATE TEMP TABLE admin_counts_delta ON COMMIT DROP AS "
            "SELECT cid AS condition_id, country_code, region_code, role, month, "
            "sum(sign) AS n, GROUPING(role) AS by_month FROM ("
            "SELECT country_code, region_code, role, month, conditions, -1 AS sign "
            "FROM admin_counted JOIN admin_marked USING (member_id) "
            "UNION ALL SELECT country_code, region_code, role, month, conditions, 1 "
            "FROM admin_counted_new) x, "
            f"unnest(x.conditions || CAST({EVERY_CONDITION_ID} AS smallint)) AS cid "
            "GROUP BY GROUPING SETS ((cid, country_code, region_code, role), "
            "(cid, country_code, month)) HAVING sum(sign) <> 0"
        )
    )
    session.execute(
        text(
            "INSERT INTO admin_region_counts (condition_id, country_code, region_code, role, "
            "count) SELECT condition_id, country_code, region_code, role, n "
            "FROM admin_counts_delta WHERE by_month = 0 "
            "ON CONFLICT (condition_id, country_code, region_code, role) "
            "DO UPDATE SET count = admin_region_counts.count + EXCLUDED.count"
        )
    )
    session.execute(
        text(
            "DELETE FROM admin_region_counts a USING admin_counts_delta d "
            "WHERE d.by_month = 0 AND a.condition_id = d.condition_id "
            "AND a.country_code = d.country_code AND a.region_code = d.region_code "
            "AND a.role = d.role AND a.count = 0"
        )
    )
    session.execute(
        text(
            "INSERT INTO admin_monthly_joins (condition_id, country_code, month, count) "
            "SELECT condition_id, country_code, month, n FROM admin_counts_delta "
            "WHERE by_month = 1 ON CONFLICT (condition_id, country_code, month) "
            "DO UPDATE SET count = admin_monthly_joins.count + EXCLUDED.count"
        )
    )
    session.execute(
        text(
            "DELETE FROM admin_monthly_joins a USING admin_counts_delta d "
            "WHERE d.by_month = 1 AND a.condition_id = d.condition_id "
            "AND a.country_code = d.country_code AND a.month = d.month AND a.count = 0"
        )
    )
    session.execute(
        text("DELETE FROM admin_counted a USING admin_marked d WHERE a.member_id = d.member_id")
    )
    session.execute(text("INSERT INTO admin_counted SELECT * FROM admin_counted_new"))
    for table in ("admin_counted_new", "admin_counts_delta", "admin_cell_places", "admin_marked"):
        session.execute(text(f"DROP TABLE {table}"))


def places_changed(session: Session) -> bool:
    """Whether region polygons changed since the last full rebuild (or none ran yet)."""
    from geomap.geo.derive import polygons_key

    stored = session.execute(text("SELECT places_key FROM snapshot_state")).scalar_one_or_none()
    return stored is None or stored != polygons_key(session)


def _name_regions(session: Session, *, only_unnamed: bool) -> None:
    """Fill region_name of the count rows (looked up once here, not on every page view)."""
    unnamed = " AND region_name IS NULL" if only_unnamed else ""
    codes = session.execute(
        text(f"SELECT DISTINCT region_code FROM admin_region_counts WHERE region_code <> ''"
             f"{unnamed}")
    ).scalars().all()
    if not codes:
        return
    names = region_names(session, codes)
    session.execute(
        text(
            "UPDATE admin_region_counts a SET region_name = v.name "
            "FROM unnest(CAST(:codes AS text[]), CAST(:names AS text[])) AS v(code, name) "
            f"WHERE a.region_code = v.code{unnamed}"
        ),
        {"codes": list(names), "names": list(names.values())},
    )


def _record_refresh(session: Session, started: float, now: datetime | None) -> float:
    """Store when the counts were refreshed and how long it took; return the seconds."""
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


def _snapshot_floor_cell_places(session: Session, marked: str | None) -> None:
    """Fill a temporary table admin_cell_places (floor_cell, country, region).

    One row per distinct floor cell of a member (of those in temporary table ``marked``
    only, unless None), placed by the key deriver for that cell ('' where it has no
    country or region).
    """
    import numpy as np  # numpy and Shapely load where snapshots are made, not in web workers

    from geomap.geo.derive import deriver_for
    from geomap.geo.reference import raw_connection

    only = "" if marked is None else f"JOIN {marked} USING (member_id) "
    cells = np.array(
        session.execute(
            text(f"SELECT DISTINCT floor_cell FROM member_locations {only}ORDER BY 1")
        ).scalars().all(),
        dtype=np.int64,
    )
    session.execute(
        text("CREATE TEMP TABLE admin_cell_places (floor_cell bigint PRIMARY KEY, "
             "country text NOT NULL, region text NOT NULL) ON COMMIT DROP")
    )
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
