"""A real SMTP server (aiosmtpd) in the test process, and ways to read what it received."""

from __future__ import annotations

import re
import socket
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller

from geomap import mail


class _Collect:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port; ``messages`` holds what it received."""

    def __init__(self) -> None:
        self.handler = _Collect()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def settings(self) -> dict[str, str]:
        """App settings that send mail through this server."""
        return {"GEOMAP_SMTP_HOST": "127.0.0.1", "GEOMAP_SMTP_PORT": str(self.port),
                "GEOMAP_SMTP_SECURITY": "none"}

    def messages_to(self, address: str) -> list[EmailMessage]:
        """Return the mails received for ``address`` so far."""
        with self.handler.lock:
            return [m for m in self.handler.messages if address in str(m["To"])]

    def wait_for(self, address: str, count: int = 1, timeout: float = 30.0) -> list[EmailMessage]:
        """Wait until ``count`` mails for ``address`` arrived; return them."""
        mail.flush(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages_to(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} mail(s) for {address} expected, got "
                             f"{len(self.messages_to(address))}")


def link_in(message: EmailMessage, path: str) -> str:
    """Return the first link in ``message``'s text whose path starts with ``path``."""
    body = message.get_content()
    found = re.search(rf"https?://[^\s]+{re.escape(path)}[^\s]*", body)
    assert found, f"no {path} link in: {body}"
    return found.group(0)


def stored_link(data_dir: Any, address: str, path: str) -> str:
    """Return the newest link to ``path`` mailed to ``address`` by the file backend."""
    settings = {"GEOMAP_DATA_DIR": str(data_dir)}
    mail.flush()
    for stored in reversed(mail.stored_mails(settings)):
        if address in stored.to:
            return link_in(mail.read_stored(settings, stored.name), path)
    raise AssertionError(f"no mail for {address} in {data_dir}")


def sign_up_in_browser(page: Any, base: str, pseudonym: str, email: str,
                       password: str) -> None:
    """Fill in and send the sign-up form with consent, up to the "check your mail" page."""
    page.goto(f"{base}/signup")
    page.fill("#pseudonym", pseudonym)
    page.fill("#email", email)
    page.fill("#password", password)
    page.fill("#confirm", password)
    page.check("#consent")
    page.check("#terms")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(f"{base}/signup/sent")


def sign_in_in_browser(page: Any, email: str, password: str) -> None:
    """Fill in and send the sign-in form on the current (login) page."""
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form.stacked button[type=submit]")
