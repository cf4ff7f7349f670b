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
