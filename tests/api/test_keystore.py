"""The key ring file: created private with fresh keys, rotated, retired, written atomically."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from api import keystore
from api.keystore import KeyFile, KeystoreError, load_keyring, retire_key, rotate_key
from decoder.tokens import Status, issue_token, verify_token


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_created_private_with_a_fresh_key_and_read_back_the_same(tmp_path):
    data = tmp_path / "data"
    ring = load_keyring(data)
    assert mode(data / "keys.json") == 0o600 and mode(data) == 0o700
    assert list(ring.keys) == [0] and ring.active == 0 and len(ring.keys[0]) == 32
    assert load_keyring(data) == ring
    assert load_keyring(tmp_path / "other").keys[0] != ring.keys[0]  # random, not fixed
    token = issue_token("venue", 3, ring)
    assert verify_token(token, load_keyring(data), today=1).status is Status.OK


def test_rotate_then_retire(tmp_path):
    old_token = issue_token("person", 9, load_keyring(tmp_path))
    rotated = rotate_key(tmp_path)
    assert rotated.active == 1 and sorted(rotated.keys) == [0, 1]
    assert verify_token(old_token, load_keyring(tmp_path), today=1).status is Status.OK
    new_token = issue_token("person", 9, rotated)
    retire_key(tmp_path, 0)
    ring = load_keyring(tmp_path)
    assert (ring.active, sorted(ring.keys), ring.retired) == (1, [1], {0})
    assert verify_token(old_token, ring, today=1).status is Status.RETIRED_KEY
    assert verify_token(new_token, ring, today=1).status is Status.OK
    assert rotate_key(tmp_path).active == 2  # a retired id is never handed out again
    assert mode(tmp_path / "keys.json") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json", "keys.lock"]
    doc = json.loads((tmp_path / "keys.json").read_text())
    assert [k["id"] for k in doc["keys"]] == [1, 2] and doc["retired"][0]["id"] == 0
    assert doc["keys"][0]["created"].endswith("+00:00")


def test_retiring_the_active_key_is_refused(tmp_path):
    load_keyring(tmp_path)
    with pytest.raises(KeystoreError, match="rotate before retiring"):
        retire_key(tmp_path, 0)
    with pytest.raises(KeystoreError, match="not a live key"):
        retire_key(tmp_path, 7)


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    ring = load_keyring(tmp_path)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(keystore.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        rotate_key(tmp_path)
    monkeypatch.undo()
    assert load_keyring(tmp_path) == ring
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_files_give_a_clear_error_without_secrets(tmp_path, capsys, caplog):
    ring = load_keyring(tmp_path)
    secret_b64 = base64.b64encode(ring.keys[0]).decode()
    path = tmp_path / "keys.json"
    path.chmod(0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        load_keyring(tmp_path)
    path.chmod(0o600)
    errors = []
    for content in [b"{not json" + secret_b64.encode(), b"\xff" + secret_b64.encode(),
                    json.dumps({"format": "other"}).encode(),
                    path.read_bytes().replace(secret_b64.encode(), b"c2hvcnQ=")]:  # fmt: skip
        path.write_bytes(content)
        with pytest.raises(KeystoreError) as info:
            load_keyring(tmp_path)
        errors.append(str(info.value))
    assert "secret must be 16..64 bytes, got 5" in errors[-1]
    assert not any(secret_b64 in e or secret_b64[:8] in e for e in errors)
    assert secret_b64 not in capsys.readouterr().out + caplog.text + repr(ring)
    with pytest.raises(KeystoreError, match="does not exist"):
        load_keyring(tmp_path / "missing", create=False)


def test_a_key_file_is_read_again_after_a_rotation_and_survives_a_bad_copy(tmp_path, caplog):
    """KeyFile: what a Kafka worker verifies with; a rotation made by the server reaches
    it at the next call, and a file that cannot be read leaves the last good ring."""
    data = tmp_path / "data"
    first = load_keyring(data)
    keys = KeyFile(data / "keys.json")
    assert keys() == first
    rotated = rotate_key(data)
    assert keys() == rotated and keys().active != first.active
    good = (data / "keys.json").read_bytes()
    (data / "keys.json").write_bytes(good[: len(good) // 2])  # a copy caught half-way
    assert keys() == rotated
    assert "key ring not reloaded" in caplog.text
    assert keys() == rotated
    (data / "keys.json").write_bytes(good)
    assert keys() == rotated
    retired = retire_key(data, first.active)
    assert keys() == retired
    token = issue_token("person", 5, first)
    assert verify_token(token, keys(), today=1).status is Status.RETIRED_KEY
    with pytest.raises(KeystoreError, match="cannot read"):
        KeyFile(tmp_path / "missing.json")
