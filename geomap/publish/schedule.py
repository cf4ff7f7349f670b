"""Publishing on an interval while the service runs (no cron needed)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.engine import Engine

from geomap.session import session_scope

log = logging.getLogger(__name__)


class PublishScheduler:
    """A daemon thread that publishes every interval when member data changed."""

    def __init__(self, engine: Engine, settings: dict[str, Any]) -> None:
        """Prepare a scheduler for ``engine`` with the interval from ``settings``."""
        self.engine = engine
        self.settings = settings
        self.interval = settings["GEOMAP_PUBLISH_INTERVAL"]
        self.k = settings["GEOMAP_K"]
        self.floor = settings["GEOMAP_FLOOR_RESOLUTION"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="geomap-publish", daemon=True)

    def start(self) -> None:
        """Start publishing in the background (no-op when the interval is 0)."""
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop after the current publish, if any."""
        self._stop.set()

    def run_once(self) -> None:
        """Publish now if member data changed since the last publish."""
        # Imported at the first publish, not when `geomap serve --prod` starts: the
        # scheduler runs in gunicorn's master, and workers forked from it would all
        # carry numpy and the publish step (tests/test_worker_footprint.py).
        from geomap.publish.cell_names import name_new_cells
        from geomap.publish.snapshots import refresh_snapshots
        from geomap.publish.step import publish

        with session_scope(self.engine) as session:
            summary = publish(session, k=self.k, floor=self.floor, only_if_changed=True,
                              snapshots=False)
        if summary.skipped:
            return
        log.info("published version %s in %.1f s", summary.version, summary.seconds)
        with session_scope(self.engine) as session:
            seconds = refresh_snapshots(session, full=summary.kind == "full")
        log.info("refreshed admin counts and the nearby index in %.1f s", seconds)
        with session_scope(self.engine) as session:
            named = name_new_cells(session)
        log.info("named the areas of %d new cells in %.1f s", named.cells, named.seconds)

    def _run(self) -> None:
        self._send_outbox()
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # keep the schedule alive; the next run retries
                log.exception("scheduled publish failed")
            self._notify()

    def _send_outbox(self) -> None:
        """Send the outbox's due mails: retries, and what a process left when it died."""
        from sqlalchemy.orm import sessionmaker

        from geomap.mail import outbox

        try:
            outbox.send_pending(sessionmaker(self.engine), self.settings)
        except Exception:  # the next run retries
            log.exception("outbox mails failed")

    def _notify(self) -> None:
        """Send the outbox, then mail members their batched notifications."""
        from geomap.mail.notifications import send_notifications

        self._send_outbox()

        try:
            send_notifications(self.engine, self.settings)
        except Exception:  # the next run retries
            log.exception("notification mails failed")
