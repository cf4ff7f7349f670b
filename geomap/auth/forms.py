"""Sign-in and sign-up forms (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from geomap.ingest import validators


def valid_pseudonym(form: FlaskForm, field: StringField) -> None:
    """Apply the pseudonym rule shared with the importer (:func:`validators.pseudonym`)."""
    try:
        field.data = validators.pseudonym(field.data or "")
    except validators.FieldError:
        raise ValidationError(validators.PSEUDONYM_RULE) from None


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class SignupForm(FlaskForm):
    """A pseudonym (public), an email and a password (private)."""

    pseudonym = StringField(
        "Pseudonym (shown to other members)",
        validators=[DataRequired(), valid_pseudonym],
    )
    email = EmailField("Email (never shown)", validators=[DataRequired(), Email(),
                                                          Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )
