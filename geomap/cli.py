"""The ``geomap`` command: database, reference data, demo members, publish, serve."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import Engine

from geomap import embedded_pg
from geomap.config import ConfigError, check_environment, data_dir, load_settings
from geomap.database import make_engine


class Context:
    """Settings and a lazily created engine, shared by the subcommands."""

    def __init__(self) -> None:
        """Load settings from the environment, failing with a readable message."""
        try:
            check_environment()
            self.settings: dict[str, Any] = load_settings()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        self._engine: Engine | None = None

    @property
    def embedded(self) -> bool:
        """Whether geomap runs its own cluster (no database URL configured)."""
        return not self.settings["GEOMAP_DATABASE_URL"]

    def cluster(self) -> embedded_pg.Cluster:
        """Return the embedded cluster, with errors as CLI messages."""
        try:
            return embedded_pg.cluster_for(self.settings)
        except embedded_pg.EmbeddedError as exc:
            raise click.ClickException(str(exc)) from None

    @property
    def engine(self) -> Engine:
        """Return the engine, starting the embedded cluster first if it is down."""
        if self._engine is None:
            if self.embedded:
                cluster = self.cluster()
                try:
                    if embedded_pg.start(cluster):
                        click.echo(f"Started embedded PostgreSQL on 127.0.0.1:{cluster.port}")
                except embedded_pg.EmbeddedError as exc:
                    raise click.ClickException(str(exc)) from None
                url = cluster.url
            else:
                url = self.settings["GEOMAP_DATABASE_URL"]
            self._engine = make_engine(url, pool_size=2)
        return self._engine


pass_context = click.make_pass_decorator(Context, ensure=True)


@click.group()
def main() -> None:
    """geomap: a private community map service for patient communities."""


# --- database -------------------------------------------------------------------


@main.group()
def db() -> None:
    """Run the embedded PostGIS cluster and migrate the schema."""


@db.command("start")
@pass_context
def db_start(ctx: Context) -> None:
    """Initialise (once) and start the embedded cluster."""
    if not ctx.embedded:
        click.echo("GEOMAP_DATABASE_URL is set: nothing to start.")
        return
    cluster = ctx.cluster()
    try:
        started = embedded_pg.start(cluster)
    except embedded_pg.EmbeddedError as exc:
        raise click.ClickException(str(exc)) from None
    state = "started" if started else "already running"
    click.echo(f"Embedded PostgreSQL {state} on 127.0.0.1:{cluster.port} ({cluster.pgdata})")


@db.command("stop")
@pass_context
def db_stop(ctx: Context) -> None:
    """Stop the embedded cluster."""
    if not ctx.embedded:
        click.echo("GEOMAP_DATABASE_URL is set: nothing to stop.")
        return
    stopped = embedded_pg.stop(ctx.cluster())
    click.echo("Embedded PostgreSQL stopped." if stopped else "Embedded PostgreSQL is not running.")


@db.command("status")
@pass_context
def db_status(ctx: Context) -> None:
    """Say whether the database is reachable and at which schema revision."""
    if ctx.embedded:
        cluster = ctx.cluster()
        if not embedded_pg.is_running(cluster):
            click.echo(f"Embedded PostgreSQL is not running ({cluster.pgdata}).")
            sys.exit(3)
        click.echo(f"Embedded PostgreSQL running on 127.0.0.1:{cluster.port} ({cluster.pgdata})")
    revision = _schema_revision(ctx.engine)
    click.echo(f"Schema revision: {revision or 'none (run `geomap db upgrade`)'}")


def _schema_revision(engine: Any) -> str | None:
    """Return the database's Alembic revision, None before the first migration."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if not conn.execute(text("SELECT to_regclass('alembic_version') IS NOT NULL")
                            ).scalar_one():
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")
                            ).scalar_one_or_none()


