"""Typed settings, every one documented here and prefixed ``GEOMAP_``.

The README's settings table is generated from :data:`SETTINGS`; a test checks the two
agree. Values are parsed by the declared type only, never guessed.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geomap.paths import checkout


class ConfigError(ValueError):
    """A setting has a value geomap cannot use."""


def _parse_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"expected a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"expected a number from {low} to {high}, got {value}")
        return value

    return parse


def _parse_str(raw: str) -> str:
    return raw


def _parse_optional(raw: str) -> str | None:
    return raw or None


def _parse_list(raw: str) -> list[str]:
    return [part for part in raw.split() if part]


def _parse_rate_limit(raw: str) -> str:
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"expected a rate limit such as '30 per minute' or '10/hour', got {raw!r}"
        ) from None
    return raw


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ConfigError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return raw

    return parse
def _parse_limit_storage(raw: str) -> str:
    value = raw.strip()
    if re.match(r"^(memory|redis|rediss|redis\+unix|redis\+cluster|redis\+sentinel)://", value):
        return value
    raise ConfigError(
        f"expected 'memory://' or a Redis URL such as 'redis://127.0.0.1:6379/0', got {raw!r}"
    )


def _parse_tiles(raw: str) -> str:
    value = raw.strip()
    if value in ("off", "osm") or re.match(r"^https?://.*\{z\}.*\{x\}.*\{y\}", value):
        return value
    raise ConfigError(
        f"expected 'off', 'osm' or a URL template with {{z}}, {{x}} and {{y}}, got {raw!r}"
    )


@dataclass(frozen=True)
class Setting:
    """One documented setting: its name, parser, default and meaning."""

    name: str
    parse: Callable[[str], Any]
    default: str
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "GEOMAP_DATABASE_URL",
        _parse_optional,
        "",
        "SQLAlchemy URL of a PostgreSQL + PostGIS database "
        "(`postgresql+psycopg://user:pass@host/db`). Unset: geomap runs its own "
        "embedded PostGIS cluster in the data folder.",
    ),
    Setting(
        "GEOMAP_REPLICA_URL",
        _parse_optional,
        "",
        "SQLAlchemy URL of a read-only replica (a hot standby streaming from the "
        "database above) for the public read path: published cells and totals, the "
        "conditions list, region counts, the publish version. Writes never go there. "
        "Unset: public reads use the database above (docs/scaling.md).",
    ),
    Setting(
        "GEOMAP_DATA_DIR",
        _parse_str,
        "var",
        "Data folder: the embedded cluster, generated secrets, logs. A relative path is "
        "taken from the checkout, so `geomap` commands find the same cluster from any "
        "folder (from the current folder for an installed package).",
    ),
    Setting(
        "GEOMAP_DB_PORT",
        _parse_int(1024, 65535),
        "54329",
        "TCP port of the embedded cluster (bound to 127.0.0.1 only).",
    ),
    Setting(
        "GEOMAP_SECRET_KEY",
        _parse_optional,
        "",
        "Secret for sessions and keyed ordering. Unset: generated once into "
        "`<data dir>/secret_key`.",
    ),
    Setting(
        "GEOMAP_K",
        _parse_int(2, 1000),
        "5",
        "k of k-anonymity: no published count is between 1 and k-1.",
    ),
    Setting(
        "GEOMAP_FLOOR_RESOLUTION",
        _parse_int(0, 7),
        "5",
        "H3 resolution of the privacy floor cell (5: ~253 km², ~10 km edge). "
        "Nothing public is finer.",
    ),
    Setting(
        "GEOMAP_PUBLISH_INTERVAL",
        _parse_int(0, 7 * 24 * 3600),
        "300",
        "Seconds between automatic publishes while `geomap serve` runs (0: never).",
    ),
    Setting(
        "GEOMAP_TILES",
        _parse_tiles,
        "off",
        "Background tiles: `off` (our own country outlines, no third party), `osm`, "
        "or a URL template `https://…/{z}/{x}/{y}.png`.",
    ),
    Setting(
        "GEOMAP_TILES_ATTRIBUTION",
        _parse_str,
        "",
        "Attribution shown for a custom tile URL template.",
    ),
    Setting(
        "GEOMAP_FRAME_ANCESTORS",
        _parse_list,
        "*",
        "Space-separated origins allowed to frame `/embed/...` pages.",
    ),
    Setting(
        "GEOMAP_HOST",
        _parse_str,
        "127.0.0.1",
        "Address `geomap serve` binds to.",
    ),
    Setting(
        "GEOMAP_PORT",
        _parse_int(1, 65535),
        "5000",
        "Port `geomap serve` listens on.",
    ),
    Setting(
        "GEOMAP_WORKERS",
        _parse_int(1, 64),
        "2",
        "Web worker processes of `geomap serve --prod`.",
    ),
    Setting(
        "GEOMAP_NEARBY_RATE_LIMIT",
        _parse_rate_limit,
        "30 per minute",
        "Nearby searches a member may make (page and API together), e.g. `30 per minute`; "
        "`;` separates several limits.",
    ),
    Setting(
        "GEOMAP_RATELIMIT_STORAGE_URL",
        _parse_limit_storage,
        "memory://",
        "Where rate limits are counted: `memory://` (each worker process on its own: "
        "right for one process only) or a Redis URL (`redis://host:6379/0`) shared by "
        "every worker and machine.",
    ),
    Setting(
        "GEOMAP_LOCATION_RATE_LIMIT",
        _parse_rate_limit,
        "10 per day",
        "Location changes a member may make (settings page and API together).",
    ),
    Setting(
        "GEOMAP_CONTACT_RATE_LIMIT",
        _parse_rate_limit,
        "20 per hour; 100 per day",
        "Connection requests and messages a member may send.",
    ),
    Setting(
        "GEOMAP_SYMPTOMS_RATE_LIMIT",
        _parse_rate_limit,
        "60 per hour; 300 per day",
        "Changes to a member's symptoms and matching opt-in (page and API together).",
    ),
    Setting(
        "GEOMAP_NEARBY_MAX_KM",
        _parse_int(50, 5000),
        "1000",
        "Nearby lists members whose floor-cell centre is closer than this (km) to the "
        "searcher's; the `500+ km` band ends here.",
    ),
    Setting(
        "GEOMAP_CELLS_MISS_WAIT",
        _parse_int(0, 60),
        "10",
        "Seconds a cells request that misses the cache waits for one of the two render "
        "slots of its worker process before it is answered 503 with `Retry-After`.",
    ),
    Setting(
        "GEOMAP_BASE_URL",
        _parse_optional,
        "",
        "Public address of the site (`https://map.example.org`), used for the links in "
        "mails. Unset: `http://<GEOMAP_HOST>:<GEOMAP_PORT>` (or the request's address "
        "when it is a loopback one).",
    ),
    Setting(
        "GEOMAP_SMTP_HOST",
        _parse_optional,
        "",
        "SMTP server that sends mail. Unset: each mail is written as a `.eml` file under "
        "`<data dir>/mail/` (`geomap mail list|show` prints them).",
    ),
    Setting(
        "GEOMAP_SMTP_PORT",
        _parse_int(1, 65535),
        "587",
        "Port of the SMTP server.",
    ),
    Setting(
        "GEOMAP_SMTP_SECURITY",
        _parse_choice("starttls", "ssl", "none"),
        "starttls",
        "`starttls`, `ssl` (implicit TLS, usually port 465) or `none` (local relays only).",
    ),
    Setting(
        "GEOMAP_SMTP_USERNAME",
        _parse_optional,
        "",
        "SMTP user name (unset: no authentication).",
    ),
    Setting(
        "GEOMAP_SMTP_PASSWORD",
        _parse_optional,
        "",
        "SMTP password.",
    ),
    Setting(
        "GEOMAP_MAIL_FROM",
        _parse_str,
        "geomap <noreply@localhost>",
        "Sender of geomap's mails.",
    ),
    Setting(
        "GEOMAP_LOGIN_RATE_LIMIT",
        _parse_rate_limit,
        "10 per minute; 50 per hour; 200 per day",
        "Failed sign-ins allowed per client address; the windows grow, so do the waits.",
    ),
    Setting(
        "GEOMAP_LOGIN_ACCOUNT_RATE_LIMIT",
        _parse_rate_limit,
        "5 per minute; 20 per hour; 50 per day",
        "Failed sign-ins allowed per email address (known or not), from any client.",
    ),
    Setting(
        "GEOMAP_SIGNUP_RATE_LIMIT",
        _parse_rate_limit,
        "5 per hour; 20 per day",
        "Sign-ups (and password-reset or verification mails) per client address.",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def load_settings(source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return every setting parsed from ``source`` (default: the environment)."""
    source = os.environ if source is None else source
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = source.get(setting.name, setting.default)
        if raw is None or isinstance(raw, str):
            try:
                values[setting.name] = setting.parse(raw if raw is not None else setting.default)
            except ConfigError as exc:
                raise ConfigError(f"{setting.name}: {exc}") from None
        else:
            values[setting.name] = raw
    return values


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError for a ``GEOMAP_*`` variable that is no setting (likely a typo)."""
    environ = os.environ if environ is None else environ
    unknown = sorted(
        name for name in environ if name.startswith("GEOMAP_") and name not in _BY_NAME
    )
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; see the README")


def data_dir(settings: Mapping[str, Any]) -> Path:
    """Return the absolute data folder, created if missing.

    A relative GEOMAP_DATA_DIR (the default ``var`` included) is taken from the checkout
    geomap runs from, so every command finds the same cluster from any folder; from
    an installed package, from the current folder. (Run from another folder, a command
    used to create a second cluster there and fail on the first one's port.)
    """
    path = Path(settings["GEOMAP_DATA_DIR"])
    if not path.is_absolute():
        path = (checkout() or Path.cwd()) / path
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def stored_secret(settings: Mapping[str, Any], name: str) -> str:
    """Return the secret ``name`` from the data folder, generating it once."""
    path = data_dir(settings) / name
    if not path.exists():
        staging = path.with_name(f".{name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(staging, path)  # atomic: the first process to generate it wins
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return path.read_text().strip()


def secret_key(settings: Mapping[str, Any]) -> str:
    """Return the server secret: from the environment, or generated into the data folder."""
    return settings["GEOMAP_SECRET_KEY"] or stored_secret(settings, "secret_key")
