"""Languages: which locale and time zone a request is served in, and the switch between them.

The locale comes from the signed-in account's setting, then ``?lang=``, then the
language cookie the switch sets, then ``Accept-Language``, else English. Embeds are
stateless: only ``?lang=`` and ``Accept-Language`` count there. Message catalogues are
the ``.po`` files in ``geomap/translations``, read (and compiled in memory) on first
use, so a fresh clone needs no build step. English is the source language.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, Domain, get_locale
from flask_login import user_logged_in, user_logged_out

LOCALES = ("en", "es", "fr", "de", "it", "pt", "ar")
RTL_LOCALES = frozenset({"ar"})
DEFAULT_LOCALE = "en"
LANG_COOKIE = "geomap_lang"
TZ_COOKIE = "geomap_tz"
COOKIE_MAX_AGE = 365 * 24 * 3600
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark ``message`` for extraction only; translate it later (e.g. with a mail's locale)."""
    return message


def supported(code: str | None) -> str | None:
    """Return the shipped locale ``code`` names ("pt-BR" → "pt"), or None."""
    if not code:
        return None
    base = code.strip().replace("_", "-").split("-")[0].lower()
    return base if base in current_locales() else None


def current_locales() -> tuple[str, ...]:
    """Return the locales this app offers (``GEOMAP_LOCALES`` in tests, else ``LOCALES``)."""
    if current_app:
        return tuple(current_app.config.get("GEOMAP_LOCALES") or LOCALES)
    return LOCALES


SESSION_LOCALE = "geomap_locale"
SESSION_TZ = "geomap_tz"


def _account_setting(key: str) -> str | None:
    """Return a signed-in account's setting kept in its session (no database read).

    The session gets the account's settings when it signs in and when they change
    (:func:`remember_settings`); a request without a session cookie is not looked into.
    """
    if g.get("geomap_stateless"):
        return None
    if not request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]):
        return None
    from flask import session

    value = session.get(key)
    return value if isinstance(value, str) else None


def remember_settings(account: Any) -> None:
    """Keep ``account``'s language and time zone settings in the session."""
    from flask import session

    for key, value in ((SESSION_LOCALE, account.locale), (SESSION_TZ, account.time_zone)):
        if value:
            session[key] = value
        else:
            session.pop(key, None)


def forget_settings() -> None:
    """Drop the signed-out account's settings from the session."""
    from flask import session

    session.pop(SESSION_LOCALE, None)
    session.pop(SESSION_TZ, None)


def _stateless() -> bool:
    """Whether the request goes to a stateless view (geomap.auth.stateless: the embeds).

    Those are the same for every visitor of a host page: no account, no cookie counts.
    The embed editor is not one of them: a site page, it follows the site's rules.
    """
    from geomap.auth import is_stateless  # geomap.auth imports this module

    return is_stateless()


def select_locale() -> str:
    """Return the request's locale: setting, then ?lang=, cookie, Accept-Language, English."""
    if not has_request_context():
        return DEFAULT_LOCALE
    embed = _stateless()
    if not embed:
        chosen = supported(_account_setting(SESSION_LOCALE))
        if chosen:
            return chosen
    chosen = supported(request.args.get("lang"))
    if chosen:
        return chosen
    if not embed:
        chosen = supported(request.cookies.get(LANG_COOKIE))
        if chosen:
            return chosen
    return request.accept_languages.best_match(current_locales()) or DEFAULT_LOCALE


def valid_time_zone(name: str | None) -> str | None:
    """Return ``name`` when it is an IANA time zone (e.g. "Europe/Berlin"), else None."""
    if not name or len(name) > 64:
        return None
    return name if name in _time_zones() else None


_ZONES: frozenset[str] | None = None


def _time_zones() -> frozenset[str]:
    global _ZONES  # noqa: PLW0603
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def select_time_zone() -> str:
    """Return the viewer's time zone: the account's setting, then the JS cookie, else UTC."""
    if not has_request_context() or _stateless():
        return "UTC"
    zone = valid_time_zone(_account_setting(SESSION_TZ))
    return zone or valid_time_zone(request.cookies.get(TZ_COOKIE)) or "UTC"


