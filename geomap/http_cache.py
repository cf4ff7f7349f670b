"""nginx in front of gunicorn: the configuration template and a supervised nginx process.

The template (geomap/nginx/geomap.conf.template) caches the version-stamped tiles and
the static files; ``geomap serve --prod --nginx`` writes it under the data folder and
starts Debian's nginx as an unprivileged user (never root), on GEOMAP_HOST:GEOMAP_PORT,
with gunicorn behind it on 127.0.0.1:GEOMAP_PORT+1.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

NGINX = Path("/usr/sbin/nginx")
TEMPLATE = Path(__file__).resolve().parent / "nginx" / "geomap.conf.template"
_TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxError(RuntimeError):
    """nginx is missing, or refused the configuration; the message says why."""


class _AtTemplate(Template):
    delimiter = "@"  # nginx uses $ for its own variables


@dataclass(frozen=True)
class NginxSite:
    """Where nginx listens, where gunicorn is, and the folder nginx writes in."""

    listen: str  # host:port
    upstream: str  # host:port of gunicorn
    prefix: Path
    cache_size: str = "1g"
    access_log: str = "off"  # or a file path


def render_config(site: NginxSite) -> str:
    """Return the nginx configuration of ``site`` (the template with its values)."""
    return _AtTemplate(TEMPLATE.read_text()).substitute(
        prefix=str(site.prefix), listen=site.listen, upstream=site.upstream,
        cache_size=site.cache_size, access_log=site.access_log)


def service_user() -> str | None:
    """Return the user nginx runs as when started by root (www-data, else nobody)."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise NginxError("running as root, but there is no www-data or nobody user for nginx")


def nginx_prefix(data_dir: Path) -> Path:
    """Return the folder nginx writes in: under the data folder if its user can reach it."""
    user = service_user()
    folder = data_dir / "nginx"
    if user is None:
        return folder
    probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(data_dir)],
                           capture_output=True, check=False)
    if probe.returncode == 0:
        return folder
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path("/var/lib/geomap") / digest / "nginx"


def write_config(site: NginxSite) -> Path:
    """Write ``site``'s configuration and folders; return the configuration's path."""
    for name in _TEMP_DIRS:
        (site.prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
    (site.prefix / "cache").mkdir(parents=True, exist_ok=True)
    config = site.prefix / "nginx.conf"
    config.write_text(render_config(site))
    user = service_user()
    if user:
        entry = pwd.getpwnam(user)
        for path in [site.prefix, *site.prefix.rglob("*")]:
            shutil.chown(path, entry.pw_uid, entry.pw_gid)
    return config


def start_nginx(site: NginxSite) -> subprocess.Popen:
    """Check and start nginx for ``site`` in the foreground; return its process.

    Raises NginxError if Debian's nginx is not installed or the configuration is refused.
    """
    if not NGINX.exists():
        raise NginxError("nginx is not installed (apt-get install nginx; see scripts/bootstrap.sh)")
    config = write_config(site)
    command = [str(NGINX), "-e", "stderr", "-p", str(site.prefix), "-c", str(config)]
    user = service_user()
    as_user: dict = {}
    if user:
        entry = pwd.getpwnam(user)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    check = subprocess.run([*command, "-t", "-q"], capture_output=True, text=True,
                           check=False, **as_user)
    if check.returncode != 0:
        raise NginxError(f"nginx refused {config}: {check.stderr.strip()[-500:]}")
    return subprocess.Popen([*command, "-g", "daemon off;"], **as_user)
