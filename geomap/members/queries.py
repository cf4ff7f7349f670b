"""A member's own data: profile, conditions, location, gazetteer search, export, deletion.

Query functions take a session and return plain data. The exact location is read here
only to show it back to its owner (:func:`profile`, :func:`export`); every other use
of a location goes through the floor cell derived when it is written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.geo import places as place_matcher
from geomap.geo.places import PlaceMatch
from geomap.ingest import validators
from geomap.ingest.validators import FieldError
from geomap.members.errors import ImplausiblePointError, MemberInputError, MemberNotFoundError
from geomap.models import AGE_GROUPS, INTRODUCTION_MAX, ROLES, TREATMENT_PHASES, VISIBILITIES
from geomap.publish.nearby_index import sync_member
from geomap.symptoms.queries import export as symptoms_export

PLACE_QUERY_MAX = 100
PLACE_RESULTS = 10


@dataclass(frozen=True)
class ConditionChoice:
    """A condition a member can pick."""

    slug: str
    name: str


@dataclass(frozen=True)
class OwnLocation:
    """A member's own exact location, for their eyes only, with its public keys."""

    lat: float
    lng: float
    country_code: str | None
    region_code: str | None


@dataclass(frozen=True)
class Profile:
    """What a member has chosen: conditions, role, visibility, contact, location."""

    member_id: int
    pseudonym: str
    role: str
    visibility: str
    contactable: bool
    conditions: tuple[str, ...]
    location: OwnLocation | None
    introduction: str = ""
    age_group: str | None = None
    treatment_phase: str | None = None
    suspended: bool = False
    warning: str | None = None


@dataclass(frozen=True)
class PublishTiming:
    """When the map was last published and when changes will show at the latest."""

    last: datetime | None
    interval_seconds: int
    visible_by: datetime | None


def conditions(session: Session) -> list[ConditionChoice]:
    """Return every condition a member may pick, by name."""
    rows = session.execute(text("SELECT slug, name FROM conditions ORDER BY name")).all()
    return [ConditionChoice(*row) for row in rows]


def clean_text(value: str, name: str) -> str:
    """Return ``value``; raise MemberInputError if it holds characters no text may hold."""
    if "\x00" in value:
        raise MemberInputError(_('The %(name)s holds a NUL character.', name=name))
    return value


def condition_id(session: Session, slug: str) -> int:
    """Return the id of condition ``slug``; raise MemberInputError for an unknown one."""
    if len(slug) > 64 or "\x00" in slug:
        raise MemberInputError(_("There is no such condition."))
    found = session.execute(
        text("SELECT id FROM conditions WHERE slug = :slug"), {"slug": slug}
    ).scalar_one_or_none()
    if found is None:
        raise MemberInputError(_('There is no condition %(slug)r.', slug=slug[:64]))
    return int(found)


def profile(session: Session, member_id: int) -> Profile:
    """Return a member's own profile, with their exact location (for them only)."""
    row = session.execute(
        text(
            "SELECT m.pseudonym, m.role, m.visibility, m.contactable, "
            "ST_Y(ml.location::geometry), ST_X(ml.location::geometry), "
            "ml.country_code, ml.region_code, ml.member_id IS NOT NULL, m.introduction, "
            "m.age_group, m.treatment_phase, m.suspended_at IS NOT NULL, m.warning "
            "FROM members m LEFT JOIN member_locations ml ON ml.member_id = m.id "
            "WHERE m.id = :id"
        ),
        {"id": member_id},
    ).one_or_none()
    if row is None:
        raise MemberNotFoundError(_("There is no such member."))
    slugs = session.execute(
        text(
            "SELECT c.slug FROM member_conditions mc JOIN conditions c ON c.id = mc.condition_id "
            "WHERE mc.member_id = :id ORDER BY c.slug"
        ),
        {"id": member_id},
    ).scalars().all()
    location = OwnLocation(row[4], row[5], row[6], row[7]) if row[8] else None
    return Profile(member_id, row[0], row[1], row[2], row[3], tuple(slugs), location,
                   row[9], row[10], row[11], row[12], row[13])


