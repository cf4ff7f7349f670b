"""Connections, messages, blocks and reports; and who may read what."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geomap import create_app
from geomap.members import social
from tests.conftest import app_config, sessions_on
from tests.members_helpers import add_member, sign_in


@pytest.fixture
def app(connection, tmp_path):
    """The app over the transaction (CSRF off: these tests are about behaviour)."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False))


@pytest.fixture
def three_members(session):
    """Ada and Bo near Hamburg, Cy near Munich: (account id, member id) each."""
    members = {
        "ada-otter": add_member(session, "ada-otter", lat=53.55, lng=10.0),
        "bo-heron": add_member(session, "bo-heron", lat=53.6, lng=9.9),
        "cy-wren": add_member(session, "cy-wren", lat=48.14, lng=11.58),
    }
    session.commit()
    return members


def client_for(app, account_id: int):
    client = app.test_client()
    sign_in(client, account_id)
    return client


@pytest.fixture
def connected(app, three_members):
    """Ada asked Bo, Bo accepted and wrote once: (ada client, bo client, connection id)."""
    ada = client_for(app, three_members["ada-otter"][0])
    bo = client_for(app, three_members["bo-heron"][0])
    response = ada.post("/connect/bo-heron", data={"message": "Hi <b>Bo</b>!"})
    assert response.status_code == 302
    connection_id = bo.get("/api/v1/connections").get_json()["connections"][0]["id"]
    assert bo.post(f"/connections/{connection_id}/accept").status_code == 302
    assert bo.post(f"/connections/{connection_id}", data={"body": "Hello Ada <script>x</script>"}
                   ).status_code == 302
    return ada, bo, connection_id


def test_request_accept_and_exchange_messages(app, three_members, connected) -> None:
    ada, bo, connection_id = connected
    # Ada sees one unread message in the header, then reads it.
    assert ada.get("/api/v1/me/unread").get_json() == {"requests": 0, "messages": 1}
    assert 'id="unread-count"' in ada.get("/").get_data(as_text=True)
    page = ada.get(f"/connections/{connection_id}").get_data(as_text=True)
    assert "Hello Ada &lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert ada.get("/api/v1/me/unread").get_json() == {"requests": 0, "messages": 0}
    assert ada.post(f"/api/v1/connections/{connection_id}/messages",
                    json={"body": "Hi again"}).status_code == 201
    thread = bo.get(f"/api/v1/connections/{connection_id}/messages").get_json()
    assert [m["body"] for m in thread["messages"]] == ["Hello Ada <script>x</script>", "Hi again"]
    assert "email" not in str(thread) and "@" not in str(thread)


def test_request_shows_in_the_recipients_header_and_is_escaped(app, three_members) -> None:
    ada = client_for(app, three_members["ada-otter"][0])
    cy = client_for(app, three_members["cy-wren"][0])
    ada.post("/connect/cy-wren", data={"message": "<img src=x onerror=alert(1)>"})
    page = cy.get("/connections").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert cy.get("/api/v1/me/unread").get_json() == {"requests": 1, "messages": 0}


def test_decline_and_no_duplicate_requests(app, three_members) -> None:
    ada = client_for(app, three_members["ada-otter"][0])
    cy = client_for(app, three_members["cy-wren"][0])
    ada.post("/connect/cy-wren", data={"message": "hi"})
    cid = cy.get("/api/v1/connections").get_json()["connections"][0]["id"]
    assert cy.post(f"/connections/{cid}/decline").status_code == 302
    again = ada.post("/api/v1/connections", json={"to": "cy-wren", "message": "please"})
    assert again.status_code == 409
    assert ada.post(f"/api/v1/connections/{cid}/messages", json={"body": "x"}).status_code == 409


def test_block_stops_messages_requests_and_nearby_both_ways(app, session, three_members,
                                                            connected) -> None:
    ada, bo, connection_id = connected
    near = {m["pseudonym"] for m in ada.get("/api/v1/nearby?condition=all").get_json()["members"]}
    assert "bo-heron" in near
    assert ada.post("/members/bo-heron/block").status_code == 302
    assert bo.post(f"/api/v1/connections/{connection_id}/messages",
                   json={"body": "still there?"}).status_code == 409
    assert ada.post(f"/api/v1/connections/{connection_id}/messages",
                    json={"body": "bye"}).status_code == 409
    for client, other in ((ada, "bo-heron"), (bo, "ada-otter")):
        pages = client.get("/api/v1/nearby?condition=all").get_json()["members"]
        assert other not in {m["pseudonym"] for m in pages}
    assert "You cannot write here any more" in bo.get(
        f"/connections/{connection_id}").get_data(as_text=True)
    assert ada.post("/members/bo-heron/unblock").status_code == 302
    assert ada.post(f"/api/v1/connections/{connection_id}/messages",
                    json={"body": "sorry"}).status_code == 201


