#!/usr/bin/env bash
# Message catalogues: `scripts/i18n.sh extract` rewrites geomap/translations/messages.pot
# from the sources; `scripts/i18n.sh update` merges it into every language's .po file;
# `scripts/i18n.sh init xx` starts a new language. The app reads the .po files directly
# (compiled in memory at first use): no .mo file is built or committed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
POT=geomap/translations/messages.pot
DIR=geomap/translations
case "${1:-}" in
    extract)
        "$PYBABEL" -q extract -F babel.cfg -k _l -k N_ -k plural_forms:1,2 \
            --no-location --sort-output --no-wrap --project geomap --version 1 \
            --msgid-bugs-address "" --copyright-holder "geomap" -o "$POT" .
        ;;
    update)
        "$PYBABEL" -q update -i "$POT" -d "$DIR" --no-wrap --no-fuzzy-matching
        ;;
    init)
        "$PYBABEL" -q init -i "$POT" -d "$DIR" -l "${2:?which language, e.g. de}" --no-wrap
        ;;
    *)
        echo "usage: $0 extract | update | init LANG" >&2
        exit 2
        ;;
esac