def text_direction(locale: str | None = None) -> str:
    """Return "rtl" for right-to-left locales (Arabic), else "ltr"."""
    return "rtl" if str(locale or get_locale() or DEFAULT_LOCALE) in RTL_LOCALES else "ltr"


# Each shipped language's name in itself, as CLDR gives it through Babel
# (tests/test_i18n.py checks them against Babel). Every page lists them; asking Babel
# loads each locale's whole CLDR data (~1.5 MB a locale) into every web worker.
NATIVE_NAMES = {"en": "English", "es": "Español", "fr": "Français", "de": "Deutsch",
                "it": "Italiano", "pt": "Português", "ar": "العربية"}


def native_name(code: str) -> str:
    """Return the name of the language ``code`` in itself, capitalised (CLDR, via Babel)."""
    return Locale.parse(code).get_display_name(code).capitalize()


def language_names() -> list[tuple[str, str]]:
    """Return (code, name of the language in itself) for every offered locale."""
    return [(code, NATIVE_NAMES.get(code) or native_name(code)) for code in current_locales()]


class PoCatalogues(Domain):
    """The message domain read from ``.po`` files, compiled in memory once per locale."""

    _lock = threading.Lock()

    def __init__(self, directory: Path = TRANSLATIONS) -> None:
        """Read catalogues from ``directory``/<locale>/LC_MESSAGES/messages.po."""
        super().__init__(translation_directories=[str(directory)], domain="messages")
        self.directory = directory
        self.compiled: dict[tuple[str, float], NullTranslations] = {}

    def get_translations(self) -> NullTranslations:
        """Return the translations of the request's locale (none for English)."""
        if not g:
            return NullTranslations()
        return self.translations_for(str(get_locale() or DEFAULT_LOCALE))

    def translations_for(self, locale: str) -> NullTranslations:
        """Return the compiled catalogue of ``locale``; English and missing ones are empty."""
        path = self.directory / locale / "LC_MESSAGES" / "messages.po"
        if not path.exists():
            return NullTranslations()
        key = (locale, path.stat().st_mtime)
        found = self.compiled.get(key)
        if found is None:
            with self._lock, path.open("rb") as po:
                catalog = read_po(po, locale=locale)
                buffer = io.BytesIO()
                write_mo(buffer, catalog, use_fuzzy=False)
                buffer.seek(0)
                found = Translations(fp=buffer, domain="messages")
                self.compiled[key] = found
        return found


class _Babel(Babel):
    """Flask-Babel whose message domain reads the ``.po`` files directly."""

    @property
    def domain_instance(self) -> Domain:  # type: ignore[override]
        """The app's one message domain (compiled ``.po`` catalogues)."""
        return _DOMAIN


_DOMAIN = PoCatalogues()
babel = _Babel()


def _language_headers(response: Any) -> Any:
    """Name the answer's language; say it may differ by Accept-Language and ?lang=."""
    ctx = getattr(g, "_flask_babel", None)
    locale = getattr(ctx, "babel_locale", None) if ctx is not None else None
    if locale is not None:
        response.headers.setdefault("Content-Language", str(locale).replace("_", "-"))
        response.vary.add("Accept-Language")
        if request.cookies.get(LANG_COOKIE) and not _stateless():
            response.vary.add("Cookie")  # the language switch's cookie chose it
    return response


def init_app(app: Flask) -> None:
    """Set up Flask-Babel, the template helpers and the language switch."""
    from geomap.i18n import formats, switch

    app.jinja_env.policies["ext.i18n.trimmed"] = True
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_time_zone)
    user_logged_in.connect(lambda _app, user: remember_settings(user), app, weak=False)
    user_logged_out.connect(lambda _app, user=None: forget_settings(), app, weak=False)
    formats.init_app(app)
    switch.init_app(app)
    app.after_request(_language_headers)
