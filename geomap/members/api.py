"""The members JSON API: gazetteer type-ahead, nearby, my location, connections, messages.

Anonymous callers get 401, bad input 400, missing CSRF token 400 (header
``X-CSRFToken`` on writes), a state that does not allow the request 409, too many
requests 429 — always as JSON. No response carries an email or another member's point.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from geomap.auth import member_required
from geomap.database import db
from geomap.members import nearby as nearby_queries
from geomap.members import queries, social
from geomap.members.errors import MemberInputError

ID = "int(max=9223372036854775807)"  # a bigint: larger ids are a 404, not a 500
bp = Blueprint("members_api", __name__, url_prefix="/api/v1")


def _me() -> int:
    """Return the signed-in member's id."""
    from flask_login import current_user

    return int(current_user.member_id)


def _json_body() -> dict[str, Any]:
    """Return the request's JSON object; raise MemberInputError otherwise."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise MemberInputError("Send a JSON object (Content-Type: application/json).")
    return body


@bp.get("/places")
@member_required
def places() -> Response:
    """Return gazetteer places whose name starts with ``q`` (names, country, region)."""
    matches = queries.search_places(db.session, request.args.get("q", ""))
    return jsonify(places=[asdict(match) for match in matches])


@bp.get("/nearby")
@member_required
def nearby() -> Response:
    """Return a page of members with a condition near me, by distance band."""
    slug = request.args.get("condition")
    if not slug:
        raise MemberInputError("Say which condition: ?condition=<slug>.")
    page = nearby_queries.parse_page(request.args.get("page"))
    result = nearby_queries.nearby(
        db.session, member_id=_me(), condition_slug=slug, page=page,
        secret=current_app.config["SECRET_KEY"],
        max_km=current_app.config["GEOMAP_NEARBY_MAX_KM"],
    )
    db.session.commit()
    return jsonify(
        condition=result.condition,
        page=result.page,
        page_size=result.page_size,
        has_next=result.has_next,
        members=[asdict(member) for member in result.members],
    )


@bp.route("/me/location", methods=["GET", "PUT"])
@member_required
def location() -> Response:
    """Set my location (``{"lat", "lng"}`` or ``{"place_id"}``) or say whether it is set.

    The answer never holds the exact point: members see it on their settings page only.
    """
    if request.method == "PUT":
        body = _json_body()
        floor = current_app.config["GEOMAP_FLOOR_RESOLUTION"]
        if "place_id" in body:
            queries.set_location_to_place(db.session, _me(), body["place_id"], floor=floor)
        elif "lat" in body or "lng" in body:
            queries.set_location(db.session, _me(), body.get("lat"), body.get("lng"),
                                 floor=floor, allow_sea=body.get("allow_sea") is True)
        else:
            raise MemberInputError("Send lat and lng, or a place_id.")
        db.session.commit()
    own = queries.profile(db.session, _me())
    timing = queries.publish_timing(db.session, current_app.config["GEOMAP_PUBLISH_INTERVAL"])
    return jsonify(
        location_set=own.location is not None,
        country_code=own.location.country_code if own.location else None,
        visible_on_map_by=timing.visible_by.isoformat() if timing.visible_by else None,
    )


@bp.post("/connections")
@member_required
def connect() -> tuple[Response, int]:
    """Send a connection request: ``{"to": pseudonym, "message": text}``."""
    body = _json_body()
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise MemberInputError("Say whom to connect with: \"to\": pseudonym.")
    message = body.get("message", "")
    if not isinstance(message, str):
        raise MemberInputError("The message must be text.")
    connection_id = social.request_connection(db.session, _me(), to, message)
    db.session.commit()
    return jsonify(id=connection_id, status="pending"), 201


@bp.get("/connections")
@member_required
def connections() -> Response:
    """Return my connections and requests."""
    return jsonify(connections=[_summary(c) for c in social.connections(db.session, _me())])


def _summary(summary: social.ConnectionSummary) -> dict[str, Any]:
    """Return a connection summary ready for JSON."""
    data = asdict(summary)
    data["created_at"] = summary.created_at.isoformat()
    return data


@bp.route(f"/connections/<{ID}:connection_id>/messages", methods=["GET", "POST"])
@member_required
def messages(connection_id: int) -> Any:
    """Read (and mark read) or add to the messages of one of my connections."""
    if request.method == "POST":
        body = _json_body().get("body")
        if not isinstance(body, str):
            raise MemberInputError("Send the message as \"body\": text.")
        message_id = social.send_message(db.session, _me(), connection_id, body)
        db.session.commit()
        return jsonify(id=message_id), 201
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
def export() -> Response:
    """Return everything geomap holds about me."""
    return jsonify(queries.export(db.session, _me()))


@bp.get("/me/unread")
@member_required
def unread() -> Response:
    """Return my waiting requests and unread messages."""
    counts = social.unread_counts(db.session, _me())
    return jsonify(requests=counts.requests, messages=counts.messages)


