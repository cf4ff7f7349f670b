"""Soulmates privacy on a real PostGIS (hypothesis).

- Moving another member inside their floor cell changes no byte of the soulmates
  list (page and API) or the soulmates map.
- Members who did not opt in, or withdrew, never appear, and their symptoms never
  change a byte of anyone else's answers.
- An attacker who changes their own symptoms one term at a time learns nothing about
  members who did not opt in, and of opted-in ones sees only the symptoms both list.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import h3.api.basic_int as h3i
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from geomap import create_app
from geomap.members import queries as member_queries
from geomap.symptoms import queries
from tests.conftest import FLOOR, app_config, sessions_on
from tests.members_helpers import add_member, sign_in
from tests.test_nearby import point_in_cell, strip_csrf

SLOW = settings(max_examples=12, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
HPO_ID = re.compile(rb"HP:\d{7}")


@contextmanager
def example_rolled_back(connection, session):
    """Roll back whatever one hypothesis example changes, even when it fails."""
    outer = connection.begin_nested()
    try:
        yield
    finally:
        session.rollback()
        outer.rollback()


def unlimited_app(connection, tmp_path):
    """The app over the transaction, rate limits lifted and CSRF off."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 RATELIMIT_ENABLED=False, WTF_CSRF_ENABLED=False))


def demo_all_profile(session) -> list[str]:
    """The symptoms of the first opted-in demo member with ALL (a typical ALL profile)."""
    return session.execute(text(
        "SELECT t.hpo_id FROM member_symptoms s JOIN hpo_terms t ON t.id = s.term_id "
        "WHERE s.member_id = (SELECT p.member_id FROM soulmate_profiles p JOIN nearby_members n "
        "ON n.member_id = p.member_id JOIN conditions c ON c.id = n.condition_id "
        "AND c.slug = 'all' ORDER BY p.member_id LIMIT 1) ORDER BY 1")).scalars().all()


@pytest.fixture
def observer(session):
    """A member with ALL in Frankfurt, opted in with a typical ALL profile."""
    account, member = add_member(session, "frankfurt-soul", lat=50.11, lng=8.68)
    for symptom in demo_all_profile(session):
        queries.add_symptom(session, member, symptom)
    queries.set_matching(session, member, True)
    session.commit()
    return account, member


def observe(client) -> list[bytes]:
    """Everything the observer can load about soulmates: pages (list and map) and API."""
    seen = []
    for url in ("/api/v1/soulmates?condition=all", "/api/v1/soulmates?every=1",
                "/soulmates?condition=all", "/soulmates?every=1"):
        response = client.get(url)
        assert response.status_code == 200, url
        seen.append(strip_csrf(response.get_data(as_text=True)).encode())
    return seen


def listed(client, every: bool = True) -> set[str]:
    """Pseudonyms the observer's soulmates list shows."""
    url = "/api/v1/soulmates?every=1" if every else "/api/v1/soulmates?condition=all"
    return {m["pseudonym"] for m in client.get(url).get_json()["members"]}


def check_moving_a_soulmate_inside_its_cell_changes_no_byte(connection, tmp_path, session,
                                                            observer, data) -> None:
    client = unlimited_app(connection, tmp_path).test_client()
    sign_in(client, observer[0])
    before = observe(client)
    names = sorted(listed(client))
    assert names
    victim, cell = session.execute(text(
        "SELECT m.id, ml.floor_cell FROM members m JOIN member_locations ml "
        "ON ml.member_id = m.id WHERE m.pseudonym = :name"),
        {"name": data.draw(st.sampled_from(names), label="soulmate")}).one()
    lat, lng = point_in_cell(cell, data.draw(st.integers(0, 5)), data.draw(st.floats(0, 1)),
                             data.draw(st.floats(0, 1)))
    assert h3i.latlng_to_cell(lat, lng, FLOOR) == cell
    member_queries.set_location(session, victim, lat, lng, floor=FLOOR)
    session.commit()
    assert observe(client) == before


def term_pool(session) -> list[str]:
    """Phenotype terms to draw symptom sets from: the ALL pool plus unrelated ones."""
    return session.execute(text(
        "(SELECT DISTINCT t.hpo_id FROM member_symptoms s JOIN hpo_terms t ON t.id = s.term_id "
        "ORDER BY 1 LIMIT 60) UNION (SELECT hpo_id FROM hpo_terms WHERE ic > 3 "
        "ORDER BY id LIMIT 40)")).scalars().all()


