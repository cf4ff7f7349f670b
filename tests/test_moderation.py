"""Trust and safety: look-alike pseudonyms, reciprocity, reports, the moderation queue."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from geomap import create_app
from geomap.auth.accounts import AccountError, create_admin, create_member_account
from geomap.members import queries
from geomap.members.pseudonyms import pseudonym_key
from tests.conftest import app_config, sessions_on
from tests.members_helpers import add_member, sign_in


@pytest.fixture
def app(connection, tmp_path):
    """The app over the rolled-back transaction (CSRF off: behaviour, not forms)."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False))


def client_for(app, account_id: int):
    client = app.test_client()
    sign_in(client, account_id)
    return client


@pytest.fixture
def reported_thread(app, session):
    """Ada reported Bo's second message: (ada, bo, moderator, admin clients, ids)."""
    ada = add_member(session, "ada-otter", lat=53.55, lng=10.0)
    bo = add_member(session, "bo-heron", lat=53.6, lng=9.9)
    moderator = create_admin(session, email="mod@example.org", password="a long password",
                             role="moderator")
    admin = create_admin(session, email="boss@example.org", password="a long password")
    session.commit()
    ada_c, bo_c = client_for(app, ada[0]), client_for(app, bo[0])
    assert ada_c.post("/connect/bo-heron", data={"message": "Hi"}).status_code == 302
    connection_id = bo_c.get("/api/v1/connections").get_json()["connections"][0]["id"]
    assert bo_c.post(f"/connections/{connection_id}/accept").status_code == 302
    for body in ("Hello Ada", "Buy my miracle cure", "Really, buy it"):
        assert bo_c.post(f"/connections/{connection_id}", data={"body": body}).status_code == 302
    messages = ada_c.get(f"/api/v1/connections/{connection_id}/messages").get_json()["messages"]
    reported = messages[1]["id"]
    assert ada_c.post(f"/messages/{reported}/report",
                      data={"reason": "spam", "details": "sells a cure"}).status_code == 302
    return {"ada": ada_c, "bo": bo_c, "moderator": client_for(app, moderator.id),
            "admin": client_for(app, admin.id), "connection": connection_id,
            "message": reported, "bo_member": bo[1]}


def _report_id(session) -> int:
    return session.execute(text("SELECT max(id) FROM message_reports")).scalar_one()


# --- pseudonyms --------------------------------------------------------------------


@pytest.mark.parametrize("taken, attempt", [
    ("ada-otter", "ADA-OTTER"),
    ("ada-otter", "Ada-Otter"),
    ("ada-otter", "аda-otter"),  # Cyrillic а
    ("ada-otter", "ａｄａ-ｏｔｔｅｒ"),  # full-width
    ("ada-otter", "ada\u200b-otter"),  # zero-width space
    ("paypal", "pаypаl"),
])
def test_look_alike_pseudonyms_are_refused(session, taken, attempt) -> None:
    create_member_account(session, pseudonym=taken, email="first@example.org",
                          password="correct horse battery")
    with pytest.raises(AccountError, match="looks the same"):
        create_member_account(session, pseudonym=attempt, email="second@example.org",
                              password="correct horse battery")


def test_the_database_refuses_a_second_member_with_the_same_key(session) -> None:
    create_member_account(session, pseudonym="Name", email="a@example.org",
                          password="correct horse battery")
    with pytest.raises(IntegrityError):
        session.execute(text("INSERT INTO members (pseudonym, pseudonym_key, role, visibility, "
                             "contactable) VALUES ('NAME', :key, 'patient', 'map', true)"),
                        {"key": pseudonym_key("NAME")})
        session.flush()


def test_different_names_keep_different_keys() -> None:
    assert pseudonym_key("ada-otter") != pseudonym_key("ada-heron")
    assert pseudonym_key("  ada  otter ") == pseudonym_key("ada otter")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_ ", min_size=1, max_size=30))
def test_case_never_changes_the_key(name: str) -> None:
    assert pseudonym_key(name) == pseudonym_key(name.upper()) == pseudonym_key(name.title())


# --- reciprocity ---------------------------------------------------------------------


def test_hidden_members_cannot_search_or_send_requests(app, session) -> None:
    hidden = add_member(session, "shy-owl", lat=53.55, lng=10.0, visibility="hidden")
    add_member(session, "bo-heron", lat=53.6, lng=9.9)
    session.commit()
    client = client_for(app, hidden[0])
    page = client.get("/nearby?condition=all").get_data(as_text=True)
    assert "Only members who can be found can search nearby" in page
    assert "bo-heron" not in page and 'class="nearby-list"' not in page
    api = client.get("/api/v1/nearby?condition=all")
    assert api.status_code == 409 and "can be found" in api.get_json()["error"]["message"]
    assert "can be found" in client.get("/connect/bo-heron").get_data(as_text=True)
    refused = client.post("/api/v1/connections", json={"to": "bo-heron", "message": "hi"})
    assert refused.status_code == 409
    # Back on the map (as the settings page does it), the same member may search.
    queries.update_profile(session, hidden[1], role="patient", visibility="map",
                           contactable=True, condition_slugs=["all"])
    session.commit()
    listed = client.get("/api/v1/nearby?condition=all").get_json()["members"]
    assert "bo-heron" in {m["pseudonym"] for m in listed}


