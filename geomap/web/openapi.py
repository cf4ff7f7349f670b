"""The JSON API's contract: an OpenAPI 3.1 document generated from the routes themselves.

Each API route declares its query and body models (pydantic) and its answers with
``@contract.validate(...)`` (spectree); the same declaration validates the request
before the view runs (a 400 in geomap's error shape otherwise) and writes the
document served at ``/api/v1/openapi.json``, so the two cannot drift. The reference
page ``/api/v1/docs`` is Swagger UI from npm, served from our own ``static/vendor``.
Responses are checked against the document by the schemathesis test
(tests/test_openapi.py), not on every request.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from spectree import Response as Answers
from spectree import SpecTree
from spectree.plugins.flask_plugin import FlaskPlugin
from werkzeug.exceptions import BadRequest

from geomap.privacy import MAX_ZOOM

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
HPO_PATTERN = r"^HP:[0-9]{7}$"
# Path parameters checked at the edge (and documented) by name: pattern of each.
PATH_PATTERNS = {"hpo_id": HPO_PATTERN}


class ErrorDetail(BaseModel):
    """What went wrong: a code for programs, a sentence for people."""

    code: str = Field(description="The HTTP reason in snake case, e.g. bad_request.")
    message: str = Field(description="What to change, as a sentence.")
    status: int = Field(ge=400, le=599)
    title: str


class ErrorBody(BaseModel):
    """Every API error: ``{"error": {"code", "message", "status", "title"}}``."""

    error: ErrorDetail


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=2000)


class CellsQuery(_Strict):
    """A map viewport: zoom level and an optional box ``west,south,east,north``."""

    zoom: int = Field(ge=0, le=MAX_ZOOM, description="Map zoom level.")
    bbox: str | None = Field(
        default=None, max_length=200,
        pattern=r"^-?[0-9.]+(e-?[0-9]+)?(,-?[0-9.]+(e-?[0-9]+)?){3}$",
        description="west,south,east,north in degrees (west > east crosses the antimeridian).")


class PlaceLabelsQuery(_Strict):
    """A map viewport whose place labels are wanted: zoom level and a box."""

    zoom: int = Field(ge=0, le=MAX_ZOOM, description="Map zoom level.")
    bbox: str = Field(
        max_length=200, pattern=r"^-?[0-9.]+(e-?[0-9]+)?(,-?[0-9.]+(e-?[0-9]+)?){3}$",
        description="west,south,east,north in degrees (west > east crosses the antimeridian).")


class RegionsQuery(_Strict):
    """Which level of regions to count."""

    level: Literal["country", "admin1"] = "country"


class PlacesQuery(_Strict):
    """The start of a place name (gazetteer type-ahead)."""

    q: str = Field(min_length=1, max_length=100,
                   description="At least two letters once spaces are trimmed.")


class NearbyQuery(_Strict):
    """A condition and a page of nearby members."""

    condition: str = Field(pattern=SLUG_PATTERN, max_length=64)
    page: int = Field(default=1, ge=1, le=500)


class PointBody(_Strict):
    """A location: an exact point or a gazetteer place (exactly one of the two)."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    place_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class ConnectBody(_Strict):
    """A connection request to a member, with an optional first message."""

    to: str = Field(min_length=1, max_length=64)
    message: str = Field(default="", max_length=2000)


class MessageBody(_Strict):
    """A message in a connection's thread."""

    body: str = Field(min_length=1, max_length=2000)


class OEmbedQuery(_Strict):
    """oEmbed 1.0 consumer parameters."""

    url: str = Field(min_length=1, max_length=2000)
    # Any size is accepted and clamped to what the embed supports (as WordPress does).
    maxwidth: int | None = Field(default=None, ge=1, le=2**31 - 1)
    maxheight: int | None = Field(default=None, ge=1, le=2**31 - 1)
    format: str = Field(default="json", max_length=20,
                        description="Only json is supported; any other format gets a 501.")


class ConditionItem(BaseModel):
    """A condition and how many members its map shows."""

    slug: str
    name: str
    icd10: str | None
    published_members: int = Field(ge=0)
    map_url: str
    cells_url: str


class ConditionList(BaseModel):
    """All conditions."""

    conditions: list[ConditionItem]


