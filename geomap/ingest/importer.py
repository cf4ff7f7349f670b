"""Bulk import of members from CSV or GeoJSON files, validated, through the COPY loader.

CSV columns (a header line names them; order is free):

========== ========= ==========================================================
column     required  meaning
========== ========= ==========================================================
pseudonym  yes       public name, 1-64 characters, unique
lat, lng   one of    the member's point (WGS 84 degrees)
city,      the two   a gazetteer city name and ISO 3166-1 alpha-2 country code;
country              the point is the city's centre (largest city of that name)
conditions yes       condition slugs separated by ``;`` (e.g. ``all;aml``)
role       no        patient (default), relative, carer, professional, researcher,
                     organisation
visibility no        map (default), country, hidden
contactable no       true/false, yes/no, 1/0 (default true)
joined_at  no        ISO 8601 date or date-time (default: now; UTC if no zone)
========== ========= ==========================================================

GeoJSON: a FeatureCollection of Point features with the same properties
(``conditions`` may also be a list of slugs); the point is the geometry, or
``city`` and ``country`` properties when the geometry is null.

Validation reports every bad row with its line number (``features[i]`` for GeoJSON)
and the reason, never the coordinates themselves. Fields are validated column-wise
with numpy where possible; keys are derived vectorised by the loader.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.ingest.members_bulk import MemberBatch, load_members
from geomap.models import ROLES, VISIBILITIES

COLUMNS = ("pseudonym", "lat", "lng", "city", "country", "conditions", "role", "visibility",
           "contactable", "joined_at")
_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not a row problem)."""


@dataclass(frozen=True)
class RowError:
    """A rejected row: where it is in the file and why."""

    where: str  # "line 12" or "features[3]"
    reason: str

    def __str__(self) -> str:
        """Return 'where: reason'."""
        return f"{self.where}: {self.reason}"


@dataclass
class Records:
    """Raw rows of an import file as aligned string columns, with their locations."""

    where: list[str] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.where)


@dataclass
class Validated:
    """The good rows as a loader batch, and the bad rows' errors."""

    batch: MemberBatch
    errors: list[RowError]
    rows: int


def read_records(path: Path, fmt: str | None = None) -> Records:
    """Read ``path`` (CSV, or GeoJSON by extension or ``fmt``) into string columns."""
    fmt = fmt or ("geojson" if path.suffix.lower() in (".geojson", ".json") else "csv")
    if fmt == "geojson":
        return _read_geojson(path)
    if fmt == "csv":
        return _read_csv(path)
    raise ImportFileError(f"unknown format {fmt!r}: use csv or geojson")


def _read_csv(path: Path) -> Records:
    """Read a CSV file with a header line; rows of the wrong width are kept, marked."""
    records = Records()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            raise ImportFileError("the file is empty: expected a header line") from None
        unknown = [name for name in header if name not in COLUMNS]
        if unknown:
            raise ImportFileError(
                f"unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}"
            )
        for required in ("pseudonym", "conditions"):
            if required not in header:
                raise ImportFileError(f"the header has no {required!r} column")
        if not ({"lat", "lng"} <= set(header) or {"city", "country"} <= set(header)):
            raise ImportFileError("the header needs lat and lng, or city and country")
        index = {name: header.index(name) for name in header}
        width = len(header)
        absent = [c for c in COLUMNS if c not in index]
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num
            if not row:
                continue
            records.where.append(f"line {start}")
            if len(row) != width:
                # Kept aligned with a marker that validation turns into the error.
                records.columns["pseudonym"].append("\0fields")
                for name in COLUMNS[1:]:
                    records.columns[name].append("")
                continue
            for name, i in index.items():
                records.columns[name].append(row[i].strip())
            for name in absent:
                records.columns[name].append("")
    return records


def _read_geojson(path: Path) -> Records:
    """Read a GeoJSON FeatureCollection; malformed features are kept, marked."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"not valid JSON: {exc.__class__.__name__}") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise ImportFileError("expected a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise ImportFileError("the FeatureCollection has no features list")
    records = Records()
    for i, feature in enumerate(features):
        records.where.append(f"features[{i}]")
        props = feature.get("properties") if isinstance(feature, dict) else None
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        values = {c: "" for c in COLUMNS}
        if not isinstance(props, dict):
            values["pseudonym"] = "\0feature"
        else:
            for name in COLUMNS:
                value = props.get(name)
                if isinstance(value, list) and name == "conditions":
                    value = ";".join(str(v) for v in value)
                values[name] = "" if value is None else str(value).strip()
            if isinstance(props.get("contactable"), bool):
                values["contactable"] = "true" if props["contactable"] else "false"
        if isinstance(geometry, dict):
            coords = geometry.get("coordinates")
            if geometry.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:
                values["lat"] = values["lng"] = "\0geometry"
            else:
                values["lng"], values["lat"] = str(coords[0]), str(coords[1])
        elif geometry is not None:
            values["lat"] = values["lng"] = "\0geometry"
        for name in COLUMNS:
            records.columns[name].append(values[name])
    return records


def _numbers(raw: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return floats of ``raw`` and a mask of the entries that are not numbers."""
    try:
        values = np.array(raw, dtype=np.float64)
        return values, ~np.isfinite(values)
    except ValueError:
        values = np.full(len(raw), np.nan)
        for i, item in enumerate(raw):
            try:
                values[i] = float(item)
            except ValueError:
                pass
        return values, ~np.isfinite(values)