def update_profile(session: Session, member_id: int, *, role: str, visibility: str,
                   contactable: bool, condition_slugs: list[str]) -> None:
    """Store a member's role, visibility, contact choice and conditions."""
    if role not in ROLES:
        raise MemberInputError(_('Role must be one of %(value)s.', value=', '.join(ROLES)))
    if visibility not in VISIBILITIES:
        raise MemberInputError(_('Visibility must be one of %(value)s.',
                                 value=', '.join(VISIBILITIES)))
    ids = sorted({condition_id(session, slug) for slug in condition_slugs})
    session.execute(
        text(
            "UPDATE members SET role = :role, visibility = :visibility, "
            "contactable = :contactable, updated_at = now() WHERE id = :id"
        ),
        {"role": role, "visibility": visibility, "contactable": contactable, "id": member_id},
    )
    session.execute(
        text("DELETE FROM member_conditions WHERE member_id = :id AND NOT "
             "(condition_id = ANY(CAST(:ids AS smallint[])))"),
        {"id": member_id, "ids": ids},
    )
    if ids:
        session.execute(
            text(
                "INSERT INTO member_conditions (condition_id, member_id) "
                "SELECT unnest(CAST(:ids AS smallint[])), :id ON CONFLICT DO NOTHING"
            ),
            {"id": member_id, "ids": ids},
        )
    sync_member(session, member_id)


def update_about(session: Session, member_id: int, *, introduction: str | None,
                 age_group: str | None, treatment_phase: str | None) -> None:
    """Store a member's optional profile; empty values clear a field.

    Raises MemberInputError for an unknown age group or phase or a long introduction.
    """
    intro = clean_text((introduction or "").strip(), "introduction")
    if len(intro) > INTRODUCTION_MAX:
        raise MemberInputError(_('The introduction has at most %(introduction_max)s characters.',
                                 introduction_max=INTRODUCTION_MAX))
    age_group, treatment_phase = age_group or None, treatment_phase or None
    if age_group is not None and age_group not in AGE_GROUPS:
        raise MemberInputError(_('Age group must be one of %(value)s.',
                                 value=', '.join(AGE_GROUPS)))
    if treatment_phase is not None and treatment_phase not in TREATMENT_PHASES:
        raise MemberInputError(_('Treatment phase must be one of %(value)s.',
                                 value=', '.join(TREATMENT_PHASES)))
    session.execute(
        text("UPDATE members SET introduction = :intro, age_group = :age, "
             "treatment_phase = :phase, updated_at = now() WHERE id = :id"),
        {"intro": intro, "age": age_group, "phase": treatment_phase, "id": member_id},
    )


def acknowledge_warning(session: Session, member_id: int) -> None:
    """Clear a moderator's warning once the member has read it."""
    session.execute(text("UPDATE members SET warning = NULL WHERE id = :id"), {"id": member_id})


def parse_point(lat: Any, lng: Any) -> tuple[float, float]:
    """Return (lat, lng) as floats; raise MemberInputError for non-numbers or out of range."""
    try:
        return validators.coordinates(lat, lng)
    except FieldError as exc:
        raise MemberInputError(str(exc)) from None


