"""api/registry.py: officials' tokens that lapse, and registries made by older versions."""

from __future__ import annotations

import sqlite3

from api.registry import REGISTRY_FILE, Registry


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_officials_token_lapses_when_it_was_made_to(tmp_path):
    """A review found officials' tokens valid for ever, where they read citizens'
    movements: an official's token is now issued for a number of days."""
    clock = Clock(1_800_000_000)
    registry = Registry(tmp_path, clock=clock)
    try:
        official, token = registry.add_principal("o", "official", jurisdiction="Hoài Đức",
                                                 valid_s=90 * 86400)
        device, device_token = registry.add_principal("kiosk", "device", venue=1)
        assert official.expires == clock.now + 90 * 86400 and device.expires is None
        clock.now += 90 * 86400 - 1
        assert registry.authenticate(token) == official
        clock.now += 1
        assert registry.authenticate(token) is None
        assert registry.authenticate(device_token) == device  # devices do not lapse
    finally:
        registry.close()


def test_a_registry_of_an_older_version_opens_and_gains_the_new_columns(tmp_path):
    db = sqlite3.connect(tmp_path / REGISTRY_FILE)
    db.executescript("""
        CREATE TABLE principals (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT
            NULL, jurisdiction TEXT NOT NULL DEFAULT '', venue TEXT, token_hash TEXT NOT NULL
            UNIQUE, created INTEGER NOT NULL, revoked INTEGER);
        CREATE TABLE cases (id INTEGER PRIMARY KEY, person TEXT NOT NULL, t_from INTEGER NOT
            NULL, t_to INTEGER NOT NULL, purpose TEXT NOT NULL, jurisdiction TEXT NOT NULL,
            min_overlap INTEGER NOT NULL, linger INTEGER NOT NULL, depth INTEGER NOT NULL,
            default_dwell INTEGER NOT NULL, opened_by INTEGER NOT NULL,
            opened_at INTEGER NOT NULL);
        INSERT INTO cases VALUES (1, '42', 0, 10, 'old case', 'Hoài Đức', 600, 0, 2, 3600,
            1, 5);""")
    db.commit()
    db.close()
    registry = Registry(tmp_path)
    try:
        case = registry.get_case(1)
        assert case.person == 42 and case.closed_at is None
        closed = registry.close_case(1, closed_by=7)
        assert closed.closed_by == 7 and closed.closed_at is not None
        official, _ = registry.add_principal("o", "official", jurisdiction="x", valid_s=60)
        assert official.expires is not None
    finally:
        registry.close()
