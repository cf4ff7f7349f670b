"""A small published community with a member, a moderator and an admin, served live.

Shared by the browser journeys of issue 9: the page table (width and axe-core on every
page) and the moderation journey. Sign-in state is kept per account, so each page
opens in a fresh browser context already signed in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from geomap import create_app
from geomap.auth.accounts import create_admin, create_member_account
from geomap.geo.derive import KeyDeriver
from geomap.ingest import demo
from geomap.ingest.members_bulk import load_members
from geomap.members import queries, social
from geomap.publish import publish
from geomap.session import session_scope
from geomap.symptoms import queries as symptom_queries
from tests.conftest import FLOOR, K, LiveServer, _create_database, _drop_database, app_config
from tests.members_helpers import add_member
from tests.symptoms_helpers import BONE_PAIN, FATIGUE, PERIPHERAL_NEUROPATHY

SYMPTOMS = (PERIPHERAL_NEUROPATHY, BONE_PAIN, FATIGUE)

PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
NARROW = {"width": 360, "height": 740}
AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class JourneySite:
    """The served community and the ids the pages need."""

    url: str
    db_url: str
    ids: dict[str, int | str]
    states: dict[str, dict] = field(default_factory=dict)
    data_dir: Path | None = None  # where the file mail backend writes (.eml)


def build_community(db_url: str) -> dict[str, int | str]:
    """Load demo members, Ada, Bo, an unverified member and staff; return ids for paths.

    1,500 demo members with symptoms; Ada has symptoms and soulmates, is connected to Bo
    and reported one of his messages; Eve has not confirmed her email; Dee is suspended; a
    moderator and an admin.
    """
    engine = create_engine(db_url)
    with session_scope(engine) as session:
        deriver = KeyDeriver(session, FLOOR)
        batch, prefixes = demo.generate(session, 1500, 11, on_land=deriver.on_land)
        load_members(session, batch, deriver, pseudonym_prefix=prefixes)
        demo.add_symptoms(session, 11)
    with session_scope(engine) as session:
        ada = add_member(session, "ada-otter", lat=53.55, lng=10.0)
        for symptom in SYMPTOMS:  # Ada has soulmates among the demo members
            symptom_queries.add_symptom(session, ada[1], symptom)
        symptom_queries.set_matching(session, ada[1], True)
        create_member_account(session, pseudonym="eve-unverified", password=PASSWORD,
                              email="eve-unverified@example.org", consented=True)
        dee = add_member(session, "dee-suspended", lat=52.5, lng=13.4)
        session.execute(text("UPDATE members SET suspended_at = now() WHERE id = :id"),
                        {"id": dee[1]})
        bo = add_member(session, "bo-heron", lat=53.6, lng=9.9)
        add_member(session, "cy-wren", lat=53.5, lng=10.1, role="carer")
        queries.update_about(session, bo[1], introduction="Dad of a teenager with ALL.",
                             age_group="teenager", treatment_phase="maintenance")
        connection = social.request_connection(session, ada[1], "bo-heron", "Hello Bo")
        social.respond(session, bo[1], connection, accept=True)
        message = social.send_message(session, bo[1], connection, "Buy my miracle cure now")
        social.report_message(session, ada[1], message, "Dangerous medical advice")
        create_admin(session, email="mod@example.org", password=PASSWORD, role="moderator")
        create_admin(session, email="boss@example.org", password=PASSWORD)
        ids = {"connection": connection, "message": message}
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
        ids["report"] = session.execute(text("SELECT max(id) FROM message_reports")).scalar_one()
        ids["closed_entry"] = session.execute(text(
            "SELECT e.slug FROM catalogue_entries e LEFT JOIN conditions c "
            "ON c.id = e.condition_id WHERE NOT coalesce(c.enabled, false) "
            "ORDER BY e.slug LIMIT 1")).scalar_one()
    engine.dispose()
    return ids


@pytest.fixture(scope="module")
def journey_site(server_url, reference_template, tmp_path_factory) -> Iterator[JourneySite]:
    """The community above, served on 127.0.0.1 for this test module."""
    name = f"geomap_journey_{uuid.uuid4().hex[:10]}"
    db_url = _create_database(server_url, name, template=reference_template)
    ids = build_community(db_url)
    data_dir = tmp_path_factory.mktemp("journey")
    app = create_app(app_config(data_dir, GEOMAP_DATABASE_URL=db_url, RATELIMIT_ENABLED=False))
    with LiveServer(app) as server:
        yield JourneySite(server.url, db_url, ids, data_dir=data_dir)
    _drop_database(server_url, name)


def signed_in_state(browser, site: JourneySite, email: str | None) -> dict | None:  # noqa: ANN001
    """Return the browser storage state of ``email`` signed in (None: anonymous)."""
    if email is None:
        return None
    if email not in site.states:
        context = browser.new_context()
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.goto(f"{site.url}/login")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_selector("text=Sign out")
        site.states[email] = context.storage_state()
        context.close()
    return site.states[email]


def open_page(browser, site: JourneySite, email: str | None, viewport: dict,  # noqa: ANN001
              bypass_csp: bool = True):
    """Return a new page of a fresh context at ``viewport``, signed in as ``email``.

    ``bypass_csp``: axe-core is injected as a script tag, which the strict CSP refuses;
    pass False to load the page under its real CSP.
    """
    context = browser.new_context(viewport=viewport, bypass_csp=bypass_csp,
                                  storage_state=signed_in_state(browser, site, email))
    context.set_default_timeout(60_000)
    return context.new_page()


_BROKEN_WORDS = """(selector) => {
  const cells = [...document.querySelectorAll(selector)];
  const lines = (el) => {  // the text's line boxes (a heading's sort button aside)
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const tops = new Set();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(node);
      [...range.getClientRects()].forEach((r) => tops.add(Math.round(r.top)));
    }
    return tops.size;
  };
  return {cells: cells.length,
          broken: cells.filter((el) => lines(el) > 1).map((el) => el.textContent.trim())};
}"""


def broken_table_words(page, selector: str) -> dict:  # noqa: ANN001
    """Return how many cells ``selector`` found, and those whose text breaks a line.

    {"cells": n, "broken": [texts]}: a cell's text on more than one line means a word
    broken in two ("Mem/bers").
    """
    return page.evaluate(_BROKEN_WORDS, selector)


def horizontal_overflow(page) -> int:  # noqa: ANN001
    """Return how many CSS pixels the page is wider than the window (0: no side scroll)."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth")


def axe_violations(page) -> list[dict]:  # noqa: ANN001
    """Run axe-core (from the npm registry, node_modules/axe-core) on ``page``."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make setup` (npm ci installs axe-core)")
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


def describe(violations: list[dict]) -> str:
    """Return axe violations as readable JSON for an assertion message."""
    return json.dumps(violations, indent=1)


def add_people(site: JourneySite, *people: tuple[str, dict]) -> dict[str, int]:
    """Add members (pseudonym, add_member options) to the served community; return ids."""
    engine = create_engine(site.db_url)
    ids = {}
    with session_scope(engine) as session:
        for pseudonym, options in people:
            ids[pseudonym] = add_member(session, pseudonym, **options)[1]
    engine.dispose()
    return ids


def connect_people(site: JourneySite, asker: int, answerer: str, messages: list[str]) -> int:
    """Make ``asker`` and ``answerer`` connected, the answerer writing ``messages``."""
    engine = create_engine(site.db_url)
    with session_scope(engine) as session:
        connection = social.request_connection(session, asker, answerer, "Hello")
        other = social.member_id_by_pseudonym(session, answerer)
        social.respond(session, other, connection, accept=True)
        for body in messages:
            social.send_message(session, other, connection, body)
    engine.dispose()
    return connection
