"""The soulmates scorer process: same answers as in process, no numpy in the web worker."""

from __future__ import annotations

import html as html_text
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from geomap import create_app
from geomap.publish import publish
from geomap.session import session_scope
from geomap.symptoms import candidates, queries, soulmates
from geomap.symptoms.scorer_link import (
    ScorerAddress,
    ScorerLink,
    ScorerProcess,
    ScorerUnavailableError,
    attach,
    socket_path,
)
from tests.conftest import FLOOR, K, app_config
from tests.members_helpers import sign_in
from tests.symptoms_helpers import (
    ANEMIA,
    BONE_PAIN,
    FATIGUE,
    FEVER,
    HEARING_LOSS,
    PERIPHERAL_NEUROPATHY,
    SEIZURE,
    SENSORY_NEUROPATHY,
    member_with_symptoms,
)

POOL = [PERIPHERAL_NEUROPATHY, SENSORY_NEUROPATHY, BONE_PAIN, FATIGUE, FEVER, ANEMIA, SEIZURE,
        HEARING_LOSS]


def environment(database_url: str, data_dir: Path) -> dict[str, str]:
    """Return the environment of a process of the service over ``database_url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GEOMAP_")}
    env.update(GEOMAP_DATABASE_URL=database_url, GEOMAP_DATA_DIR=str(data_dir),
               GEOMAP_K=str(K), GEOMAP_FLOOR_RESOLUTION=str(FLOOR),
               GEOMAP_SECRET_KEY="test-secret")
    return env


@pytest.fixture
def community_with_symptoms(fresh_db_url: str) -> Iterator[tuple[Engine, list[tuple[int, int]]]]:
    """A committed community of 16 opted-in members (ALL, two also MS), published.

    Yields (engine, [(account id, member id), ...]).
    """
    engine = create_engine(fresh_db_url)
    people = []
    with session_scope(engine) as session:
        for number in range(16):
            picked = [POOL[(number * step) % len(POOL)] for step in (1, 3, 5)][: 1 + number % 3]
            people.append(member_with_symptoms(
                session, f"scored-{number}", list(dict.fromkeys(picked)),
                lat=48.0 + 0.4 * (number % 5), lng=8.0 + 0.5 * (number // 5),
                conditions=("all", "multiple-sclerosis") if number % 7 == 0 else ("all",)))
    with session_scope(engine) as session:
        publish(session, k=K, floor=FLOOR)
    yield engine, people
    engine.dispose()


@pytest.fixture
def scorer(fresh_db_url: str, tmp_path: Path) -> Iterator[ScorerProcess]:
    """The real scorer process over the test database, its log in ``tmp_path/scorer.log``."""
    with open(tmp_path / "scorer.log", "wb") as log:
        process = ScorerProcess(socket_path(tmp_path, 5093),
                                environment(fresh_db_url, tmp_path), log_to=log)
        process.start(wait=60)
        assert process.wait_listening(60), (tmp_path / "scorer.log").read_text()
        try:
            yield process
        finally:
            process.stop()


def test_the_scorer_answers_exactly_as_scoring_in_process(community_with_symptoms, scorer,
                                                          tmp_path: Path) -> None:
    engine, people = community_with_symptoms
    link = ScorerLink(scorer.address)
    socket = scorer.address.socket
    assert socket.is_relative_to(tmp_path.resolve())  # under the data folder only
    assert stat.S_IMODE(socket.stat().st_mode) == 0o600

    def both(session: Session, member: int, slug: str | None, limit: int) -> tuple:
        kwargs = dict(member_id=member, condition_slug=slug, secret="s", max_km=1000,
                      limit=limit)
        return (soulmates.soulmates(session, **kwargs),
                soulmates.soulmates(session, scorer=link, **kwargs))

    compared = 0
    with Session(engine) as session:
        for _account, member in people:
            for slug in ("all", "multiple-sclerosis", None):
                for limit in (3, 30):
                    try:
                        here, there = both(session, member, slug, limit)
                    except Exception as exc:  # e.g. an ALL-only member asking for MS
                        with pytest.raises(type(exc)):
                            soulmates.soulmates(session, member_id=member, condition_slug=slug,
                                                secret="s", max_km=1000, scorer=link)
                        continue
                    assert there == here  # same members, order, labels, places, bands
                    compared += bool(here.members)
            session.rollback()
        assert compared > 20
    # Freshness: the scorer follows the change log like a worker's cache.
    me = people[1][1]
    with session_scope(engine) as writer:
        queries.set_matching(writer, people[2][1], False)  # withdraws: never listed again
        queries.add_symptom(writer, people[3][1], "HP:0001875")  # not in POOL: a new term
    with Session(engine) as session:
        here, there = both(session, me, "all", 30)
        assert there == here
        assert "scored-2" not in {m.pseudonym for m in there.members}
        # The scorer's own answer is candidates.best's, searcher excluded.
        condition = session.execute(text("SELECT id FROM conditions WHERE slug = 'all'")
                                    ).scalar_one()
        terms = list(session.execute(text("SELECT terms FROM soulmate_profiles "
                                          "WHERE member_id = :m"), {"m": me}).scalar_one())
        assert link.best(condition, terms, {me}, 30) == candidates.best(
            session, candidates.pack(session, condition), terms, {me}, 30)
    link.close()
    # Exact symptoms are health data: the scorer logs its start, never a query.
    logged = (tmp_path / "scorer.log").read_text()
    assert "listening" in logged
    assert str(terms[0]) not in logged.replace(str(scorer.address.socket), "")


def test_a_wrong_key_is_refused(community_with_symptoms, scorer) -> None:
    stranger = ScorerLink(ScorerAddress(scorer.address.socket, b"not the key"))
    with pytest.raises(ScorerUnavailableError):
        stranger.best(None, [1250], set(), 5)
    assert ScorerLink(scorer.address).best(None, [1250], set(), 5) is not None  # still serving


def test_a_silent_client_blocks_no_other_worker(community_with_symptoms, scorer) -> None:
    # A worker frozen in the middle of its key handshake (here: a client that connects
    # and never answers the challenge) holds its own connection's thread only.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(str(scorer.address.socket))
        started = time.monotonic()
        assert ScorerLink(scorer.address, timeout=10).best(None, [1250], set(), 5) is not None
        assert time.monotonic() - started < 10


def test_a_frozen_scorer_fails_the_search_in_time_not_the_worker(tmp_path: Path) -> None:
    # A scorer that takes connections but never speaks (stopped, or stuck): the worker
    # gives up after its handshake timeout with the 503 error, instead of hanging.
    frozen = tmp_path / "frozen.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
        listening.bind(str(frozen))
        listening.listen(4)
        link = ScorerLink(ScorerAddress(frozen, b"key"), timeout=1.0, handshake_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ScorerUnavailableError):
            link.best(None, [1250], set(), 5)
        assert time.monotonic() - started < 3


def test_the_scorer_is_started_again_and_workers_reconnect(community_with_symptoms,
                                                           scorer) -> None:
    engine, people = community_with_symptoms
    link = ScorerLink(scorer.address)
    me = people[1][1]
    with Session(engine) as session:
        first = soulmates.soulmates(session, member_id=me, condition_slug="all", secret="s",
                                    max_km=1000, scorer=link)
        assert first.members
        session.rollback()
        killed = scorer.pid
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while scorer.pid in (None, killed) or not scorer.address.socket.is_socket():
            assert time.monotonic() < deadline, "the scorer was not started again"
            time.sleep(0.05)
        assert scorer.starts == 2
        again = None
        while again is None:  # the new scorer may still be importing
            try:
                again = soulmates.soulmates(session, member_id=me, condition_slug="all",
                                            secret="s", max_km=1000, scorer=link)
            except ScorerUnavailableError:
                assert time.monotonic() < deadline, "the link did not reconnect"
                time.sleep(0.1)
        assert again == first  # through the link's old, broken connection: reconnected


def test_a_dead_scorer_gives_a_clear_translated_error_not_a_500(community_with_symptoms, scorer,
                                                                fresh_db_url, tmp_path) -> None:
    _engine, people = community_with_symptoms
    app = attach(create_app(app_config(tmp_path, GEOMAP_DATABASE_URL=fresh_db_url,
                                       RATELIMIT_ENABLED=False)), scorer.address)
    client = app.test_client()
    sign_in(client, people[1][0])
    assert client.get("/api/v1/soulmates?condition=all").get_json()["members"]
    scorer.stop()  # for good: no restart
    answer = client.get("/api/v1/soulmates?condition=all")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "30"
    error = answer.get_json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["message"] == ("Soulmate matching is not available just now; please try "
                                "again in a minute.")
    page = client.get("/soulmates?condition=all", headers={"Accept-Language": "fr"})
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert 'id="soulmates-problem"' in html
    assert "Soulmate matching is not available" not in html  # in French
    french = client.get("/api/v1/soulmates?condition=all", headers={"Accept-Language": "fr"})
    assert french.get_json()["error"]["message"] in html_text.unescape(html)


WORKER = """
import json, sys, traceback