def set_location(session: Session, member_id: int, lat: float, lng: float, *,
                 floor: int, allow_sea: bool = False) -> None:
    """Write a member's exact location and the public keys derived from it (one deriver).

    A point at (0, 0), far at sea or that looks swapped is refused unless ``allow_sea``
    (ImplausiblePointError, a MemberInputError).
    """
    # The deriver's polygons, Shapely and numpy load where a location is written, not
    # in every web worker that never writes one.
    import numpy as np

    from geomap.geo.derive import deriver_for

    lat, lng = parse_point(lat, lng)
    deriver = deriver_for(session, floor)
    if not allow_sea:
        reason = validators.implausible_point(deriver, lat, lng)
        if reason is not None:
            raise ImplausiblePointError(reason)
    keys = deriver.derive(np.array([lat]), np.array([lng]))
    session.execute(
        text(
            "INSERT INTO member_locations "
            "(member_id, location, floor_cell, country_code, region_code, updated_at) "
            "VALUES (:id, ST_SetSRID(ST_MakePoint(:lng, :lat), 4326)::geography, :cell, "
            ":country, :region, now()) "
            "ON CONFLICT (member_id) DO UPDATE SET location = excluded.location, "
            "floor_cell = excluded.floor_cell, country_code = excluded.country_code, "
            "region_code = excluded.region_code, updated_at = now()"
        ),
        {
            "id": member_id, "lat": lat, "lng": lng, "cell": int(keys.floor_cells[0]),
            "country": keys.country_codes[0], "region": keys.region_codes[0],
        },
    )
    session.execute(text("UPDATE members SET updated_at = now() WHERE id = :id"),
                    {"id": member_id})
    sync_member(session, member_id)


def set_location_to_place(session: Session, member_id: int, place_id: Any, *,
                          floor: int) -> PlaceMatch:
    """Put a member at a gazetteer place's centre; raise MemberInputError for an unknown one."""
    place = place_by_id(session, place_id)
    row = session.execute(
        text("SELECT ST_Y(point), ST_X(point) FROM places WHERE id = :id"), {"id": place.id}
    ).one()
    set_location(session, member_id, row[0], row[1], floor=floor, allow_sea=True)
    return place


def search_places(session: Session, query: str, limit: int = PLACE_RESULTS) -> list[PlaceMatch]:
    """Return gazetteer places one of whose names starts with ``query``, most populous first.

    The shared matcher (:mod:`geomap.geo.places`): alternate names, folding, Saint/St.
    """
    if not isinstance(query, str) or len(query) > PLACE_QUERY_MAX:
        raise MemberInputError(_('A place name has at most %(place_query_max)s characters.',
                                 place_query_max=PLACE_QUERY_MAX))
    folded = place_matcher.fold(clean_text(query, "place name"))
    if len(folded) < 2:
        raise MemberInputError(_("Type at least two letters of a place name."))
    return place_matcher.search(session, query, limit=limit)


def place_named(session: Session, name: str) -> PlaceMatch:
    """Return the one place called ``name``; MemberInputError if none or several are.

    For a city typed but not picked from the list: only a place's own name counts, not
    one of its alternate names. "Lyo", typed and sent with Enter, was the alternate
    name of Lyons, Kansas alone, and was saved while the list offered Lyon first.
    """
    try:
        name = validators.place_name(name)
    except FieldError as exc:
        raise MemberInputError(str(exc)) from None
    folded = place_matcher.fold(name)
    found = [place for place in place_matcher.exact(session, [name]).get(folded, [])
             if place_matcher.fold(place.name) == folded]
    if not found:
        raise MemberInputError(_("Unknown city: pick one from the list."))
    if len(found) > 1:
        raise MemberInputError(
            _("%(count)s places have that name: pick yours from the list (it shows the "
              "region and country of each).", count=len(found))
        )
    return found[0]


def place_by_id(session: Session, place_id: Any) -> PlaceMatch:
    """Return the gazetteer place ``place_id``; raise MemberInputError for an unknown one."""
    try:
        wanted = int(place_id)
    except (TypeError, ValueError, OverflowError):
        raise MemberInputError(_("Unknown city: pick one from the list.")) from None
    if isinstance(place_id, bool | float) or not 0 < wanted < 2**31:
        raise MemberInputError(_("Unknown city: pick one from the list."))
    place = place_matcher.by_id(session, wanted)
    if place is None:
        raise MemberInputError(_("Unknown city: pick one from the list."))
    return place


def utc_now() -> datetime:
    """Return the current time in UTC (one place to read the clock)."""
    return datetime.now(UTC)


