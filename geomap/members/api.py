"""The members JSON API: gazetteer type-ahead, nearby, my location, connections, messages.

Anonymous callers get 401, bad input 400, missing CSRF token 400 (header
``X-CSRFToken`` on writes), a state that does not allow the request 409, too many
requests 429 — always as JSON. No response carries an email or another member's point.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask_babel import gettext as _

from geomap.auth import member_required
from geomap.database import db
from geomap.members import nearby as nearby_queries
from geomap.members import queries, social
from geomap.members.errors import MemberInputError, json_object
from geomap.web.openapi import (
    MEMBER,
    ConnectBody,
    ConnectionList,
    Created,
    LocationState,
    MessageBody,
    MyData,
    NearbyPage,
    NearbyQuery,
    PlaceList,
    PlacesQuery,
    PointBody,
    ThreadBody,
    UnreadCounts,
    answers,
    contract,
)

ID = "int(max=9223372036854775807)"  # a bigint: larger ids are a 404, not a 500
bp = Blueprint("members_api", __name__, url_prefix="/api/v1")


def _me() -> int:
    """Return the signed-in member's id."""
    from flask_login import current_user

    return int(current_user.member_id)


@bp.get("/places")
@member_required
@contract.validate(query=PlacesQuery, resp=answers(PlaceList, *MEMBER), tags=["members"])
def places() -> Response:
    """Return gazetteer places whose name starts with ``q`` (names, country, region).

    Each comes with its centre (GeoNames, public; degrees to 0.01), so that the pin map
    can show the place chosen from the list before it is saved.
    """
    matches = queries.search_places(db.session, request.args.get("q", ""))
    return jsonify(places=[asdict(match) for match in matches])


@bp.get("/nearby")
@member_required
@contract.validate(query=NearbyQuery, resp=answers(NearbyPage, *MEMBER, 409), tags=["members"])
def nearby() -> Response:
    """Return a page of members with a condition near me, by distance band.

    Optional filters: ``role`` (one of the member roles) and ``band`` (an index of the
    distance bands, 0 for "<25 km"). 409 for members who cannot be found themselves.
    """
    slug = request.args.get("condition")
    if not slug:
        raise MemberInputError(_("Say which condition: ?condition=<slug>."))
    page = nearby_queries.parse_page(request.args.get("page"))
    role, band = nearby_queries.parse_filters(request.args.get("role"),
                                              request.args.get("band"))
    result = nearby_queries.nearby(
        db.session, member_id=_me(), condition_slug=slug, page=page,
        secret=current_app.config["SECRET_KEY"],
        max_km=current_app.config["GEOMAP_NEARBY_MAX_KM"], role=role, band=band,
    )
    db.session.commit()
    return jsonify(
        condition=result.condition,
        page=result.page,
        page_size=result.page_size,
        has_next=result.has_next,
        members=[asdict(member) for member in result.members],
    )


@bp.get("/me/location")
@member_required
@contract.validate(resp=answers(LocationState, *MEMBER), tags=["members"])
def location_state() -> Response:
    """Say whether my location is set (never the exact point: see my settings page)."""
    return _location_answer()


@bp.put("/me/location")
@member_required
@contract.validate(json=PointBody, resp=answers(LocationState, *MEMBER, 409),
                   tags=["members"])
def location() -> Response:
    """Set my location (``{"lat", "lng"}`` or ``{"place_id"}``).

    The answer never holds the exact point: members see it on their settings page only.
    """
    body = json_object()
    floor = current_app.config["GEOMAP_FLOOR_RESOLUTION"]
    if "place_id" in body:
        queries.set_location_to_place(db.session, _me(), body["place_id"], floor=floor)
    elif "lat" in body or "lng" in body:
        queries.set_location(db.session, _me(), body.get("lat"), body.get("lng"), floor=floor,
                             allow_sea=body.get("allow_sea") is True)
    else:
        raise MemberInputError(_("Send lat and lng, or a place_id."))
    db.session.commit()
    return _location_answer()


def _location_answer() -> Response:
    """Return whether my location is set, its country, and when the map shows it."""
    own = queries.profile(db.session, _me())
    timing = queries.publish_timing(db.session, current_app.config["GEOMAP_PUBLISH_INTERVAL"])
    return jsonify(
        location_set=own.location is not None,
        country_code=own.location.country_code if own.location else None,
        visible_on_map_by=timing.visible_by.isoformat() if timing.visible_by else None,
    )


@bp.post("/connections")
@member_required
@contract.validate(json=ConnectBody, resp=answers(Created, *MEMBER, 404, 409, ok_status=201),
                   tags=["members"])
def connect() -> tuple[Response, int]:
    """Send a connection request: ``{"to": pseudonym, "message": text}``."""
    body = json_object()
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise MemberInputError(_("Say whom to connect with: \"to\": pseudonym."))
    message = body.get("message", "")
    if not isinstance(message, str):
        raise MemberInputError(_("The message must be text."))
    connection_id = social.request_connection(db.session, _me(), to, message)
    db.session.commit()
    return jsonify(id=connection_id, status="pending"), 201


@bp.get("/connections")
@member_required
@contract.validate(resp=answers(ConnectionList, *MEMBER), tags=["members"])
def connections() -> Response:
    """Return my connections and requests."""
    return jsonify(connections=[_summary(c) for c in social.connections(db.session, _me())])


def _summary(summary: social.ConnectionSummary) -> dict[str, Any]:
    """Return a connection summary ready for JSON."""
    data = asdict(summary)
    data["created_at"] = summary.created_at.isoformat()
    return data


@bp.post(f"/connections/<{ID}:connection_id>/messages")
@member_required
@contract.validate(json=MessageBody,
                   resp=answers(Created, *MEMBER, 404, 405, 409, ok_status=201),
                   tags=["members"])
def messages(connection_id: int) -> tuple[Response, int]:
    """Add a message (``{"body": text}``) to one of my connections."""
    body = json_object().get("body")
    if not isinstance(body, str):
        raise MemberInputError(_("Send the message as \"body\": text."))
    message_id = social.send_message(db.session, _me(), connection_id, body)
    db.session.commit()
    return jsonify(id=message_id), 201


@bp.get(f"/connections/<{ID}:connection_id>/messages")
@member_required
# An id past the bigint range matches no rule of this path: werkzeug answers 405.
@contract.validate(resp=answers(ThreadBody, *MEMBER, 404, 405), tags=["members"])
def thread(connection_id: int) -> Response:
    """Read (and mark read) the messages of one of my connections."""
    conversation = social.thread(db.session, _me(), connection_id)
    db.session.commit()
    return jsonify(
        connection=_summary(conversation.connection),
        messages=[
            {"id": m.id, "sender": m.sender, "mine": m.mine, "body": m.body,
             "created_at": m.created_at.isoformat()}
            for m in conversation.messages
        ],
    )


@bp.get("/me/export")
@member_required
@contract.validate(resp=answers(MyData, *MEMBER), tags=["members"])
def export() -> Response:
    """Return everything geomap holds about me."""
    return jsonify(queries.export(db.session, _me()))


@bp.get("/me/unread")
@member_required
@contract.validate(resp=answers(UnreadCounts, *MEMBER), tags=["members"])
def unread() -> Response:
    """Return my waiting requests and unread messages."""
    counts = social.unread_counts(db.session, _me())
    return jsonify(requests=counts.requests, messages=counts.messages)


