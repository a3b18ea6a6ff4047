"""A data folder holds citizens' movements: only its owner may read it, whatever the
umask of whoever starts the server or a command."""

from __future__ import annotations

import os
import stat

from api.service import Service
from api.settings import Settings
from tests.api.test_cli_tracing import qrtrace


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_folders_are_created_private_and_open_ones_are_closed(tmp_path):
    old = os.umask(0o022)  # the usual one: new folders readable by everyone
    try:
        fresh = tmp_path / "new" / "data"
        Service(Settings(data=fresh)).close()
        assert mode(fresh) == 0o700
        assert mode(tmp_path / "new") == 0o755  # its parents are not ours to change
        opened = tmp_path / "open"
        opened.mkdir()
        assert mode(opened) == 0o755
        csv = tmp_path / "checkins.csv"
        csv.write_text("person,venue,check_in,check_out\n1,2,1764000000,\n")
        qrtrace("import", "--data", str(opened), str(csv))
        assert mode(opened) == 0o700
        assert mode(opened / "index") == 0o700
        # and every file in it is its owner's alone too (a review found the index's
        # files 0644, private only through their folder's mode)
        shared = [str(p) for p in opened.rglob("*") if p.is_file() and mode(p) & 0o077]
        assert not shared, shared
    finally:
        os.umask(old)