class CellProperties(BaseModel):
    """A published cell's count (at least k), H3 resolution and area label.

    ``label`` is English ("Milan area, Italy"); ``place`` (GeoNames name) and
    ``country_code`` (ISO 3166-1 alpha-2) are its parts, for writing it in another
    language. All three come from the published centre, never from a member.
    """

    count: int = Field(ge=1)
    cell_resolution: int = Field(ge=0, le=15)
    label: str | None = None
    place: str | None = None
    country_code: str | None = None


class CellPoint(BaseModel):
    """The centre of a published cell: ``[lng, lat]``."""

    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=2)


class CellFeature(BaseModel):
    """One published cell."""

    type: Literal["Feature"]
    id: str
    geometry: CellPoint
    properties: CellProperties


class CellsProperties(BaseModel):
    """What the collection is: condition, zoom, resolution, publish version, total."""

    condition: str
    zoom: int
    resolution: int
    publish_version: int
    total: int
    bbox: list[list[float]] | None = Field(
        description="The boxes served (west, south, east, north): the one asked for, "
                    "split at the antimeridian and shrunk to what a viewport can show "
                    "at this zoom.")


class CellCollection(BaseModel):
    """The published cells of a viewport (GeoJSON FeatureCollection)."""

    type: Literal["FeatureCollection"]
    properties: CellsProperties
    features: list[CellFeature]


class TileProperties(CellsProperties):
    """A tile's collection: as a viewport's, with the tile (zoom, x, y) it is."""

    tile: list[int] = Field(min_length=3, max_length=3,
                            description="zoom, x, y of the XYZ (Web Mercator) tile.")


class TileCollection(BaseModel):
    """The published cells of one tile at one publish version (GeoJSON FeatureCollection).

    Each marker lies in exactly one tile of a zoom; ``total`` is the stored total of
    the zoom's markers, the same in every tile.
    """

    type: Literal["FeatureCollection"]
    properties: TileProperties
    features: list[CellFeature]


class TilesVersion(BaseModel):
    """The current publish version of a condition's tiles (cache it ``max_age`` seconds)."""

    condition: str
    publish_version: int
    tiles: str = Field(description="URL template of the tiles: {z}/{x}/{y}.json.")
    max_age: int = Field(description="Seconds this answer may be kept.")


class RegionCount(BaseModel):
    """A region's published count; null and suppressed when below k."""

    code: str
    name: str | None
    country_code: str | None
    count: int | None
    suppressed: bool


class RegionCounts(BaseModel):
    """Published counts per country or first-level region."""

    condition: str
    level: Literal["country", "admin1"]
    k: int
    publish_version: int
    note: str
    regions: list[RegionCount]


class Place(BaseModel):
    """A gazetteer place, with its centre (GeoNames; degrees, to 0.01)."""

    id: int
    name: str
    country_code: str
    country: str
    region_code: str
    label: str
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class PlaceList(BaseModel):
    """Places whose name starts with the query, most populous first."""

    places: list[Place]


class PlaceLabel(BaseModel):
    """A gazetteer place to write on the map (public GeoNames data)."""

    name: str
    country_code: str
    lat: float
    lng: float
    population: int


class PlaceLabels(BaseModel):
    """The most populous gazetteer places in a box (none below the labels' zoom)."""

    zoom: int
    min_zoom: int
    limit: int
    bbox: list[list[float]]
    labels: list[PlaceLabel]


class NearbyItem(BaseModel):
    """A member nearby: pseudonym, role, a place no finer than their cell, a band."""

    pseudonym: str
    role: str
    place: str
    distance_band: str


class NearbyPage(BaseModel):
    """A page of members nearby."""

    condition: str
    page: int
    page_size: int
    has_next: bool
    members: list[NearbyItem]


class LocationState(BaseModel):
    """Whether my location is set (never the point itself)."""

    location_set: bool
    country_code: str | None
    visible_on_map_by: str | None


class Created(BaseModel):
    """The id of what was created."""

    id: int
    status: str | None = None


class ConnectionItem(BaseModel):
    """One of my connections or requests."""

    id: int
    other: str
    other_role: str
    incoming: bool
    status: str
    message: str
    created_at: str
    unread: int
    blocked: bool


class ConnectionList(BaseModel):
    """My connections and requests."""

    connections: list[ConnectionItem]


class ThreadItem(BaseModel):
    """A message."""

    id: int
    sender: str
    mine: bool
    body: str
    created_at: str


class ThreadBody(BaseModel):
    """A connection and its messages."""

    connection: ConnectionItem
    messages: list[ThreadItem]