def test_members_off_a_conditions_map_cannot_search_it(app, session) -> None:
    """Reciprocity per map: only who is on a condition's nearby list may search it.

    A newcomer who saved a place but joined no map found 20 ALL members per page and
    could be found by nobody (a newcomer helper's report).
    """
    newcomer = add_member(session, "pin-pete", lat=53.55, lng=10.0, conditions=())
    quiet = add_member(session, "quiet-wren", lat=53.55, lng=10.0, contactable=False)
    add_member(session, "bo-heron", lat=53.6, lng=9.9)
    session.commit()
    for member, _id in (newcomer, quiet):
        client = client_for(app, member)
        api = client.get("/api/v1/nearby?condition=all")
        assert api.status_code == 409
        assert "join the map and allow contact" in api.get_json()["error"]["message"]
        page = client.get("/nearby?condition=all").get_data(as_text=True)
        assert "join the map and allow contact" in page and "bo-heron" not in page
    # Joined (and contactable), the newcomer may search the map they are on.
    queries.update_profile(session, newcomer[1], role="patient", visibility="map",
                           contactable=True, condition_slugs=["all"])
    session.commit()
    listed = client_for(app, newcomer[0]).get("/api/v1/nearby?condition=all").get_json()
    assert "bo-heron" in {m["pseudonym"] for m in listed["members"]}


# --- nearby: connection states, filters, optional profile ----------------------------


def test_nearby_shows_requested_and_connected_and_filters(app, session) -> None:
    ada = add_member(session, "ada-otter", lat=53.55, lng=10.0)
    add_member(session, "bo-heron", lat=53.6, lng=9.9)
    add_member(session, "cy-carer", lat=53.5, lng=10.1, role="carer")
    add_member(session, "di-far", lat=48.14, lng=11.58)
    session.commit()
    client = client_for(app, ada[0])

    def mine(**args):
        query = "&".join(f"{k}={v}" for k, v in args.items())
        found, page = {}, 1
        while True:
            answer = client.get(f"/api/v1/nearby?condition=all&page={page}&{query}").get_json()
            found |= {m["pseudonym"]: m for m in answer["members"]
                      if m["pseudonym"] in {"bo-heron", "cy-carer", "di-far"}}
            if not answer["has_next"]:
                return found
            page += 1

    assert {m["connection"] for m in mine().values()} == {None}
    assert client.post("/connect/bo-heron", data={"message": "Hi"}).status_code == 302
    assert mine()["bo-heron"]["connection"] == "requested"
    page = client.get("/nearby?condition=all&role=patient&band=0").get_data(as_text=True)
    start = page.index('<strong class="pseudonym"><bdi>bo-heron</bdi>')
    bo_entry = page[start:page.index("</li>", start)]
    assert "Requested" in bo_entry and "connect-link" not in bo_entry
    assert set(mine(role="carer")) == {"cy-carer"}
    assert set(mine(band=0)) == {"bo-heron", "cy-carer"}
    assert "di-far" in mine() and "di-far" not in mine(band=0)
    assert client.get("/api/v1/nearby?condition=all&band=9").status_code == 400
    assert client.get("/nearby?condition=all&role=pirate").status_code == 400


