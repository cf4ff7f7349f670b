"""Form helpers shared by the page blueprints."""

from __future__ import annotations

from collections.abc import Iterable

from wtforms.fields.choices import SelectChoice


def select_choices(pairs: Iterable[tuple[str, object]]) -> list[SelectChoice]:
    """Turn ``(value, label)`` pairs into WTForms ``SelectChoice`` objects.

    Labels may be lazy strings (``lazy_gettext``); they are rendered in the request's
    language. WTForms 3.2 deprecates tuple choices (removed in 3.4), so every select,
    radio and checkbox list of the site goes through here.
    """
    return [SelectChoice(value, label) for value, label in pairs]