@db.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Migrate the schema to the newest revision (idempotent)."""
    from geomap.migrate import upgrade

    before = _schema_revision(ctx.engine)
    upgrade(ctx.engine)
    after = _schema_revision(ctx.engine)
    if before == after:
        click.echo(f"Schema is up to date ({after}).")
    else:
        click.echo(f"Schema upgraded from {before or 'an empty database'} to {after}.")


# --- reference data ------------------------------------------------------------


@main.group()
def geo() -> None:
    """Offline reference geography (GeoNames cities, Natural Earth countries)."""


@geo.command("import")
@click.option("--if-empty", is_flag=True, help="Do nothing if reference data is loaded.")
@pass_context
def geo_import(ctx: Context, if_empty: bool) -> None:
    """Load gazetteer places and country outlines (offline)."""
    from geomap.geo import reference
    from geomap.geo.derive import forget_derivers
    from geomap.session import session_scope

    with session_scope(ctx.engine) as session:
        if if_empty and reference.reference_loaded(session):
            click.echo("Reference data already loaded.")
            return
        try:
            path = reference.countries_geojson_path()
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
        with click.progressbar(length=34_000, label="Gazetteer places") as bar:
            places = reference.import_places(session, progress=bar.update)
        click.echo("Country outlines (Natural Earth 1:50m) ...")
        countries = reference.import_countries(session, path)
        click.echo("Prepared structures of the key deriver ...")
        from geomap.geo import prepared
        from geomap.geo.derive import COAST_KM

        prepared.store(session, prepared.compute(session, COAST_KM))
    forget_derivers()
    click.echo(f"Loaded {places:,} places and {countries} countries.")


@main.group()
def symptoms() -> None:
    """Manage the symptoms vocabulary (Human Phenotype Ontology, offline from hpo3)."""


@symptoms.command("import")
@click.option("--obo", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An hp.obo file whose exact and layperson synonyms become labels.")
@click.option("--force", is_flag=True, help="Load again even if this version is loaded.")
@pass_context
def symptoms_import(ctx: Context, obo: Path | None, force: bool) -> None:
    """Load HPO terms, labels, information content and ancestors (idempotent)."""
    from geomap.session import session_scope
    from geomap.symptoms.vocabulary import import_vocabulary

    with session_scope(ctx.engine) as session:
        loaded = import_vocabulary(session, obo=obo, force=force)
    click.echo(f"Loaded {loaded:,} symptom terms." if loaded
               else "Symptoms vocabulary already loaded.")


# --- members ---------------------------------------------------------------------


@main.command()
@click.option("--members", "count", type=click.IntRange(1, 50_000_000), default=20_000,
              show_default=True, help="How many synthetic members.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--if-empty", is_flag=True, help="Do nothing if there are members already.")
@click.option("--no-publish", is_flag=True,
              help="Do not publish now; a running `geomap serve` still publishes the "
                   "new members at its next scheduled publish (GEOMAP_PUBLISH_INTERVAL).")
@pass_context
def demo(ctx: Context, count: int, seed: int, if_empty: bool, no_publish: bool) -> None:
    """Add synthetic members around gazetteer cities (deterministic for a seed)."""
    from sqlalchemy import text

    from geomap.geo.derive import deriver_for
    from geomap.ingest import demo as demo_data
    from geomap.ingest.members_bulk import load_members
    from geomap.session import session_scope

    with session_scope(ctx.engine) as session:
        if if_empty and session.execute(text("SELECT EXISTS (SELECT 1 FROM members)")).scalar():
            click.echo("Members exist already; no demo members added.")
            return
        started = time.perf_counter()
        deriver = deriver_for(session, ctx.settings["GEOMAP_FLOOR_RESOLUTION"])
        batch, prefixes = demo_data.generate(session, count, seed,
                                              on_land=deriver.cell_on_land,
                                              settle_in_loader=True)
        with click.progressbar(length=count, label="Demo members") as bar:
            load_members(session, batch, deriver, progress=bar.update, pseudonym_prefix=prefixes)
        demo_data.add_symptoms(session, seed)
        seconds = time.perf_counter() - started
    click.echo(f"Added {count:,} demo members in {seconds:.1f} s ({count / seconds:,.0f}/s).")
    if not no_publish:
        _analyze_members(ctx)
        _publish(ctx)
    else:
        _say_not_published_yet(ctx)


@main.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "geojson"]),
              help="File format (default: by extension; .geojson/.json is GeoJSON).")
@click.option("--all-or-nothing", is_flag=True, help="Import nothing if any row is bad.")
@click.option("--no-publish", is_flag=True,
              help="Do not publish now; a running `geomap serve` still publishes the "
                   "new members at its next scheduled publish (GEOMAP_PUBLISH_INTERVAL).")
@click.option("--allow-sea", is_flag=True,
              help="Keep points at sea, at (0, 0) or that look swapped (rare real cases).")
@pass_context
def import_members(ctx: Context, path: Path, fmt: str | None, all_or_nothing: bool,
                   no_publish: bool, allow_sea: bool) -> None:
    """Import members from a CSV or GeoJSON file (columns: see the README)."""
    from geomap.geo.derive import deriver_for
    from geomap.ingest import importer
    from geomap.session import session_scope

    started = time.perf_counter()
    with (session_scope(ctx.engine) as session,
          ThreadPoolExecutor(max_workers=1) as pool):
        # The key deriver loads its structures from the database while the file is read.
        deriver_loading = pool.submit(deriver_for, session, ctx.settings["GEOMAP_FLOOR_RESOLUTION"])
        try:
            records = importer.read_records(path, fmt)
        except (importer.ImportFileError, UnicodeDecodeError) as exc:
            # Leaving the pool waits for the loading thread before the session closes.
            raise click.ClickException(f"{path}: {exc}") from None
        deriver = deriver_loading.result()
        validated = importer.validate(session, records, deriver=deriver, allow_sea=allow_sea)
        for line in importer.iter_errors(validated.errors):
            click.echo(f"{path}: {line}", err=True)
        if all_or_nothing and validated.errors:
            imported = 0
        else:
            with click.progressbar(length=len(validated.batch), label="Importing") as bar:
                imported = importer.import_members(session, validated, deriver,
                                                   progress=bar.update)
    seconds = time.perf_counter() - started
    rejected = len(validated.errors)
    hint = importer.taken_hint(validated)
    if hint:
        click.echo(hint, err=True)
    if all_or_nothing and rejected:
        click.echo(f"Nothing imported: {rejected:,} of {validated.rows:,} rows are bad "
                   "(--all-or-nothing).")
        sys.exit(1)
    click.echo(
        f"Imported {imported:,} of {validated.rows:,} rows ({rejected:,} rejected) in "
        f"{seconds:.1f} s"
        # A rate says something for large files only ("1 members/s" for a 3-row file).
        + (f" ({imported / max(seconds, 1e-9):,.0f} members/s)." if imported >= 1000 else ".")
    )
    if imported and not no_publish:
        _analyze_members(ctx)
        _publish(ctx)
    elif imported:
        _say_not_published_yet(ctx)
    if rejected:
        sys.exit(1)


@main.command()
@click.option("--full", is_flag=True,
              help="Recompute everything, not only what changed since the last publish.")
@pass_context
def publish(ctx: Context, full: bool) -> None:
    """Publish the k-anonymous aggregates now (incremental when possible)."""
    _publish(ctx, full=full)


def _say_not_published_yet(ctx: Context) -> None:
    """Say when new members reach the public maps after a ``--no-publish`` load."""
    interval = ctx.settings["GEOMAP_PUBLISH_INTERVAL"]
    when = (f"a running `geomap serve` publishes them within {interval:,} s "
            "(GEOMAP_PUBLISH_INTERVAL)" if interval else
            "automatic publishes are off (GEOMAP_PUBLISH_INTERVAL=0)")
    click.echo(f"Not published now (--no-publish): {when}; `geomap publish` does it now.")


def _analyze_members(ctx: Context) -> None:
    """Gather the member tables' statistics after a load, for the publish that follows."""
    from geomap.ingest.members_bulk import analyze_member_tables
    from geomap.session import session_scope

    with session_scope(ctx.engine) as session:
        analyze_member_tables(session)