def _city_points(session: Session, cities: list[str], countries: list[str],
                 rows: np.ndarray) -> dict[tuple[str, str], tuple[float, float]]:
    """Return the gazetteer point of each (country, lower-case name) asked for."""
    wanted = {(countries[i].upper(), cities[i].lower()) for i in rows.tolist()}
    if not wanted:
        return {}
    codes = sorted({c for c, _ in wanted})
    names = sorted({n for _, n in wanted})
    found: dict[tuple[str, str], tuple[float, float]] = {}
    for country, name, ascii_name, lat, lng in session.execute(
        text(
            "SELECT country_code, lower(name), lower(ascii_name), ST_Y(point), ST_X(point) "
            "FROM places WHERE country_code = ANY(:codes) "
            "AND (lower(name) = ANY(:names) OR lower(ascii_name) = ANY(:names)) "
            "ORDER BY population ASC"
        ),
        {"codes": codes, "names": names},
    ).all():
        # Largest city last, so it wins for a name shared by several places.
        found[(country, name)] = (lat, lng)
        found[(country, ascii_name)] = (lat, lng)
    return found


def validate(session: Session, records: Records, now: datetime | None = None) -> Validated:
    """Check every row; return the good ones as a batch and an error per bad row."""
    n = len(records)
    cols = records.columns
    reasons: list[str | None] = [None] * n

    def reject(mask: np.ndarray, reason: str) -> None:
        """Give the rows in ``mask`` that have no reason yet this one."""
        for i in np.flatnonzero(mask).tolist():
            if reasons[i] is None:
                reasons[i] = reason

    pseudonyms = cols["pseudonym"]
    structural = np.array([p.startswith("\0") for p in pseudonyms], dtype=bool)
    for i in np.flatnonzero(structural).tolist():
        reasons[i] = (
            "the feature has no properties object" if pseudonyms[i] == "\0feature"
            else "wrong number of fields"
        )
    lengths = np.fromiter((len(p) for p in pseudonyms), dtype=np.int64, count=n)
    reject(lengths == 0, "pseudonym is missing")
    reject(lengths > 64, "pseudonym is longer than 64 characters")

    # Location: lat/lng when given, else city + country.
    lat_raw, lng_raw = cols["lat"], cols["lng"]
    bad_geometry = np.array([v == "\0geometry" for v in lat_raw], dtype=bool)
    reject(bad_geometry, "geometry must be a Point with two coordinates")
    has_point = np.array([bool(a or b) for a, b in zip(lat_raw, lng_raw, strict=True)], bool)
    has_point &= ~bad_geometry
    lats = np.full(n, np.nan)
    lngs = np.full(n, np.nan)
    point_rows = np.flatnonzero(has_point)
    if len(point_rows):
        lat_values, lat_bad = _numbers([lat_raw[i] for i in point_rows.tolist()])
        lng_values, lng_bad = _numbers([lng_raw[i] for i in point_rows.tolist()])
        lats[point_rows], lngs[point_rows] = lat_values, lng_values
        mask = np.zeros(n, bool)
        mask[point_rows[lat_bad]] = True
        reject(mask, "latitude is not a number")
        mask[:] = False
        mask[point_rows[lng_bad]] = True
        reject(mask, "longitude is not a number")
        with np.errstate(invalid="ignore"):
            reject(np.abs(lats) > 90, "latitude out of range (-90 to 90)")
            reject(np.abs(lngs) > 180, "longitude out of range (-180 to 180)")
    cities, countries = cols["city"], cols["country"]
    city_rows = np.flatnonzero(~has_point & ~bad_geometry)
    no_place = [i for i in city_rows.tolist() if not (cities[i] and countries[i])]
    mask = np.zeros(n, bool)
    mask[no_place] = True
    reject(mask, "no location: give lat and lng, or city and country")
    city_rows = np.array([i for i in city_rows.tolist() if cities[i] and countries[i]], np.int64)
    places = _city_points(session, cities, countries, city_rows)
    for i in city_rows.tolist():
        point = places.get((countries[i].upper(), cities[i].lower()))
        if point is None:
            if reasons[i] is None:
                reasons[i] = "unknown city for that country in the gazetteer"
        else:
            lats[i], lngs[i] = point

    # Conditions: known slugs, at least one.
    slugs_to_id = dict(session.execute(text("SELECT slug, id FROM conditions")).all())
    conditions: list[list[int]] = []
    for i, raw in enumerate(cols["conditions"]):
        slugs = [s.strip().lower() for s in raw.split(";") if s.strip()]
        unknown = [s for s in slugs if s not in slugs_to_id]
        if not slugs and reasons[i] is None:
            reasons[i] = "conditions is missing (slugs separated by ';')"
        elif unknown and reasons[i] is None:
            reasons[i] = f"unknown condition {unknown[0][:64]!r}"
        conditions.append(sorted({slugs_to_id[s] for s in slugs if s in slugs_to_id}))

    roles = np.array([r.lower() or "patient" for r in cols["role"]], dtype=object)
    reject(~np.isin(roles, ROLES), f"role must be one of {', '.join(ROLES)}")
    visibilities = np.array([v.lower() or "map" for v in cols["visibility"]], dtype=object)
    reject(~np.isin(visibilities, VISIBILITIES),
           f"visibility must be one of {', '.join(VISIBILITIES)}")
    contactable = []
    for i, raw in enumerate(cols["contactable"]):
        value = raw.lower()
        if value in _TRUE or value == "":
            contactable.append(True)
        elif value in _FALSE:
            contactable.append(False)
        else:
            contactable.append(True)
            if reasons[i] is None:
                reasons[i] = "contactable must be true or false"
    now = now or datetime.now(UTC)
    joined: list[datetime] = []
    for i, raw in enumerate(cols["joined_at"]):
        if not raw:
            joined.append(now)
            continue
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            joined.append(now)
            if reasons[i] is None:
                reasons[i] = "joined_at must be an ISO 8601 date or date-time"
            continue
        joined.append(value if value.tzinfo else value.replace(tzinfo=UTC))

    # Pseudonyms: unique in the file and not taken already.
    first_seen: dict[str, int] = {}
    for i, pseudonym in enumerate(pseudonyms):
        if reasons[i] is not None or not pseudonym:
            continue
        key = pseudonym.lower()
        if key in first_seen:
            reasons[i] = f"pseudonym repeats {records.where[first_seen[key]]}"
        else:
            first_seen[key] = i
    taken = _taken_pseudonyms(session, list(first_seen))
    for key in taken:
        reasons[first_seen[key]] = "pseudonym is taken already"

    good = np.array([reason is None for reason in reasons], dtype=bool)
    keep = np.flatnonzero(good).tolist()
    batch = MemberBatch(
        pseudonyms=[pseudonyms[i] for i in keep],
        roles=[roles[i] for i in keep],
        visibilities=[visibilities[i] for i in keep],
        contactable=[contactable[i] for i in keep],
        joined_at=[joined[i] for i in keep],
        lats=lats[good],
        lngs=lngs[good],
        conditions=[conditions[i] for i in keep],
    )
    errors = [
        RowError(records.where[i], reason)
        for i, reason in enumerate(reasons) if reason is not None
    ]
    return Validated(batch=batch, errors=errors, rows=n)


