"""Helpers shared by the symptoms tests: members with symptom sets."""

from __future__ import annotations

from sqlalchemy.orm import Session

from geomap.symptoms import queries
from tests.members_helpers import add_member

# Real HPO terms around the symptoms of ALL treatment.
PERIPHERAL_NEUROPATHY = "HP:0009830"
SENSORY_NEUROPATHY = "HP:0000763"
BONE_PAIN = "HP:0002653"
FATIGUE = "HP:0012378"
FEVER = "HP:0001945"
ANEMIA = "HP:0001903"
SEIZURE = "HP:0001250"
HEARING_LOSS = "HP:0000365"


def member_with_symptoms(session: Session, pseudonym: str, symptoms: list[str], *,
                         lat: float = 50.11, lng: float = 8.68, opted_in: bool = True,
                         **kwargs: object) -> tuple[int, int]:
    """Create a member with a location, the given symptoms and opt-in; return (account, member)."""
    account_id, member_id = add_member(session, pseudonym, lat=lat, lng=lng, **kwargs)
    for symptom in symptoms:
        queries.add_symptom(session, member_id, symptom)
    queries.set_matching(session, member_id, opted_in)
    session.flush()
    return account_id, member_id
