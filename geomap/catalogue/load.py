"""Write the offline sources into the catalogue tables (``geomap conditions import``).

Idempotent: entries are keyed by (source, code); a second run inserts nothing new
and leaves curated names, synonyms and enabled flags as admins left them. Entries
seeded by migration 0011a (the first conditions) are merged with the WHO entry of
the same code: they keep their slug and display name and gain the official titles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from geomap.catalogue import sources
from geomap.catalogue.sources import SourceEntry

BATCH = 2000
CODE_SYSTEMS = {"icd10": "ICD-10", "orpha": "ORPHA"}


@dataclass(frozen=True)
class ImportSummary:
    """What one import did: entries added and already there, names and codes added."""

    added: int
    existing: int
    names_added: int
    codes_added: int
    spanish_names: int


def _batches(entries: Iterable[SourceEntry]) -> Iterable[list[SourceEntry]]:
    """Yield ``entries`` in lists of at most BATCH."""
    batch: list[SourceEntry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_batch(session: Session, batch: list[SourceEntry],
                 spanish: dict[str, str]) -> tuple[int, int, int, int, int]:
    """Upsert one batch of entries with their names and codes; return what was added."""
    rows = session.execute(
        text(
            "INSERT INTO catalogue_entries (slug, name, source, kind, code, parent_code) "
            "SELECT * FROM unnest(CAST(:slugs AS text[]), CAST(:names AS text[]), "
            "CAST(:sources AS text[]), CAST(:kinds AS text[]), CAST(:codes AS text[]), "
            "CAST(:parents AS text[])) "
            "ON CONFLICT (source, code) DO UPDATE SET kind = EXCLUDED.kind, "
            "parent_code = EXCLUDED.parent_code "
            "RETURNING id, source, code, (xmax = 0) AS inserted"
        ),
        {
            "slugs": [e.slug for e in batch],
            "names": [e.name for e in batch],
            "sources": [e.source for e in batch],
            "kinds": [e.kind for e in batch],
            "codes": [e.code for e in batch],
            "parents": [e.parent_code for e in batch],
        },
    ).all()
    ids = {(source, code): entry_id for entry_id, source, code, _ in rows}
    added = sum(1 for *_, inserted in rows if inserted)
    name_rows: list[tuple[int, str, str, str]] = []
    spanish_count = 0
    for e in batch:
        entry_id = ids[(e.source, e.code)]
        name_rows.extend((entry_id, locale, name, kind) for locale, name, kind in e.names)
        if e.source == "icd10" and e.code in spanish:
            name_rows.append((entry_id, "es", spanish[e.code], "official"))
            spanish_count += 1
    names_added = session.execute(
        text(
            "INSERT INTO catalogue_names (entry_id, locale, name, kind) "
            "SELECT * FROM unnest(CAST(:ids AS int[]), CAST(:locales AS text[]), "
            "CAST(:names AS text[]), CAST(:kinds AS text[])) ON CONFLICT DO NOTHING"
        ),
        {
            "ids": [r[0] for r in name_rows],
            "locales": [r[1] for r in name_rows],
            "names": [r[2][:300] for r in name_rows],
            "kinds": [r[3] for r in name_rows],
        },
    ).rowcount
    codes_added = session.execute(
        text(
            "INSERT INTO catalogue_codes (system, code, entry_id) "
            "SELECT * FROM unnest(CAST(:systems AS text[]), CAST(:codes AS text[]), "
            "CAST(:ids AS int[])) ON CONFLICT DO NOTHING"
        ),
        {
            "systems": [CODE_SYSTEMS[e.source] for e in batch],
            "codes": [e.code for e in batch],
            "ids": [ids[(e.source, e.code)] for e in batch],
        },
    ).rowcount
    return added, len(batch) - added, names_added, codes_added, spanish_count


def import_catalogue(session: Session,
                     entries: Iterable[SourceEntry] | None = None,
                     spanish: dict[str, str] | None = None,
                     progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Load the catalogue into the session's transaction; return what was added.

    ``entries`` defaults to every WHO ICD-10 item followed by every Orphanet disorder
    (:mod:`geomap.catalogue.sources`); ``spanish`` to the Spanish ICD-10 titles.
    ``progress`` is called with the number of entries of each batch written.
    """
    if entries is None:
        entries = _all_entries()
    if spanish is None:
        spanish = sources.spanish_icd10_titles()
    totals = [0, 0, 0, 0, 0]
    for batch in _batches(entries):
        for i, value in enumerate(_write_batch(session, batch, spanish)):
            totals[i] += value
        if progress:
            progress(len(batch))
    return ImportSummary(*totals)


def _all_entries() -> Iterable[SourceEntry]:
    """Yield the WHO ICD-10 items, then the Orphanet disorders."""
    yield from sources.icd10_entries()
    yield from sources.orphanet_entries()


def source_size() -> int:
    """Return how many entries the offline sources hold (for a progress bar)."""
    return sum(1 for _ in _all_entries())
