"""Forms of the members pages (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

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

ROLE_LABELS = {
    "patient": "Person with the condition",
    "relative": "Relative",
    "carer": "Carer",
    "professional": "Health professional",
    "researcher": "Researcher",
    "organisation": "Organisation",
}
VISIBILITY_LABELS = {
    "map": "On the map (counted in its area; can be found nearby)",
    "country": "Country only (counted in country totals, not on the map)",
    "hidden": "Hidden (not counted anywhere public)",
}


AGE_GROUP_LABELS = {"child": "Child", "teenager": "Teenager", "adult": "Adult"}
PHASE_LABELS = {
    "induction": "Induction",
    "consolidation": "Consolidation",
    "maintenance": "Maintenance",
    "transplant": "Transplant",
    "survivorship": "Survivorship (after treatment)",
}
REPORT_REASONS = {
    "harassment": "Harassment, threats or hate",
    "spam": "Spam, advertising or fundraising",
    "misinformation": "Dangerous medical advice",
    "privacy": "Shares someone's private details",
    "other": "Something else",
}


class ProfileForm(FlaskForm):
    """Conditions, role, visibility and whether others may contact me."""

    conditions = SelectMultipleField(
        "Conditions", widget=ListWidget(prefix_label=False), option_widget=CheckboxInput()
    )
    role = SelectField("I am a", choices=list(ROLE_LABELS.items()))
    visibility = RadioField("Visibility", choices=list(VISIBILITY_LABELS.items()),
                            default="map")
    contactable = BooleanField("Other members may send me connection requests")
    introduction = TextAreaField("A short introduction (optional)",
                                 validators=[Optional(), Length(max=INTRODUCTION_MAX)])
    age_group = SelectField("Age group (optional)",
                            choices=[("", "Not said"), *AGE_GROUP_LABELS.items()], default="")
    treatment_phase = SelectField("Treatment phase (optional)",
                                  choices=[("", "Not said"), *PHASE_LABELS.items()], default="")


class LocationForm(FlaskForm):
    """A city from the type-ahead (place id) or a dropped pin (lat, lng)."""

    city = StringField("City", validators=[Optional(), Length(max=100)])
    place_id = HiddenField()
    lat = HiddenField()
    lng = HiddenField()


class ConnectForm(FlaskForm):
    """A connection request with a short message."""

    message = TextAreaField("A short message (optional)",
                            validators=[Length(max=REQUEST_MAX)])


class MessageForm(FlaskForm):
    """A message in a thread."""

    body = TextAreaField("Message", validators=[DataRequired(), Length(max=MESSAGE_MAX)])


class ReportForm(FlaskForm):
    """A report of a message: a reason (required) and details (optional)."""

    reason = RadioField("Why are you reporting this message?",
                        choices=list(REPORT_REASONS.items()), validators=[DataRequired(
                            message="Choose a reason.")])
    details = TextAreaField("Anything the moderators should know (optional)",
                            validators=[Optional(), Length(max=REPORT_MAX - 60)])


class ConfirmForm(FlaskForm):
    """A bare POST with a CSRF token (accept, decline, block, report)."""


class DeleteForm(FlaskForm):
    """Deleting my account: type DELETE to confirm."""

    confirm = StringField("Type DELETE to confirm", validators=[DataRequired()])