def check_members_who_did_not_opt_in_never_show_and_their_symptoms_change_nothing(
        connection, tmp_path, session, observer, data) -> None:
    client = unlimited_app(connection, tmp_path).test_client()
    sign_in(client, observer[0])
    hidden_ids = session.execute(text(
        "SELECT n.member_id FROM nearby_members n JOIN conditions c ON c.id = n.condition_id "
        "AND c.slug = 'all' WHERE NOT EXISTS (SELECT 1 FROM symptom_matching o "
        "WHERE o.member_id = n.member_id) ORDER BY n.member_id LIMIT 8")).scalars().all()
    before = observe(client)
    pool = term_pool(session) + demo_all_profile(session)
    for member in hidden_ids:
        session.execute(text("DELETE FROM member_symptoms WHERE member_id = :id"), {"id": member})
        for symptom in data.draw(st.lists(st.sampled_from(pool), max_size=12, unique=True)):
            queries.add_symptom(session, member, symptom)
    # One listed soulmate withdraws: gone at once, and their symptoms matter no more.
    withdrawn_name = sorted(listed(client))[0]
    withdrawn = session.execute(text("SELECT id FROM members WHERE pseudonym = :n"),
                                {"n": withdrawn_name}).scalar_one()
    queries.set_matching(session, withdrawn, False)
    session.commit()
    after_withdrawal = observe(client)
    assert all(withdrawn_name.encode() not in body for body in after_withdrawal)
    hidden_names = session.execute(text("SELECT pseudonym FROM members WHERE id = ANY(:ids)"),
                                   {"ids": hidden_ids}).scalars().all()
    for body in after_withdrawal + before:
        assert not any(name.encode() in body for name in hidden_names)
    session.execute(text("DELETE FROM member_symptoms WHERE member_id = :id"), {"id": withdrawn})
    for symptom in data.draw(st.lists(st.sampled_from(pool), max_size=12, unique=True)):
        queries.add_symptom(session, withdrawn, symptom)
    session.commit()
    assert observe(client) == after_withdrawal


def check_an_attacker_probing_term_by_term_sees_only_shared_symptoms(
        connection, tmp_path, session, data) -> None:
    pool = term_pool(session)
    attacker_account, attacker = add_member(session, "probing-pike", lat=50.0, lng=8.0)
    queries.set_matching(session, attacker, True)
    _a, opted = add_member(session, "opted-otter", lat=49.0, lng=9.0)
    _b, shy = add_member(session, "shy-shrew", lat=49.5, lng=9.5)
    opted_set = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=10, unique=True))
    for symptom in opted_set:
        queries.add_symptom(session, opted, symptom)
    queries.set_matching(session, opted, True)
    shy_sets = [data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=10, unique=True))
                for _ in range(2)]
    probes = data.draw(st.lists(st.sampled_from(pool + opted_set), min_size=1, max_size=8,
                                unique=True), label="probes")
    session.commit()
    client = unlimited_app(connection, tmp_path).test_client()
    sign_in(client, attacker_account)

    def probe() -> list[bytes]:
        """Add the probe terms one at a time, reading the soulmates after each, then clear."""
        seen, mine = [], set()
        for term in probes:
            assert client.post("/api/v1/me/symptoms", json={"hpo_id": term}).status_code == 201
            mine.add(term)
            for every in ("every=1", "condition=all"):
                body = client.get(f"/api/v1/soulmates?{every}")
                assert body.status_code == 200
                seen.append(body.data)
                # Symptoms in the answer are only ever ones the attacker listed...
                assert {m.decode() for m in HPO_ID.findall(body.data)} <= mine
                for member in body.get_json()["members"]:
                    assert set(member) == {"pseudonym", "role", "similarity", "place",
                                           "distance_band", "shared_symptoms"}
                    assert member["similarity"] in ("very similar", "similar")
                    if member["pseudonym"] == "opted-otter":  # ...exactly those both list
                        assert {s["hpo_id"] for s in member["shared_symptoms"]} == (
                            mine & set(opted_set))
                    assert member["pseudonym"] != "shy-shrew"
        for term in probes:
            client.delete(f"/api/v1/me/symptoms/{term}")
        return seen

    views = []
    for shy_set in shy_sets:  # the shy member's symptoms (no opt-in) change nothing
        session.execute(text("DELETE FROM member_symptoms WHERE member_id = :id"), {"id": shy})
        for symptom in shy_set:
            queries.add_symptom(session, shy, symptom)
        session.commit()
        views.append(probe())
    assert views[0] == views[1]



@SLOW
@given(data=st.data())
def test_moving_a_soulmate_inside_its_cell_changes_no_byte(
        connection, tmp_path, session, observer, data) -> None:
    with example_rolled_back(connection, session):
        check_moving_a_soulmate_inside_its_cell_changes_no_byte(
            connection, tmp_path, session, observer, data)


@SLOW
@given(data=st.data())
def test_members_who_did_not_opt_in_never_show_and_their_symptoms_change_nothing(
        connection, tmp_path, session, observer, data) -> None:
    with example_rolled_back(connection, session):
        check_members_who_did_not_opt_in_never_show_and_their_symptoms_change_nothing(
            connection, tmp_path, session, observer, data)


@SLOW
@given(data=st.data())
def test_an_attacker_probing_term_by_term_sees_only_shared_symptoms(
        connection, tmp_path, session, data) -> None:
    with example_rolled_back(connection, session):
        check_an_attacker_probing_term_by_term_sees_only_shared_symptoms(
            connection, tmp_path, session, data)
