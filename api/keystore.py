"""The key ring file, DATA/keys.json: created with fresh random keys, rotated, retired.

The file (mode 0600, in a folder created with mode 0700)::

    {"format": "qrtrace-keyring", "version": 1, "active": 1,
     "keys": [{"id": 0, "secret": "<base64, 32 bytes>", "created": "2026-11-25T22:00:00+00:00"},
              {"id": 1, "secret": "...", "created": "..."}],
     "retired": [{"id": 2, "retired": "..."}]}

Every change is written to a temporary file in the same folder, fsynced, renamed over the
old file, and the folder fsynced, under an exclusive lock (DATA/keys.lock), so that a
crash leaves the old ring or the new one, and two processes never lose each other's
rotation. Secrets never appear in logs, reprs or error messages.

Errors::

    KeystoreError (Exception)   the file is missing (create=False), unreadable, not a key
                                ring, readable by others, or the change is not allowed
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from api.filewatch import WatchedFile
from decoder.tokens import DecoderError, KeyRing

KEYS_FILE = "keys.json"
LOCK_FILE = "keys.lock"
FORMAT = "qrtrace-keyring"
SECRET_BYTES = 32


class KeystoreError(Exception):
    """The key ring file cannot be read, written, or changed as asked."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """The folder's key lock (DATA/keys.lock), held for the block: changes to keys.json
    and revoked.json (api/revocations.py) are made under it."""
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[KeyRing, dict]:
    """The ring in `path` and the file's document (for its timestamps)."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise KeystoreError(
                f"{path} is readable or writable by others (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {path}"
            )
        doc = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:  # its message holds no document content
        raise KeystoreError(f"{path}: not valid JSON (line {exc.lineno})") from None
    except ValueError:  # not UTF-8
        raise KeystoreError(f"{path}: not valid JSON (not UTF-8)") from None
    except OSError as exc:
        raise KeystoreError(f"{path}: cannot read ({exc.strerror})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
        raise KeystoreError(f"{path}: not a {FORMAT} file of version 1")
    try:
        keys = {}
        for entry in doc["keys"]:
            try:
                keys[int(entry["id"])] = base64.b64decode(entry["secret"], validate=True)
            except binascii.Error:
                raise KeystoreError(f"{path}: key {entry['id']}: secret is not base64") from None
        retired = frozenset(int(entry["id"]) for entry in doc.get("retired", []))
        ring = KeyRing(keys, int(doc["active"]), retired)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, DecoderError):
            raise KeystoreError(f"{path}: {exc}") from exc
        raise KeystoreError(f"{path}: missing or mistyped field ({type(exc).__name__})") from None
    return ring, doc


def _write(data_dir: Path, ring: KeyRing, old: dict | None) -> None:
    """Write `ring` atomically, keeping the timestamps that `old` recorded."""
    created = {int(e["id"]): e.get("created") for e in (old or {}).get("keys", [])}
    retired_at = {int(e["id"]): e.get("retired") for e in (old or {}).get("retired", [])}
    now = _now()
    doc = {
        "format": FORMAT,
        "version": 1,
        "active": ring.active,
        "keys": [
            {"id": key_id, "secret": base64.b64encode(secret).decode("ascii"),
             "created": created.get(key_id) or now}
            for key_id, secret in sorted(ring.keys.items())
        ],
        "retired": [{"id": k, "retired": retired_at.get(k) or now} for k in sorted(ring.retired)],
    }  # fmt: skip
    path = data_dir / KEYS_FILE
    temp = data_dir / f".{KEYS_FILE}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(doc, indent=1).encode("ascii") + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_keyring(data_dir: str | os.PathLike, *, create: bool = True) -> KeyRing:
    """The key ring in DATA/keys.json; with `create`, a new file with one fresh key first.

    Returns the KeyRing. Raises KeystoreError if the file is missing (create=False),
    unreadable, not a key ring, or readable by others.
    """
    data_dir = Path(data_dir)
    path = data_dir / KEYS_FILE
    if not path.exists():
        if not create:
            raise KeystoreError(f"{path} does not exist; create it with a fresh key first")
        if data_dir.exists() and not data_dir.is_dir():
            raise KeystoreError(f"{data_dir} is not a folder")
        try:
            with locked(data_dir):
                if not path.exists():  # another process may have won the race
                    _write(data_dir, KeyRing({0: secrets.token_bytes(SECRET_BYTES)}, 0), None)
        except OSError as exc:  # a file where the folder should be, no permission, ...
            raise KeystoreError(f"cannot create the key ring in {data_dir}: "
                                f"{exc.strerror or exc}") from exc
    return _read(path)[0]


class KeyFile(WatchedFile[KeyRing]):
    """A key ring file read again when it changes (api/filewatch.WatchedFile): how a
    Kafka worker verifies tokens with the server's keys.json and sees a rotation without
    a restart. Raises KeystoreError if the file is missing or not a key ring.

        keys = KeyFile(path)
        ring = keys()          # the ring as the file holds it now
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path, lambda p: _read(p)[0], KeystoreError, "key ring")


def _change(data_dir: str | os.PathLike, change) -> KeyRing:
    data_dir = Path(data_dir)
    load_keyring(data_dir)
    with locked(data_dir):
        ring, doc = _read(data_dir / KEYS_FILE)
        try:
            new = change(ring)
        except DecoderError as exc:
            raise KeystoreError(str(exc)) from exc
        _write(data_dir, new, doc)
    return new


def rotate_key(data_dir: str | os.PathLike) -> KeyRing:
    """Add a fresh random key under the next key id and make it active; old keys stay.

    Returns the new ring. Raises KeystoreError as `load_keyring` does, or when no key id
    is left.
    """
    return _change(data_dir, lambda ring: ring.rotate(secrets.token_bytes(SECRET_BYTES)))


def retire_key(data_dir: str | os.PathLike, key_id: int) -> KeyRing:
    """Delete the secret of `key_id`: its tokens verify as RETIRED_KEY from now on.

    Returns the new ring. Raises KeystoreError if the key id is not live or is the
    active one (rotate first), or as `load_keyring` does.
    """
    return _change(data_dir, lambda ring: ring.retire(key_id))
