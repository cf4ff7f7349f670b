"""My soulmates score every candidate exactly, and the worker cache never goes stale."""

from __future__ import annotations

import numpy as np
from sqlalchemy import text

from geomap.symptoms import candidates, queries, soulmates
from geomap.symptoms.similarity import SetScorer, self_score, similarity_label
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
        HEARING_LOSS, "HP:0001875", "HP:0002240", "HP:0001744", "HP:0002716"]


def brute_force(session, me: int, limit: int) -> list[str]:
    """Pseudonyms of the exact top ``limit`` by Resnik BMA over every listable ALL profile."""
    every = session.execute(text(
        "SELECT DISTINCT p.member_id, p.terms, m.pseudonym FROM soulmate_profiles p "
        "JOIN nearby_members n ON n.member_id = p.member_id "
        "JOIN conditions c ON c.id = n.condition_id AND c.slug = 'all' "
        "JOIN members m ON m.id = p.member_id")).all()
    rows = session.execute(text("SELECT id, ancestors, ic, self_ic FROM hpo_terms")).all()
    ancestors = {r[0]: r[1] for r in rows}
    ic = {r[0]: r[2] for r in rows}
    self_ic = {r[0]: r[3] for r in rows}
    mine = next(list(t) for m, t, _p in every if m == me)
    scorer = SetScorer(mine, ancestors, ic)
    own = self_score(mine, self_ic)
    ranked = []
    for member, terms, pseudonym in every:
        score = scorer.score(list(terms))
        if member != me and similarity_label(score, own, self_score(terms, self_ic)):
            ranked.append((-score, member, pseudonym))
    return [pseudonym for _s, _m, pseudonym in sorted(ranked)[:limit]]


def test_soulmates_are_the_exact_top_of_a_brute_force_ranking(session, monkeypatch) -> None:
    monkeypatch.setattr(candidates, "CHUNK", 2)  # several scoring steps per length, as at scale
    monkeypatch.setattr(candidates, "REACH_MARGIN", 0)  # labels checked on too few at first
    rng = np.random.default_rng(7)
    members = []
    for number in range(24):
        picked = rng.choice(len(POOL), size=int(rng.integers(1, 6)), replace=False)
        members.append(member_with_symptoms(
            session, f"exact-{number}", [POOL[i] for i in picked],
            lat=float(rng.uniform(45, 54)), lng=float(rng.uniform(2, 15)))[1])
    for me in members[:6]:
        found = soulmates.soulmates(session, member_id=me, condition_slug="all", secret="s",
                                    max_km=1000, limit=5)
        expected = brute_force(session, me, 5)
        assert expected, "the pool is related enough for every member to have soulmates"
        assert sorted(m.pseudonym for m in found.members) == sorted(expected)


def test_thermometer_scores_equal_the_best_match_sums_of_each_profile() -> None:
    """The bit-mask kernel against a plain per-profile computation (many thresholds)."""
    rng = np.random.default_rng(3)
    for queries_count, table_size in ((1, 1), (3, 40), (25, 300), (60, 120)):
        levels = rng.random(14) * 9  # few distinct values per row, like Resnik (ancestor ICs)
        term_scores = levels[rng.integers(0, 14, size=(queries_count, table_size))]
        term_scores[rng.random(term_scores.shape) < 0.3] = 0.0
        lengths = rng.integers(1, 20, 700).astype(np.uint16)
        terms = rng.integers(0, table_size, int(lengths.sum())).astype(np.uint16)
        pack = candidates._grouped("e", 0, None, np.arange(700, dtype=np.int32),
                                   np.zeros(700, np.int64), lengths, terms, np.ones(700))
        masks, lookup = candidates._thermometer(term_scores)
        got = candidates._scores(pack, masks, lookup, term_scores.max(axis=0))
        starts = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))[:-1]])
        want = {}
        for member, (start, length) in enumerate(zip(starts, lengths, strict=True)):
            block = term_scores[:, terms[start:start + length]]
            want[member] = block.max(axis=1).sum() + block.max(axis=0).sum()
        assert masks.shape[1] >= (2 if queries_count >= 25 else 1)
        assert np.allclose(got, [want[int(m)] for m in pack.ids], rtol=1e-12, atol=1e-12)
        assert np.array_equal(np.sort(pack.profile_terms()), np.sort(terms))


