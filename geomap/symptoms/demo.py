"""Plausible demo symptom sets, drawn from each condition's HPO disease annotations.

Data source: the Orphanet and OMIM disease annotations shipped with ``hpo3``. Each
condition maps to the diseases below (ALL, CLL and AML have almost no symptom
annotations of their own, so the leukaemias draw on the acute leukaemias Orphanet
describes). A member's set is drawn from their first condition's pool with realistic
noise: about 40 % of the drawn terms dropped, about half of the rest replaced by a
parent term (patients describe symptoms less precisely than clinicians).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.symptoms.queries import refresh_profiles
from geomap.symptoms.vocabulary import PHENOTYPIC_ABNORMALITY, ontology

_ACUTE_LEUKAEMIAS = (("orpha", 318), ("orpha", 514), ("orpha", 517), ("orpha", 520))
# condition slug -> (annotation source, disease id)
CONDITION_DISEASES: dict[str, tuple[tuple[str, int], ...]] = {
    "all": (("omim", 247640), ("omim", 613065), *_ACUTE_LEUKAEMIAS),
    "aml": (("omim", 601626), *_ACUTE_LEUKAEMIAS),
    "cll": (("omim", 151400), ("orpha", 391)),
    "cml": (("orpha", 521), ("omim", 608232)),
    "hodgkin-lymphoma": (("orpha", 391), ("orpha", 86893)),
    "multiple-myeloma": (("orpha", 29073),),
    "cystic-fibrosis": (("orpha", 586), ("omim", 219700)),
    "multiple-sclerosis": (("omim", 126200),),
    "als": (("orpha", 803),),
    "sickle-cell-disease": (("orpha", 232), ("omim", 603903)),
    "huntingtons-disease": (("orpha", 399), ("omim", 143100)),
}
OPT_IN_SHARE = 0.6
DROP_SHARE = 0.4
PARENT_SHARE = 0.5


def condition_pools(known_terms: set[int]) -> dict[str, list[int]]:
    """Return, per condition slug, the phenotype terms annotated to its diseases."""
    onto = ontology()
    diseases = {("omim", d.id): d for d in onto.omim_diseases}
    diseases |= {("orpha", d.id): d for d in onto.orpha_diseases}
    pools = {}
    for slug, keys in CONDITION_DISEASES.items():
        terms = {int(t) for key in keys if key in diseases for t in diseases[key].hpo}
        pools[slug] = sorted(terms & known_terms)
    return pools


def noisy_profile(rng: np.random.Generator, pool: Sequence[int],
                  parents: Mapping[int, Sequence[int]], size: int) -> list[int]:
    """Return a noisy symptom set: ``size`` terms of ``pool``, some dropped, some coarsened.

    Each term is dropped with probability DROP_SHARE (one is always kept), and each
    kept term is replaced by one of its parents with probability PARENT_SHARE (never
    by the root "Phenotypic abnormality").
    """
    drawn = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
    kept = [pool[i] for i in drawn if rng.random() >= DROP_SHARE] or [pool[int(drawn[0])]]
    out = set()
    for term in kept:
        ups = [p for p in parents.get(term, ()) if p != PHENOTYPIC_ABNORMALITY]
        if ups and rng.random() < PARENT_SHARE:
            out.add(int(ups[int(rng.integers(len(ups)))]))
        else:
            out.add(int(term))
    return sorted(out)


def add_demo_symptoms(session: Session, seed: int) -> int:
    """Give members without symptoms a noisy set from their condition; return how many.

    About OPT_IN_SHARE of them opt in to matching. Deterministic for a seed and the
    members present. Needs the vocabulary (``geomap symptoms import``); without it,
    does nothing.
    """
    parents = dict(session.execute(text("SELECT id, parents FROM hpo_terms")).all())
    if not parents:
        return 0
    pools = condition_pools(set(parents))
    rows = session.execute(text(
        "SELECT m.id, (SELECT c.slug FROM member_conditions mc JOIN conditions c "
        "ON c.id = mc.condition_id WHERE mc.member_id = m.id ORDER BY mc.condition_id LIMIT 1) "
        "FROM members m WHERE NOT EXISTS (SELECT 1 FROM member_symptoms s "
        "WHERE s.member_id = m.id) ORDER BY m.id"
    )).all()
    rng = np.random.default_rng(seed)
    symptom_rows, opted = [], []
    for member, slug in rows:
        pool = pools.get(slug or "")
        if not pool:
            continue
        for term in noisy_profile(rng, pool, parents, int(rng.integers(5, 16))):
            symptom_rows.append({"member": member, "term": term})
        if rng.random() < OPT_IN_SHARE:
            opted.append({"member": member})
    if symptom_rows:
        session.execute(text("INSERT INTO member_symptoms (member_id, term_id) "
                             "VALUES (:member, :term) ON CONFLICT DO NOTHING"), symptom_rows)
    if opted:
        session.execute(text("INSERT INTO symptom_matching (member_id) VALUES (:member) "
                             "ON CONFLICT DO NOTHING"), opted)
    refresh_profiles(session)
    return len({row["member"] for row in symptom_rows})
