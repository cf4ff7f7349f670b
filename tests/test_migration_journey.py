"""Migration 0009a_journey on a database that already has members."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from geomap.members.pseudonyms import pseudonym_key
from geomap.migrate import upgrade
from tests.conftest import _create_database, _drop_database


def test_existing_pseudonyms_get_keys_and_old_look_alikes_keep_working(server_url) -> None:
    name = f"geomap_test_mig_{uuid.uuid4().hex[:8]}"
    url = _create_database(server_url, name)
    engine = create_engine(url)
    try:
        upgrade(engine, "0005")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO members (pseudonym, role, visibility, contactable) VALUES "
                "('Ada', 'patient', 'map', true), ('ADA', 'patient', 'map', true), "
                "('bo', 'carer', 'map', true)"))
        upgrade(engine)
        with engine.connect() as conn:
            keys = dict(conn.execute(text(
                "SELECT pseudonym, pseudonym_key FROM members ORDER BY id")).all())
            moderator = conn.execute(text(
                "SELECT column_default FROM information_schema.columns "
                "WHERE table_name = 'accounts' AND column_name = 'is_moderator'")).scalar_one()
        assert keys["Ada"] == pseudonym_key("Ada") and keys["bo"] == pseudonym_key("bo")
        # The younger of two old look-alikes keeps its name and a distinct key.
        assert keys["ADA"].startswith(pseudonym_key("ADA") + "\x1f")
        assert moderator == "false"
    finally:
        engine.dispose()
        _drop_database(server_url, name)