def test_optional_profile_is_saved_shown_to_members_exported_and_deleted(app, session) -> None:
    ada = add_member(session, "ada-otter", lat=53.55, lng=10.0)
    bo = add_member(session, "bo-heron", lat=53.6, lng=9.9)
    session.commit()
    ada_c, bo_c = client_for(app, ada[0]), client_for(app, bo[0])
    saved = ada_c.post("/settings", data={
        "conditions": ["all"], "role": "relative", "visibility": "map", "contactable": "y",
        "introduction": "Mum of a 9-year-old in maintenance.", "age_group": "child",
        "treatment_phase": "maintenance"})
    assert saved.status_code == 302
    listed = {m["pseudonym"]: m for m in
              bo_c.get("/api/v1/nearby?condition=all").get_json()["members"]}
    assert listed["ada-otter"]["age_group"] == "child"
    assert listed["ada-otter"]["treatment_phase"] == "maintenance"
    assert "Mum of a 9-year-old" in bo_c.get("/nearby?condition=all").get_data(as_text=True)
    assert ada_c.post("/connect/bo-heron", data={"message": "Hi"}).status_code == 302
    incoming = bo_c.get("/connections").get_data(as_text=True)
    assert "Mum of a 9-year-old" in incoming and "Maintenance" in incoming
    exported = ada_c.get("/my-data/export.json").get_json()["member"]
    assert exported["introduction"].startswith("Mum") and exported["age_group"] == "child"
    # Nothing of it reaches anonymous visitors or the public API.
    assert "Mum of" not in app.test_client().get("/conditions/all/map").get_data(as_text=True)
    bad = ada_c.post("/settings", data={"conditions": ["all"], "role": "relative",
                                       "visibility": "map", "age_group": "elder"})
    assert bad.status_code == 400
    assert ada_c.post("/my-data/delete", data={"confirm": "DELETE"}).status_code == 302
    assert session.execute(text("SELECT count(*) FROM members WHERE introduction LIKE 'Mum%'")
                           ).scalar_one() == 0


# --- blocking asks first -------------------------------------------------------------


def test_block_asks_for_confirmation(app, session) -> None:
    ada = add_member(session, "ada-otter", lat=53.55, lng=10.0)
    add_member(session, "bo-heron", lat=53.6, lng=9.9)
    session.commit()
    client = client_for(app, ada[0])
    page = client.get("/members/bo-heron/block").get_data(as_text=True)
    assert "Block bo-heron?" in page and "is not told" in page
    assert session.execute(text("SELECT count(*) FROM member_blocks")).scalar_one() == 0
    assert client.post("/members/bo-heron/block").status_code == 302
    assert session.execute(text("SELECT count(*) FROM member_blocks")).scalar_one() == 1


# --- the moderation queue ------------------------------------------------------------


def test_queue_is_for_moderators_and_log_for_admins(app, session, reported_thread) -> None:
    assert reported_thread["ada"].get("/moderation").status_code == 403
    assert app.test_client().get("/moderation").status_code == 302  # sign in first
    queue = reported_thread["moderator"].get("/moderation")
    page = queue.get_data(as_text=True)
    assert queue.status_code == 200
    # The reported message in its thread, the reason and both pseudonyms.
    for expected in ("Hello Ada", "Buy my miracle cure", "Really, buy it", "sells a cure",
                     "ada-otter", "bo-heron"):
        assert expected in page
    assert "@example.org" not in page
    assert reported_thread["moderator"].get("/moderation/log").status_code == 403
    assert reported_thread["admin"].get("/moderation").status_code == 200


def test_the_default_warning_reaches_the_member_in_their_language(
        app, session, reported_thread) -> None:
    """A warning without a note is the community rules, in the reader's language."""
    report = _report_id(session)
    assert reported_thread["moderator"].post(
        f"/moderation/reports/{report}", data={"action": "warn", "note": ""}).status_code == 302
    bo = reported_thread["bo"]
    english = bo.get("/settings").get_data(as_text=True)
    assert "A moderator warned you: <bdi>Please keep to the community rules" in english
    german = bo.get("/settings?lang=de").get_data(as_text=True)
    assert "Bitte halte dich an die Gemeinschaftsregeln" in german
    assert "Please keep to the community rules" not in german


@pytest.mark.parametrize("action", ["dismiss", "warn", "hide", "suspend", "delete"])
def test_each_action_works_and_is_logged(app, session, reported_thread, action) -> None:
    report = _report_id(session)
    moderator = reported_thread["moderator"]
    answer = moderator.post(f"/moderation/reports/{report}",
                            data={"action": action, "note": "Please stop selling."})
    assert answer.status_code == 302
    assert "No open reports" in moderator.get("/moderation").get_data(as_text=True)
    log = reported_thread["admin"].get("/moderation/log").get_data(as_text=True)
    assert "mod@example.org" in log and f"<td>{action}</td>" in log
    bo, ada = reported_thread["bo"], reported_thread["ada"]
    thread_url = f"/connections/{reported_thread['connection']}"
    if action == "warn":
        settings = bo.get("/settings").get_data(as_text=True)
        assert "A moderator warned you: <bdi>Please stop selling.</bdi>" in settings
        bo.post("/warning/acknowledge")
        assert "warned you" not in bo.get("/settings").get_data(as_text=True)
    elif action == "hide":
        page = ada.get(thread_url).get_data(as_text=True)
        assert "miracle cure" not in page and "A moderator has hidden this message" in page
        assert "Hello Ada" in page
    elif action == "suspend":
        api = f"/api/v1/connections/{reported_thread['connection']}/messages"
        assert bo.post(api, json={"body": "still here"}).status_code == 409
        assert "suspended your account" in bo.get("/settings").get_data(as_text=True)
        listed = ada.get("/api/v1/nearby?condition=all").get_json()["members"]
        assert "bo-heron" not in {m["pseudonym"] for m in listed}
    elif action == "delete":
        assert session.execute(text("SELECT count(*) FROM members WHERE id = :id"),
                               {"id": reported_thread["bo_member"]}).scalar_one() == 0
    # A handled report cannot be acted on twice.
    again = moderator.post(f"/moderation/reports/{report}", data={"action": "dismiss"})
    assert again.status_code == 302
    assert "not open any more" in moderator.get("/moderation").get_data(as_text=True)


