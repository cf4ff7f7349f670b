r"""Soulmates scored in the web worker vs by the scorer process: speed and identical answers.

    GEOMAP_DATA_DIR=var/bench1m GEOMAP_DB_PORT=55493 \\
        .venv/bin/python bench/soulmates_scorer.py --probes 40 --rounds 3

Needs a database with demo members and symptoms (``geomap demo``, or
``bench/soulmates.py scale --prepare N``) and its cluster running. Starts the scorer
(geomap.symptoms.scorer, as ``geomap serve`` does, its socket under the data folder)
and two HTTP servers in their own processes, the same app each: one scoring in
process (no scorer: as before this change), one asking the scorer. For each of
``--probes`` opted-in listable members with ALL (bench/soulmates.py's seed), one
warm-up search on each server, then ``--rounds`` signed-in GETs of
``/api/v1/soulmates?condition=all`` on each, interleaved (in process, scorer, in
process, ...), so both see the same load. Prints p50/p95 of each, how many answers
were byte-identical, each server process's RSS after, the scorer's, and the load.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nearby import _QuietHandler, ensure_accounts, signed_in_opener  # noqa: E402
from soulmates_scale import pick_probes  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from geomap.config import data_dir, load_settings, secret_key  # noqa: E402
from geomap.embedded_pg import database_url  # noqa: E402
from geomap.symptoms.scorer_link import ScorerProcess, socket_path  # noqa: E402

URL = "/api/v1/soulmates?condition=all"


def _serve(settings: dict, scorer, ports) -> None:  # noqa: ANN001
    """Serve the app on 127.0.0.1 in this process (asking ``scorer``, None: in process)."""
    from werkzeug.serving import make_server

    from geomap import create_app
    from geomap.symptoms.scorer_link import attach

    app = attach(create_app(settings | {"RATELIMIT_ENABLED": False}), scorer)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    ports.put(server.server_port)
    server.serve_forever()


def _rss(pid: int) -> float:
    """Return a process's VmRSS in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _p(values: list[float]) -> str:
    ordered = sorted(values)
    return (f"p50={statistics.median(ordered):.1f} "
            f"p95={ordered[max(0, int(0.95 * len(ordered)) - 1)]:.1f} ms (n={len(ordered)})")


def main() -> None:
    """Print the interleaved figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=float, default=0.42)
    parser.add_argument("--port", type=int, default=5093, help="names the scorer's socket")
    args = parser.parse_args()
    settings = load_settings(os.environ)
    engine = create_engine(database_url(settings))
    with Session(engine) as session:
        probes = pick_probes(session, args.probes, args.seed)
        listable = session.execute(text(
            "SELECT count(*) FROM soulmate_profiles p JOIN nearby_members n "
            "ON n.member_id = p.member_id JOIN conditions c ON c.id = n.condition_id "
            "AND c.slug = 'all'")).scalar_one()
    ensure_accounts(engine, probes)
    with engine.begin() as conn:  # accounts need a verified e-mail, consent and terms
        conn.execute(text(
            "UPDATE accounts SET email_verified_at = coalesce(email_verified_at, now()), "
            "health_data_consent_at = coalesce(health_data_consent_at, now()), "
            "terms_accepted_at = coalesce(terms_accepted_at, now()) "
            "WHERE email LIKE 'bench-%@bench.example.org'"))
    engine.dispose()
    print(f"probes {len(probes)}, opted-in listable with ALL {listable:,}, "
          f"load at start {os.getloadavg()}")
    environment = {k: v for k, v in os.environ.items() if k.startswith("GEOMAP_")}
    environment |= {"GEOMAP_SECRET_KEY": secret_key(settings)}
    scorer = ScorerProcess(socket_path(data_dir(settings), args.port)).start(wait=60)
    context = multiprocessing.get_context("spawn")
    servers = {}
    try:
        for name, address in (("in process", None), ("scorer", scorer.address)):
            ports = context.Queue()
            process = context.Process(target=_serve, args=(environment, address, ports),
                                      daemon=True)
            process.start()
            servers[name] = (process, f"http://127.0.0.1:{ports.get(timeout=120)}")
        openers = {name: [signed_in_opener(base, member) for member, _cell in probes]
                   for name, (_process, base) in servers.items()}
        answers: dict[str, list[bytes]] = {name: [] for name in servers}
        first: dict[str, list[float]] = {name: [] for name in servers}
        for name, (_process, base) in servers.items():  # warm-up: packs, labels, rings
            for opener in openers[name]:
                started = time.perf_counter()
                opener.open(base + URL).read()
                first[name].append((time.perf_counter() - started) * 1000)
        times: dict[str, list[float]] = {name: [] for name in servers}
        for _round in range(args.rounds):
            for index in range(len(probes)):
                for name, (_process, base) in servers.items():
                    started = time.perf_counter()
                    with openers[name][index].open(base + URL) as response:
                        body = response.read()
                    times[name].append((time.perf_counter() - started) * 1000)
                    answers[name].append(body)
        same = sum(a == b for a, b in zip(answers["in process"], answers["scorer"],
                                          strict=True))
        for name, (process, _base) in servers.items():
            print(f"{name:<11} first search of each probe {_p(first[name])}")
            print(f"{name:<11} GET {URL} {_p(times[name])}; server RSS "
                  f"{_rss(process.pid):.1f} MB")
        print(f"scorer process RSS {_rss(scorer.pid):.1f} MB")
        print(f"identical answers: {same} of {len(answers['scorer'])}")
    finally:
        for process, _base in servers.values():
            process.terminate()
            process.join()
        scorer.stop()
    print(f"load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
