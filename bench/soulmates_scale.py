"""Soulmates at scale: data set preparation and the HTTP, recall, add-symptom and RSS figures.

Used by ``bench/soulmates.py scale`` (see there). ``--prepare N`` first loads N demo
members (no symptoms) and gives half of them 5–15 symptoms drawn from their
condition's annotations with the demo's noise, all opted in; ALL is 30 % of the demo
members, so 1,000,000 members give 150,000 with ALL and symptoms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

import numpy as np
from nearby import _serve, ensure_accounts, signed_in_opener, summary
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from geomap.config import load_settings, secret_key
from geomap.embedded_pg import database_url
from geomap.geo.reference import raw_connection
from geomap.symptoms import candidates
from geomap.symptoms import queries as soulmate_symptoms
from geomap.symptoms import soulmates as soulmate_queries
from geomap.symptoms.demo import condition_pools, noisy_profile
from geomap.symptoms.queries import refresh_profiles
from geomap.symptoms.similarity import SetScorer, self_score, similarity_label

TOP = 20


def prepare(engine, members: int, seed: int) -> None:  # noqa: ANN001
    """Load ``members`` demo members; give half of them 5–15 symptoms, opted in."""
    from geomap.geo.derive import KeyDeriver
    from geomap.ingest import demo
    from geomap.ingest.members_bulk import load_members
    from geomap.publish import publish
    from geomap.session import session_scope
    from geomap.symptoms.vocabulary import import_vocabulary

    settings = load_settings(os.environ)
    started = time.perf_counter()
    with session_scope(engine) as session:
        import_vocabulary(session)
        deriver = KeyDeriver(session, settings["GEOMAP_FLOOR_RESOLUTION"])
        batch, prefixes = demo.generate(session, members, seed, on_land=deriver.on_land)
        ids = load_members(session, batch, deriver, pseudonym_prefix=prefixes)
        print(f"loaded {members:,} members in {time.perf_counter() - started:.0f} s")
        parents = dict(session.execute(text("SELECT id, parents FROM hpo_terms")).all())
        pools = condition_pools(set(parents))
        slug_of = dict(session.execute(text("SELECT id, slug FROM conditions")).all())
        rng = np.random.default_rng(seed)
        chosen = rng.random(len(ids)) < 0.5
        cursor = raw_connection(session).cursor()
        with cursor.copy("COPY member_symptoms (member_id, term_id) FROM STDIN") as copy:
            for member, conditions, pick in zip(ids.tolist(), batch.conditions, chosen.tolist(),
                                                strict=True):
                if not pick:
                    continue
                pool = pools[slug_of[conditions[0]]]
                size = int(rng.integers(5, 16))
                terms = noisy_profile(rng, pool, parents, int(np.ceil(size / 0.6)))
                for term in terms:
                    copy.write_row((member, term))
        with cursor.copy("COPY symptom_matching (member_id) FROM STDIN") as copy:
            for member, pick in zip(ids.tolist(), chosen.tolist(), strict=True):
                if pick:
                    copy.write_row((member,))
        profiles = refresh_profiles(session)
        print(f"{profiles:,} opted-in profiles in {time.perf_counter() - started:.0f} s")
    with session_scope(engine) as session:
        publish(session, k=settings["GEOMAP_K"], floor=settings["GEOMAP_FLOOR_RESOLUTION"])
    print(f"prepared in {time.perf_counter() - started:.0f} s")


def pick_probes(session: Session, count: int, seed: float) -> list[tuple[int, int]]:
    """Return (member id, floor cell) of opted-in, listable members with ALL, drawn by seed."""
    session.execute(text("SELECT setseed(:seed)"), {"seed": seed})
    rows = session.execute(text(
        "SELECT p.member_id, n.floor_cell FROM soulmate_profiles p JOIN nearby_members n "
        "ON n.member_id = p.member_id JOIN conditions c ON c.id = n.condition_id "
        "AND c.slug = 'all' ORDER BY random() LIMIT :n"), {"n": count}).all()
    return [(int(r[0]), int(r[1])) for r in rows]


def recall(engine, probes: list[tuple[int, int]]) -> None:  # noqa: ANN001
    """Print the recall of the top 20 (candidate search + re-rank) against brute force."""
    with Session(engine) as session:
        every = session.execute(text(
            "SELECT p.member_id, p.terms FROM soulmate_profiles p JOIN nearby_members n "
            "ON n.member_id = p.member_id JOIN conditions c ON c.id = n.condition_id "
            "AND c.slug = 'all'")).all()
        rows = session.execute(text("SELECT id, ancestors, ic, self_ic FROM hpo_terms")).all()
        ancestors = {r[0]: r[1] for r in rows}
        ic = {r[0]: r[2] for r in rows}
        self_ic = {r[0]: r[3] for r in rows}
        recalls, brute_ms, pipeline_ms = [], [], []
        for member, _cell in probes:
            mine = next(list(t) for m, t in every if m == member)
            started = time.perf_counter()
            scorer = SetScorer(mine, ancestors, ic)
            own = self_score(mine, self_ic)
            exact = []
            for other, terms in every:
                if other == member:
                    continue
                score = scorer.score(terms)
                if similarity_label(score, own, self_score(terms, self_ic)) is not None:
                    exact.append((-score, other))
            exact.sort()
            brute_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            found = soulmate_queries.soulmates(session, member_id=member, condition_slug="all",
                                               secret="bench", max_km=1000,  # noqa: S106
                                               limit=TOP)
            pipeline_ms.append((time.perf_counter() - started) * 1000)
            names = {m.pseudonym for m in found.members}
            wanted = [other for _s, other in exact[:TOP]]
            pseudonyms = dict(session.execute(text(
                "SELECT id, pseudonym FROM members WHERE id = ANY(:ids)"), {"ids": wanted}).all())
            if wanted:
                recalls.append(sum(pseudonyms[o] in names for o in wanted) / len(wanted))
            session.rollback()
        condition = session.execute(text("SELECT id FROM conditions WHERE slug = 'all'")
                                    ).scalar_one()
        rebuilds = []
        for _round in range(5):  # a worker's first search, or after a bulk change
            candidates.clear()
            started = time.perf_counter()
            candidates.pack(session, condition)
            rebuilds.append((time.perf_counter() - started) * 1000)
            session.rollback()
        patches = []
        candidates.pack(session, condition)
        session.rollback()
        for member, _cell in probes[:10]:  # one member adds a symptom: the next search
            with Session(engine) as writer, writer.begin():
                soulmate_symptoms.add_symptom(writer, member, "HP:0012378")
            started = time.perf_counter()
            candidates.pack(session, condition)
            patches.append((time.perf_counter() - started) * 1000)
            session.rollback()
            with Session(engine) as writer, writer.begin():
                soulmate_symptoms.remove_symptom(writer, member, "HP:0012378")
            candidates.pack(session, condition)
            session.rollback()
    print(f"{'opted-in listable with ALL':<28} {len(every):,}")
    print(summary("cache rebuild (ALL)", rebuilds))
    print(summary("cache after one change (ALL)", patches))
    print(summary("brute force per search", brute_ms))
    print(summary("soulmates() per search", pipeline_ms))
    print(f"{'recall of the top 20':<28} mean={statistics.mean(recalls):.3f}  "
          f"min={min(recalls):.3f}  (n={len(recalls)})")


def rss_kb(pid: int) -> int:
    """Return a process's resident set size in kB (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def http(settings: dict, probes: list[tuple[int, int]], rounds: int) -> None:
    """Time /api/v1/soulmates and adding a symptom over HTTP; print the worker's RSS."""
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=_serve, args=(settings, ports), daemon=True)
    process.start()
    base = f"http://127.0.0.1:{ports.get(timeout=120)}"
    try:
        openers = [(member, signed_in_opener(base, member)) for member, _cell in probes]
        for _member, opener in openers:  # warm the nearby endpoint: connections, labels
            opener.open(f"{base}/api/v1/nearby?condition=all").read()
        before = rss_kb(process.pid)
        for _member, opener in openers:  # first soulmates search of each: place labels
            opener.open(f"{base}/api/v1/soulmates?condition=all").read()
        times = []
        for _round in range(rounds):
            for _member, opener in openers:
                started = time.perf_counter()
                with opener.open(f"{base}/api/v1/soulmates?condition=all") as response:
                    response.read()
                times.append((time.perf_counter() - started) * 1000)
        after = rss_kb(process.pid)
        print(summary("HTTP GET /api/v1/soulmates", times))
        adds = []
        for _member, opener in openers:
            body = b'{"hpo_id": "HP:0012378"}'
            for method, url in (("POST", "/api/v1/me/symptoms"),
                                ("DELETE", "/api/v1/me/symptoms/HP:0012378")):
                csrf = _csrf(opener, base)
                import urllib.request

                request = urllib.request.Request(  # noqa: S310 (http on 127.0.0.1)
                    f"{base}{url}", data=body if method == "POST" else None, method=method,
                    headers={"X-CSRFToken": csrf}
                    | ({"Content-Type": "application/json"} if method == "POST" else {}))
                started = time.perf_counter()
                with opener.open(request) as response:
                    response.read()
                if method == "POST":
                    adds.append((time.perf_counter() - started) * 1000)
        print(summary("HTTP POST add a symptom", adds))
        print(f"{'web worker RSS':<28} before={before / 1024:.1f} MB  after={after / 1024:.1f} MB"
              f"  delta={(after - before) / 1024:+.1f} MB")
    finally:
        process.terminate()
        process.join()


