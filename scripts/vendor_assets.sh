#!/usr/bin/env bash
# Copies the npm-installed front-end assets into static/vendor/ and converts
# Natural Earth country outlines (world-atlas TopoJSON) to GeoJSON for
# `geomap geo import`. static/vendor/ is not committed.
set -euo pipefail
cd "$(dirname "$0")/.."
NM=node_modules
OUT=static/vendor
mkdir -p "$OUT/leaflet" "$OUT/markercluster" "$OUT/world-atlas" "$OUT/swagger-ui"
cp -r "$NM/leaflet/dist/leaflet.js" "$NM/leaflet/dist/leaflet.css" "$NM/leaflet/dist/images" "$OUT/leaflet/"
cp "$NM/leaflet.markercluster/dist/leaflet.markercluster.js" \
   "$NM/leaflet.markercluster/dist/MarkerCluster.css" \
   "$NM/leaflet.markercluster/dist/MarkerCluster.Default.css" "$OUT/markercluster/"
cp "$NM/topojson-client/dist/topojson-client.min.js" "$OUT/"
cp "$NM/swagger-ui-dist/swagger-ui-bundle.js" "$NM/swagger-ui-dist/swagger-ui.css" "$OUT/swagger-ui/"
cp "$NM/world-atlas/countries-50m.json" "$NM/world-atlas/land-50m.json" \
   "$NM/world-atlas/countries-10m.json" "$OUT/world-atlas/"
node "$NM/topojson-client/bin/topo2geo" "countries=$OUT/world-atlas/countries-50m.geojson" \
    < "$NM/world-atlas/countries-50m.json"
