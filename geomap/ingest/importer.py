"""Bulk import of members from CSV or GeoJSON files, validated, through the COPY loader.

CSV columns (a header line names them; order is free):

========== ========= ==========================================================
column     required  meaning
========== ========= ==========================================================
pseudonym  yes       public name: 3-40 letters, digits, spaces, dots, dashes; unique
lat, lng   one of    the member's point (WGS 84 degrees)
city,      the two   a gazetteer city name (any of its names, matched as the type-ahead
country              does) and ISO 3166-1 alpha-2 code; the point is the city's centre
region     no        first-level region name or code, to choose among same-named cities
allow_sea  no        true to keep a point at sea, at (0, 0) or that looks swapped
conditions yes       condition slugs separated by ``;`` (e.g. ``all;aml``)
role       no        patient (default), relative, carer, professional, researcher,
                     organisation
visibility no        map (default), country, hidden
contactable no       true/false, yes/no, 1/0 (default true)
joined_at  no        ISO 8601 date or date-time (default: now; UTC if no zone)
symptoms   no        HPO ids separated by ``;`` (see geomap.symptoms.ingest)
========== ========= ==========================================================

GeoJSON: a FeatureCollection of Point features with the same properties
(``conditions`` and ``symptoms`` may also be lists); the point is the geometry, or
``city`` and ``country`` properties when the geometry is null.

Validation reports every bad row with its line number (``features[i]`` for GeoJSON)
and the reason, never the coordinates themselves. Fields are validated column-wise
with numpy where possible; keys are derived vectorised by the loader.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo import places as place_matcher
from geomap.geo.derive import KeyDeriver
from geomap.ingest import validators
from geomap.ingest.members_bulk import MemberBatch, gc_paused, load_members
from geomap.ingest.validators import FIELD_MAX, FieldError, coordinate
from geomap.members.pseudonyms import pseudonym_keys
from geomap.models import ROLES, VISIBILITIES
from geomap.symptoms.ingest import parse_symptom_cells, store_symptoms

COLUMNS = ("pseudonym", "lat", "lng", "city", "region", "country", "conditions", "role",
           "visibility", "contactable", "joined_at", "allow_sea", "symptoms")
_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


TAKEN = "pseudonym is taken already"
"""The reason of a row whose pseudonym a member of the database has (case and look-alikes
folded)."""


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not a row problem); the message has no values."""


@dataclass(frozen=True)
class RowError:
    """A rejected row: where it is in the file and why."""

    where: str  # "line 12" or "features[3]"
    reason: str

    def __str__(self) -> str:
        """Return 'where: reason'."""
        return f"{self.where}: {self.reason}"


class LineLabels(Sequence[str]):
    """Row locations ``line N`` of a CSV file, made when asked for (not a million strings)."""

    def __init__(self, lines: np.ndarray) -> None:
        """Hold each row's line number (int64 array, 1-based)."""
        self._lines = lines

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self._lines)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        """Return row ``index``'s location, e.g. ``line 12``."""
        return f"line {self._lines[index]}"


@dataclass
class Records:
    """Raw rows of an import file as aligned string columns, with their locations.

    ``problems`` holds, per row, a reason found while reading (wrong number of fields,
    a control character, an overlong field), or None.
    """

    where: list[str] | LineLabels = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in COLUMNS})
    problems: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.where)

    def append(self, where: str, values: dict[str, str], problem: str | None = None) -> None:
        """Add one row (missing columns are empty)."""
        self.where.append(where)
        self.problems.append(problem)
        for name in COLUMNS:
            self.columns[name].append(values.get(name, "") if problem is None else "")


@dataclass
class Validated:
    """The good rows as a loader batch, and the bad rows' errors."""

    batch: MemberBatch
    errors: list[RowError]
    rows: int
    symptoms: list[list[int]] = field(default_factory=list)  # aligned with batch