def _publish(ctx: Context, *, full: bool = False) -> None:
    """Publish with a progress bar and print what was published."""
    from sqlalchemy import text

    from geomap.publish import publish as run_publish
    from geomap.publish import refresh_snapshots
    from geomap.publish.cell_names import name_new_cells
    from geomap.session import session_scope

    with session_scope(ctx.engine) as session:
        conditions = session.execute(
            text("SELECT count(*) FROM conditions WHERE enabled")
        ).scalar_one()
        with click.progressbar(length=conditions, label="Publishing") as bar:
            summary = run_publish(
                session,
                k=ctx.settings["GEOMAP_K"],
                floor=ctx.settings["GEOMAP_FLOOR_RESOLUTION"],
                full=full,
                snapshots=False,
                progress=bar.update,
            )
    click.echo(
        f"Published version {summary.version} ({summary.kind}, {summary.rows_written:,} rows "
        f"written): {summary.published_cells:,} markers from "
        f"{summary.members_on_map:,} memberships on the map in {summary.seconds:.1f} s."
    )
    with session_scope(ctx.engine) as session:
        seconds = refresh_snapshots(session, full=summary.kind == "full")
    click.echo(f"Refreshed admin counts and the nearby index in {seconds:.1f} s.")
    with session_scope(ctx.engine) as session:
        named = name_new_cells(session)
    click.echo(f"Named the areas of {named.cells:,} new cells in {named.seconds:.1f} s.")


