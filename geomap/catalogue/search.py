"""Public read queries of the catalogue: search, the A-Z index and an entry's page.

They read the catalogue tables, ``conditions`` and ``published_totals`` only, all
granted to the public role (migration 0011a), and run through the public session.
Each is one indexed query, whatever the number of entries or enabled conditions.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

MIN_QUERY = 2
MAX_QUERY = 100
FUZZY_MAX = 24  # longer queries skip the (costly) trigram test for near misses
LETTERS = tuple(string.ascii_uppercase)
OTHER = "0-9"  # the A-Z index's page for names that start with anything else
_ICD_CODE = re.compile(r"^([A-Z])(\d{2})\.?(\d{0,2})$")
_ORPHA_CODE = re.compile(r"^ORPHA[: ]?(\d{1,7})$")
SELECTABLE = "e.kind IN ('category', 'disorder')"


@dataclass(frozen=True)
class CatalogueHit:
    """A catalogue entry as search and the index show it.

    ``matched`` is the name or code the query matched when it is not the display
    name (e.g. a synonym or a Spanish title), with its ``locale`` ('' for a code).
    """

    slug: str
    name: str
    code: str
    source: str
    enabled: bool
    published: int
    matched: str | None = None
    locale: str | None = None


def normalise_code(query: str) -> str | None:
    """Return ``query`` as a catalogue code ("C91.0", "ORPHA:513") if it looks like one."""
    q = query.strip().upper()
    match = _ICD_CODE.match(q)
    if match:
        letter, digits, sub = match.groups()
        return f"{letter}{digits}.{sub}" if sub else f"{letter}{digits}"
    match = _ORPHA_CODE.match(q)
    if match:
        return f"ORPHA:{match.group(1)}"
    return None


def _like_escape(value: str) -> str:
    """Escape LIKE's wildcards in ``value``."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(session: Session, query: str, limit: int = 20) -> list[CatalogueHit]:
    """Return the entries whose name, synonym (any locale) or code matches ``query``.

    Case and accents are ignored. Ranked: a code, then a whole name, then names that
    start with the query, then names holding it as a word, then fuzzy (trigram word
    similarity) matches, tried only when too few names hold a query of at most 24
    characters; ties go to conditions with a map and more members on it.
    Raises ValueError when the query is shorter than 2 or longer than 100 characters.
    """
    query = " ".join(query.split())
    if len(query) < MIN_QUERY or len(query) > MAX_QUERY or "\x00" in query:
        raise ValueError(
            _('Type between %(min_query)s and %(max_query)s characters to search the conditions.',
              min_query=MIN_QUERY, max_query=MAX_QUERY)
        )
    code = normalise_code(query)
    folded = session.execute(text("SELECT geomap_fold(:q)"), {"q": query}).scalar_one()
    escaped = _like_escape(folded)
    params = {
        "f": folded,
        "prefix": escaped + "%",
        "word": "% " + escaped + "%",
        "inner": "%" + escaped + "%",
        "code": code or "",
        "code_prefix": (_like_escape(code) + "%") if code else "",
        "limit": limit,
    }
    rows = session.execute(text(_SEARCH.format(fuzzy="")), params).all()
    if len(rows) < limit and len(folded) <= FUZZY_MAX:
        # Too few names hold the query: let near misses (typos) in too. Only then, as
        # the fuzzy test is the costly one on long queries.
        rows = session.execute(text(_SEARCH.format(fuzzy="OR :f <% n.folded")), params).all()
    return [_hit(row) for row in rows]


# Ranked search over names and codes; {fuzzy} adds the trigram word-similarity test.
_SEARCH = (
    "WITH name_hits AS ("
    "  SELECT n.entry_id, n.name, n.locale, "
    "  CASE WHEN n.folded = :f THEN 5 "
    "       WHEN n.folded LIKE :prefix THEN 4 "
    "       WHEN n.folded LIKE :word THEN 3 "
    "       WHEN n.folded LIKE :inner THEN 2 "
    "       ELSE 1 END + word_similarity(:f, n.folded) AS score "
    "  FROM catalogue_names n "
    "  WHERE n.folded LIKE :inner {fuzzy}"
    "), code_hits AS ("
    "  SELECT entry_id, code AS name, '' AS locale, "
    "  CASE WHEN upper(code) = :code THEN 7 ELSE 6 END AS score "
    "  FROM catalogue_codes WHERE upper(code) LIKE :code_prefix"
    "), best AS ("
    "  SELECT DISTINCT ON (entry_id) entry_id, name, locale, score FROM "
    "  (SELECT * FROM name_hits UNION ALL SELECT * FROM code_hits) h "
    "  ORDER BY entry_id, score DESC, locale = 'en' DESC, name"
    ") "
    "SELECT e.slug, e.name, e.code, e.source, coalesce(c.enabled, false), "
    "coalesce(t.published, 0), b.name, b.locale "
    "FROM best b JOIN catalogue_entries e ON e.id = b.entry_id "
    "LEFT JOIN conditions c ON c.id = e.condition_id "
    "LEFT JOIN published_totals t ON t.condition_id = c.id AND t.resolution = 0 "
    f"WHERE {SELECTABLE} "
    "ORDER BY b.score DESC, coalesce(c.enabled, false) DESC, "
    "coalesce(t.published, 0) DESC, length(e.name), e.name LIMIT :limit"
)


