"""A member's own symptoms, the matching opt-in, and the symptom type-ahead.

Symptoms are health data: they are read here only for their owner (:func:`my_symptoms`,
:func:`export`), and for matching only through ``soulmate_profiles``, which holds the
members who opted in (kept in step by :func:`sync_profile` on every change).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.members.errors import MemberConflictError, MemberInputError
from geomap.symptoms.vocabulary import fold, hpo_id, parse_hpo_id

QUERY_MAX = 100
RESULTS = 10
MAX_SYMPTOMS = 50


@dataclass(frozen=True)
class Symptom:
    """An HPO term as shown to members: id (``HP:…``), label (plain first) and HPO name."""

    hpo_id: str
    label: str
    name: str


@dataclass(frozen=True)
class TermMatch:
    """A term offered by the type-ahead: its label, HPO name, and the label that matched."""

    hpo_id: str
    label: str
    name: str
    matched: str


@dataclass(frozen=True)
class MySymptoms:
    """A member's symptoms and whether they take part in matching."""

    symptoms: tuple[Symptom, ...]
    opted_in: bool
    opted_in_at: datetime | None


def search_terms(session: Session, query: str, limit: int = RESULTS) -> list[TermMatch]:
    """Return terms whose labels contain ``query`` (accent- and case-insensitive).

    Labels that start with the query come first, then words that start with it, then
    other matches; plain-language labels before HPO names before synonyms; shorter
    first. An HPO id (``HP:0001250``) finds its term.
    """
    if not isinstance(query, str) or len(query) > QUERY_MAX or "\x00" in query:
        raise MemberInputError(_('Type a symptom of at most %(query_max)s characters.',
                                 query_max=QUERY_MAX))
    folded = fold(query)
    term_id = parse_hpo_id(query) if folded.startswith("hp:") else None
    if term_id is not None:
        rows = session.execute(
            text("SELECT hpo_id, coalesce(layperson, name), name, name FROM hpo_terms "
                 "WHERE id = :id"), {"id": term_id}).all()
        return [TermMatch(*row) for row in rows]
    if len(folded) < 2:
        raise MemberInputError(_("Type at least two letters of a symptom."))
    pattern = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = session.execute(
        text(
            "SELECT t.hpo_id, coalesce(t.layperson, t.name), t.name, best.label FROM ("
            "SELECT DISTINCT ON (l.term_id) l.term_id, l.label, "
            "CASE WHEN l.folded LIKE :prefix THEN 0 WHEN l.folded LIKE :word THEN 1 "
            "ELSE 2 END AS rank, l.kind, length(l.folded) AS len FROM hpo_labels l "
            "WHERE l.folded LIKE :inside "
            "ORDER BY l.term_id, 3, l.kind, length(l.folded)) best "
            "JOIN hpo_terms t ON t.id = best.term_id "
            "ORDER BY best.rank, best.kind, best.len, t.id LIMIT :limit"
        ),
        {"prefix": pattern + "%", "word": "% " + pattern + "%", "inside": "%" + pattern + "%",
         "limit": limit},
    ).all()
    return [TermMatch(*row) for row in rows]


def term_id_of(session: Session, raw: object) -> int:
    """Return the integer id of a known HPO phenotype term; raise MemberInputError otherwise."""
    term_id = parse_hpo_id(raw)
    if term_id is None:
        raise MemberInputError(_("A symptom is an HPO id such as HP:0001250."))
    if session.execute(text("SELECT 1 FROM hpo_terms WHERE id = :id"), {"id": term_id}
                       ).first() is None:
        raise MemberInputError(_('%(value)s is not a symptom we know.', value=hpo_id(term_id)))
    return term_id


def my_symptoms(session: Session, member_id: int) -> MySymptoms:
    """Return a member's own symptoms (by label) and their matching opt-in."""
    rows = session.execute(
        text("SELECT t.hpo_id, coalesce(t.layperson, t.name), t.name FROM member_symptoms s "
             "JOIN hpo_terms t ON t.id = s.term_id WHERE s.member_id = :id "
             "ORDER BY lower(coalesce(t.layperson, t.name)), t.id"),
        {"id": member_id},
    ).all()
    opted = session.execute(
        text("SELECT opted_in_at FROM symptom_matching WHERE member_id = :id"), {"id": member_id}
    ).scalar_one_or_none()
    return MySymptoms(tuple(Symptom(*row) for row in rows), opted is not None, opted)