# --- regions ---------------------------------------------------------------------


@main.group()
def regions() -> None:
    """First-level region polygons (operator-supplied) and members' regions."""


@regions.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--level", type=click.Choice(["admin1"]), default="admin1", show_default=True,
              help="Administrative level of the polygons.")
@click.option("--code-field", required=True,
              help="Feature property holding the region code (e.g. iso_3166_2).")
@click.option("--name-field", default=None, help="Feature property holding the region name.")
@pass_context
def regions_load(ctx: Context, file: str, level: str, code_field: str,
                 name_field: str | None) -> None:
    """Load region polygons from a GeoJSON file (replacing regions with the same codes)."""
    from pathlib import Path

    from geomap.regions.load import RegionFileError, load_regions
    from geomap.session import session_scope

    try:
        with session_scope(ctx.engine) as session:
            summary = load_regions(session, Path(file), level=level, code_field=code_field,
                                   name_field=name_field)
    except RegionFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Loaded {summary.regions} regions ({summary.parts:,} parts) in "
        f"{', '.join(summary.countries)}. Run `geomap regions reassign` to update members, "
        "then `geomap publish`."
    )


@regions.command("reassign")
@pass_context
def regions_reassign(ctx: Context) -> None:
    """Derive every member's country and region again (after loading polygons)."""
    from geomap.geo.derive import KeyDeriver
    from geomap.regions.load import members_to_reassign, reassign_regions
    from geomap.session import session_scope

    started = time.perf_counter()
    with session_scope(ctx.engine) as session:
        deriver = KeyDeriver(session, ctx.settings["GEOMAP_FLOOR_RESOLUTION"])
        with click.progressbar(length=members_to_reassign(session), label="Members") as bar:
            summary = reassign_regions(session, deriver, progress=bar.update)
    click.echo(
        f"Checked {summary.members:,} members in {time.perf_counter() - started:.1f} s: "
        f"{summary.changed:,} changed country or region. Run `geomap publish` to publish."
    )


# --- admins ----------------------------------------------------------------------


@main.group()
def admin() -> None:
    """Manage admin accounts."""


@admin.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--role", type=click.Choice(["admin", "moderator"]), default="admin",
              show_default=True,
              help="admin: counts, moderation log and queue; moderator: the report queue.")
@pass_context
def admin_create(ctx: Context, email: str, password_stdin: bool, role: str) -> None:
    """Create an admin or moderator account (or give an existing account the role)."""
    from email_validator import EmailNotValidError, validate_email

    from geomap.auth.accounts import create_admin
    from geomap.auth.passwords import weakness
    from geomap.session import session_scope

    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise click.ClickException(f"{email!r} is not a valid email address: {exc}") from None
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    weak = weakness(password, email=email)
    if weak:
        raise click.ClickException(f"The password is refused: {weak}")
    with session_scope(ctx.engine) as session:
        create_admin(session, email=email, password=password, role=role)
    where = "/login, then /moderation" if role == "moderator" else "/login"
    click.echo(f"{role.capitalize()} {email} is ready; sign in at {where}.")


# --- mail ------------------------------------------------------------------------------


@main.group()
def mail() -> None:
    """Read the mails written to the data folder (no SMTP server set); send notifications."""