def _hit(row: tuple) -> CatalogueHit:
    """Return a search row as a hit, dropping ``matched`` when it is the display name."""
    slug, name, code, source, enabled, published, matched, locale = row
    if matched == name:
        matched, locale = None, None
    return CatalogueHit(slug, name, code, source, enabled, published, matched, locale)


@dataclass(frozen=True)
class IndexPage:
    """One page of the A-Z index."""

    letter: str
    page: int
    pages: int
    total: int
    entries: list[CatalogueHit]


def az_index(session: Session, letter: str, page: int = 1, per_page: int = 50) -> IndexPage:
    """Return page ``page`` (from 1) of the conditions whose name starts with ``letter``.

    ``letter`` is A-Z, or OTHER for names that start with anything else. Raises
    ValueError for any other letter or a page below 1.
    """
    letter = letter.upper()
    if letter != OTHER and letter not in LETTERS:
        raise ValueError(_("The index has the letters A to Z and 0-9."))
    condition = "e.initial = :letter"
    params: dict[str, object] = {"letter": letter}
    if page < 1:
        raise ValueError(_("Pages are numbered from 1."))
    total = session.execute(
        text(f"SELECT count(*) FROM catalogue_entries e WHERE {SELECTABLE} AND {condition}"),
        params,
    ).scalar_one()
    rows = session.execute(
        text(
            "SELECT e.slug, e.name, e.code, e.source, coalesce(c.enabled, false), "
            "coalesce(t.published, 0), NULL, NULL FROM catalogue_entries e "
            "LEFT JOIN conditions c ON c.id = e.condition_id "
            "LEFT JOIN published_totals t ON t.condition_id = c.id AND t.resolution = 0 "
            f"WHERE {SELECTABLE} AND {condition} "
            "ORDER BY e.sort_name, e.id LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": per_page, "offset": (page - 1) * per_page},
    ).all()
    pages = max(1, -(-total // per_page))
    return IndexPage(letter, page, pages, total, [_hit(row) for row in rows])


@dataclass(frozen=True)
class EntryPage:
    """What a catalogue entry's page shows: names, codes, parent and map state."""

    hit: CatalogueHit
    kind: str
    parent: CatalogueHit | None
    names: list[tuple[str, str]]  # (locale, name), display name excluded
    codes: list[tuple[str, str]]  # (system, code)


def entry_page(session: Session, slug: str) -> EntryPage | None:
    """Return the page data of the entry ``slug``, or None if there is none."""
    if len(slug) > 64 or "\x00" in slug:
        return None
    row = session.execute(
        text(
            "SELECT e.slug, e.name, e.code, e.source, coalesce(c.enabled, false), "
            "coalesce(t.published, 0), NULL, NULL, e.kind, e.id, e.parent_code "
            "FROM catalogue_entries e LEFT JOIN conditions c ON c.id = e.condition_id "
            "LEFT JOIN published_totals t ON t.condition_id = c.id AND t.resolution = 0 "
            "WHERE e.slug = :slug"
        ),
        {"slug": slug},
    ).first()
    if row is None:
        return None
    hit, kind, entry_id, parent_code = _hit(row[:8]), row[8], row[9], row[10]
    parent = None
    if parent_code:
        parent_row = session.execute(
            text(
                "SELECT e.slug, e.name, e.code, e.source, coalesce(c.enabled, false), 0, "
                "NULL, NULL FROM catalogue_entries e "
                "LEFT JOIN conditions c ON c.id = e.condition_id "
                "WHERE e.source = :source AND e.code = :code"
            ),
            {"source": hit.source, "code": parent_code},
        ).first()
        parent = _hit(parent_row) if parent_row else None
    names = session.execute(
        text("SELECT locale, name FROM catalogue_names WHERE entry_id = :e AND name <> :n "
             "ORDER BY locale <> 'en', locale, name"),
        {"e": entry_id, "n": hit.name},
    ).all()
    codes = session.execute(
        text("SELECT system, code FROM catalogue_codes WHERE entry_id = :e ORDER BY 1, 2"),
        {"e": entry_id},
    ).all()
    return EntryPage(hit, kind, parent, [tuple(r) for r in names], [tuple(r) for r in codes])