class MyData(BaseModel):
    """Everything geomap holds about me."""

    model_config = ConfigDict(extra="allow")


class UnreadCounts(BaseModel):
    """Waiting requests and unread messages."""

    requests: int
    messages: int


class OEmbedAnswer(BaseModel):
    """oEmbed 1.0 rich response."""

    type: Literal["rich"]
    version: Literal["1.0"]
    title: str
    provider_name: str
    provider_url: str
    cache_age: int
    html: str
    width: int
    height: int


class CatalogueQuery(_Strict):
    """The search box's text: a condition's name, synonym or code (ICD-10, ORPHA)."""

    q: str = Field(min_length=2, max_length=100,
                   description="2 to 100 characters once runs of spaces are collapsed.")


class CatalogueItem(BaseModel):
    """A catalogue entry matching the query."""

    slug: str
    name: str
    code: str
    enabled: bool = Field(description="Whether the condition has a map.")
    published: int = Field(ge=0, description="Members on its published map.")
    matched: str | None = Field(description="The synonym or code matched, if not the name.")
    locale: str | None
    url: str


class CatalogueList(BaseModel):
    """The best matches of the query, best first."""

    conditions: list[CatalogueItem]


class SymptomTermsQuery(_Strict):
    """The start of a symptom's name, a synonym, or an HPO id."""

    q: str = Field(min_length=1, max_length=100,
                   description="At least two letters, or an HPO id such as HP:0001250.")


class SymptomBody(_Strict):
    """A symptom to add, as an HPO id."""

    hpo_id: str = Field(pattern=HPO_PATTERN, max_length=10, examples=["HP:0001250"])


class MatchingBody(_Strict):
    """Take part in soulmate matching (true) or withdraw (false)."""

    opted_in: StrictBool


class SoulmatesQuery(_Strict):
    """Which condition to match within (``condition``), or every condition (``every=1``).

    One of the two is required (a 400 otherwise); ``every`` wins when both are given.
    """

    condition: str | None = Field(default=None, pattern=SLUG_PATTERN, max_length=64)
    every: Literal["1"] | None = Field(default=None, description="1: every condition.")


class SymptomTerm(BaseModel):
    """A symptom term offered by the type-ahead."""

    hpo_id: str
    label: str = Field(description="The plain-language label, else the HPO name.")
    name: str = Field(description="The HPO name.")
    matched: str = Field(description="The label the query matched.")


class SymptomTermList(BaseModel):
    """Terms matching the query, best first."""

    terms: list[SymptomTerm]


class SymptomItem(BaseModel):
    """One of my symptoms."""

    hpo_id: str
    label: str
    name: str


class MySymptoms(BaseModel):
    """My symptoms, whether I take part in matching, and how many I may list."""

    symptoms: list[SymptomItem]
    matching: bool
    max_symptoms: int = Field(ge=1)


class SharedSymptom(BaseModel):
    """A symptom both I and a soulmate list."""

    hpo_id: str
    label: str


class SoulmateItem(BaseModel):
    """A soulmate: pseudonym, role, a similarity band, a coarse place, shared symptoms."""

    pseudonym: str
    role: str
    similarity: str
    place: str
    distance_band: str
    shared_symptoms: list[SharedSymptom]


class SoulmateAreaItem(BaseModel):
    """An area of the soulmates map: a floor cell's centre and the soulmates there."""

    cell: str
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    place: str
    count: int = Field(ge=0)
    pseudonyms: list[str]


class SoulmateList(BaseModel):
    """My soulmates for a condition (null: every condition) and their areas."""

    condition: str | None
    members: list[SoulmateItem]
    areas: list[SoulmateAreaItem]


def answers(ok: type[BaseModel] | None, *statuses: int, ok_status: int = 200) -> Answers:
    """Return the documented answers: ``ok`` on success, ErrorBody on each error status."""
    redirects = [f"HTTP_{status}" for status in statuses if 300 <= status < 400]  # no body
    documented: dict[str, Any] = {f"HTTP_{status}": ErrorBody for status in statuses
                                  if not 300 <= status < 400}
    documented[f"HTTP_{ok_status}"] = ok
    documented.setdefault("HTTP_400", ErrorBody)
    documented.setdefault("HTTP_503", ErrorBody)
    return Answers(*redirects, **documented)


MEMBER = (401, 403, 429)