@mail.command("list")
@pass_context
def mail_list(ctx: Context) -> None:
    """List the stored mails, oldest first: name, date, recipient, subject."""
    from geomap.mail import stored_mails

    mails = stored_mails(ctx.settings)
    if not mails:
        click.echo("No stored mails (with GEOMAP_SMTP_HOST set, mail goes to the server).")
    for stored in mails:
        click.echo(f"{stored.name}  {stored.date}  {stored.to}  {stored.subject}")


@mail.command("show")
@click.argument("name", required=False)
@pass_context
def mail_show(ctx: Context, name: str | None) -> None:
    """Print a stored mail (its file name from `geomap mail list`; default: the newest)."""
    from geomap.mail import read_stored, stored_mails

    if name is None:
        mails = stored_mails(ctx.settings)
        if not mails:
            raise click.ClickException("There are no stored mails.")
        name = mails[-1].name
    try:
        message = read_stored(ctx.settings, name)
    except FileNotFoundError:
        raise click.ClickException(f"No stored mail is called {name!r}.") from None
    for header in ("Date", "From", "To", "Subject"):
        click.echo(f"{header}: {message[header]}")
    click.echo("")
    click.echo(message.get_content())


@mail.command("send")
@pass_context
def mail_send(ctx: Context) -> None:
    """Send the mails waiting in the outbox now (`geomap serve` sends them on its own)."""
    from sqlalchemy.orm import sessionmaker

    from geomap.mail.outbox import send_pending

    run = send_pending(sessionmaker(ctx.engine), ctx.settings)
    click.echo(f"{run.sent} mail(s) sent, {run.failed} failed; {run.waiting} waiting "
               "in the outbox.")
    if run.failed:
        raise SystemExit(1)


@mail.command("notify")
@pass_context
def mail_notify(ctx: Context) -> None:
    """Send the batched notification mails now (`geomap serve` does it on its schedule)."""
    from geomap.mail.notifications import send_notifications

    run = send_notifications(ctx.engine, ctx.settings)
    click.echo(f"{run.sent} notification mail(s) sent, {run.failed} failed.")
    if run.failed:
        raise SystemExit(1)


# --- serving ---------------------------------------------------------------------


# --- condition catalogue -----------------------------------------------------------


@main.group()
def conditions() -> None:
    """Load the condition catalogue (ICD-10, Orphanet) and curate which have a map."""


@conditions.command("import")
@pass_context
def conditions_import(ctx: Context) -> None:
    """Load WHO ICD-10 and Orphanet into the catalogue (idempotent, offline)."""
    from geomap.catalogue.load import import_catalogue, source_size
    from geomap.session import session_scope

    with session_scope(ctx.engine) as session:
        with click.progressbar(length=source_size(), label="Catalogue entries") as bar:
            summary = import_catalogue(session, progress=bar.update)
    click.echo(
        f"Catalogue: {summary.added:,} entries added, {summary.existing:,} already there; "
        f"{summary.names_added:,} names ({summary.spanish_names:,} Spanish titles read) and "
        f"{summary.codes_added:,} codes added."
    )


def _curate(ctx: Context, ref: str, change: Any) -> None:
    """Run ``change(session, entry, actor)`` on the entry ``ref``; print errors plainly."""
    import getpass

    from geomap.catalogue import curate
    from geomap.session import session_scope

    try:
        with session_scope(ctx.engine) as session:
            entry = curate.require_entry(session, ref)
            message = change(session, entry, f"cli:{getpass.getuser()}")
    except curate.CatalogueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(message)


@conditions.command("enable")
@click.argument("condition")
@pass_context
def conditions_enable(ctx: Context, condition: str) -> None:
    """Open the map of CONDITION (a slug or a code such as C91.0 or ORPHA:513)."""
    from geomap.catalogue import curate

    def change(session: Any, entry: Any, actor: str) -> str:
        entry = curate.enable(session, entry, actor)
        return f"{entry.name} ({entry.slug}) has a map from the next publish on."

    _curate(ctx, condition, change)