def add_symptom(session: Session, member_id: int, raw_id: object) -> Symptom:
    """Add a symptom (an HPO id) to a member's list; return it. Adding it twice is a no-op."""
    term_id = term_id_of(session, raw_id)
    count = session.execute(
        text("SELECT count(*) FROM member_symptoms WHERE member_id = :id"), {"id": member_id}
    ).scalar_one()
    session.execute(
        text("INSERT INTO member_symptoms (member_id, term_id) "
             "SELECT :id, :term WHERE :count < :max ON CONFLICT DO NOTHING"),
        {"id": member_id, "term": term_id, "count": count, "max": MAX_SYMPTOMS},
    )
    if count >= MAX_SYMPTOMS and not _has(session, member_id, term_id):
        raise MemberConflictError(_('You can list at most %(max_symptoms)s symptoms.',
                                    max_symptoms=MAX_SYMPTOMS))
    sync_profile(session, member_id)
    row = session.execute(
        text("SELECT hpo_id, coalesce(layperson, name), name FROM hpo_terms WHERE id = :id"),
        {"id": term_id},
    ).one()
    return Symptom(*row)


def _has(session: Session, member_id: int, term_id: int) -> bool:
    """Return whether a member lists a term."""
    return session.execute(
        text("SELECT 1 FROM member_symptoms WHERE member_id = :id AND term_id = :term"),
        {"id": member_id, "term": term_id},
    ).first() is not None


def remove_symptom(session: Session, member_id: int, raw_id: object) -> None:
    """Remove a symptom from a member's list (removing an absent one is a no-op)."""
    term_id = parse_hpo_id(raw_id)
    if term_id is None:
        raise MemberInputError(_("A symptom is an HPO id such as HP:0001250."))
    session.execute(
        text("DELETE FROM member_symptoms WHERE member_id = :id AND term_id = :term"),
        {"id": member_id, "term": term_id},
    )
    sync_profile(session, member_id)


def set_matching(session: Session, member_id: int, opted_in: bool) -> None:
    """Opt a member in to soulmate matching, or withdraw (effective at once)."""
    if opted_in:
        session.execute(
            text("INSERT INTO symptom_matching (member_id) VALUES (:id) ON CONFLICT DO NOTHING"),
            {"id": member_id},
        )
    else:
        session.execute(text("DELETE FROM symptom_matching WHERE member_id = :id"),
                        {"id": member_id})
    sync_profile(session, member_id)


def _profile_rows(where: str) -> str:
    """Return the SELECT of (member, terms, informative ancestors) of opted-in members."""
    return (
        "SELECT own.member_id, own.terms, coalesce(anc.informative, '{}') FROM ("
        "SELECT s.member_id, array_agg(s.term_id ORDER BY s.term_id) AS terms "
        "FROM member_symptoms s JOIN symptom_matching o ON o.member_id = s.member_id "
        f"{where} GROUP BY 1) own LEFT JOIN ("
        "SELECT s.member_id, array_agg(DISTINCT a ORDER BY a) AS informative "
        "FROM member_symptoms s JOIN symptom_matching o ON o.member_id = s.member_id "
        "JOIN hpo_terms t ON t.id = s.term_id CROSS JOIN unnest(t.informative) AS a "
        f"{where} GROUP BY 1) anc ON anc.member_id = own.member_id"
    )


def sync_profile(session: Session, member_id: int) -> None:
    """Bring a member's soulmate profile in step: present only when opted in with symptoms."""
    session.execute(text("DELETE FROM soulmate_profiles WHERE member_id = :id"),
                    {"id": member_id})
    session.execute(
        text("INSERT INTO soulmate_profiles (member_id, terms, informative) "
             + _profile_rows("WHERE s.member_id = :id")),
        {"id": member_id},
    )


def refresh_profiles(session: Session) -> int:
    """Rebuild every soulmate profile (after bulk imports); return how many there are."""
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    session.execute(text("DELETE FROM soulmate_profiles"))
    session.execute(text("INSERT INTO soulmate_profiles (member_id, terms, informative) "
                         + _profile_rows("")))
    session.execute(text("ANALYZE soulmate_profiles"))
    return int(session.execute(text("SELECT count(*) FROM soulmate_profiles")).scalar_one())


def export(session: Session, member_id: int) -> dict[str, Any]:
    """Return a member's symptoms and opt-in, ready for JSON (their data export)."""
    own = my_symptoms(session, member_id)
    return {
        "symptoms": [{"hpo_id": s.hpo_id, "name": s.name} for s in own.symptoms],
        "symptom_matching": {
            "opted_in": own.opted_in,
            "opted_in_at": own.opted_in_at.isoformat() if own.opted_in_at else None,
        },
    }

