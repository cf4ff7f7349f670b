"""Static assets: URLs carry a hash of the file's content, so browsers keep them a year.

``url_for('static', filename=...)`` gets ``?v=<hash>`` (the first 12 hex digits of the
file's SHA-256, an in-memory manifest refreshed when a file's size or time changes).
A request whose ``v`` matches the file now on disk is answered ``Cache-Control:
public, max-age=31536000, immutable``; any other keeps Flask's short default. Static
responses, pages and JSON answers are compressed with Flask-Compress (zstd, brotli,
gzip or deflate, whichever the browser accepts), so the country outlines (756 kB of
TopoJSON) travel in ~240 kB and are fetched once, not on each load.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from flask import Flask, Response, request
from flask_compress import Compress

YEAR = 31_536_000  # seconds
compress = Compress()
_manifest: dict[str, tuple[int, int, str]] = {}  # path -> (size, mtime ns, hash)
_lock = threading.Lock()


def asset_version(static_folder: str | os.PathLike[str], filename: str) -> str | None:
    """Return the content hash of ``filename`` under ``static_folder``, None if missing."""
    folder = Path(static_folder).resolve()
    path = (folder / filename).resolve()
    if folder not in path.parents or not path.is_file():
        return None
    stat = path.stat()
    key = str(path)
    known = _manifest.get(key)
    if known and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    with _lock:
        _manifest[key] = (stat.st_size, stat.st_mtime_ns, digest)
    return digest


# Answers built per request that are compressed too (pages, JSON, CSV, feeds). The
# viewport GeoJSON (cells and tiles) is not among them: it is served from the cells
# cache, compressed once per cache entry.
DYNAMIC_COMPRESSED = frozenset({
    "text/html", "application/json", "application/problem+json", "text/csv", "text/plain",
    "text/xml", "application/xml", "application/rss+xml", "application/atom+xml",
    "text/javascript", "image/svg+xml",
})


def init_app(app: Flask) -> None:
    """Hash static URLs, cache matching requests for a year, compress what compresses.

    Static files and the answers of :data:`DYNAMIC_COMPRESSED` types go out compressed
    with Flask-Compress (zstd, brotli, gzip or deflate, as the browser accepts; bodies
    of 500 bytes or more) with ``Vary: Accept-Encoding``.
    """
    app.config.setdefault("COMPRESS_REGISTER", False)  # the hook below decides
    # Static files go out as streamed responses, for which Flask-Compress leaves gzip
    # out by default: a client that accepts only gzip (curl --compressed, many proxies
    # and HTTP libraries) got the 756 kB outlines uncompressed. Its streaming gzip
    # compressor is there; it is used like the others.
    app.config.setdefault("COMPRESS_ALGORITHM_STREAMING", ["zstd", "br", "gzip", "deflate"])
    app.config.setdefault("COMPRESS_MIMETYPES", sorted(DYNAMIC_COMPRESSED | {
        "text/css", "application/javascript", "application/geo+json", "font/ttf",
        "font/otf", "application/vnd.ms-fontobject", "image/x-icon"}))
    compress.init_app(app)

    @app.url_defaults
    def _hashed_static(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            version = asset_version(app.static_folder or "", values["filename"])
            if version:
                values["v"] = version

    @app.after_request
    def _static_headers(response: Response) -> Response:
        if request.endpoint != "static" or request.view_args is None:
            if response.mimetype in DYNAMIC_COMPRESSED and not response.direct_passthrough:
                return compress.after_request(response)
            return response
        wanted = request.args.get("v")
        current = asset_version(app.static_folder or "", request.view_args["filename"])
        if wanted and wanted == current and response.status_code in (200, 304):
            response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
        return compress.after_request(response)