def _csrf(opener, base: str) -> str:  # noqa: ANN001
    """Return a CSRF token from the symptoms page."""
    import re

    html = opener.open(f"{base}/symptoms").read().decode()
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def scale(args: argparse.Namespace) -> None:
    """Print the speed-at-scale figures."""
    settings = load_settings(os.environ)
    engine = create_engine(database_url(settings))
    if args.prepare:
        prepare(engine, args.prepare, 1)
    with Session(engine) as session:
        members, profiles = session.execute(text(
            "SELECT (SELECT count(*) FROM members), (SELECT count(*) FROM soulmate_profiles)"
        )).one()
        probes = pick_probes(session, max(args.probes, args.recall_probes), args.seed)
    print(f"members: {members:,}  opted-in with symptoms: {profiles:,}  probes: {len(probes)}")
    recall(engine, probes[: args.recall_probes])
    ensure_accounts(engine, probes[: args.probes])
    with engine.begin() as conn:  # accounts now need a verified e-mail, consent and terms
        conn.execute(text(
            "UPDATE accounts SET email_verified_at = coalesce(email_verified_at, now()), "
            "health_data_consent_at = coalesce(health_data_consent_at, now()), "
            "terms_accepted_at = coalesce(terms_accepted_at, now()) "
            "WHERE email LIKE 'bench-%@bench.example.org'"))
    environment = {k: v for k, v in os.environ.items() if k.startswith("GEOMAP_")}
    http(environment | {"GEOMAP_SECRET_KEY": secret_key(settings)}, probes[: args.probes],
         args.rounds)
    engine.dispose()
