"""Mail: built with the standard library's ``email``, sent by SMTP or written to files.

With ``GEOMAP_SMTP_HOST`` set, mail goes to that server (STARTTLS, implicit TLS or plain
for a local relay; optional login). Unset, each mail is written as an RFC 5322 ``.eml``
file under ``<data dir>/mail/`` so that ``make run`` works offline; ``geomap mail
list|show`` prints them.

Web requests write their mail into the outbox table in their own transaction
(:mod:`geomap.mail.outbox`); a background sender delivers it after the commit, so a
request costs the same whether it sends a mail or not (no timing oracle on who has an
account) and a crash loses no acknowledged mail. Logs name the kind of failure only,
never an address.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from geomap.config import data_dir

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 20  # seconds


class MailError(RuntimeError):
    """A mail could not be delivered (the message says why, without addresses)."""


def base_url(settings: Mapping[str, Any], request_url: str | None = None) -> str:
    """Return the site address for links in mails, without a trailing slash.

    ``GEOMAP_BASE_URL`` when set; else ``request_url`` (the request's host URL) when its
    host is a loopback address (a forged Host header cannot redirect reset links);
    else ``http://<GEOMAP_HOST>:<GEOMAP_PORT>``.
    """
    if settings.get("GEOMAP_BASE_URL"):
        return str(settings["GEOMAP_BASE_URL"]).rstrip("/")
    if request_url and urlsplit(request_url).hostname in ("127.0.0.1", "localhost", "::1"):
        return request_url.rstrip("/")
    return f"http://{settings['GEOMAP_HOST']}:{settings['GEOMAP_PORT']}"


def build(settings: Mapping[str, Any], *, to: str, subject: str, body: str,
          headers: Mapping[str, str] | None = None) -> EmailMessage:
    """Return a plain-text UTF-8 mail from ``GEOMAP_MAIL_FROM`` to ``to``."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = settings["GEOMAP_MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    sender_domain = message["From"].addresses[0].domain or "localhost"
    message["Message-ID"] = make_msgid(domain=sender_domain)
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message


def mail_dir(settings: Mapping[str, Any]) -> Path:
    """Return the folder the file backend writes ``.eml`` files to."""
    return data_dir(settings) / "mail"


def kept_as_files(settings: Mapping[str, Any]) -> bool:
    """Whether mail is kept as ``.eml`` files in :func:`mail_dir` (no SMTP server is set)."""
    return not settings.get("GEOMAP_SMTP_HOST")


def deliver(settings: Mapping[str, Any], message: EmailMessage) -> None:
    """Send ``message`` now: by SMTP when configured, else as a file. Raises MailError."""
    if kept_as_files(settings):
        _write_file(settings, message)
    else:
        _send_smtp(settings, message)


def _send_smtp(settings: Mapping[str, Any], message: EmailMessage) -> None:
    host, port = settings["GEOMAP_SMTP_HOST"], settings["GEOMAP_SMTP_PORT"]
    security = settings["GEOMAP_SMTP_SECURITY"]
    try:
        if security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
        with client:
            if security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.get("GEOMAP_SMTP_USERNAME"):
                client.login(settings["GEOMAP_SMTP_USERNAME"],
                             settings.get("GEOMAP_SMTP_PASSWORD") or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"SMTP delivery failed: {type(exc).__name__}") from None


def _write_file(settings: Mapping[str, Any], message: EmailMessage) -> None:
    folder = mail_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    staging = path.with_suffix(".tmp")
    staging.write_bytes(message.as_bytes())
    staging.rename(path)  # readers never see half a mail


# --- waiting for background sending --------------------------------------------------


def flush(timeout: float = 30.0) -> bool:
    """Wait until this process has sent what its requests queued (geomap.mail.outbox).

    Return False if ``timeout`` (seconds) passed first.
    """
    from geomap.mail import outbox

    return outbox.flush(timeout)


# --- reading the file backend --------------------------------------------------------


@dataclass(frozen=True)
class StoredMail:
    """One mail written by the file backend."""

    name: str
    date: str
    to: str
    subject: str


def stored_mails(settings: Mapping[str, Any]) -> list[StoredMail]:
    """Return the mails in ``<data dir>/mail/``, oldest first."""
    folder = mail_dir(settings)
    if not folder.is_dir():
        return []
    mails = []
    for path in sorted(folder.glob("*.eml")):
        message = read_stored(settings, path.name)
        mails.append(StoredMail(path.name, str(message["Date"] or ""), str(message["To"] or ""),
                                str(message["Subject"] or "")))
    return mails


def read_stored(settings: Mapping[str, Any], name: str) -> EmailMessage:
    """Return the stored mail ``name`` (a file name from :func:`stored_mails`).

    Raises FileNotFoundError for a name that is not a stored mail.
    """
    folder = mail_dir(settings)
    path = folder / name
    if path.parent != folder or path.suffix != ".eml" or not path.is_file():
        raise FileNotFoundError(name)
    with path.open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)  # type: ignore[return-value]


# --- mail texts ------------------------------------------------------------------------


def render(name: str, *, locale: str | None = None, **context: Any) -> str:
    """Render the plain-text mail template ``templates/mail/<name>.txt`` (no app needed).

    The text is in ``locale`` (default: the current request's language, else English).
    """
    return _environment(mail_locale(locale)).get_template(f"mail/{name}.txt").render(**context)


def mail_locale(locale: str | None = None) -> str:
    """Return ``locale`` if shipped, else the current request's language, else English."""
    from geomap.i18n import DEFAULT_LOCALE, LOCALES

    if locale in LOCALES:
        return str(locale)
    try:
        from flask_babel import get_locale

        current = get_locale()
    except RuntimeError:
        current = None
    return str(current) if current is not None and str(current) in LOCALES else DEFAULT_LOCALE


def translate(message: str, locale: str | None = None) -> str:
    """Return ``message`` (an English msgid) in ``locale``, for subjects sent outside requests."""
    from geomap.i18n import _DOMAIN

    return _DOMAIN.translations_for(mail_locale(locale)).gettext(message)


_jinja: dict[str, Any] = {}


def _environment(locale: str) -> Any:
    if locale not in _jinja:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        from geomap.i18n import _DOMAIN
        from geomap.paths import resource

        env = Environment(loader=FileSystemLoader(str(resource("templates"))),
                          autoescape=False, undefined=StrictUndefined,  # noqa: S701
                          keep_trailing_newline=True, extensions=["jinja2.ext.i18n"])
        env.policies["ext.i18n.trimmed"] = True
        env.install_gettext_translations(_DOMAIN.translations_for(locale),  # type: ignore[attr-defined]
                                         newstyle=True)
        _jinja[locale] = env
    return _jinja[locale]
