"""Account forms (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, ValidationError

from geomap.ingest import validators
from geomap.web.forms import select_choices


def valid_pseudonym(form: FlaskForm, field: StringField) -> None:
    """Apply the pseudonym rule shared with the importer (:func:`validators.pseudonym`)."""
    try:
        field.data = validators.pseudonym(field.data or "")
    except validators.FieldError:
        raise ValidationError(validators.PSEUDONYM_RULE) from None

_PASSWORD = [DataRequired(), Length(min=10, max=200, message=_l(
    "Use a password of 10 to 200 characters."))]


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class SignupForm(FlaskForm):
    """A pseudonym (public), an email and a password (private), consent and terms."""

    pseudonym = StringField(
        _l("Pseudonym (shown to other members)"),
        validators=[DataRequired(), valid_pseudonym],
    )
    email = EmailField(_l("Email (never shown)"), validators=[DataRequired(), Email(),
                                                          Length(max=254)])
    password = PasswordField(_l("Password"), validators=_PASSWORD)
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", _l("Passwords differ."))],
    )
    consent = BooleanField(
        _l("I agree that geomap stores my health data (my conditions, any symptoms I add and "
           "roughly where I live) to put me on the map and to let me find other members."),
        validators=[DataRequired(
            message=_l("We cannot store health data without your consent."))],
    )
    terms = BooleanField(
        _l("I accept the terms of use."),
        validators=[DataRequired(
            message=_l("Please accept the terms to create an account."))],
    )


class EmailForm(FlaskForm):
    """Just an email (password reset requests)."""

    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    """A new password, twice (password reset)."""

    password = PasswordField(_l("New password"), validators=_PASSWORD)
    confirm = PasswordField(
        _l("Repeat new password"),
        validators=[DataRequired(), EqualTo("password", _l("Passwords differ."))],
    )


class ChangePasswordForm(NewPasswordForm):
    """The current password and a new one, twice."""

    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=200)])


class NotificationsForm(FlaskForm):
    """Whether to get mail about new connection requests and messages."""

    notify = BooleanField(_l("Mail me about new connection requests and messages "
                             "(at most one mail an hour)"))


class LanguageForm(FlaskForm):
    """The account's language and time zone; empty follows the browser."""

    locale = SelectField(_l("Language"), validators=[Optional()], default="")
    time_zone = SelectField(_l("Time zone"), validators=[Optional()], default="")

    def fill_choices(self) -> LanguageForm:
        """Offer the shipped languages (named in themselves) and the IANA time zones."""
        from geomap.i18n import language_names
        from geomap.i18n.formats import time_zone_names

        self.locale.choices = select_choices(
            [("", _l("The language of my browser")), *language_names()])
        self.time_zone.choices = select_choices(
            [("", _l("The time zone of my browser")), *time_zone_names()])
        return self
