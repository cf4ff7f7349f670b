"""Admins' changes to the catalogue, each written to the audit log, and members' requests.

Enabling an entry gives it a row in ``conditions`` (its map) the first time, or sets
that row's ``enabled`` flag again; disabling clears the flag. Nothing else changes:
members keep their links to a disabled condition, and the next publish leaves its map
out (or puts it back). Every function works in the caller's transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.orm import Session

MAX_CONDITION_ID = 32767  # conditions.id is a SMALLINT
_CODE = re.compile(r"^(?:[A-Z]\d{2}(?:\.\d{1,2})?|ORPHA:\d{1,7})$")


class CatalogueError(ValueError):
    """A change that cannot be made; the message is a sentence for the person asking."""


@dataclass(frozen=True)
class Entry:
    """A catalogue entry with its map state (``condition_id`` None: never enabled)."""

    id: int
    slug: str
    name: str
    source: str
    kind: str
    code: str
    condition_id: int | None
    enabled: bool


_ENTRY_SELECT = (
    "SELECT e.id, e.slug, e.name, e.source, e.kind, e.code, e.condition_id, "
    "coalesce(c.enabled, false) FROM catalogue_entries e "
    "LEFT JOIN conditions c ON c.id = e.condition_id "
)


def find_entry(session: Session, ref: str) -> Entry | None:
    """Return the entry whose slug or code (e.g. "C91.0", "ORPHA:513") is ``ref``."""
    ref = ref.strip()
    if not ref or len(ref) > 64 or "\x00" in ref:
        return None
    row = session.execute(text(_ENTRY_SELECT + "WHERE e.slug = :ref"), {"ref": ref}).first()
    if row is None and _CODE.match(ref.upper()):
        row = session.execute(
            text(_ENTRY_SELECT + "WHERE e.id = (SELECT entry_id FROM catalogue_codes "
                 "WHERE upper(code) = :code ORDER BY entry_id LIMIT 1)"),
            {"code": ref.upper()},
        ).first()
    return Entry(*row) if row else None


def require_entry(session: Session, ref: str) -> Entry:
    """Return the entry ``ref`` names; raise CatalogueError when there is none."""
    entry = find_entry(session, ref)
    if entry is None:
        raise CatalogueError(_('There is no condition %(ref)r in the catalogue.', ref=ref))
    return entry


def _audit(session: Session, actor: str, action: str, entry: Entry, detail: str) -> None:
    """Write one audit log line."""
    session.execute(
        text("INSERT INTO condition_audit (actor, action, entry_id, detail) "
             "VALUES (:actor, :action, :entry, :detail)"),
        {"actor": actor[:120], "action": action, "entry": entry.id, "detail": detail},
    )


def _touch_data(session: Session) -> None:
    """Mark the data as changed so that the scheduled publish does not skip this change."""
    session.execute(text("UPDATE data_changes SET changed_at = clock_timestamp()"))


def enable(session: Session, entry: Entry, actor: str) -> Entry:
    """Give ``entry`` a map from the next publish on; audited. Return the new state."""
    if entry.kind not in ("category", "disorder"):
        raise CatalogueError(_("Only a condition can have a map, not a chapter or block."))
    if entry.enabled:
        raise CatalogueError(_('%(name)s already has a map.', name=entry.name))
    condition_id = entry.condition_id
    if condition_id is None:
        condition_id = session.execute(
            text("SELECT coalesce(max(id), 0) + 1 FROM conditions")
        ).scalar_one()
        if condition_id > MAX_CONDITION_ID:
            raise CatalogueError(_("No more maps can be opened: every condition id is in use."))
        session.execute(
            text("INSERT INTO conditions (id, slug, name, icd10, enabled) "
                 "VALUES (:id, :slug, :name, :code, true)"),
            {"id": condition_id, "slug": entry.slug, "name": entry.name[:200],
             "code": entry.code[:16]},
        )
        session.execute(
            text("UPDATE catalogue_entries SET condition_id = :c WHERE id = :e"),
            {"c": condition_id, "e": entry.id},
        )
    else:
        session.execute(text("UPDATE conditions SET enabled = true WHERE id = :c"),
                        {"c": condition_id})
    _touch_data(session)
    _audit(session, actor, "enable", entry, f"map opened for {entry.name}")
    return Entry(entry.id, entry.slug, entry.name, entry.source, entry.kind, entry.code,
                 condition_id, True)


def disable(session: Session, entry: Entry, actor: str) -> Entry:
    """Hide ``entry``'s map from the next publish on, keeping every member's data; audited."""
    if not entry.enabled:
        raise CatalogueError(_('%(name)s has no map to close.', name=entry.name))
    session.execute(text("UPDATE conditions SET enabled = false WHERE id = :c"),
                    {"c": entry.condition_id})
    _touch_data(session)
    _audit(session, actor, "disable", entry, f"map closed for {entry.name}")
    return Entry(entry.id, entry.slug, entry.name, entry.source, entry.kind, entry.code,
                 entry.condition_id, False)


def _clean_name(name: str) -> str:
    """Return ``name`` trimmed; raise CatalogueError for an empty, long or control name."""
    name = " ".join(name.split())
    if not name:
        raise CatalogueError(_("The name is empty."))
    if len(name) > 200:
        raise CatalogueError(_("The name is longer than 200 characters."))
    if any(ord(ch) < 32 for ch in name):
        raise CatalogueError(_("The name holds control characters."))
    return name


def rename(session: Session, entry: Entry, new_name: str, actor: str) -> Entry:
    """Change ``entry``'s display name (the old one stays findable as a synonym); audited."""
    new_name = _clean_name(new_name)
    if new_name == entry.name:
        raise CatalogueError(_('The condition is already called %(new_name)s.', new_name=new_name))
    session.execute(text("UPDATE catalogue_entries SET name = :n WHERE id = :e"),
                    {"n": new_name, "e": entry.id})
    if entry.condition_id is not None:
        session.execute(text("UPDATE conditions SET name = :n WHERE id = :c"),
                        {"n": new_name, "c": entry.condition_id})
    session.execute(
        text("INSERT INTO catalogue_names (entry_id, locale, name, kind) VALUES "
             "(:e, 'en', :old, 'synonym'), (:e, 'en', :new, 'synonym') ON CONFLICT DO NOTHING"),
        {"e": entry.id, "old": entry.name[:300], "new": new_name},
    )
    _audit(session, actor, "rename", entry, f"{entry.name} -> {new_name}")
    return Entry(entry.id, entry.slug, new_name, entry.source, entry.kind, entry.code,
                 entry.condition_id, entry.enabled)