def test_the_cache_follows_symptoms_opt_out_and_blocks_at_once(session) -> None:
    _a, me = member_with_symptoms(session, "fresh-me", [PERIPHERAL_NEUROPATHY, BONE_PAIN])
    _b, mate = member_with_symptoms(session, "fresh-mate", [SENSORY_NEUROPATHY, BONE_PAIN],
                                    lat=48.1, lng=11.6)
    _c, other = member_with_symptoms(session, "fresh-other", [SEIZURE], lat=52.5, lng=13.4)

    def names() -> set[str]:
        return {m.pseudonym for m in soulmates.soulmates(
            session, member_id=me, condition_slug="all", secret="s", max_km=1000).members}

    assert "fresh-mate" in names() and "fresh-other" not in names()
    token = candidates.state_token(session)
    assert names() and candidates.state_token(session) == token  # a search changes nothing
    queries.add_symptom(session, other, PERIPHERAL_NEUROPATHY)
    queries.add_symptom(session, other, BONE_PAIN)
    assert candidates.state_token(session) != token
    assert "fresh-other" in names()  # the new symptoms count at once
    queries.set_matching(session, mate, False)
    assert "fresh-mate" not in names()  # withdrawal is effective at once
    session.execute(text("INSERT INTO member_blocks (blocker_id, blocked_id) VALUES (:a, :b)"),
                    {"a": other, "b": me})
    assert "fresh-other" not in names()  # blocks either way, read at each search


def profiles_of(pack: candidates.Pack) -> dict[int, tuple[int, tuple[str, ...], float]]:
    """Member id -> (floor cell, HPO term ids, self-score) of every profile in a pack."""
    hpo = pack.terms.hpo
    terms = pack.profile_terms()
    starts = np.concatenate([[0], np.cumsum(pack.lengths.astype(np.int64))[:-1]])
    return {
        int(member): (int(pack.cells[i]),
                      tuple(sorted(int(hpo[t]) for t in
                                   terms[starts[i]:starts[i] + pack.lengths[i]])),
                      round(float(pack.self_scores[i]), 9))
        for i, member in enumerate(pack.ids.tolist())
    }


def test_a_pack_patched_from_the_change_log_equals_one_read_whole(session) -> None:
    condition = session.execute(text("SELECT id FROM conditions WHERE slug = 'all'")).scalar_one()
    _a, me = member_with_symptoms(session, "patch-me", [PERIPHERAL_NEUROPATHY, BONE_PAIN])
    _b, mate = member_with_symptoms(session, "patch-mate", [SENSORY_NEUROPATHY],
                                    lat=48.1, lng=11.6)
    _c, other = member_with_symptoms(session, "patch-other", [SEIZURE], lat=52.5, lng=13.4)
    before, _keep = candidates.follow(session, condition, None)
    assert {me, mate, other} <= set(profiles_of(before))
    queries.add_symptom(session, mate, HEARING_LOSS)  # a new term, not in the table yet
    queries.set_matching(session, other, False)  # withdrawn
    _d, newcomer = member_with_symptoms(session, "patch-new", [FEVER, ANEMIA], lat=50.1, lng=8.7)
    session.execute(text("UPDATE members SET visibility = 'hidden' WHERE id = :m"), {"m": me})
    session.execute(text("DELETE FROM nearby_members WHERE member_id = :m"), {"m": me})
    patched, keep = candidates.follow(session, condition, before)
    assert not keep  # this transaction wrote the state: used once, never kept
    assert patched.version > before.version and patched.epoch == before.epoch
    whole, _keep = candidates.follow(session, condition, None)
    assert profiles_of(patched) == profiles_of(whole)
    assert newcomer in profiles_of(patched) and other not in profiles_of(patched)
    assert me not in profiles_of(patched)
    assert candidates.follow(session, condition, patched)[0] is patched  # nothing new


def test_a_patch_after_the_shared_term_table_was_dropped_keeps_the_packs_terms(session) -> None:
    """A patch keeps the old profiles' term indices valid (found in the soulmates journey).

    The shared term table had been dropped (another epoch seen, or cleared), and the
    patch built a table of the changed members' terms only: an empty table, a 500.
    """
    condition = session.execute(text("SELECT id FROM conditions WHERE slug = 'all'")).scalar_one()
    _a, me = member_with_symptoms(session, "drop-me", [PERIPHERAL_NEUROPATHY, BONE_PAIN])
    _b, mate = member_with_symptoms(session, "drop-mate", [SENSORY_NEUROPATHY],
                                    lat=48.1, lng=11.6)
    before, _keep = candidates.follow(session, condition, None)
    candidates.clear()  # the shared table is gone; ``before`` still holds its own
    queries.set_matching(session, mate, False)  # a change with no terms to read
    patched, _keep = candidates.follow(session, condition, before)
    whole, _keep = candidates.follow(session, condition, None)
    assert profiles_of(patched) == profiles_of(whole)
    found = candidates.best(session, patched, [int(t) for t in before.terms.hpo[:1]],
                            exclude=set(), limit=20)
    assert [member for member, _cell, _label in found] == [
        member for member, _cell, _label in candidates.best(
            session, whole, [int(t) for t in before.terms.hpo[:1]], exclude=set(), limit=20)]
