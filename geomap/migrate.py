"""Schema migrations (Alembic, in db/migrations) run from the CLI and the tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from geomap.paths import resource


def alembic_config(url: str) -> Config:
    """Return the Alembic configuration for the database at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(resource("db") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision``."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
