// supercluster 9 (the JavaScript standard for point clustering) served over HTTP by Node,
// for bench/compare.py: the same members' points, the same viewports, its radius tuned so
// that the mean marker count per viewport matches geomap's.
//
//   node server.mjs POINTS VIEWPORTS TARGET_MEAN PORT
//
// POINTS: float64 little-endian (lng, lat) pairs. VIEWPORTS: JSON [[zoom, [w, s, e, n]], ...].
// GET /clusters?zoom=Z&bbox=W,S,E,N answers getClusters as a GeoJSON FeatureCollection;
// answers are cached per URL as geomap caches them per viewport (at most 4096 entries).
// Prints one JSON line {"radius", "mean_markers", "index_ms"} once it listens.
import { readFileSync } from "node:fs";
import http from "node:http";
import Supercluster from "supercluster";

const [pointsFile, viewportsFile, targetArg, portArg] = process.argv.slice(2);
const raw = readFileSync(pointsFile);
const coords = new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
const points = new Array(coords.length / 2);
for (let i = 0; i < points.length; i++) {
  points[i] = {
    type: "Feature",
    properties: null,
    geometry: { type: "Point", coordinates: [coords[2 * i], coords[2 * i + 1]] },
  };
}
const viewports = JSON.parse(readFileSync(viewportsFile, "utf8"));
const target = Number(targetArg);
const maxZoom = Math.max(...viewports.map(([zoom]) => zoom));

function build(radius) {
  return new Supercluster({ radius, maxZoom, minZoom: 0 }).load(points);
}

function meanMarkers(index) {
  let total = 0;
  for (const [zoom, box] of viewports) total += index.getClusters(box, zoom).length;
  return total / viewports.length;
}

// Bisection on the radius (px of a 512 px tile): more radius, fewer markers.
let low = 1, high = 512, index = null, mean = 0, radius = 40;
for (let step = 0; step < 12; step++) {
  radius = (low + high) / 2;
  index = build(radius);
  mean = meanMarkers(index);
  if (Math.abs(mean - target) / target < 0.01) break;
  if (mean > target) low = radius; else high = radius;
}
const started = performance.now();
index = build(radius);
const indexMs = performance.now() - started;
mean = meanMarkers(index);

const cache = new Map();
const server = http.createServer((req, res) => {
  let body = cache.get(req.url);
  if (body === undefined) {
    const url = new URL(req.url, "http://localhost");
    const zoom = Number(url.searchParams.get("zoom"));
    const box = (url.searchParams.get("bbox") || "").split(",").map(Number);
    if (url.pathname !== "/clusters" || !Number.isInteger(zoom) || box.length !== 4 ||
        box.some(Number.isNaN)) {
      res.writeHead(400, { "Content-Type": "application/json" });
      res.end('{"error":"GET /clusters?zoom=Z&bbox=W,S,E,N"}');
      return;
    }
    body = Buffer.from(JSON.stringify({
      type: "FeatureCollection",
      features: index.getClusters(box, zoom),
    }));
    if (cache.size >= 4096) cache.delete(cache.keys().next().value);
    cache.set(req.url, body);
  }
  res.writeHead(200, { "Content-Type": "application/geo+json", "Content-Length": body.length,
                       "Cache-Control": "public, max-age=60" });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(portArg), "127.0.0.1", () => {
  console.log(JSON.stringify({ radius, mean_markers: mean, index_ms: indexMs }));
});