def _taken_pseudonyms(session: Session, lowered: Sequence[str]) -> set[str]:
    """Return the lower-cased pseudonyms among ``lowered`` that members have already."""
    taken: set[str] = set()
    for start in range(0, len(lowered), 100_000):
        chunk = list(lowered[start : start + 100_000])
        taken.update(
            session.execute(
                text("SELECT lower(pseudonym) FROM members "
                     "WHERE lower(pseudonym) = ANY(CAST(:names AS text[]))"),
                {"names": chunk},
            ).scalars()
        )
    return taken


def import_members(session: Session, validated: Validated, deriver: KeyDeriver, *,
                   all_or_nothing: bool = False,
                   progress: Callable[[int], None] | None = None) -> int:
    """Load the good rows in the session's transaction; return how many were loaded.

    With ``all_or_nothing`` and any bad row, nothing is loaded.
    """
    if all_or_nothing and validated.errors:
        return 0
    ids = load_members(session, validated.batch, deriver, progress=progress)
    return len(ids)


def iter_errors(errors: Sequence[RowError], limit: int | None = None) -> Iterator[str]:
    """Yield printable error lines, then how many more there are past ``limit``."""
    shown = errors if limit is None else errors[:limit]
    for error in shown:
        yield str(error)
    if limit is not None and len(errors) > limit:
        yield f"... and {len(errors) - limit:,} more bad rows"
