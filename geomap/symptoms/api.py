"""The symptoms JSON API: term type-ahead, my symptoms, the opt-in, my soulmates.

Errors are the members API's JSON errors (400 bad input, 401 anonymous, 409 a state
that does not allow the request, 429 too many requests, 503 the soulmates scorer not
answering just now). Nobody's symptoms are in any answer but their owner's, except
the symptoms a soulmate shares with the caller.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.exceptions import ServiceUnavailable

from geomap.auth import member_required
from geomap.database import db
from geomap.members.errors import MemberInputError, json_object
from geomap.symptoms import queries
from geomap.web.errors import RETRY_AFTER_SECONDS
from geomap.web.openapi import (
    MEMBER,
    MatchingBody,
    MySymptoms,
    SoulmateList,
    SoulmatesQuery,
    SymptomBody,
    SymptomTermList,
    SymptomTermsQuery,
    answers,
    contract,
)

bp = Blueprint("symptoms_api", __name__, url_prefix="/api/v1")


def _me() -> int:
    """Return the signed-in member's id."""
    return int(current_user.member_id)


@bp.get("/symptom-terms")
@member_required
@contract.validate(query=SymptomTermsQuery, resp=answers(SymptomTermList, *MEMBER),
                   tags=["members"])
def terms() -> Response:
    """Return symptom terms matching ``q`` (labels, synonyms or an HPO id)."""
    matches = queries.search_terms(db.session, request.args.get("q", ""))
    return jsonify(terms=[asdict(match) for match in matches])


def _own() -> dict[str, Any]:
    """Return my symptoms and opt-in, ready for JSON."""
    own = queries.my_symptoms(db.session, _me())
    return {
        "symptoms": [asdict(s) for s in own.symptoms],
        "matching": own.opted_in,
        "max_symptoms": queries.MAX_SYMPTOMS,
    }


@bp.get("/me/symptoms")
@member_required
@contract.validate(resp=answers(MySymptoms, *MEMBER), tags=["members"])
def my_symptoms() -> Response:
    """Return my symptoms and whether I take part in matching."""
    return jsonify(_own())


@bp.post("/me/symptoms")
@member_required
@contract.validate(json=SymptomBody, resp=answers(MySymptoms, *MEMBER, 409, ok_status=201),
                   tags=["members"])
def add() -> tuple[Response, int]:
    """Add a symptom: ``{"hpo_id": "HP:0001250"}``."""
    queries.add_symptom(db.session, _me(), json_object().get("hpo_id"))
    db.session.commit()
    return jsonify(_own()), 201


@bp.delete("/me/symptoms/<hpo_id>")
@member_required
@contract.validate(resp=answers(MySymptoms, *MEMBER), tags=["members"])
def remove(hpo_id: str) -> Response:
    """Remove one of my symptoms."""
    queries.remove_symptom(db.session, _me(), hpo_id)
    db.session.commit()
    return jsonify(_own())


@bp.put("/me/symptom-matching")
@member_required
@contract.validate(json=MatchingBody, resp=answers(MySymptoms, *MEMBER), tags=["members"])
def matching() -> Response:
    """Opt in to matching (``{"opted_in": true}``) or withdraw (``false``)."""
    opted_in: bool = json_object()["opted_in"]  # a JSON boolean: the contract checks it
    queries.set_matching(db.session, _me(), opted_in)
    db.session.commit()
    return jsonify(_own())


@bp.get("/soulmates")
@member_required
@contract.validate(query=SoulmatesQuery, resp=answers(SoulmateList, *MEMBER, 409),
                   tags=["members"])
def soulmates() -> Response:
    """Return my soulmates: ``?condition=<slug>`` or ``?every=1`` for every condition."""
    every = request.args.get("every") == "1"
    slug = request.args.get("condition")
    if not every and not slug:
        raise MemberInputError(_("Say which condition (?condition=<slug>) or ?every=1."))
    # Loaded on a worker's first soulmates question (the scoring itself runs in the
    # service's scorer process, or here when there is none).
    from geomap.symptoms import soulmates as soulmate_queries
    from geomap.symptoms.scorer_link import ScorerUnavailableError

    try:
        result = soulmate_queries.for_member(db.session, current_app, _me(),
                                             None if every else slug)
    except ScorerUnavailableError:
        db.session.rollback()
        raise ServiceUnavailable(soulmate_queries.unavailable_message(),
                                 retry_after=RETRY_AFTER_SECONDS) from None
    db.session.commit()
    return jsonify(
        condition=result.condition,
        members=[asdict(m) for m in result.members],
        areas=[{"cell": a.cell, "lat": a.lat, "lng": a.lng, "place": a.place,
                "count": len(a.pseudonyms), "pseudonyms": list(a.pseudonyms)}
               for a in result.areas],
    )