@conditions.command("disable")
@click.argument("condition")
@pass_context
def conditions_disable(ctx: Context, condition: str) -> None:
    """Close the map of CONDITION at the next publish; members keep their data."""
    from geomap.catalogue import curate

    def change(session: Any, entry: Any, actor: str) -> str:
        entry = curate.disable(session, entry, actor)
        return f"The map of {entry.name} closes at the next publish; no member data is lost."

    _curate(ctx, condition, change)


@conditions.command("rename")
@click.argument("condition")
@click.argument("name")
@pass_context
def conditions_rename(ctx: Context, condition: str, name: str) -> None:
    """Give CONDITION the display name NAME (the old name stays a synonym)."""
    from geomap.catalogue import curate

    def change(session: Any, entry: Any, actor: str) -> str:
        renamed = curate.rename(session, entry, name, actor)
        return f"{entry.name} is now called {renamed.name}."

    _curate(ctx, condition, change)


@conditions.command("add-synonym")
@click.argument("condition")
@click.argument("synonym")
@click.option("--locale", default="en", show_default=True, help="Language of the synonym.")
@pass_context
def conditions_add_synonym(ctx: Context, condition: str, synonym: str, locale: str) -> None:
    """Make CONDITION findable by SYNONYM."""
    from geomap.catalogue import curate

    def change(session: Any, entry: Any, actor: str) -> str:
        curate.add_synonym(session, entry, synonym, actor, locale=locale)
        return f"{entry.name} can now be found as {synonym}."

    _curate(ctx, condition, change)


@main.command()
@click.option("--prod", is_flag=True, help="Serve with gunicorn workers.")
@click.option("--nginx", "with_nginx", is_flag=True,
              help="With --prod: nginx (Debian's) on GEOMAP_HOST:GEOMAP_PORT caches tiles and "
                   "static files; gunicorn listens on 127.0.0.1:GEOMAP_PORT+1. The "
                   "configuration is written to <data dir>/nginx/nginx.conf.")
@pass_context
def serve(ctx: Context, prod: bool, with_nginx: bool) -> None:
    """Serve the web app, publishing on the configured interval."""
    if with_nginx and not prod:
        raise click.UsageError("--nginx goes with --prod (gunicorn behind nginx).")
    from geomap import create_app
    from geomap.publish.schedule import PublishScheduler

    settings = ctx.settings
    ctx.engine  # noqa: B018  (starts the embedded cluster if needed)
    scheduler = PublishScheduler(ctx.engine, settings)
    scheduler.start()
    host, port = settings["GEOMAP_HOST"], settings["GEOMAP_PORT"]
    click.echo(f"geomap serving on http://{host}:{port}/")
    try:
        if prod and with_nginx:
            _serve_behind_nginx(settings, host, port)
        elif prod:
            from geomap.wsgi_server import run_gunicorn

            run_gunicorn(host, port, settings["GEOMAP_WORKERS"], data_dir(settings))
        else:
            import logging

            from geomap.symptoms.scorer_link import attach
            from geomap.wsgi_server import DropQueryStrings, start_scorer

            logging.getLogger("werkzeug").addFilter(DropQueryStrings())
            scorer = start_scorer(data_dir(settings), port)
            try:
                attach(create_app(), scorer.address if scorer else None).run(
                    host=host, port=port, threaded=True, use_reloader=False)
            finally:
                if scorer is not None:
                    scorer.stop()
    finally:
        scheduler.stop()


def _serve_behind_nginx(settings: dict[str, Any], host: str, port: int) -> None:
    """Run nginx on host:port and gunicorn on 127.0.0.1:port+1 until stopped."""
    from geomap.config import data_dir
    from geomap.http_cache import NginxError, NginxSite, nginx_prefix, start_nginx
    from geomap.wsgi_server import run_gunicorn

    site = NginxSite(listen=f"{host}:{port}", upstream=f"127.0.0.1:{port + 1}",
                     prefix=nginx_prefix(data_dir(settings)))
    try:
        nginx = start_nginx(site)
    except NginxError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"nginx ({site.prefix / 'nginx.conf'}) caching in front of gunicorn on "
               f"{site.upstream}")
    try:
        run_gunicorn("127.0.0.1", port + 1, settings["GEOMAP_WORKERS"], data_dir(settings))
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)


if __name__ == "__main__":
    threading.current_thread().name = "geomap"
    main()
