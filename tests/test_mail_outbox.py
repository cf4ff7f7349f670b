"""The mail outbox: a mail exists exactly when the change that caused it was committed.

Mail goes through a real SMTP server started in the test process (aiosmtpd); "down"
is a port on 127.0.0.1 where nothing listens.
"""

from __future__ import annotations

import socket
from email.message import EmailMessage

from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from geomap import create_app, mail
from geomap.cli import main
from geomap.mail import outbox
from tests.conftest import app_config
from tests.test_accounts import sign_up


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _down(port: int) -> dict[str, str]:
    return {"GEOMAP_SMTP_HOST": "127.0.0.1", "GEOMAP_SMTP_PORT": str(port),
            "GEOMAP_SMTP_SECURITY": "none"}


def _rows(url: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT attempts, last_error, "
            "round(extract(epoch FROM next_attempt_at - now())) FROM mail_outbox ORDER BY id"
        )).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def _message(to: str) -> EmailMessage:
    return mail.build({"GEOMAP_MAIL_FROM": "geomap <noreply@example.org>"}, to=to,
                      subject="Outbox test", body="Hello from the outbox.\n")


def test_a_mail_the_smtp_server_refused_stays_and_goes_out_later(
        fresh_db_url, tmp_path, smtp_server) -> None:
    down = _closed_port()
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url, **_down(down)))
    assert sign_up(app.test_client(), "patient-heron", "heron@example.org").status_code == 302
    assert mail.flush()

    [(attempts, error, due_in)] = _rows(fresh_db_url)
    assert (attempts, error) == (1, "SMTP delivery failed: ConnectionRefusedError")
    assert 55 <= due_in <= 60  # the first retry waits a minute
    assert "heron@example.org" not in error

    sessions = sessionmaker(create_engine(fresh_db_url))
    assert outbox.send_pending(sessions, smtp_server.settings) == outbox.OutboxRun(0, 0, 1)

    engine = create_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE mail_outbox SET next_attempt_at = now()"))
    engine.dispose()
    assert outbox.send_pending(sessions, _down(down)) == outbox.OutboxRun(0, 1, 1)
    [(attempts, _error, due_in)] = _rows(fresh_db_url)
    assert attempts == 2 and 115 <= due_in <= 120  # doubled

    engine = create_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE mail_outbox SET next_attempt_at = now()"))
    engine.dispose()
    assert outbox.send_pending(sessions, smtp_server.settings) == outbox.OutboxRun(1, 0, 0)
    [verification] = smtp_server.messages_to("heron@example.org")
    assert verification["Subject"] == "Confirm your email address for geomap"
    assert _rows(fresh_db_url) == []


def test_a_mail_left_by_a_process_that_died_is_sent_by_the_cli(
        fresh_db_url, tmp_path, smtp_server, monkeypatch) -> None:
    engine = create_engine(fresh_db_url)
    with sessionmaker(engine)() as session:  # committed, then nobody sent it
        outbox.enqueue(session, _message("left-behind@example.org"))
        session.commit()
    engine.dispose()

    monkeypatch.setenv("GEOMAP_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("GEOMAP_DATA_DIR", str(tmp_path))
    for name, value in smtp_server.settings.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["mail", "send"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 mail(s) sent, 0 failed; 0 waiting in the outbox."
    [sent] = smtp_server.messages_to("left-behind@example.org")
    assert sent.get_content().splitlines() == ["Hello from the outbox."]


def test_a_rolled_back_change_sends_no_mail(fresh_db_url, smtp_server) -> None:
    engine = create_engine(fresh_db_url)
    sessions = sessionmaker(engine)
    with sessions() as session:
        outbox.enqueue(session, _message("never@example.org"))
        session.rollback()
    assert outbox.send_pending(sessions, smtp_server.settings) == outbox.OutboxRun(0, 0, 0)
    assert smtp_server.messages_to("never@example.org") == []
    engine.dispose()


def test_the_cli_says_when_the_smtp_server_is_down(fresh_db_url, tmp_path, monkeypatch) -> None:
    engine = create_engine(fresh_db_url)
    with sessionmaker(engine)() as session:
        outbox.enqueue(session, _message("waiting@example.org"))
        session.commit()
    engine.dispose()
    monkeypatch.setenv("GEOMAP_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("GEOMAP_DATA_DIR", str(tmp_path))
    for name, value in _down(_closed_port()).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["mail", "send"])
    assert result.exit_code == 1
    assert "0 mail(s) sent, 1 failed; 1 waiting in the outbox." in result.output
    assert "waiting@example.org" not in result.output
