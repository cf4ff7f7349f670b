"""Symptoms in bulk imports: the ``symptoms`` column (CSV) or list property (GeoJSON).

A cell holds HPO ids separated by ``;`` (``HP:0012378;HP:0002653``); a GeoJSON
property may be a list of them. Each row is validated on its own: malformed ids,
terms that are not phenotype terms of the loaded vocabulary, and more than
:data:`geomap.symptoms.queries.MAX_SYMPTOMS` symptoms reject the row with a reason.
Imported symptoms do not take part in matching: only the member can opt in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.symptoms.queries import MAX_SYMPTOMS
from geomap.symptoms.vocabulary import hpo_id, parse_hpo_id


def parse_symptom_cells(session: Session, cells: Sequence[str]
                        ) -> tuple[list[list[int]], list[str | None]]:
    """Return each row's symptom term ids and its error (None when the row's symptoms are good).

    ``cells`` are the raw column values ("" when the row has none).
    """
    parsed: list[list[int]] = []
    reasons: list[str | None] = []
    wanted: set[int] = set()
    for raw in cells:
        if not raw:  # most rows of most files
            parsed.append([])
            reasons.append(None)
            continue
        parts = [part.strip() for part in raw.split(";") if part.strip()]
        ids = [parse_hpo_id(part) for part in parts]
        bad = next((part for part, term in zip(parts, ids, strict=True) if term is None), None)
        terms = sorted({term for term in ids if term is not None})
        if bad is not None:
            reasons.append("symptoms must be HPO ids such as HP:0012378, separated by ';'")
        elif len(terms) > MAX_SYMPTOMS:
            reasons.append(f"at most {MAX_SYMPTOMS} symptoms per member")
        else:
            reasons.append(None)
        parsed.append(terms)
        wanted.update(terms)
    known = set(session.execute(
        text("SELECT id FROM hpo_terms WHERE id = ANY(CAST(:ids AS int[]))"),
        {"ids": sorted(wanted)},
    ).scalars()) if wanted else set()
    for i, terms in enumerate(parsed):
        unknown = [term for term in terms if term not in known]
        if unknown and reasons[i] is None:
            reasons[i] = f"unknown symptom {hpo_id(unknown[0])} (not a phenotype term)"
    return parsed, reasons


def store_symptoms(session: Session, member_ids: np.ndarray | Sequence[int],
                   symptom_sets: Sequence[Sequence[int]]) -> int:
    """Insert the symptoms of newly loaded members (aligned with ``member_ids``); return rows."""
    rows = [{"member": int(member), "term": int(term)}
            for member, terms in zip(member_ids, symptom_sets, strict=True) for term in terms]
    if rows:
        session.execute(text("INSERT INTO member_symptoms (member_id, term_id) "
                             "VALUES (:member, :term) ON CONFLICT DO NOTHING"), rows)
    return len(rows)