def test_report_a_message(app, session, three_members, connected) -> None:
    ada, _bo, connection_id = connected
    message_id = ada.get(f"/api/v1/connections/{connection_id}/messages").get_json()[
        "messages"][0]["id"]
    # The report page shows the message and asks for a reason: none is a 400.
    page = ada.get(f"/messages/{message_id}/report").get_data(as_text=True)
    assert "Hello Ada &lt;script&gt;" in page and "Why are you reporting" in page
    assert ada.post(f"/messages/{message_id}/report", data={}).status_code == 400
    assert ada.post(f"/messages/{message_id}/report",
                    data={"reason": "harassment", "details": "rude"}).status_code == 302
    reports = session.execute(text("SELECT reason, status FROM message_reports "
                                   "WHERE message_id = :m"), {"m": message_id}).all()
    assert [tuple(r) for r in reports] == [("Harassment, threats or hate: rude", "open")]


def test_one_member_cannot_read_or_touch_anothers_thread(app, three_members, connected) -> None:
    _ada, _bo, connection_id = connected
    cy = client_for(app, three_members["cy-wren"][0])
    assert cy.get(f"/connections/{connection_id}").status_code == 404
    response = cy.get(f"/api/v1/connections/{connection_id}/messages")
    assert response.status_code == 404 and "Hello" not in response.get_data(as_text=True)
    assert cy.post(f"/api/v1/connections/{connection_id}/messages",
                   json={"body": "intruder"}).status_code == 404
    assert cy.post(f"/connections/{connection_id}/accept").status_code == 404
    message_id = _ada.get(f"/api/v1/connections/{connection_id}/messages").get_json()[
        "messages"][0]["id"]
    assert cy.post(f"/messages/{message_id}/report").status_code == 404
    assert cy.get("/api/v1/connections").get_json() == {"connections": []}


def test_the_recipient_alone_answers_a_request(app, three_members) -> None:
    ada = client_for(app, three_members["ada-otter"][0])
    ada.post("/connect/bo-heron", data={"message": "hi"})
    cid = ada.get("/api/v1/connections").get_json()["connections"][0]["id"]
    assert ada.post(f"/connections/{cid}/accept").status_code == 302  # flashed refusal
    assert ada.get("/api/v1/connections").get_json()["connections"][0]["status"] == "pending"


def test_settings_and_export_are_only_ever_my_own(app, session, three_members,
                                                  connected) -> None:
    ada, bo, _cid = connected
    cy = client_for(app, three_members["cy-wren"][0])
    export = cy.get("/api/v1/me/export").get_json()
    assert export["member"]["pseudonym"] == "cy-wren"
    assert export["connections"] == [] and export["messages"] == []
    text_of_export = str(export)
    assert "ada-otter" not in text_of_export and "bo-heron" not in text_of_export
    settings = cy.get("/settings").get_data(as_text=True)
    assert "cy-wren" in settings and "53.5" not in settings and "ada-otter" not in settings
    # Exports hold the other side's pseudonym only: never their email or location.
    ada_export = ada.get("/my-data/export.json").get_data(as_text=True)
    assert "bo-heron" in ada_export and "bo-heron@example.org" not in ada_export
    assert "53.6" not in ada_export


def test_not_contactable_members_cannot_be_asked(app, session, three_members) -> None:
    add_member(session, "shy-moth", lat=53.5, lng=10.1, contactable=False)
    session.commit()
    ada = client_for(app, three_members["ada-otter"][0])
    assert ada.post("/api/v1/connections", json={"to": "shy-moth"}).status_code == 409
    assert ada.post("/api/v1/connections", json={"to": "nobody-here"}).status_code == 404
    assert ada.post("/api/v1/connections", json={"to": "ada-otter"}).status_code == 400


def test_deleting_an_account_removes_its_messages_and_connections(app, session, three_members,
                                                                 connected) -> None:
    ada, bo, connection_id = connected
    assert ada.post("/my-data/delete", data={"confirm": "DELETE"}).status_code == 302
    assert session.execute(text("SELECT count(*) FROM connections WHERE id = :c"),
                           {"c": connection_id}).scalar_one() == 0
    assert bo.get("/api/v1/connections").get_json() == {"connections": []}
    assert social.unread_counts(session, three_members["bo-heron"][1]).total == 0