class _RequestsOnly(FlaskPlugin):
    """spectree's Flask plugin validating requests only (responses: see the module doc)."""

    def validate_response(self, resp: Any, resp_model: Any, skip_validation: bool,
                          force_resp_serialize: bool) -> Any:
        """Pass the view's response through unchecked."""
        return super().validate_response(resp, resp_model, True, force_resp_serialize)


_KINDS = {"int": "a whole number", "float": "a number", "string": "text", "bool": "true or false"}


def problem(item: dict[str, Any]) -> str:
    """Return one pydantic validation error as a sentence (never quoting the input)."""
    field = ".".join(str(part) for part in item.get("loc", ())) or "the body"
    kind, ctx = item.get("type", ""), item.get("ctx") or {}
    if kind == "missing":
        return f"{field} is required"
    if kind.endswith(("_parsing", "_type")):
        return f"{field} must be {_KINDS.get(kind.split('_')[0], 'of another type')}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{field} must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{field} must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "string_too_short":
        return f"{field} must have at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"{field} must have at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{field} is not in the expected form"
    if kind == "finite_number":
        return f"{field} must be a finite number"
    return f"{field}: {item.get('msg', 'is not valid')}"


def _refuse_invalid(request: Any, response: Any, error: Any, instance: Any,
                    model_adapter: Any = None) -> None:
    """Turn a request validation error into geomap's 400 (never echoing the input)."""
    if error is None:
        for name, pattern in PATH_PATTERNS.items():
            value = (request.view_args or {}).get(name)
            if value is not None and not re.fullmatch(pattern, str(value)):
                raise BadRequest(_('%(name)s is not in the expected form.', name=name))
        return
    raise BadRequest("; ".join(problem(item) for item in error.errors()[:5]) + ".")


contract = SpecTree(
    "flask",
    backend=_RequestsOnly,
    mode="strict",
    title="geomap API",
    version="1",
    description=(
        "Published aggregates of patient community maps (public) and the members API "
        "(session cookie; writes need the X-CSRFToken header). Errors: "
        '{"error": {"code", "message", "status", "title"}}.'),
    path="_contract",  # spectree skips routes under its own path; it serves none here
    filename="openapi.json",
    page_templates={},
    before=_refuse_invalid,
    validation_error_status=400,
    validation_error_model=ErrorBody,
    annotations=False,
    naming_strategy=lambda model: model.__name__,
)

# Answers that are not application/json, by (path, status).
MEDIA_TYPES = {
    ("/api/v1/conditions/{slug}/cells", "200"): "application/geo+json",
    ("/tiles/{slug}/{version}/{zoom}/{x}/{y}.json", "200"): "application/geo+json",
}

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the API, with path parameters' bounds."""
    spec = copy.deepcopy(contract.spec)
    spec.setdefault("components", {})["securitySchemes"] = {
        "session": {"type": "apiKey", "in": "cookie", "name": "session",
                    "description": "The session cookie of a signed-in member."}}
    for path, path_item in spec.get("paths", {}).items():
        for operation in path_item.values():
            if "members" in operation.get("tags", ()):
                operation["security"] = [{"session": []}]
            for status, answer in operation.get("responses", {}).items():
                media = MEDIA_TYPES.get((path, status))
                if media and "content" in answer:
                    answer["content"] = {media: answer["content"]["application/json"]}
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "path":
                    continue
                if parameter["name"] in ("slug",):
                    parameter["schema"] = {"type": "string", "pattern": SLUG_PATTERN}
                elif parameter["name"] in PATH_PATTERNS:
                    parameter["schema"] = {"type": "string",
                                           "pattern": PATH_PATTERNS[parameter["name"]]}
                elif parameter["schema"].get("type") == "integer":
                    parameter["schema"] = {"type": "integer", "format": "int64",
                                           "minimum": 0, "maximum": 2**63 - 1}
    return spec


@bp.get("/openapi.json", endpoint="document")
def serve_document() -> Response:
    """Serve the OpenAPI document."""
    cache = current_app.extensions.setdefault("geomap.openapi", {})
    if "document" not in cache:
        cache["document"] = document()
    response = jsonify(cache["document"])
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/docs")
def reference_page() -> str:
    """Show the API reference (Swagger UI, served from our own static folder)."""
    return render_template("api_docs.html")


def init_app(app: Flask) -> None:
    """Serve the document and its reference page; bind the contract to ``app``."""
    app.register_blueprint(bp)
    contract.app = app  # spectree's own routes (CDN pages) are not registered
