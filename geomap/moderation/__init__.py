"""Moderation: the queue of reported messages, moderator actions and their audit log.

Moderators (``geomap admin create --role moderator``) and admins handle reports from
``/moderation``; every action is written to ``moderation_log``, which admins read at
``/moderation/log``. Moderators see a reported message with the messages around it in
its thread, the two pseudonyms and the reason, never an email or a location.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the moderation pages."""
    from geomap.moderation import views

    app.register_blueprint(views.bp)
