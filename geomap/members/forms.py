"""Forms of the members pages (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from geomap.members.models import MESSAGE_MAX, REPORT_MAX, REQUEST_MAX
from geomap.models import INTRODUCTION_MAX
from geomap.web.forms import select_choices

ROLE_LABELS = {
    "patient": _l("Person with the condition"),
    "relative": _l("Relative"),
    "carer": _l("Carer"),
    "professional": _l("Health professional"),
    "researcher": _l("Researcher"),
    "organisation": _l("Organisation"),
}
VISIBILITY_LABELS = {
    "map": _l("On the map (counted in its area; can be found nearby)"),
    "country": _l("Country only (counted in country totals, not on the map)"),
    "hidden": _l("Hidden (not counted anywhere public)"),
}


AGE_GROUP_LABELS = {"child": _l("Child"), "teenager": _l("Teenager"), "adult": _l("Adult")}
PHASE_LABELS = {
    "induction": _l("Induction"),
    "consolidation": _l("Consolidation"),
    "maintenance": _l("Maintenance"),
    "transplant": _l("Transplant"),
    "survivorship": _l("Survivorship (after treatment)"),
}
REPORT_REASONS = {
    "harassment": _l("Harassment, threats or hate"),
    "spam": _l("Spam, advertising or fundraising"),
    "misinformation": _l("Dangerous medical advice"),
    "privacy": _l("Shares someone's private details"),
    "other": _l("Something else"),
}


class ProfileForm(FlaskForm):
    """Conditions, role, visibility and whether others may contact me."""

    conditions = SelectMultipleField(
        _l("Conditions"), widget=ListWidget(prefix_label=False), option_widget=CheckboxInput()
    )
    role = SelectField(_l("I am a"), choices=select_choices(ROLE_LABELS.items()))
    visibility = RadioField(_l("Visibility"), choices=select_choices(VISIBILITY_LABELS.items()),
                            default="map")
    contactable = BooleanField(_l("Other members may send me connection requests"))
    introduction = TextAreaField(_l("A short introduction (optional)"),
                                 validators=[Optional(), Length(max=INTRODUCTION_MAX)])
    age_group = SelectField(
        _l("Age group (optional)"), default="",
        choices=select_choices([("", _l("Not said")), *AGE_GROUP_LABELS.items()]))
    treatment_phase = SelectField(
        _l("Treatment phase (optional)"), default="",
        choices=select_choices([("", _l("Not said")), *PHASE_LABELS.items()]))


class LocationForm(FlaskForm):
    """A city from the type-ahead (place id) or a dropped pin (lat, lng)."""

    city = StringField(_l("City"), validators=[Optional(), Length(max=100)])
    place_id = HiddenField()
    lat = HiddenField()
    lng = HiddenField()


class ConnectForm(FlaskForm):
    """A connection request with a short message."""

    message = TextAreaField(_l("A short message (optional)"),
                            validators=[Length(max=REQUEST_MAX)])


class MessageForm(FlaskForm):
    """A message in a thread."""

    body = TextAreaField(_l("Message"), validators=[DataRequired(), Length(max=MESSAGE_MAX)])


class ReportForm(FlaskForm):
    """A report of a message: a reason (required) and details (optional)."""

    reason = RadioField(_l("Why are you reporting this message?"),
                        choices=select_choices(REPORT_REASONS.items()), validators=[DataRequired(
                            message=_l("Choose a reason."))])
    details = TextAreaField(_l("Anything the moderators should know (optional)"),
                            validators=[Optional(), Length(max=REPORT_MAX - 60)])


class ConfirmForm(FlaskForm):
    """A bare POST with a CSRF token (accept, decline, block, report)."""


class DeleteForm(FlaskForm):
    """Deleting my account: type DELETE to confirm."""

    confirm = StringField(_l("Type DELETE to confirm"), validators=[DataRequired()])