def test_a_suspension_is_lifted_from_the_moderation_page_and_logged(app, session,
                                                                   reported_thread) -> None:
    moderator, bo, ada = (reported_thread[k] for k in ("moderator", "bo", "ada"))
    member = reported_thread["bo_member"]
    moderator.post(f"/moderation/reports/{_report_id(session)}", data={"action": "suspend"})
    page = moderator.get("/moderation").get_data(as_text=True)
    assert "Lift the suspension of <bdi>bo-heron</bdi>" in page
    api = f"/api/v1/connections/{reported_thread['connection']}/messages"
    assert bo.post(api, json={"body": "still here"}).status_code == 409
    # Members cannot lift it; a moderator can, with a note kept in the log.
    assert bo.post(f"/moderation/members/{member}/unsuspend").status_code == 403
    answer = moderator.post(f"/moderation/members/{member}/unsuspend",
                            data={"note": "Apologised by mail."})
    assert answer.status_code == 302
    page = moderator.get("/moderation").get_data(as_text=True)
    assert "bo-heron&#39;s suspension is lifted." in page and "Nobody is suspended." in page
    log = reported_thread["admin"].get("/moderation/log").get_data(as_text=True)
    assert "<td>unsuspend</td><td></td><td>bo-heron</td><td>Apologised by mail.</td>" in log
    # Bo may write again and is listed in nearby again; his settings show no suspension.
    assert bo.post(api, json={"body": "back again"}).status_code in (200, 201)
    assert "suspended your account" not in bo.get("/settings").get_data(as_text=True)
    listed = ada.get("/api/v1/nearby?condition=all").get_json()["members"]
    assert "bo-heron" in {m["pseudonym"] for m in listed}
    # Lifting twice, or for someone never suspended, is refused with a message.
    moderator.post(f"/moderation/members/{member}/unsuspend")
    assert "This member is not suspended." in moderator.get("/moderation").get_data(as_text=True)
    assert session.execute(text("SELECT count(*) FROM moderation_log WHERE action = 'unsuspend'")
                           ).scalar_one() == 1


def test_unknown_action_is_refused(app, session, reported_thread) -> None:
    report = _report_id(session)
    moderator = reported_thread["moderator"]
    moderator.post(f"/moderation/reports/{report}", data={"action": "ban-forever"})
    assert "Buy my miracle cure" in moderator.get("/moderation").get_data(as_text=True)
    assert session.execute(text("SELECT count(*) FROM moderation_log")).scalar_one() == 0


def test_moderator_create_from_the_cli(fresh_db_url, tmp_path) -> None:
    env = {"GEOMAP_DATABASE_URL": fresh_db_url, "GEOMAP_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "geomap.cli", "admin", "create", "mod@example.org",
         "--role", "moderator"],
        input="a long moderator password\n", env=env, capture_output=True, text=True,
        check=False)
    assert result.returncode == 0, result.stderr
    assert "/moderation" in result.stdout
    engine = create_engine(fresh_db_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT is_admin, is_moderator FROM accounts "
                                "WHERE email = 'mod@example.org'")).one()
    engine.dispose()
    assert tuple(row) == (False, True)


def test_import_refuses_look_alikes_of_taken_and_repeated_pseudonyms(session, tmp_path) -> None:
    from geomap.ingest.importer import read_records, validate

    create_member_account(session, pseudonym="harbor-otter", email="h@example.org",
                          password="correct horse battery")
    path = tmp_path / "members.csv"
    path.write_text(
        "pseudonym,lat,lng,conditions\n"
        "HARBOR-OTTER,53.55,9.99,all\n"  # taken, in capitals
        "quiet-lark,45.76,4.83,all\n"
        "quiet-lаrk,45.76,4.83,all\n"  # repeats it with a Cyrillic а
    )
    validated = validate(session, read_records(path))
    assert validated.batch.pseudonyms == ["quiet-lark"]
    reasons = sorted(error.reason for error in validated.errors)
    assert reasons[0] == "pseudonym is taken already"
    assert reasons[1].startswith("pseudonym repeats")