class Watch:  # records who imports numpy first (for the failure message)
    first = None
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and Watch.first is None:
            Watch.first = [(frame.filename, frame.name) for frame in traceback.extract_stack()]
        return None

sys.meta_path.insert(0, Watch())
from pathlib import Path
from geomap import create_app
from geomap.symptoms.scorer_link import ScorerAddress, attach

socket, key, account = sys.argv[1], bytes.fromhex(sys.stdin.readline().strip()), sys.argv[2]
app = attach(create_app(), ScorerAddress(Path(socket), key))  # as GeomapServer.load does
client = app.test_client()
with client.session_transaction() as flask_session:
    flask_session["_user_id"] = account
    flask_session["_fresh"] = True
api = client.get("/api/v1/soulmates?condition=all")
page = client.get("/soulmates?condition=all")
print(json.dumps({"api": api.status_code, "page": page.status_code,
                  "members": len(api.get_json()["members"]),
                  "scoring": sorted(m for m in sys.modules if m in (
                      "geomap.symptoms.candidates", "geomap.symptoms.scorer")),
                  "numpy": "numpy" in sys.modules, "first": Watch.first}))
"""


def test_a_worker_asking_the_scorer_imports_no_numpy(community_with_symptoms, scorer,
                                                     fresh_db_url, tmp_path) -> None:
    _engine, people = community_with_symptoms
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(scorer.address.socket), str(people[1][0])],
        input=scorer.address.authkey.hex() + "\n", env=environment(fresh_db_url, tmp_path),
        capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert (answer["api"], answer["page"]) == (200, 200)
    assert answer["members"] > 0
    assert answer["scoring"] == []  # neither the packs nor the scoring code
    assert not answer["numpy"], f"numpy imported by {answer['first']}"
