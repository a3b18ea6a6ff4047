"""DATA/revoked.json: the revoked ids exported for Kafka workers, and read back."""

from __future__ import annotations

import json

import pytest

from api.registry import Registry
from api.revocations import (
    RevocationFile,
    RevocationFileError,
    export_revocations,
    read_revocations,
)


@pytest.fixture
def registry(tmp_path):
    registry = Registry(tmp_path)
    yield registry
    registry.close()


def ids(revoked) -> tuple[list[int], list[int]]:
    return revoked.persons.tolist(), revoked.venues.tolist()


def test_a_worker_sees_each_revocation_and_keeps_the_last_good_list(tmp_path, registry,
                                                                   caplog):
    path = tmp_path / "revoked.json"
    revoked = RevocationFile(path)
    assert ids(revoked()) == ([], []) and "no revocation list yet" in caplog.text
    registry.revoke_token_id("person", 2**64 - 1)
    registry.revoke_token_id("venue", 9)
    export_revocations(tmp_path, registry)
    assert ids(revoked()) == ([2**64 - 1], [9])
    registry.revoke_token_id("person", 17)
    export_revocations(tmp_path, registry)
    assert ids(revoked()) == ([17, 2**64 - 1], [9])
    good = path.read_bytes()
    path.write_bytes(good[:10])  # a copy caught half-way
    assert ids(revoked()) == ([17, 2**64 - 1], [9])
    assert "revocation list not reloaded" in caplog.text
    path.write_bytes(good)
    assert ids(revoked()) == ([17, 2**64 - 1], [9])


def test_files_that_are_no_revocation_list_are_named(tmp_path):
    path = tmp_path / "revoked.json"
    for doc, problem in (({"format": "other", "version": 1}, "not a qrtrace-revocations"),
                         ({"format": "qrtrace-revocations", "version": 1, "person": [-1],
                           "venue": []}, "bad id list"),
                         ({"format": "qrtrace-revocations", "version": 1}, "bad id list")):
        path.write_text(json.dumps(doc))
        with pytest.raises(RevocationFileError, match=problem):
            read_revocations(path)
    path.write_bytes(b"\xff")
    with pytest.raises(RevocationFileError, match="cannot read"):
        RevocationFile(path)
