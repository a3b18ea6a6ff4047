"""The venue table: dwell resolution and atomic persistence."""

from __future__ import annotations

import pytest

from tracing.venues import CATEGORY_DWELL_MINUTES, Venue, VenueTable, VenueTableError


def test_dwell_is_own_else_category_else_left_to_the_rule():
    table = VenueTable([Venue(1, category="market", dwell_minutes=90),
                        Venue(2, category="school"),
                        Venue(3, category="karaoke"),
                        Venue(4)])
    ids, dwell = table.resolved_dwell()
    assert ids.dtype.name == "uint64" and dwell.dtype.name == "int64"
    # Venue 3's category has no default: it is left out, so the rule's default applies.
    assert dict(zip(ids.tolist(), dwell.tolist(), strict=True)) == {
        1: 90 * 60, 2: CATEGORY_DWELL_MINUTES["school"] * 60,
        4: CATEGORY_DWELL_MINUTES["other"] * 60}


def test_newest_row_wins_and_names_fall_back_to_ids():
    table = VenueTable([Venue(1, name="old")])
    table.update([Venue(1, name="Chợ mới")])
    assert len(table) == 1 and table.name_of(1) == "Chợ mới"
    assert table.name_of(99) == "99"


@pytest.mark.parametrize("kwargs", [{"venue": -1}, {"venue": 2**64},
                                    {"venue": 1, "dwell_minutes": 0}])
def test_bad_venues_are_refused(kwargs):
    with pytest.raises(VenueTableError):
        Venue(**kwargs)


def test_save_and_load_round_trip_without_leftovers(tmp_path):
    table = VenueTable([Venue(2**64 - 1, "Trạm y tế", "Thôn Đông", "clinic", None),
                        Venue(5, "UBND xã", "Thôn Tây", "commune_office", 25)])
    table.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["venues.json"]
    assert list(VenueTable.load(tmp_path)) == list(table)


def test_missing_file_is_empty_and_a_foreign_file_is_an_error(tmp_path):
    assert len(VenueTable.load(tmp_path)) == 0
    (tmp_path / "venues.json").write_text('{"format": "other"}')
    with pytest.raises(VenueTableError, match="not a qrtrace venues file"):
        VenueTable.load(tmp_path)
    (tmp_path / "venues.json").write_text("{")
    with pytest.raises(VenueTableError, match="unreadable"):
        VenueTable.load(tmp_path)
