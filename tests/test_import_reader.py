"""The plain-CSV reader (column-wise split) reads every file exactly as the csv module does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geomap.ingest import importer

HEADER = "pseudonym,lat,lng,conditions,role"
# Characters that make files interesting without quotes: separators, white space,
# line ends, controls, non-ASCII letters and spaces, digits.
ALPHABET = st.sampled_from(list(",,,  \t\n\n\r\x00\x0b\x85\xa0é漢-.;01x") + ["\r\n"])


def rows_read(records: importer.Records) -> list[tuple]:
    """Return every row as (where, problem, values of every column)."""
    return [
        (records.where[i], records.problems[i],
         tuple(records.columns[name][i] for name in importer.COLUMNS))
        for i in range(len(records))
    ]


@settings(max_examples=400, deadline=None)
@given(body=st.lists(ALPHABET, max_size=80).map("".join), crlf=st.booleans())
def test_plain_reader_equals_the_csv_module(body: str, crlf: bool) -> None:
    content = HEADER + ("\r\n" if crlf else "\n") + body
    plain = importer._read_plain_csv(content)
    rows = importer._read_csv_rows(content)
    if plain is None:  # not a plain file: the csv module reads it
        assert any(c in content for c in '"\x00\x0b\x85') or "\r" in content.replace("\r\n", "")
        return
    assert rows_read(plain) == rows_read(rows)


@pytest.mark.parametrize("content", [
    HEADER + "\nada,1.5,2.5,all,patient\n\n bob , 3 ,4,all;aml,\nshort,1\n",
    HEADER + "\r\nada,1.5,2.5,all,patient\r\n",
    HEADER + "\nada,1.5,2.5,all,patient,extra\nlast,0,0,all,carer",
    HEADER + "\n" + "x" * (importer.FIELD_MAX + 1) + ",1,2,all,\n",
])
def test_plain_reader_equals_the_csv_module_on_examples(content: str) -> None:
    plain = importer._read_plain_csv(content)
    assert plain is not None
    assert rows_read(plain) == rows_read(importer._read_csv_rows(content))
    assert len(plain) >= 1


def test_a_quoted_file_is_left_to_the_csv_module() -> None:
    content = HEADER + '\n"ada, the first",1.5,2.5,all,patient\n'
    assert importer._read_plain_csv(content) is None
    records = importer._read_csv(content)
    assert records.columns["pseudonym"] == ["ada, the first"]
    assert records.where[0] == "line 2"


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.tuples(st.one_of(st.integers(1990, 2030), st.integers(0, 9999),
                                          st.sampled_from([1, 1600, 1900, 2000, 2100])),
                                st.integers(0, 14), st.integers(0, 32),
                                st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)),
                      min_size=1, max_size=6))
def test_canonical_joined_at_cells_parse_as_one_by_one(cells: list[tuple]) -> None:
    """The one-buffer numpy parse of canonical cells equals the per-cell validator."""
    from datetime import UTC, datetime

    now = datetime(2026, 12, 1, tzinfo=UTC)
    raw = [f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{se:02d}Z" for y, mo, d, h, mi, se in cells]
    if len(cells) > 2:  # a file with other forms too: the canonical cells still parse alike
        raw[1] = raw[1][:10]
    reasons: list[str | None] = [None] * len(raw)
    micros = importer._joined_micros(raw, now, reasons)
    one_by_one = np.zeros(len(raw), dtype=np.int64)
    alone: list[str | None] = [None] * len(raw)
    importer._joined_one_by_one(raw, list(range(len(raw))), now, one_by_one, alone)
    assert reasons == alone
    good = [i for i, reason in enumerate(alone) if reason is None]
    assert micros[good].tolist() == one_by_one[good].tolist()


@settings(max_examples=300, deadline=None)
@given(raw=st.lists(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=8).map(str),
    st.text(alphabet="0123456789.-+eE _nafi\t\u0663", max_size=70),
), min_size=1, max_size=8))
def test_coordinates_converted_in_one_go_equal_one_by_one(raw: list[str]) -> None:
    """The whole-column conversion gives what coordinate() gives each entry, bad ones too."""
    from geomap.ingest.validators import FieldError, coordinate

    values, bad = importer._numbers(raw)
    for i, item in enumerate(raw):
        try:
            expected = coordinate(item, "value", 1e300)
        except FieldError:
            assert bad[i]
        else:
            assert not bad[i] and values[i] == expected
