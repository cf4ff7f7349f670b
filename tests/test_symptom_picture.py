"""The public symptom picture: published counts never 1..k-1, also by subtraction."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from geomap.database import make_public_engine
from geomap.publish.symptoms import TOP_SYMPTOMS, suppress_picture, symptom_picture
from tests.conftest import K


def assert_no_small_difference(numbers: list[int], k: int) -> None:
    for value in numbers:
        assert value == 0 or value >= k, numbers
    for a, b in combinations(numbers, 2):
        assert not 1 <= abs(a - b) <= k - 1, (a, b, numbers)


@given(
    map_total=st.integers(0, 400),
    reporting=st.integers(0, 300),
    counts=st.lists(st.integers(1, 300), max_size=40),
    k=st.integers(2, 12),
)
def test_suppressed_picture_has_no_count_or_difference_below_k(map_total, reporting, counts,
                                                                k) -> None:
    map_total = map_total if map_total >= k else 0  # a published total: 0 or at least k
    counts = [min(c, reporting) for c in counts if reporting]
    pairs = list(enumerate(counts, start=1))
    picture = suppress_picture(map_total, reporting, pairs, k)
    if picture.reporting is None:
        assert picture.counts == ()
        return
    numbers = [picture.reporting] + [n for _t, n in picture.counts]
    assert_no_small_difference(([map_total] if map_total else []) + numbers, k)
    assert len(picture.counts) <= TOP_SYMPTOMS
    assert [n for _t, n in picture.counts] == sorted((n for _t, n in picture.counts),
                                                    reverse=True)
    # Nothing safe was left out in favour of a less reported term.
    if len(picture.counts) < TOP_SYMPTOMS:
        kept = {t for t, _n in picture.counts}
        taken = ([map_total] if map_total else []) + [picture.reporting]
        for term, count in sorted(pairs, key=lambda p: (-p[1], p[0])):
            safe = count >= k and all(abs(count - o) == 0 or abs(count - o) >= k for o in taken)
            assert safe == (term in kept)
            if safe:
                taken.append(count)


def test_the_published_picture_of_every_condition_is_safe(session) -> None:
    conditions = session.execute(text(
        "SELECT c.id, t.published FROM conditions c JOIN published_totals t "
        "ON t.condition_id = c.id AND t.resolution = 0")).all()
    pictures = 0
    for condition, total in conditions:
        rows = session.execute(text(
            "SELECT term_id, members, reporting FROM published_symptoms WHERE condition_id = :c"),
            {"c": condition}).all()
        if not rows:
            continue
        pictures += 1
        reporting = rows[0][2]
        # The reporting total is exactly the opted-in members on the map with the condition.
        assert reporting == session.execute(text(
            "SELECT count(*) FROM member_conditions mc JOIN members m ON m.id = mc.member_id "
            "AND m.visibility = 'map' JOIN soulmate_profiles p ON p.member_id = m.id "
            "WHERE mc.condition_id = :c"), {"c": condition}).scalar_one()
        assert_no_small_difference([total] + [members for _t, members, _r in rows], K)
    assert pictures > 0


def test_the_condition_page_shows_the_picture_from_published_rows(client, community_url) -> None:
    engine = make_public_engine(community_url)
    try:
        with engine.connect() as conn:
            from sqlalchemy.orm import Session

            with Session(conn) as public:
                condition = conn.execute(text("SELECT id FROM conditions WHERE slug = 'all'")
                                         ).scalar_one()
                picture = symptom_picture(public, condition)
    finally:
        engine.dispose()
    assert picture is not None and picture.symptoms
    page = client.get("/conditions/all/map").get_data(as_text=True)
    assert "Find your symptoms soulmates" in page
    top = picture.symptoms[0]
    assert top.label in page and f"{top.members:,}" in page
    assert all(s.members >= K for s in picture.symptoms)
