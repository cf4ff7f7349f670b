"""Field validators shared by every way in: importer, location API, settings and sign-up.

Each validator takes what was typed or read, returns the clean value, and raises
:class:`FieldError` with a message that names the field and the rule, never the value
(a value in a wrong field may be an exact coordinate: it must not reach a log, a
report or a response). Plausibility of points (:func:`implausible_point`) needs the
land data and so takes a :class:`~geomap.geo.derive.KeyDeriver`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

if TYPE_CHECKING:
    from geomap.geo.derive import KeyDeriver

PSEUDONYM_MIN = 3
PSEUDONYM_MAX = 40
PSEUDONYM_RULE = _l("Use 3 to 40 letters, digits, spaces, dots and dashes.")
PLACE_NAME_MAX = 100
FIELD_MAX = 131_072
"""No text field is longer (the CSV module's own limit)."""
SEA_LIMIT_KM = 25.0
"""A point farther than this from any land (outline or gazetteer place) is at sea."""
NULL_ISLAND_KM = 1.0
"""A point this close to (0, 0) is a default value, not a place."""
_PSEUDONYM = re.compile(r"^[\w.\- ]+$")
_SLUG = re.compile(r"^[a-z][a-z-]*$")


class FieldError(ValueError):
    """A field's value breaks a rule; the message is safe to show and to log."""


def text_field(value: Any, name: str, max_length: int = FIELD_MAX) -> str:
    """Return ``value`` as text; refuse NUL and other control characters and overlong text."""
    if not isinstance(value, str):
        raise FieldError(_('%(name)s must be text.', name=name))
    if len(value) > max_length:
        raise FieldError(_('%(name)s is longer than %(max_length)s characters.',
                           name=name, max_length=format(max_length, ',')))
    if value.isprintable():  # no control (Cc) or surrogate (Cs) character: the usual case
        return value
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t" for ch in value):
        raise FieldError(_('%(name)s holds a control character.', name=name))
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise FieldError(_('%(name)s is not valid text.', name=name))
    return value


def pseudonym(value: Any) -> str:
    """Return a valid pseudonym (stripped); the same rule for sign-up and import."""
    value = unicodedata.normalize("NFC", text_field(value, "pseudonym", 1000).strip())
    if not PSEUDONYM_MIN <= len(value) <= PSEUDONYM_MAX or not _PSEUDONYM.match(value):
        raise FieldError(_('pseudonym: %(pseudonym_rule)s', pseudonym_rule=PSEUDONYM_RULE))
    return value


def place_name(value: Any, name: str = "city") -> str:
    """Return a place name as typed (stripped), at most PLACE_NAME_MAX characters."""
    value = text_field(value, name, 1000).strip()
    if not value:
        raise FieldError(_('%(name)s is empty.', name=name))
    if len(value) > PLACE_NAME_MAX:
        raise FieldError(_('%(name)s is longer than %(place_name_max)s characters.',
                           name=name, place_name_max=PLACE_NAME_MAX))
    return value


def coordinate(value: Any, name: str, limit: float) -> float:
    """Return a latitude (limit 90) or longitude (limit 180) in degrees."""
    if isinstance(value, bool) or value is None:
        raise FieldError(_('%(name)s must be a number.', name=name))
    if isinstance(value, str):
        if len(value) > 64:
            raise FieldError(_('%(name)s must be a number.', name=name))
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise FieldError(_('%(name)s must be a number.', name=name)) from None
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise FieldError(_('%(name)s must be between %(value)s and %(limit)s.',
                           name=name, value=format(-limit, 'g'), limit=format(limit, 'g')))
    return number


def coordinates(lat: Any, lng: Any) -> tuple[float, float]:
    """Return (lat, lng) in degrees (WGS 84); FieldError if not numbers or out of range."""
    return coordinate(lat, "lat", 90.0), coordinate(lng, "lng", 180.0)


def implausible_points(deriver: KeyDeriver, lats: Any, lngs: Any) -> list[str | None]:
    """Return, per point, why it is implausible for a member's home, or None.

    (0, 0) and its surroundings are a default value, not a place; a point more than
    :data:`SEA_LIMIT_KM` from any land is at sea, and if the swapped point would be on
    land the columns were swapped. Callers let people override this for the rare real
    case (``--allow-sea``, an ``allow_sea`` column, ``allow_sea`` in the location API).
    """
    import numpy as np

    from geomap.geo.derive import haversine_km

    lats = np.asarray(lats, dtype=np.float64)
    lngs = np.asarray(lngs, dtype=np.float64)
    reasons: list[str | None] = [None] * len(lats)
    if len(lats) == 0:
        return reasons
    null_island = haversine_km(lats, lngs, np.zeros_like(lats), np.zeros_like(lngs)) \
        <= NULL_ISLAND_KM
    at_sea = ~deriver.near_land(lats, lngs, SEA_LIMIT_KM)
    swappable = at_sea & (np.abs(lngs) <= 90)
    swapped_land = np.zeros(len(lats), dtype=bool)
    if swappable.any():
        rows = np.flatnonzero(swappable)
        swapped_land[rows] = np.isfinite(deriver.km_to_land(lngs[rows], lats[rows],
                                                            SEA_LIMIT_KM))
    for i in np.flatnonzero(null_island | at_sea).tolist():
        if null_island[i]:
            reasons[i] = _("the point is (0, 0), a default value rather than a place")
        elif swapped_land[i]:
            reasons[i] = _(
                "the point is at sea, and on land with lat and lng swapped: swapped?")
        else:
            reasons[i] = _("the point is more than %(km)s km from land",
                           km=format(SEA_LIMIT_KM, "g"))
    return reasons


def implausible_point(deriver: KeyDeriver, lat: float, lng: float) -> str | None:
    """Return why one point is implausible (see :func:`implausible_points`), or None."""
    return implausible_points(deriver, [lat], [lng])[0]


def joined_at(value: Any, now: datetime) -> datetime:
    """Return an ISO 8601 date or date-time as an aware datetime (naive: UTC), not future."""
    raw = text_field(value, "joined_at", 64).strip()
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(raw), datetime.min.time())
        except ValueError:
            raise FieldError(_("joined_at must be an ISO 8601 date or date-time.")) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if parsed > now:
        raise FieldError(_("joined_at is in the future."))
    return parsed


def echoable(value: str) -> bool:
    """Return whether a value may appear in a message: slug syntax with no digit."""
    return len(value) <= 64 and bool(_SLUG.match(value))


ACCEPTED_CRS = frozenset({
    "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:EPSG:6.6:4326", "EPSG:4326",
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4326",
})
CRS_RULE = ("the file declares a coordinate reference system other than WGS 84 "
            "(CRS84 / EPSG:4326); reproject it to longitude/latitude degrees first")


def geojson_crs_ok(document: dict) -> bool:
    """Return whether a GeoJSON document has no ``crs`` member or a WGS 84 one.

    RFC 7946 GeoJSON is always WGS 84 longitude/latitude; older files may declare
    another system (often EPSG:3857 metres), which must not be read as degrees.
    """
    crs = document.get("crs")
    if crs is None:
        return True
    name = None
    if isinstance(crs, dict) and isinstance(crs.get("properties"), dict):
        name = crs["properties"].get("name")
    return isinstance(name, str) and name.strip() in ACCEPTED_CRS
