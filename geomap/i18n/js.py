"""The strings our JavaScript shows, translated on the server and handed to the page.

Pages carry them as a JSON data block (``<script type="application/json"
id="geomap-messages">``: data, not code, so the CSP needs no hash for it);
``static/geomap/i18n.js`` reads it: ``geomap.t(key, params)`` for a sentence and
``geomap.tn(key, n, params)`` for one with a count, whose forms are keyed by the CLDR
plural category (one, few, many...) that ``Intl.PluralRules`` picks in the browser.
Placeholders are named, ``%(count)s``, and filled in by the script.
"""

from __future__ import annotations

from babel import Locale
from flask_babel import get_locale, get_translations, gettext

_CATEGORIES = ("zero", "one", "two", "few", "many", "other")
# Whole numbers that reach every CLDR category of our languages: 0-999 for Arabic's six
# (zero, one, two, few 3-10, many 11-99, other 100-102), and the powers of ten for the
# "many" of millions in French, Spanish, Italian and Portuguese (1,000,000 membres /
# de miembros), which no number below 1,000 reaches.
_SAMPLES = (*range(1000), *(10**k for k in range(3, 10)))


def plural_forms(singular: str, plural: str) -> dict[str, str]:
    """Return the message in each CLDR plural category of the request's locale.

    Each category's form is what ``ngettext`` gives for a number of that category, so
    the browser can choose with ``Intl.PluralRules`` (Arabic has six, English two).
    """
    locale = Locale.parse(str(get_locale() or "en"))
    ngettext = get_translations().ungettext  # unformatted: the script fills the placeholders
    rule = locale.plural_form
    forms: dict[str, str] = {}
    for n in _SAMPLES:
        category = rule(n)
        if category not in forms:
            forms[category] = ngettext(singular, plural, n)
        if len(forms) == len(rule.tags) + 1:
            break
    forms.setdefault("other", ngettext(singular, plural, 1000))
    return {c: forms[c] for c in _CATEGORIES if c in forms}


def js_messages() -> dict[str, str | dict[str, str]]:
    """Return every string the site's scripts show, in the request's language."""
    return {
        "map.members": plural_forms("%(count)s member", "%(count)s members"),
        "map.cluster": plural_forms(
            "%(members)s in %(count)s area; zoom in to see them",
            "%(members)s in %(count)s areas; zoom in to see them"),
        "map.marker": gettext("%(members)s, %(place)s"),
        "map.area": gettext("%(place)s (an area, never a person's location)"),
        "map.place_area": gettext("%(place)s area, %(country)s"),
        "map.country_area": gettext("%(country)s area"),
        "map.area_unnamed": gettext("An area, never a person's location"),
        "map.join": gettext("Join to connect with them"),
        "map.new_tab": gettext(" (opens in a new tab)"),
        "choropleth.title": gettext("Members per country"),
        "choropleth.none": gettext("none"),
        "choropleth.or_more": gettext("%(count)s or more"),
        "choropleth.range": gettext("%(low)s–%(high)s"),
        "choropleth.tooltip": gettext("%(country)s: %(count)s"),
        "choropleth.outlines": gettext("Outlines: Natural Earth"),
        "search.on_map": plural_forms("%(count)s on the map", "%(count)s on the map"),
        "search.no_map": gettext("No map yet"),
        "embed.error": gettext("Error %(status)s"),
        "embed.loading": gettext("The preview is still loading; try again in a moment."),
        "embed.copied": gettext("Copied to the clipboard."),
        "places.chosen": gettext("Chosen: %(place)s"),
        "places.none_long": gettext(
            "No place found with that name. Check the spelling, try another name for it, "
            "or drop a pin on the map."),
        "places.found": plural_forms(
            "%(count)s place found. Use the up and down arrows to choose.",
            "%(count)s places found. Use the up and down arrows to choose."),
        "places.none": gettext("No place found."),
        "places.pin": gettext("Pin dropped at %(lat)s, %(lng)s"),
        "soulmates.heading": plural_forms("%(place)s: %(count)s soulmate",
                                          "%(place)s: %(count)s soulmates"),
        "soulmates.marker": plural_forms("%(count)s soulmate, %(place)s",
                                         "%(count)s soulmates, %(place)s"),
        "api.about": gettext("About the API"),
    }
