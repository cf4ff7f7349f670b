"""The condition catalogue: import, search, A-Z index, curation, requests, closed maps.

Curation is audited; a closed map is gone from every public path, its members' data intact.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.auth.accounts import create_admin
from geomap.catalogue import curate, search
from geomap.catalogue.load import import_catalogue
from geomap.publish import publish, published
from tests.conftest import FLOOR, K, app_config, sessions_on
from tests.members_helpers import add_member, sign_in

ALL_SLUG = "all"  # the seeded entry of C91.0, acute lymphoblastic leukaemia


def slugs(hits: list[search.CatalogueHit]) -> list[str]:
    return [hit.slug for hit in hits]


# --- import -------------------------------------------------------------------------


def test_import_loads_icd10_and_orphanet(session: Session) -> None:
    counts = dict(
        session.execute(text("SELECT source, count(*) FROM catalogue_entries GROUP BY 1")).all()
    )
    assert counts["icd10"] > 12_000  # WHO ICD-10 2019: chapters, blocks, categories
    assert counts["orpha"] > 4_000  # Orphanet disorders annotated in the HPO data
    parent = session.execute(
        text("SELECT parent_code FROM catalogue_entries WHERE code = 'C91.0'")
    ).scalar_one()
    assert parent == "C91"


def test_import_is_idempotent_and_keeps_curated_names(session: Session) -> None:
    entry = curate.require_entry(session, "orpha-399")
    curate.rename(session, entry, "Huntington's disease (Orphanet)", "test")
    summary = import_catalogue(session)
    assert (summary.added, summary.names_added, summary.codes_added) == (0, 0, 0)
    assert summary.existing > 16_000
    assert curate.require_entry(session, "orpha-399").name == "Huntington's disease (Orphanet)"


def test_seeded_conditions_stay_enabled_with_their_members(session: Session) -> None:
    rows = session.execute(
        text("SELECT c.slug, c.enabled, e.code, count(mc.member_id) FROM conditions c "
             "JOIN catalogue_entries e ON e.condition_id = c.id "
             "LEFT JOIN member_conditions mc ON mc.condition_id = c.id GROUP BY 1, 2, 3")
    ).all()
    assert len(rows) == 11
    assert all(enabled for _, enabled, _, _ in rows)
    assert sum(members for *_, members in rows) > 0
    # The seeded C91.0 is merged with the WHO entry, not duplicated.
    assert session.execute(
        text("SELECT count(*) FROM catalogue_entries WHERE code = 'C91.0'")
    ).scalar_one() == 1


# --- search -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["ALL", "all", "lymphoblastic", "LYMPHOBLASTIC leuk",
                                   "lymphoblastik", "C91.0", "c91.0", "C910"])
def test_search_finds_c91_0(session: Session, query: str) -> None:
    assert ALL_SLUG in slugs(search.search(session, query, 10))


def test_search_finds_c91_0_by_its_spanish_name(session: Session) -> None:
    shipped = session.execute(
        text("SELECT count(*) FROM catalogue_names WHERE locale = 'es'")
    ).scalar_one()
    if not shipped:
        pytest.skip("no Spanish titles shipped (the cie package is missing)")
    for query in ("leucemia linfoblástica aguda", "LEUCEMIA LINFOBLASTICA AGUDA"):
        hits = search.search(session, query, 5)
        assert hits[0].slug == ALL_SLUG
        assert hits[0].matched == "Leucemia linfoblástica aguda" and hits[0].locale == "es"


def test_search_ranks_whole_names_and_codes_first(session: Session) -> None:
    assert search.search(session, "ALL", 5)[0].slug == ALL_SLUG  # the synonym, exactly
    assert slugs(search.search(session, "C91.0", 5)) == [ALL_SLUG]
    assert search.search(session, "orpha:399", 5)[0].slug == "orpha-399"
    assert search.search(session, "mucoviscidosis", 5)[0].slug == "cystic-fibrosis"


def test_search_ignores_accents_and_case(session: Session) -> None:
    assert slugs(search.search(session, "HUNTINGTON", 5)) == slugs(
        search.search(session, "huntíngton", 5))


@pytest.mark.parametrize("query", ["", "a", "x" * 101, "bad\x00"])
def test_search_refuses_too_short_or_long_queries(session: Session, query: str) -> None:
    with pytest.raises(ValueError, match="characters"):
        search.search(session, query)


def test_az_index_pages_do_not_overlap(session: Session) -> None:
    first = search.az_index(session, "a", 1, per_page=20)
    second = search.az_index(session, "A", 2, per_page=20)
    assert first.total == second.total > 40 and first.pages == second.pages
    assert not set(slugs(first.entries)) & set(slugs(second.entries))
    assert all(hit.name[0].lower() in "aáâ" for hit in first.entries + second.entries)
    with pytest.raises(ValueError):
        search.az_index(session, "AB")


# --- HTTP: search, index and requests -------------------------------------------------


@pytest.fixture
def catalogue_site(community_engine, tmp_path) -> Iterator[tuple]:
    """The app over the demo community (rolled back after): an admin, two members."""
    connection = community_engine.connect()
    transaction = connection.begin()
    sessions = sessions_on(connection)
    with sessions() as session:
        admin = create_admin(session, email="boss@example.org", password="a long password")
        first, first_member = add_member(session, "quiet-otter")
        second, _ = add_member(session, "brave-lynx")
        session.commit()
    app = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions))
    try:
        yield app, sessions, (admin.id, first, second, first_member)
    finally:
        transaction.rollback()
        connection.close()


def _csrf(client, url: str) -> str:  # noqa: ANN001
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_home_page_has_search_and_most_active_conditions(client) -> None:
    html = client.get("/").get_data(as_text=True)
    assert 'role="search"' in html and "Most active conditions" in html
    assert "Acute lymphocytic leukemia" in html
    assert "from A to Z" in html


def test_search_page_and_suggestions(client) -> None:
    html = client.get("/conditions?q=lymphoblastic").get_data(as_text=True)
    assert "/conditions/all" in html and "Acute lymphoblastic leukaemia" in html
    body = client.get("/api/v1/catalogue?q=C91.0").get_json()
    assert body["conditions"][0]["slug"] == ALL_SLUG
    assert body["conditions"][0]["enabled"] is True
    bad = client.get("/api/v1/catalogue?q=a")
    assert bad.status_code == 400 and "characters" in bad.get_json()["error"]["message"]
    short = client.get("/conditions?q=a")
    assert short.status_code == 200 and "characters" in short.get_data(as_text=True)


def test_az_index_pagination_and_bad_arguments(client) -> None:
    first = client.get("/conditions?letter=B").get_data(as_text=True)
    second = client.get("/conditions?letter=B&page=2").get_data(as_text=True)
    assert 'rel="next"' in first and 'rel="prev"' in second
    assert client.get("/conditions?letter=%3F%3F").status_code == 400
    assert client.get("/conditions?page=abc").status_code == 400
    assert client.get("/conditions?letter=B&page=9999").status_code == 404


def test_entry_page_shows_names_codes_and_map_link(client) -> None:
    html = client.get("/conditions/all").get_data(as_text=True)
    assert "See the world map" in html and "ICD-10 C91.0" in html
    assert "Leucemia linfoblástica aguda" in html or "lang=\"es\"" not in html
    closed = client.get("/conditions/orpha-399").get_data(as_text=True)
    assert "has no map yet" in closed and "Sign in" in closed
    assert client.get("/conditions/no-such-thing").status_code == 404


def test_requests_reach_the_admin_queue_and_members_hear_when_it_opens(catalogue_site) -> None:
    app, sessions, (admin_id, first, second, _) = catalogue_site
    for account in (first, second):
        member = app.test_client()
        sign_in(member, account)
        token = _csrf(member, "/conditions/orpha-399")
        response = member.post("/conditions/orpha-399/request", data={"csrf_token": token},
                               follow_redirects=True)
        assert "we will tell you here" in response.get_data(as_text=True)
        again = member.post("/conditions/orpha-399/request", data={"csrf_token": token},
                            follow_redirects=True)
        assert "already asked" in again.get_data(as_text=True)
    admin = app.test_client()
    sign_in(admin, admin_id)
    page = admin.get("/admin/conditions/").get_data(as_text=True)
    row = re.search(r'<tr data-slug="orpha-399">.*?</tr>', page, re.S).group(0)
    assert '<td class="askers">2</td>' in row
    token = _csrf(admin, "/admin/conditions/")
    opened = admin.post("/admin/conditions/orpha-399/enable", data={"csrf_token": token},
                        follow_redirects=True).get_data(as_text=True)
    assert "has a map from the next publish on" in opened
    assert 'data-slug="orpha-399"' not in opened.split("Maps members asked for")[1].split(
        "Conditions with a map")[0]
    member = app.test_client()
    sign_in(member, first)
    notice = "The map of <bdi>Huntington disease</bdi> you asked for is open now."
    assert notice in member.get("/").get_data(as_text=True)
    assert notice not in member.get("/").get_data(as_text=True)  # told once


def test_anonymous_visitors_cannot_ask_and_members_cannot_curate(catalogue_site) -> None:
    app, _, (_, first, _, _) = catalogue_site
    anonymous = app.test_client()
    assert anonymous.get("/admin/conditions/").status_code == 302
    member = app.test_client()
    sign_in(member, first)
    assert member.get("/admin/conditions/").status_code == 403
    token = _csrf(member, "/conditions/orpha-399")
    assert member.post("/admin/conditions/orpha-399/enable",
                       data={"csrf_token": token}).status_code == 403


def test_admin_page_changes_are_audited(catalogue_site) -> None:
    app, sessions, (admin_id, *_) = catalogue_site
    admin = app.test_client()
    sign_in(admin, admin_id)
    token = _csrf(admin, "/admin/conditions/?q=ORPHA:399")
    post = lambda change, **form: admin.post(  # noqa: E731
        f"/admin/conditions/orpha-399/{change}", data={"csrf_token": token, **form},
        follow_redirects=True).get_data(as_text=True)
    assert "has a map" in post("enable")
    assert "already has a map" in post("enable")  # a readable refusal, nothing audited
    assert "is now called <bdi>Huntington chorea</bdi>" in post("rename", name="Huntington chorea")
    assert "can now be found as <bdi>Chorée de Huntington</bdi>" in post(
        "add-synonym", synonym="Chorée de Huntington", locale="fr")
    assert "The name is empty." in post("rename", name="   ")
    assert "closes at the next publish" in post("disable")
    assert admin.post("/admin/conditions/orpha-399/explode",
                      data={"csrf_token": token}).status_code == 404
    with sessions() as session:
        lines = curate.audit_log(session)
        assert [(line.actor, line.action) for line in lines[:4]] == [
            ("admin:boss@example.org", "disable"), ("admin:boss@example.org", "add-synonym"),
            ("admin:boss@example.org", "rename"), ("admin:boss@example.org", "enable")]
        assert search.search(session, "choree de huntington", 3)[0].slug == "orpha-399"
    assert "Huntington disease -&gt; Huntington chorea" in admin.get(
        "/admin/conditions/").get_data(as_text=True)


# --- closing and opening maps ----------------------------------------------------------


def _cells(session: Session, condition_id: int) -> list[tuple]:
    return session.execute(
        text("SELECT resolution, cell, cell_resolution, count FROM published_cells "
             "WHERE condition_id = :c ORDER BY 1, 2"), {"c": condition_id}).all()


def test_disabled_map_is_gone_members_data_intact_and_comes_back(catalogue_site) -> None:
    app, sessions, _ = catalogue_site
    client = app.test_client()
    with sessions() as session:
        cid = session.execute(text("SELECT id FROM conditions WHERE slug = 'aml'")).scalar_one()
        links = session.execute(
            text("SELECT count(*) FROM member_conditions WHERE condition_id = :c"), {"c": cid}
        ).scalar_one()
        cells_before = _cells(session, cid)
        assert links > 0 and cells_before
        curate.disable(session, curate.require_entry(session, "aml"), "test")
        assert published.condition(session, "aml") is None  # gone at once from the pages
        summary = publish(session, k=K, floor=FLOOR)
        session.commit()
        assert summary.kind == "incremental"
        assert _cells(session, cid) == []
        assert session.execute(
            text("SELECT count(*) FROM published_regions WHERE condition_id = :c"), {"c": cid}
        ).scalar_one() == 0
        assert session.execute(
            text("SELECT count(*) FROM member_conditions WHERE condition_id = :c"), {"c": cid}
        ).scalar_one() == links
    for url in ("/conditions/aml/map", "/embed/conditions/aml/map",
                "/api/v1/conditions/aml/cells?zoom=2", "/api/v1/conditions/aml/regions"):
        response = client.get(url)
        assert response.status_code == 404, url
        # The name is isolated in <bdi> on pages, plain text in the API's JSON.
        name = ("Acute myeloid leukemia" if url.startswith("/api/")
                else "<bdi>Acute myeloid leukemia</bdi>")
        assert f"{name} has no map" in response.get_data(as_text=True), url
    assert "/conditions/aml/map" not in client.get("/").get_data(as_text=True)
    assert "aml" not in [c["slug"] for c in client.get("/api/v1/conditions").get_json()[
        "conditions"]]
    with sessions() as session:
        curate.enable(session, curate.require_entry(session, "aml"), "test")
        session.commit()
    assert client.get("/conditions/aml/map").status_code == 200  # open; filled at publish
    with sessions() as session:
        assert _cells(session, cid) == []
        publish(session, k=K, floor=FLOOR)
        session.commit()
        assert _cells(session, cid) == cells_before
    assert client.get("/api/v1/conditions/aml/cells?zoom=2").get_json()["features"]


def test_a_newly_enabled_condition_gets_its_map_at_the_next_publish(catalogue_site) -> None:
    _, sessions, (_, _, _, member_id) = catalogue_site
    with sessions() as session:
        entry = curate.enable(session, curate.require_entry(session, "ORPHA:399"), "test")
        session.execute(
            text("INSERT INTO member_conditions (condition_id, member_id) "
                 "SELECT :c, mc.member_id FROM member_conditions mc JOIN conditions c "
                 "ON c.id = mc.condition_id WHERE c.slug = 'cml'"), {"c": entry.condition_id})
        assert published.condition(session, "orpha-399").published == 0
        publish(session, k=K, floor=FLOOR)
        session.commit()
        condition = published.condition(session, "orpha-399")
        cml = published.condition(session, "cml")
        assert condition.published == cml.published > 0
        assert member_id  # the fixture's member keeps their own conditions


# --- CLI ---------------------------------------------------------------------------------


def _geomap(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GEOMAP_DATABASE_URL": url,
           "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([sys.executable, "-m", "geomap.cli", "conditions", *args], env=env,
                          capture_output=True, text=True, check=False, timeout=600)


def test_cli_changes_are_audited_and_errors_are_plain(fresh_db_url: str) -> None:
    assert "has a map from the next publish on" in _geomap(fresh_db_url, "enable",
                                                           "ORPHA:399").stdout
    assert "is now called" in _geomap(fresh_db_url, "rename", "orpha-399", "HD").stdout
    assert "can now be found" in _geomap(fresh_db_url, "add-synonym", "orpha-399",
                                         "Enfermedad de Huntington", "--locale", "es").stdout
    assert "closes at the next publish" in _geomap(fresh_db_url, "disable", "orpha-399").stdout
    for args, message in [(("enable", "nope"), "There is no condition 'nope'"),
                          (("disable", "orpha-399"), "has no map to close"),
                          (("add-synonym", "all", "x", "--locale", "Spanish!"), "language")]:
        result = _geomap(fresh_db_url, *args)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    engine = create_engine(fresh_db_url)
    with Session(engine) as session:
        rows = session.execute(
            text("SELECT actor, action FROM condition_audit ORDER BY id")).all()
    engine.dispose()
    assert [action for _, action in rows] == ["enable", "rename", "add-synonym", "disable"]
    assert all(actor.startswith("cli:") for actor, _ in rows)


def test_cli_import_is_idempotent(fresh_db_url: str) -> None:
    result = _geomap(fresh_db_url, "import")
    assert result.returncode == 0, result.stderr
    assert "0 entries added" in result.stdout and "0 names" in result.stdout


def test_cli_import_prints_our_summary_and_none_of_the_ontology_librarys_chatter(
        fresh_db_url: str) -> None:
    # hpo3 prints "The Ontology has been built before already" from Rust (to file
    # descriptor 1) when the ontology is built twice; the import builds it once, quietly.
    result = _geomap(fresh_db_url, "import")
    assert result.returncode == 0, result.stderr
    assert "Ontology" not in result.stdout + result.stderr
    assert "has been built" not in result.stdout + result.stderr
    summary = [line for line in result.stdout.splitlines() if line.startswith("Catalogue: ")]
    assert len(summary) == 1 and "entries added" in summary[0] and "codes added" in summary[0]
