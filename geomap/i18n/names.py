"""Condition names in the viewer's language, where the catalogue has an official one.

The catalogue (geomap/catalogue) keeps names per locale in ``catalogue_names``: the
Spanish ICD-10 titles of ``cie`` today. A page in a locale without a name for a
condition shows its English name. Public read path: ``catalogue_*`` are public tables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from flask_babel import get_locale
from sqlalchemy import text
from sqlalchemy.orm import Session

T = TypeVar("T")


def official_names(session: Session, slugs: Sequence[str], locale: str) -> dict[str, str]:
    """Return {slug: official name in ``locale``} for the slugs the catalogue names there."""
    if not slugs or locale == "en":
        return {}
    rows = session.execute(
        text("SELECT DISTINCT ON (e.slug) e.slug, n.name FROM catalogue_entries e "
             "JOIN catalogue_names n ON n.entry_id = e.id "
             "WHERE e.slug = ANY(:slugs) AND n.locale = :locale AND n.kind = 'official' "
             "ORDER BY e.slug, n.name"),
        {"slugs": list(dict.fromkeys(slugs)), "locale": locale},
    ).all()
    return {slug: name for slug, name in rows}


def localised(session: Session, items: Sequence[T]) -> list[T]:
    """Return ``items`` (dataclasses with ``slug`` and ``name``) named in the request's locale.

    One query for all of them; items without a name in the locale keep their English one.
    """
    locale = str(get_locale() or "en")
    names = official_names(session, [item.slug for item in items], locale)  # type: ignore[attr-defined]
    return [dataclasses.replace(item, name=names[item.slug])  # type: ignore[attr-defined]
            if item.slug in names else item for item in items]  # type: ignore[attr-defined]


def localised_one(session: Session, item: T) -> T:
    """Return one condition-like dataclass named in the request's locale (see :func:`localised`)."""
    return localised(session, [item])[0]