def publish_timing(session: Session, interval_seconds: int,
                   now: datetime | None = None) -> PublishTiming:
    """Return when the map was last published and when a change now shows at the latest."""
    last = session.execute(text("SELECT max(published_at) FROM publish_runs")).scalar_one()
    now = now or utc_now()
    visible_by = now + timedelta(seconds=interval_seconds) if interval_seconds > 0 else None
    return PublishTiming(last, interval_seconds, visible_by)


def export(session: Session, member_id: int) -> dict[str, Any]:
    """Return everything geomap holds about a member, ready for JSON."""
    own = profile(session, member_id)
    account = session.execute(
        text("SELECT email, created_at, is_admin, email_verified_at, health_data_consent_at, "
             "terms_accepted_at, notify_by_email FROM accounts WHERE member_id = :id"),
        {"id": member_id},
    ).mappings().one_or_none()
    member = session.execute(
        text("SELECT joined_at, updated_at FROM members WHERE id = :id"), {"id": member_id}
    ).mappings().one()
    location = None
    if own.location is not None:
        keys = session.execute(
            text("SELECT floor_cell, updated_at FROM member_locations WHERE member_id = :id"),
            {"id": member_id},
        ).one()
        location = asdict(own.location) | {"floor_cell": str(keys[0]), "updated_at": keys[1]}
    connections = session.execute(
        text(
            "SELECT c.id, CASE WHEN c.requester_id = :id THEN 'sent' ELSE 'received' END "
            "AS direction, o.pseudonym AS other_member, c.status, c.message, c.created_at, "
            "c.responded_at FROM connections c JOIN members o ON o.id = "
            "CASE WHEN c.requester_id = :id THEN c.recipient_id ELSE c.requester_id END "
            "WHERE :id IN (c.requester_id, c.recipient_id) ORDER BY c.id"
        ),
        {"id": member_id},
    ).mappings().all()
    messages = session.execute(
        text(
            "SELECT m.id, m.connection_id, s.pseudonym AS sender, r.pseudonym AS recipient, "
            "m.body, m.created_at, m.read_at FROM messages m "
            "JOIN members s ON s.id = m.sender_id JOIN members r ON r.id = m.recipient_id "
            "WHERE :id IN (m.sender_id, m.recipient_id) ORDER BY m.id"
        ),
        {"id": member_id},
    ).mappings().all()
    blocks = session.execute(
        text(
            "SELECT o.pseudonym AS blocked_member, b.created_at FROM member_blocks b "
            "JOIN members o ON o.id = b.blocked_id WHERE b.blocker_id = :id ORDER BY 1"
        ),
        {"id": member_id},
    ).mappings().all()
    reports = session.execute(
        text("SELECT message_id, reason, created_at FROM message_reports "
             "WHERE reporter_id = :id ORDER BY id"),
        {"id": member_id},
    ).mappings().all()
    return _jsonable({
        "account": dict(account) if account else None,
        "member": {
            "pseudonym": own.pseudonym, "role": own.role, "visibility": own.visibility,
            "contactable": own.contactable, "conditions": list(own.conditions), **member,
            "introduction": own.introduction, "age_group": own.age_group,
            "treatment_phase": own.treatment_phase, "suspended": own.suspended,
        },
        "location": location,
        "connections": [dict(row) for row in connections],
        "messages": [dict(row) for row in messages],
        "blocks": [dict(row) for row in blocks],
        "reports": [dict(row) for row in reports],
        **symptoms_export(session, member_id),
    })


def _jsonable(value: Any) -> Any:
    """Return ``value`` with datetimes as ISO strings, recursively."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def delete_member(session: Session, member_id: int) -> None:
    """Delete a member: account, location, conditions, connections and messages go too."""
    session.execute(text("DELETE FROM accounts WHERE member_id = :id"), {"id": member_id})
    session.execute(text("DELETE FROM members WHERE id = :id"), {"id": member_id})
