"""Numbers, dates, times and country names in the viewer's language (Babel, CLDR data).

Template filters: ``number`` (12,345 / 12.345 / 12 345), ``percent``, ``when`` (a date
and time in the viewer's time zone, with the zone named), ``day`` (a date) and
``country_name`` (an ISO 3166-1 alpha-2 code, or a stored English name, as CLDR names
the country in the viewer's language).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from babel import Locale, UnknownLocaleError
from flask import Flask
from flask_babel import (
    format_date,
    format_datetime,
    format_decimal,
    format_percent,
    get_locale,
    gettext,
)
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from geomap.i18n import LOCALES, select_time_zone, text_direction
from geomap.privacy import DISTANCE_BANDS
from geomap.symptoms.similarity import SIMILAR, VERY_SIMILAR


def number(value: float | int | None) -> str:
    """Return ``value`` with the locale's digit grouping ("12.345" in de); "" for None."""
    if value is None:
        return ""
    return format_decimal(value)


def percent(share: float) -> str:
    """Return ``share`` (0..1) as a whole percentage in the locale's form ("42 %" in fr)."""
    return format_percent(share, format="#,##0%")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(moment: datetime | None, style: str = "medium") -> str:
    """Return ``moment`` as a date and time in the viewer's time zone, the zone named."""
    if moment is None:
        return ""
    shown = format_datetime(_aware(moment), style)
    return f"{shown} {format_datetime(_aware(moment), 'zzz')}"


def clock(moment: datetime | None) -> str:
    """Return the time of day of ``moment`` in the viewer's time zone, the zone named."""
    if moment is None:
        return ""
    return format_datetime(_aware(moment), "HH:mm zzz")


def day(moment: date | datetime | None, style: str = "medium") -> str:
    """Return the date of ``moment`` (in the viewer's time zone for a datetime)."""
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        return format_datetime(_aware(moment), _date_pattern(style))
    return format_date(moment, style)


def _date_pattern(style: str) -> str:
    locale = get_locale() or Locale.parse("en")
    return locale.date_formats[style].pattern


_NAME_TO_CODE: dict[str, str] = {}


def _code_of(name_or_code: str) -> str | None:
    text = name_or_code.strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    if not _NAME_TO_CODE:
        english = Locale.parse("en").territories
        _NAME_TO_CODE.update({v.lower(): k for k, v in english.items() if k.isalpha()})
    return _NAME_TO_CODE.get(text.lower())


def country_name(name_or_code: str | None, locale: Any = None) -> str:
    """Return the CLDR name of a country (alpha-2 code or English name) in the locale.

    Names CLDR does not know (e.g. "Somaliland") come back unchanged.
    """
    if not name_or_code:
        return ""
    if str(locale or get_locale() or "en") == "en" and len(name_or_code.strip()) != 2:
        return name_or_code  # the stored English name stays in English pages
    code = _code_of(name_or_code)
    if code is None:
        return name_or_code
    try:
        loc = Locale.parse(str(locale or get_locale() or "en"))
    except (UnknownLocaleError, ValueError):
        return name_or_code
    found = loc.territories.get(code)
    if found:
        return found
    return name_or_code if len(name_or_code) != 2 else code


def localised_country_name(english: str, code: str | None) -> str:
    """Return the country ``code`` named in the request's language (CLDR), else ``english``.

    ``english`` (the gazetteer's name) stays in English pages, outside requests and where
    CLDR has no name; used for place suggestions and labels.
    """
    locale = get_locale()
    if not code or locale is None or str(locale) == "en":
        return english
    found = country_name(code)
    return found if found and found != code else english


def area_name(kind: str | None, place: str | None, country_code: str | None,
              country: str | None, english: str) -> str:
    """Return a floor cell's place label in the request's language.

    ``kind`` is "area" ("Lyon area, France"), "near" ("near Lyon, France"), "rural"
    ("rural France") or "remote" ("a remote area"); ``place`` is the gazetteer name (not
    translated: GeoNames' main name), ``country_code`` the ISO 3166-1 alpha-2 code named
    by CLDR, ``country`` its English name (used where CLDR has none). ``english`` is the
    stored English sentence, returned on English pages, outside requests and when
    ``kind`` is unknown. Built from a cell's centre only, never a member's point.
    """
    locale = get_locale()
    if locale is None or str(locale) == "en" or kind not in _AREA_KINDS:
        return english
    name = localised_country_name(country or "", country_code) if country else ""
    if kind == "area" and place and name:
        return gettext("%(place)s area, %(country)s", place=place, country=name)
    if kind == "near" and place and name:
        return gettext("near %(place)s, %(country)s", place=place, country=name)
    if kind == "rural" and name:
        return gettext("rural %(country)s", country=name)
    return gettext("a remote area")