LOCALE = re.compile(r"^[a-z]{2}(?:-[A-Z]{2})?$")


def add_synonym(session: Session, entry: Entry, synonym: str, actor: str,
                locale: str = "en") -> None:
    """Make ``entry`` findable by ``synonym`` (in ``locale``, e.g. "es"); audited."""
    synonym = _clean_name(synonym)
    if not LOCALE.match(locale):
        raise CatalogueError(_("The language must be a code such as en, es or pt-BR."))
    added = session.execute(
        text("INSERT INTO catalogue_names (entry_id, locale, name, kind) "
             "VALUES (:e, :locale, :name, 'synonym') ON CONFLICT DO NOTHING"),
        {"e": entry.id, "locale": locale, "name": synonym},
    ).rowcount
    if not added:
        raise CatalogueError(_('%(name)s already has the name %(synonym)s.',
                               name=entry.name, synonym=synonym))
    _audit(session, actor, "add-synonym", entry, f"{locale}: {synonym}")


@dataclass(frozen=True)
class AuditLine:
    """One audited change."""

    at: datetime
    actor: str
    action: str
    slug: str
    detail: str


def audit_log(session: Session, limit: int = 50) -> list[AuditLine]:
    """Return the latest audited changes, newest first."""
    rows = session.execute(
        text("SELECT a.at, a.actor, a.action, e.slug, a.detail FROM condition_audit a "
             "JOIN catalogue_entries e ON e.id = a.entry_id ORDER BY a.id DESC LIMIT :n"),
        {"n": limit},
    ).all()
    return [AuditLine(*row) for row in rows]


# Requests -------------------------------------------------------------------------


def request_map(session: Session, entry: Entry, member_id: int) -> bool:
    """Record that member ``member_id`` asks for ``entry``'s map; False if already asked."""
    if entry.enabled:
        raise CatalogueError(_('%(name)s already has a map.', name=entry.name))
    if entry.kind not in ("category", "disorder"):
        raise CatalogueError(_("Only a condition can have a map, not a chapter or block."))
    return bool(
        session.execute(
            text("INSERT INTO condition_requests (entry_id, member_id) VALUES (:e, :m) "
                 "ON CONFLICT DO NOTHING"),
            {"e": entry.id, "m": member_id},
        ).rowcount
    )


def has_requested(session: Session, entry: Entry, member_id: int) -> bool:
    """Return whether member ``member_id`` has asked for ``entry``'s map."""
    return session.execute(
        text("SELECT exists (SELECT 1 FROM condition_requests "
             "WHERE entry_id = :e AND member_id = :m)"),
        {"e": entry.id, "m": member_id},
    ).scalar_one()


@dataclass(frozen=True)
class RequestedCondition:
    """A condition members asked for, with how many asked and since when."""

    slug: str
    name: str
    code: str
    askers: int
    first_asked: datetime


def request_queue(session: Session, limit: int = 100) -> list[RequestedCondition]:
    """Return the conditions without a map that members asked for, most askers first."""
    rows = session.execute(
        text(
            "SELECT e.slug, e.name, e.code, count(*), min(r.requested_at) "
            "FROM condition_requests r JOIN catalogue_entries e ON e.id = r.entry_id "
            "LEFT JOIN conditions c ON c.id = e.condition_id "
            "WHERE r.notified_at IS NULL AND NOT coalesce(c.enabled, false) "
            "GROUP BY e.id ORDER BY count(*) DESC, min(r.requested_at), e.name LIMIT :n"
        ),
        {"n": limit},
    ).all()
    return [RequestedCondition(*row) for row in rows]


@dataclass(frozen=True)
class OpenedMap:
    """A map a member asked for that has opened."""

    slug: str
    name: str


def take_opened_maps(session: Session, member_id: int) -> list[OpenedMap]:
    """Return the maps member ``member_id`` asked for that opened since, marking them told."""
    rows = session.execute(
        text(
            "UPDATE condition_requests r SET notified_at = now() "
            "FROM catalogue_entries e JOIN conditions c ON c.id = e.condition_id "
            "WHERE r.member_id = :m AND r.notified_at IS NULL AND e.id = r.entry_id "
            "AND c.enabled RETURNING c.slug, c.name"
        ),
        {"m": member_id},
    ).all()
    return [OpenedMap(*row) for row in sorted(rows)]
