"""Password hashing and strength: one place for the work a sign-in costs.

Every sign-in and sign-up does the same hashing work whether or not the email is known
(:func:`verify_or_dummy`, :func:`dummy_hash_work`), so that timing does not tell who
has an account. Strength is judged by zxcvbn, offline, with its shipped lists of common
passwords, words and names, plus the member's own email and pseudonym.
"""

from __future__ import annotations

from functools import lru_cache

from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

MIN_LENGTH = 10
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable", about 10^8 to 10^10 guesses
_DUMMY_PASSWORD = "geomap dummy password, never valid"  # noqa: S105


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of ``password`` (Werkzeug's default method)."""
    return generate_password_hash(password)


def verify(password_hash: str, password: str) -> bool:
    """Return whether ``password`` matches ``password_hash``."""
    return check_password_hash(password_hash, password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(_DUMMY_PASSWORD)


def verify_or_dummy(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash``, or burn the same work on a dummy hash.

    Returns False when ``password_hash`` is None (unknown account), after the same
    scrypt work a real check costs.
    """
    if password_hash is None:
        verify(_dummy_hash(), password)
        return False
    return verify(password_hash, password)


def dummy_hash_work(password: str) -> None:
    """Spend the work of hashing a new password, for paths that create nothing."""
    hash_password(password)


def weakness(password: str, *, email: str = "", pseudonym: str = "") -> str | None:
    """Return why ``password`` is too weak (a sentence to show), or None when it is fine.

    Refused: shorter than 10 characters, or zxcvbn's score below 3 given the member's own
    email, its local part and pseudonym as words an attacker would try first.
    """
    if len(password) < MIN_LENGTH:
        return _("Use at least %(count)s characters.", count=MIN_LENGTH)
    own = [value for value in (email, email.split("@")[0], pseudonym) if value]
    lowered = password.lower()
    if any(len(value) >= 4 and value.lower() in lowered for value in own):
        return _("Do not use your email or pseudonym in your password.")
    from zxcvbn import zxcvbn  # its word lists (~12 MB) only where a password is judged

    result = zxcvbn(password[:100], user_inputs=own)
    if result["score"] < MIN_SCORE:
        warning = result["feedback"].get("warning") or ""
        if warning and str(get_locale() or "en") == "en":  # zxcvbn speaks English only
            return _("This password is too easy to guess: it is common or follows a simple "
                     "pattern (%(warning)s.) Try a few unrelated words.",
                     warning=warning.rstrip("."))
        return _("This password is too easy to guess: it is common or follows a simple "
                 "pattern. Try a few unrelated words.")
    return None