_AREA_KINDS = frozenset({"area", "near", "rural", "remote"})

_SUBDIVISIONS: dict[str, Any] = {}


def region_name(name: str | None) -> str:
    """Return a first-level region's name (ISO 3166-2, as pycountry names it) in the locale.

    pycountry ships ISO 3166-2 translations for de, es, fr and it (not pt nor ar); other
    names, and names in other locales, come back unchanged.
    """
    if not name:
        return ""
    locale = str(get_locale() or "en")
    if locale == "en":
        return name
    if locale not in _SUBDIVISIONS:
        import gettext

        import pycountry

        _SUBDIVISIONS[locale] = gettext.translation(
            "iso3166-2", pycountry.LOCALES_DIR, languages=[locale], fallback=True)
    return _SUBDIVISIONS[locale].gettext(name)


def time_zone_names() -> list[tuple[str, str]]:
    """Return (IANA id, id) for every named time zone, sorted ("Europe/Berlin", ...)."""
    from geomap.i18n import _time_zones

    return [(zone, zone.replace("_", " ")) for zone in sorted(_time_zones())
            if "/" in zone and not zone.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))]


def time_zone_label() -> str:
    """Return the viewer's time zone name (an IANA id such as "Europe/Berlin", or UTC)."""
    return select_time_zone()


# The distance bands and similarity levels are stable codes in the API (their owners:
# geomap.privacy.DISTANCE_BANDS, geomap.symptoms.similarity); pages show them in words,
# here in the owners' order (zip(strict=True): a band added there fails at import).
_BAND_WORDS = dict(zip((code for _upper, code in DISTANCE_BANDS), (
    _l("under 25 km"), _l("25–50 km"), _l("50–100 km"), _l("100–250 km"),
    _l("250–500 km"), _l("over 500 km"),
), strict=True))
_SIMILARITY_WORDS = {VERY_SIMILAR: _l("very similar"), SIMILAR: _l("similar")}


def distance_band(code: str) -> str:
    """Return a distance band's code ("<25 km", DISTANCE_BANDS) in the locale's words."""
    return str(_BAND_WORDS.get(code, code))


def similarity(code: str) -> str:
    """Return a similarity level ("very similar", "similar") in the locale's words."""
    return str(_SIMILARITY_WORDS.get(code, code))


def bdi(value: object) -> Markup:
    """Return ``value`` escaped and isolated in ``<bdi>``, to insert into translated text.

    A name inserted into a sentence (a pseudonym, a condition or place name, a search
    query) may be written in another script than the sentence: a Latin-script name in
    Arabic, an Arabic one in English. Isolated, it keeps its own direction and leaves the
    sentence's punctuation and neighbouring words in place (Unicode bidi isolation, the
    ``<bdi>`` element). For element content only: attribute values and ``<title>`` show
    markup as text.
    """
    return Markup("<bdi>{}</bdi>").format(value)


def with_names(template: str, **names: object) -> Markup:
    """Fill a translated sentence's ``%(name)s`` placeholders, each name isolated in ``<bdi>``.

    ``template`` is a translation not yet filled in (``_("%(name)s is blocked.")``); it is
    escaped, and so is each name. For sentences made in Python and shown in HTML (flashed
    messages, error pages); where the same sentence also goes out as plain text (JSON),
    ``Markup.striptags()`` gives it back without markup.
    """
    return escape(template) % {key: bdi(value) for key, value in names.items()}


def init_app(app: Flask) -> None:
    """Register the filters and the page globals (html lang and dir, the language list)."""
    app.add_template_filter(number)
    app.add_template_filter(percent)
    app.add_template_filter(when)
    app.add_template_filter(clock)
    app.add_template_filter(day)
    app.add_template_filter(country_name)
    app.add_template_filter(region_name)
    app.add_template_filter(bdi)
    app.add_template_filter(distance_band)
    app.add_template_filter(similarity)

    @app.context_processor
    def _language() -> dict[str, Any]:
        from geomap.i18n import language_names
        from geomap.i18n.js import js_messages

        locale = str(get_locale() or "en")
        return {
            "html_lang": locale,
            "html_dir": text_direction(locale),
            "languages": language_names(),
            "js_messages": js_messages,
            "time_zone": time_zone_label,
            "shipped_locales": LOCALES,
        }