def read_records(path: Path, fmt: str | None = None) -> Records:
    """Read ``path`` (CSV, or GeoJSON by extension or ``fmt``) into string columns.

    Raises :class:`ImportFileError` (never another exception) for a file that cannot
    be read as a whole; a bad row is kept with its problem.
    """
    fmt = fmt or ("geojson" if path.suffix.lower() in (".geojson", ".json") else "csv")
    if fmt not in ("csv", "geojson"):
        raise ImportFileError("unknown format: use csv or geojson")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read the file ({exc.__class__.__name__})") from None
    return read_bytes(data, fmt)


@gc_paused()
def read_bytes(data: bytes, fmt: str) -> Records:
    """Read an import file's bytes (``fmt`` csv or geojson); see :func:`read_records`."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"the file is not UTF-8 text (byte {exc.start + 1:,})") from None
    if fmt == "geojson":
        return _read_geojson(content)
    return _read_csv(content)


def _row_problem(values: Sequence[str]) -> str | None:
    """Return why raw fields cannot be read (control character, overlong), or None."""
    joined = "".join(values)
    if len(joined) <= FIELD_MAX and not _CONTROL.search(joined):
        return None  # the usual case: one check for the whole row
    for value in values:
        if len(value) > FIELD_MAX:
            return f"a field is longer than {FIELD_MAX:,} characters"
        if _CONTROL.search(value):
            return "a field holds a control character (such as NUL or a line break)"
    return None


def _check_header(header: list[str]) -> None:
    """Refuse a header line that names unknown or repeated columns, or misses needed ones."""
    unknown = [i + 1 for i, name in enumerate(header) if name not in COLUMNS]
    if unknown:
        # Never the names themselves: a file without a header line would echo a
        # member's pseudonym and exact point here.
        raise ImportFileError(
            f"header column(s) {', '.join(map(str, unknown[:5]))} are not known columns "
            f"(is the header line missing?); known: {', '.join(COLUMNS)}"
        )
    if len(set(header)) != len(header):
        raise ImportFileError("the header names a column twice")
    for required in ("pseudonym", "conditions"):
        if required not in header:
            raise ImportFileError(f"the header has no {required!r} column")
    if not ({"lat", "lng"} <= set(header) or {"city", "country"} <= set(header)):
        raise ImportFileError("the header needs lat and lng, or city and country")


def _read_csv(content: str) -> Records:
    """Read CSV text with a header line; rows of the wrong width are kept, marked.

    A file without quotes, bare carriage returns or control characters (what most
    exports are) is split column-wise by :func:`_read_plain_csv`, with the same result
    as the ``csv`` module's; any other file is read by the ``csv`` module row by row.
    """
    plain = _read_plain_csv(content)
    return plain if plain is not None else _read_csv_rows(content)


_NOT_PLAIN = re.compile(r'["\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]')
"""A quote or a control character other than tab and line feed: not a plain file."""
_PADDED = re.compile(r"(?:^|,)\s|\s(?:,|$)")
"""A field with leading or trailing white space (fields are stripped)."""
_PLAIN_ASCII = bytes([9, 10, *(c for c in range(32, 127) if c != ord('"'))])
"""The bytes a plain ASCII file is made of: printable characters but the quote, tab, LF."""


def _padded(joined: str, ascii_only: bool) -> bool:
    """Whether a field of ``joined`` (fields separated by commas) has white space around it."""
    if not ascii_only:
        return _PADDED.search(joined) is not None
    # In a plain ASCII file, space and tab are the only white space in a field. Most
    # files have neither: one byte is found ten times faster than a pair (memchr).
    if " " not in joined and "\t" not in joined:
        return False
    return (any(pad in joined for pad in (" ,", ", ", "\t,", ",\t"))
            or joined[:1] in (" ", "\t") or joined[-1:] in (" ", "\t"))


def _read_plain_csv(content: str) -> Records | None:
    """Read CSV text that has no quoting and no control characters, or return None.

    Such a file's rows are its lines and its fields are what lies between commas, so
    the whole file is split at once and each column taken by slicing: no per-row Python
    work for the rows of the right width. Blank lines are skipped and every row keeps
    its line number, as with the ``csv`` module.
    """
    if "\r" in content:
        if content.count("\r") != content.count("\r\n"):
            return None  # a bare CR is a line break to the csv module
        content = content.replace("\r\n", "\n")
    ascii_only = content.isascii()
    if ascii_only:
        # Deleting every allowed byte leaves what makes the file not plain (C speed).
        if content.encode("ascii").translate(None, _PLAIN_ASCII):
            return None
    elif _NOT_PLAIN.search(content):
        return None
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line break
    if not lines:
        raise ImportFileError("the file is empty: expected a header line")
    header = [name.strip().lower() for name in lines[0].split(",")] if lines[0] else []
    _check_header(header)
    width = len(header)
    body = lines[1:]
    numbers = np.arange(2, 2 + len(body), dtype=np.int64)
    if "" in body:
        kept = [i for i, line in enumerate(body) if line]
        body = [body[i] for i in kept]
        numbers = numbers[kept]
    n = len(body)
    problems: list[str | None] = [None] * n
    commas = np.fromiter((line.count(",") for line in body), dtype=np.int64, count=n)
    lengths = np.fromiter(map(len, body), dtype=np.int64, count=n)
    for i in np.flatnonzero((commas != width - 1) | (lengths > FIELD_MAX)).tolist():
        fields = body[i].split(",")
        problem = _row_problem(fields)
        if problem is None and len(fields) != width:
            problem = "wrong number of fields"
        if problem is not None:
            problems[i] = problem
            body[i] = "," * (width - 1)  # blank fields, as for the csv module's bad rows
    joined = ",".join(body)
    fields = joined.split(",") if n else []
    columns = {name: fields[j::width] for j, name in enumerate(header)}
    if _padded(joined, ascii_only):
        columns = {name: [v.strip() for v in values] for name, values in columns.items()}
    records = Records(where=LineLabels(numbers), problems=problems)
    for name in COLUMNS:
        records.columns[name] = columns[name] if name in columns else [""] * n
    return records


def _read_csv_rows(content: str) -> Records:
    """Read CSV text row by row with the ``csv`` module (quotes, embedded line breaks)."""
    records = Records()
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 1 << 30))
    try:
        reader = csv.reader(io.StringIO(content, newline=""), strict=False)
        try:
            header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            raise ImportFileError("the file is empty: expected a header line") from None
        except csv.Error:
            raise ImportFileError("the header line is not valid CSV") from None
        _check_header(header)
        width = len(header)
        blank = [""] * width
        rows: list[list[str]] = []  # stripped fields; blank for a row with a problem
        line = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                start, line = line + 1, reader.line_num
                records.where.append(f"line {start}")
                records.problems.append("the line is not valid CSV")
                rows.append(blank)
                continue
            start, line = line + 1, reader.line_num
            if not row:
                continue
            problem = _row_problem(row)
            if problem is None and len(row) != width:
                problem = "wrong number of fields"
            records.where.append(f"line {start}")
            records.problems.append(problem)
            rows.append([v.strip() for v in row] if problem is None else blank)
    finally:
        csv.field_size_limit(limit)
    # Columns from rows in one transposition (not one dictionary per row).
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    for name, values in zip(header, by_column, strict=True):
        records.columns[name] = list(values)
    for name in COLUMNS:
        if name not in header:
            records.columns[name] = [""] * len(rows)
    return records


def _read_geojson(content: str) -> Records:
    """Read a GeoJSON FeatureCollection; malformed features are kept, marked."""
    try:
        document = json.loads(content)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise ImportFileError(f"not valid JSON: {exc.__class__.__name__}") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise ImportFileError("expected a GeoJSON FeatureCollection")
    check_crs(document)
    features = document.get("features")
    if not isinstance(features, list):
        raise ImportFileError("the FeatureCollection has no features list")
    records = Records()
    for i, feature in enumerate(features):
        values, problem = _feature_values(feature)
        records.append(f"features[{i}]", values, problem)
    return records


def check_crs(document: dict) -> None:
    """Refuse a GeoJSON ``crs`` member other than CRS84 / EPSG:4326 (RFC 7946 is WGS 84)."""
    if not validators.geojson_crs_ok(document):
        raise ImportFileError(validators.CRS_RULE)


def _feature_values(feature: object) -> tuple[dict[str, str], str | None]:
    """Return one feature's column values and a reading problem (or None)."""
    if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
        return {}, "the feature has no properties object"
    props = feature["properties"]
    values: dict[str, str] = {}
    for name in COLUMNS:
        value = props.get(name)
        if isinstance(value, list) and name in ("conditions", "symptoms"):
            value = ";".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, dict | list):
            return {}, f"{name} must be a string or a number"
        values[name] = "" if value is None else str(value).strip()
    geometry = feature.get("geometry")
    if isinstance(geometry, dict):
        coords = geometry.get("coordinates")
        if (geometry.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2
                or not all(isinstance(c, int | float) and not isinstance(c, bool)
                           for c in coords[:2])):
            return {}, "geometry must be a Point with two coordinates"
        try:
            values["lng"], values["lat"] = repr(float(coords[0])), repr(float(coords[1]))
        except OverflowError:
            return {}, "geometry must be a Point with two coordinates"
    elif geometry is not None:
        return {}, "geometry must be a Point with two coordinates"
    return values, _row_problem(list(values.values()))


_PLAIN_PSEUDONYMS = re.compile(r"(?:[\w.\-][\w.\- ]{1,38}[\w.\-]\n)*[\w.\-][\w.\- ]{1,38}[\w.\-]",
                               re.ASCII)
"""ASCII pseudonyms that :func:`validators.pseudonym` returns unchanged, one a line."""


_NUMBER_MAX = 1e300  # larger magnitudes count as not numbers (as infinities do)


def _numbers(raw: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return floats of ``raw`` and a mask of the entries that are not numbers."""
    if raw and max(map(len, raw)) <= 64:
        # numpy converts each str with Python's float(), as coordinate() does after
        # its length check: when every entry converts, all of them in one go.
        try:
            values = np.array(raw, dtype=np.float64)
        except ValueError:
            pass  # some entry is not a number: each one alone
        else:
            with np.errstate(invalid="ignore"):
                return values, ~(np.abs(values) <= _NUMBER_MAX)  # NaN: not a number
    values = np.full(len(raw), np.nan)
    for i, item in enumerate(raw):
        try:
            values[i] = coordinate(item, "value", _NUMBER_MAX)
        except FieldError:
            pass
    return values, ~np.isfinite(values)


def _city_points(session: Session, records: Records, rows: list[int],
                 reasons: list[str | None]) -> dict[int, tuple[float, float]]:
    """Return {row: gazetteer point} of city rows; record a reason for the others.

    Names go through the shared place matcher; a name that several places of the
    country share is reported as ambiguous unless the ``region`` column settles it.
    """
    cols = records.columns
    found: dict[int, tuple[float, float]] = {}
    if not rows:
        return found
    candidates = place_matcher.exact(session, (cols["city"][i] for i in rows),
                                     (cols["country"][i][:2] for i in rows))
    ids: dict[int, int] = {}
    for i in rows:
        country = cols["country"][i].upper()
        places = [p for p in candidates.get(place_matcher.fold(cols["city"][i]), [])
                  if p.country_code == country]
        places = place_matcher.settle(places, cols["region"][i])
        if not places:
            reasons[i] = reasons[i] or "unknown city for that country (and region) in the gazetteer"
        elif len({p.id for p in places}) > 1:
            reasons[i] = reasons[i] or (
                f"the city name matches {len(places)} places in that country: "
                "add a region column to choose one"
            )
        else:
            ids[i] = places[0].id
    if ids:
        points = dict((pid, (lat, lng)) for pid, lat, lng in session.execute(
            text("SELECT id, ST_Y(point), ST_X(point) FROM places WHERE id = ANY(:ids)"),
            {"ids": sorted(set(ids.values()))},
        ).all())
        found = {i: points[pid] for i, pid in ids.items()}
    return found


@gc_paused()
def validate(session: Session, records: Records, now: datetime | None = None, *,
             deriver: KeyDeriver | None = None, allow_sea: bool = False) -> Validated:
    """Check every row; return the good ones as a batch and an error per bad row.

    With a ``deriver``, points are checked for plausibility ((0, 0), at sea, swapped)
    unless ``allow_sea`` or the row's ``allow_sea`` column is true. Reasons name the
    field and the rule, never a value.
    """
    n = len(records)
    cols = records.columns
    reasons: list[str | None] = list(records.problems)

    def reject(mask: np.ndarray, reason: str) -> None:
        """Give the rows in ``mask`` that have no reason yet this one."""
        for i in np.flatnonzero(mask).tolist():
            if reasons[i] is None:
                reasons[i] = reason

    pseudonyms = cols["pseudonym"]
    plain = bool(pseudonyms) and _PLAIN_PSEUDONYMS.fullmatch("\n".join(pseudonyms)) is not None
    for i, raw in enumerate([] if plain else pseudonyms):  # plain: each is valid as it is
        if reasons[i] is not None:
            continue
        if not raw:
            reasons[i] = "pseudonym is missing"
            continue
        try:
            pseudonyms[i] = validators.pseudonym(raw)
        except FieldError as exc:
            reasons[i] = str(exc).rstrip(".")

    # Location: lat/lng when given, else city + country.
    lat_raw, lng_raw = cols["lat"], cols["lng"]
    if "" in lat_raw or "" in lng_raw:
        lat_empty = np.array([not value for value in lat_raw], bool)
        lng_empty = np.array([not value for value in lng_raw], bool)
        has_point = ~(lat_empty & lng_empty)
    else:  # every row has a point (the usual file): no row-by-row look
        lat_empty = lng_empty = np.zeros(n, bool)
        has_point = np.ones(n, bool)
    lats = np.full(n, np.nan)
    lngs = np.full(n, np.nan)
    point_rows = np.flatnonzero(has_point)
    if len(point_rows):
        every = len(point_rows) == n
        lat_values, lat_bad = _numbers(
            lat_raw if every else [lat_raw[i] for i in point_rows.tolist()])
        lng_values, lng_bad = _numbers(
            lng_raw if every else [lng_raw[i] for i in point_rows.tolist()])
        lats[point_rows], lngs[point_rows] = lat_values, lng_values
        mask = np.zeros(n, bool)
        mask[point_rows[lat_bad]] = True
        reject(mask & lat_empty, "latitude is missing (lat and lng go together)")
        reject(mask, "latitude is not a number")
        mask[:] = False
        mask[point_rows[lng_bad]] = True
        reject(mask & lng_empty, "longitude is missing (lat and lng go together)")
        reject(mask, "longitude is not a number")
        with np.errstate(invalid="ignore"):
            reject(np.abs(lats) > 90, "latitude out of range (-90 to 90)")
            reject(np.abs(lngs) > 180, "longitude out of range (-180 to 180)")
    cities, countries = cols["city"], cols["country"]
    city_rows = [i for i in np.flatnonzero(~has_point).tolist() if reasons[i] is None]
    for i in city_rows:
        if not (cities[i] and countries[i]):
            reasons[i] = "no location: give lat and lng, or city and country"
        elif len(countries[i]) != 2 or not countries[i].isascii() or not countries[i].isalpha():
            reasons[i] = "country must be an ISO 3166-1 alpha-2 code such as DE"
        else:
            try:
                validators.place_name(cities[i])
            except FieldError as exc:
                reasons[i] = str(exc).rstrip(".")
    city_rows = [i for i in city_rows if reasons[i] is None]
    for i, point in _city_points(session, records, city_rows, reasons).items():
        lats[i], lngs[i] = point

    # Plausibility of given points (gazetteer points are places, so plausible).
    if any(cols["allow_sea"]):
        sea_ok = np.array([allow_sea or v.lower() in _TRUE for v in cols["allow_sea"]], bool)
        bad_flag = np.array([v != "" and v.lower() not in _TRUE | _FALSE
                             for v in cols["allow_sea"]], bool)
        reject(bad_flag, "allow_sea must be true or false")
    else:
        sea_ok = np.full(n, allow_sea, dtype=bool)
    plausibility: Future[list[str | None]] | None = None
    check: list[int] = []
    if deriver is not None:
        check = np.flatnonzero(has_point & _unreasoned(reasons) & ~sea_ok).tolist()
        # Numeric work (h3, shapely, k-d trees) that mostly releases the GIL: it runs in
        # a thread beside the per-column checks below, and its reasons are applied
        # before the pseudonym check, as if it had run here.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geomap-plausible")
        plausibility = executor.submit(validators.implausible_points, deriver, lats[check],
                                       lngs[check])
        executor.shutdown(wait=False)

    # Conditions: known slugs, at least one.
    slugs_to_id = dict(session.execute(text("SELECT slug, id FROM conditions")).all())
    # Few distinct values: each is parsed once; rows share its (read-only) id list.
    parsed = {raw: _parse_conditions(raw, slugs_to_id) for raw in set(cols["conditions"])}
    conditions: list[list[int]] = list(map({raw: ids for raw, (ids, _) in parsed.items()}
                                           .__getitem__, cols["conditions"]))
    _give_reasons(cols["conditions"], {raw: reason for raw, (_, reason) in parsed.items()},
                  reasons)

    symptom_sets: list[list[int]] = []
    if any(cols["symptoms"]):
        symptom_sets, symptom_reasons = parse_symptom_cells(session, cols["symptoms"])
        for i, reason in enumerate(symptom_reasons):
            if reason is not None and reasons[i] is None:
                reasons[i] = reason

    # Few distinct values per column: each is looked at once, rows go through a dict.
    roles = _mapped(cols["role"], lambda r: r.lower() or "patient", ROLES,
                    f"role must be one of {', '.join(ROLES)}", reasons)
    visibilities = _mapped(cols["visibility"], lambda v: v.lower() or "map", VISIBILITIES,
                           f"visibility must be one of {', '.join(VISIBILITIES)}", reasons)
    contactable = _mapped(cols["contactable"], _contactable_flag, (True, False),
                          "contactable must be true or false (or yes/no, 1/0)", reasons)
    now = now or datetime.now(UTC)
    joined = _joined_micros(cols["joined_at"], now, reasons)

    if plausibility is not None:
        for i, reason in zip(check, plausibility.result(), strict=True):
            if reason is not None:  # it came first: later reasons give way
                reasons[i] = reason + " (set allow_sea to keep it)"

    # Pseudonyms: unique in the file and not taken already, case and look-alikes
    # folded (geomap.members.pseudonyms, the key the database keeps unique).
    keys: list[str | None]
    candidates: Sequence[int]
    if reasons.count(None) == n and (plain or "" not in pseudonyms):
        # Every row is good so far (the usual file): one key per row, in one pass, and
        # the rows looked at one by one only if a key repeats.
        candidates, keys = range(n), list(pseudonym_keys(pseudonyms))
        first_seen = dict(zip(keys, candidates, strict=True))
        repeated = len(first_seen) < n
    else:
        candidates = [i for i, pseudonym in enumerate(pseudonyms)
                      if reasons[i] is None and pseudonym]
        keys = [None] * n
        for i, key in zip(candidates, pseudonym_keys([pseudonyms[i] for i in candidates]),
                          strict=True):
            keys[i] = key
        repeated = True
    if repeated:  # the rows after a key's first are bad
        first_seen = {}
        for i in candidates:
            if first_seen.setdefault(keys[i], i) != i:  # type: ignore[arg-type]
                reasons[i] = f"pseudonym repeats {records.where[first_seen[keys[i]]]}"  # type: ignore[index]
                keys[i] = None
    taken = _taken_pseudonyms(session, list(first_seen))
    for key in taken:
        reasons[first_seen[key]] = TAKEN

    if reasons.count(None) == n:  # the usual case: the columns as they are
        batch = MemberBatch(
            pseudonyms=pseudonyms, roles=roles, visibilities=visibilities,
            contactable=contactable, joined_at=joined.astype("datetime64[us]"),
            lats=lats, lngs=lngs, conditions=conditions, pseudonym_keys=keys,
        )
        return Validated(batch=batch, errors=[], rows=n, symptoms=symptom_sets)
    good = _unreasoned(reasons)
    keep = np.flatnonzero(good).tolist()
    batch = MemberBatch(
        pseudonyms=[pseudonyms[i] for i in keep],
        roles=[roles[i] for i in keep],
        visibilities=[visibilities[i] for i in keep],
        contactable=[contactable[i] for i in keep],
        joined_at=joined[good].astype("datetime64[us]"),
        lats=lats[good],
        lngs=lngs[good],
        conditions=[conditions[i] for i in keep],
        pseudonym_keys=[keys[i] for i in keep],
    )
    errors = [
        RowError(records.where[i], reason)
        for i, reason in enumerate(reasons) if reason is not None
    ]
    return Validated(batch=batch, errors=errors, rows=n,
                     symptoms=[symptom_sets[i] for i in keep] if symptom_sets else [])


def _unreasoned(reasons: list[str | None]) -> np.ndarray:
    """Return a bool array: True where a row has no reason (yet)."""
    if reasons.count(None) == len(reasons):
        return np.ones(len(reasons), dtype=bool)
    return np.fromiter((reason is None for reason in reasons), dtype=bool, count=len(reasons))


def _give_reasons(values: list[str], reason_of: dict[str, str | None],
                  reasons: list[str | None]) -> None:
    """Give each row whose value has a reason in ``reason_of`` that reason, unless it has one."""
    bad = {value for value, reason in reason_of.items() if reason is not None}
    if not bad:
        return  # the usual case: no row to look at
    for i, value in enumerate(values):
        if value in bad and reasons[i] is None:
            reasons[i] = reason_of[value]


def _mapped(values: list[str], convert: Callable[[str], object], allowed: Sequence[object],
            reason: str, reasons: list[str | None]) -> list:
    """Return ``convert`` of each value, converting each distinct value once.

    Rows whose converted value is not in ``allowed`` get ``reason`` (unless they have one).
    """
    converted = {value: convert(value) for value in set(values)}
    _give_reasons(values, {value: None if result in allowed else reason
                           for value, result in converted.items()}, reasons)
    return list(map(converted.__getitem__, values))


def _contactable_flag(raw: str) -> bool | None:
    """Return a ``contactable`` cell as True/False (empty: True), None if it is neither."""
    value = raw.lower()
    if value in _TRUE or value == "":
        return True
    return False if value in _FALSE else None


def _parse_conditions(raw: str, slugs_to_id: dict[str, int]) -> tuple[list[int], str | None]:
    """Return the condition ids of a ``conditions`` cell and why it is bad (or None)."""
    slugs = [s.strip().lower() for s in raw.split(";") if s.strip()]
    unknown = [s for s in slugs if s not in slugs_to_id]
    reason = None
    if not slugs:
        reason = "conditions is missing (slugs separated by ';')"
    elif unknown:
        # A value is echoed only when it cannot be a coordinate (slug syntax, no digit).
        reason = (f"unknown condition {unknown[0]!r}" if validators.echoable(unknown[0])
                  else "unknown condition (not a known slug)")
    return sorted({slugs_to_id[s] for s in slugs if s in slugs_to_id}), reason


_ISO_SECONDS_Z = 20  # len("2025-05-07T02:49:10Z")


def _joined_micros(raw: list[str], now: datetime, reasons: list[str | None]) -> np.ndarray:
    """Return ``joined_at`` cells as UTC µs since 1970 (empty: ``now``); record bad ones.

    Cells in the canonical ``YYYY-MM-DDTHH:MM:SSZ`` form that name a real time are
    parsed together (:func:`_canonical_seconds`); every other cell, and a canonical one
    in the future, by :func:`validators.joined_at`, which gives the reason.
    """
    n = len(raw)
    now_us = round(now.timestamp() * 1e6)
    micros = np.full(n, now_us, dtype=np.int64)
    if n == 0:
        return micros
    joined = "".join(raw)
    if len(joined) == n * _ISO_SECONDS_Z and joined.isascii():
        # Every cell 20 characters long (what exports write): one buffer, one row each.
        seconds = _canonical_seconds(
            np.frombuffer(joined.encode("ascii"), np.uint8).reshape(n, _ISO_SECONDS_Z))
    else:
        seconds = np.full(n, _NOT_CANONICAL, dtype=np.int64)
        rows = [i for i, cell in enumerate(raw)
                if len(cell) == _ISO_SECONDS_Z and cell.isascii()]
        if rows:
            buffer = "".join([raw[i] for i in rows]).encode("ascii")
            seconds[rows] = _canonical_seconds(
                np.frombuffer(buffer, np.uint8).reshape(len(rows), _ISO_SECONDS_Z))
    good = seconds != _NOT_CANONICAL
    values = np.where(good, seconds, 0) * 1_000_000
    good &= values <= now_us
    micros[good] = values[good]
    _joined_one_by_one(raw, np.flatnonzero(~good).tolist(), now, micros, reasons)
    return micros


_NOT_CANONICAL = -1 << 62  # what _canonical_seconds gives a cell it does not parse
_DIGITS_AT = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_SEPARATORS_AT = np.array([4, 7, 10, 13, 16, 19])
_SEPARATORS = np.frombuffer(b"--T::Z", np.uint8)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _canonical_seconds(cells: np.ndarray) -> np.ndarray:
    """Return seconds since 1970 (UTC) of ``YYYY-MM-DDTHH:MM:SSZ`` cells (else _NOT_CANONICAL).

    ``cells``: (n, 20) ASCII bytes. A cell counts when every digit and separator is in
    place and it names a real time of years 1-9999 (month days, leap years, no leap
    second): what :func:`validators.joined_at` accepts in that form.
    """
    digits = cells[:, _DIGITS_AT].astype(np.int32) - ord("0")  # int32: years, days fit
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month, day, hour, minute, second = (digits[:, i] * 10 + digits[:, i + 1]
                                        for i in range(4, 14, 2))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 0, 12)] + ((month == 2) & leap)
    ok = (((digits >= 0) & (digits <= 9)).all(axis=1)
          & (cells[:, _SEPARATORS_AT] == _SEPARATORS).all(axis=1)
          & (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
          & (hour <= 23) & (minute <= 59) & (second <= 59))
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    year_of_era = y - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = (era * 146097 + day_of_era - 719468).astype(np.int64)
    return np.where(ok, days * 86400 + (hour * 3600 + minute * 60 + second), _NOT_CANONICAL)


def _joined_one_by_one(raw: list[str], rows: list[int], now: datetime, micros: np.ndarray,
                       reasons: list[str | None]) -> None:
    """Parse the ``joined_at`` cells of ``rows`` with :func:`validators.joined_at`."""
    for i in rows:
        if not raw[i]:
            continue
        try:
            micros[i] = round(validators.joined_at(raw[i], now).timestamp() * 1e6)
        except FieldError as exc:
            if reasons[i] is None:
                reasons[i] = str(exc).rstrip(".")


def _taken_pseudonyms(session: Session, keys: Sequence[str]) -> set[str]:
    """Return the pseudonym keys among ``keys`` that members have already."""
    taken: set[str] = set()
    if not session.execute(text("SELECT EXISTS (SELECT 1 FROM members)")).scalar():
        return taken  # a first import: nothing to look up
    for start in range(0, len(keys), 100_000):
        chunk = list(keys[start : start + 100_000])
        taken.update(
            session.execute(
                text("SELECT pseudonym_key FROM members "
                     "WHERE pseudonym_key = ANY(CAST(:names AS text[]))"),
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
    if validated.symptoms:
        store_symptoms(session, ids, validated.symptoms)
    return len(ids)


def taken_hint(validated: Validated) -> str | None:
    """Return a hint when every row was refused as taken already (a file imported twice).

    None otherwise: some rows being taken is the normal overlap of two exports.
    """
    if validated.rows and len(validated.errors) == validated.rows and all(
            error.reason == TAKEN for error in validated.errors):
        return ("Every pseudonym in the file is taken already: was the file imported "
                "before? Importing it again adds nobody and changes nobody.")
    return None


def iter_errors(errors: Sequence[RowError], limit: int | None = None) -> Iterator[str]:
    """Yield printable error lines, then how many more there are past ``limit``."""
    shown = errors if limit is None else errors[:limit]
    for error in shown:
        yield str(error)
    if limit is not None and len(errors) > limit:
        yield f"... and {len(errors) - limit:,} more bad rows"
