"""The service's registry, DATA/registry.sqlite3: who may call, which cases are open,
which QR codes were posted.

Tables::

    principals   id, name, role (device | official | admin), jurisdiction, venue (devices),
                 token_hash (sha256 hex of the bearer token), created, revoked
    cases        id, person, window [t_from, t_to), purpose, jurisdiction, the rule's
                 parameters, opened_by, opened_at
    qr_points    one row per venue QR code issued (a poster at the venue): venue, key id,
                 issued_at
    revocations  personal or venue token ids (kind "person" or "venue") that no longer
                 check in

Bearer tokens are stored hashed only; a token is shown once, when it is created. Ids of
persons and venues are uint64, which SQLite's signed INTEGER cannot hold: they are stored
as decimal TEXT. SQLite (WAL journal, synchronous=FULL) gives atomic, durable changes and
lets several processes read one registry.

Errors::

    RegistryError (Exception)    the database cannot be opened or a change is refused
    └── NotFound                 no such principal or case
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REGISTRY_FILE = "registry.sqlite3"
ROLES = ("device", "official", "admin")
TOKEN_PREFIX = "qrt_"
RECHECK_S = 1.0  # how soon a principal changed by another process is seen
OFFICIAL_VALID_DAYS = 90  # an official's token lapses after this, unless told otherwise

_SCHEMA = """
CREATE TABLE IF NOT EXISTS principals (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
    jurisdiction TEXT NOT NULL DEFAULT '', venue TEXT, token_hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL, revoked INTEGER);
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY, person TEXT NOT NULL, t_from INTEGER NOT NULL,
    t_to INTEGER NOT NULL, purpose TEXT NOT NULL, jurisdiction TEXT NOT NULL,
    min_overlap INTEGER NOT NULL, linger INTEGER NOT NULL, depth INTEGER NOT NULL,
    default_dwell INTEGER NOT NULL, opened_by INTEGER NOT NULL, opened_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS qr_points (
    id INTEGER PRIMARY KEY, venue TEXT NOT NULL, key_id INTEGER NOT NULL,
    issued_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (
    kind TEXT NOT NULL, id TEXT NOT NULL, revoked_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id));
"""


class RegistryError(Exception):
    """The registry cannot be opened, or a change is refused (the message says why)."""


class NotFound(RegistryError):
    """No such principal or case."""


def hash_token(token: str) -> str:
    """The stored form of a bearer token: sha256 hex. Tokens carry 256 random bits, so a
    fast hash is enough (no password stretching needed: nothing to guess)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(role: str) -> str:
    """A fresh bearer token for `role`: "qrt_<role>_" + 43 url-safe random characters."""
    return f"{TOKEN_PREFIX}{role}_{secrets.token_urlsafe(32)}"


def in_jurisdiction(place: str, jurisdiction: str) -> bool:
    """True when `place` ("district/commune" or "district") lies inside `jurisdiction`.

    An empty jurisdiction is the whole country (admins); a district contains its communes.
    """
    if not jurisdiction:
        return True
    return place == jurisdiction or place.startswith(jurisdiction + "/")


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone who may call the API: a check-in device, an official, an admin."""

    id: int
    name: str
    role: str
    jurisdiction: str = ""
    venue: int | None = None
    created: int = 0
    revoked: int | None = None
    expires: int | None = None  # epoch seconds after which the token is refused

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role,
                "jurisdiction": self.jurisdiction, "venue": self.venue,
                "created": self.created, "revoked": self.revoked, "expires": self.expires}


@dataclass(frozen=True, slots=True)
class Case:
    """A confirmed case (F0) an official opened: the person, infectious window, rule."""

    id: int
    person: int
    t_from: int
    t_to: int
    purpose: str
    jurisdiction: str
    min_overlap: int
    linger: int
    depth: int
    default_dwell: int
    opened_by: int
    opened_at: int
    closed_at: int | None = None  # closed: its contacts are no longer shown
    closed_by: int | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "person": self.person, "from": self.t_from, "to": self.t_to,
                "purpose": self.purpose, "jurisdiction": self.jurisdiction,
                "rule": {"min_overlap": self.min_overlap, "linger": self.linger,
                         "depth": self.depth, "default_dwell": self.default_dwell},
                "opened_by": self.opened_by, "opened_at": self.opened_at,
                "closed_at": self.closed_at, "closed_by": self.closed_by}


class Registry:
    """The registry database; thread-safe (one connection, one lock)."""

    def __init__(self, data: str | os.PathLike, clock=time.time) -> None:
        self.path = Path(data) / REGISTRY_FILE
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None)
            if fresh:
                os.chmod(self.path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            # a deleted row's bytes are overwritten, not left in a free page
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
            for table, column in (("cases", "closed_at"), ("cases", "closed_by"),
                                  ("principals", "expires")):  # registries made before
                columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER")
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open the registry {self.path}: {exc}") from exc
        self._by_hash: dict[str, Principal] = {}
        self._cases: dict[int, Case] = {}
        self._version = -1
        self._checked = -RECHECK_S
        self._stale = True

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _now(self) -> int:
        return int(self._clock())

    def _write(self, sql: str, args: tuple = (), *, principals: bool = False
               ) -> sqlite3.Cursor:
        """Run a change; `principals` when it changes who may call (the next
        authentication then reloads them)."""
        with self._lock:
            self._stale = self._stale or principals
            try:
                return self._db.execute(sql, args)
            except sqlite3.IntegrityError as exc:
                raise RegistryError(f"refused: {exc}") from exc

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- principals ---------------------------------------------------------------

    def add_principal(self, name: str, role: str, *, jurisdiction: str = "",
                      venue: int | None = None, token: str | None = None,
                      created: int | None = None, valid_s: int | None = None
                      ) -> tuple[Principal, str]:
        """Register a principal; returns it and its bearer token (the only time the token
        is available: only its hash is kept). `created`: when (epoch seconds; default
        now; the demo commune's devices date from its first day); `valid_s`: seconds
        after which the token stops being accepted (None: never). Raises RegistryError
        for an unknown role, a device without a venue, or a token already in use."""
        if role not in ROLES:
            raise RegistryError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if (role == "device") != (venue is not None):
            raise RegistryError("a device is bound to exactly one venue; others to none")
        token = token or new_token(role)
        now = self._now() if created is None else int(created)
        expires = None if valid_s is None else now + int(valid_s)
        cur = self._write(
            "INSERT INTO principals (name, role, jurisdiction, venue, token_hash, created,"
            " expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, role, jurisdiction, None if venue is None else str(venue),
             hash_token(token), now, expires), principals=True)
        return Principal(cur.lastrowid, name, role, jurisdiction, venue, now,
                         expires=expires), token

    def ensure_admin_token(self, token: str, name: str = "admin (QRTRACE_ADMIN_TOKEN)"
                           ) -> list[int]:
        """Make `token` the admin token (from the environment): the principal named `name`
        gets this token's hash, replacing an earlier one, and every other admin (the one
        created and printed at a first start) is revoked: the operator who sets the
        token holds the admin's keys from then on. Returns the ids revoked."""
        digest = hash_token(token)
        rows = self._read("SELECT id FROM principals WHERE token_hash = ?", (digest,))
        if not rows:
            self._write("DELETE FROM principals WHERE name = ? AND role = 'admin'", (name,),
                        principals=True)
            self.add_principal(name, "admin", token=token)
        others = [r[0] for r in self._read(
            "SELECT id FROM principals WHERE role = 'admin' AND revoked IS NULL AND "
            "token_hash != ?", (digest,))]
        for principal_id in others:
            self.revoke_principal(principal_id)
        return others

    def has_admin(self) -> bool:
        """True when an admin principal that is not revoked exists."""
        return bool(self._read(
            "SELECT 1 FROM principals WHERE role = 'admin' AND revoked IS NULL LIMIT 1"))

    def revoke_principal(self, principal_id: int, role: str | None = None) -> Principal:
        """Revoke a principal's token at once. Raises NotFound."""
        found = self.get_principal(principal_id)
        if found is None or (role is not None and found.role != role):
            raise NotFound(f"no {role or 'principal'} with id {principal_id}")
        if found.revoked is None:
            self._write("UPDATE principals SET revoked = ? WHERE id = ?",
                        (self._now(), principal_id), principals=True)
        return self.get_principal(principal_id)

    def get_principal(self, principal_id: int) -> Principal | None:
        """The principal with this id, or None."""
        rows = self._read(f"SELECT {_P_COLS} FROM principals WHERE id = ?", (principal_id,))
        return _principal(rows[0]) if rows else None

    def principals(self, role: str | None = None) -> list[Principal]:
        """Every principal (of `role`), by id."""
        if role is None:
            rows = self._read(f"SELECT {_P_COLS} FROM principals ORDER BY id")
        else:
            rows = self._read(f"SELECT {_P_COLS} FROM principals WHERE role = ? ORDER BY id",
                              (role,))
        return [_principal(r) for r in rows]

    def authenticate(self, token: str) -> Principal | None:
        """The live principal holding `token`, or None. Served from memory: a change made
        through this object (a revocation) applies at once; a principal added by another
        process is found at once too (an unknown token makes the memory be checked
        against the database first); a revocation made by another process applies within
        RECHECK_S seconds (checking SQLite's data_version on every call cost a fifth of
        a single-scan request)."""
        now = time.monotonic()
        # The event loop calls this for every request: without a reload due, it reads the
        # dict without the lock, which threads hold during SQLite queries (waiting for it
        # stalled the loop under load).
        if self._stale or now - self._checked >= RECHECK_S:
            self._reload_principals(now)
        digest = hash_token(token)
        found = self._by_hash.get(digest)
        if found is None and self._checked != now:  # added by another process since?
            self._reload_principals(now)
            found = self._by_hash.get(digest)
        if found is not None and found.expires is not None and self._clock() >= found.expires:
            return None
        return found

    def _reload_principals(self, now: float) -> None:
        """Read the live principals again if the database changed (or this object did)."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if self._stale or version != self._version:
                rows = self._db.execute(
                    f"SELECT {_P_COLS}, token_hash FROM principals"
                    " WHERE revoked IS NULL").fetchall()
                self._by_hash = {r[-1]: _principal(r[:-1]) for r in rows}
                self._cases = {}  # a case closed by another process is read again
                self._version = version
                self._stale = False
            self._checked = now

    # ---- cases --------------------------------------------------------------------

    def open_case(self, *, person: int, t_from: int, t_to: int, purpose: str,
                  jurisdiction: str, min_overlap: int, linger: int, depth: int,
                  default_dwell: int, opened_by: int) -> Case:
        """Record a new case; returns it with its id."""
        now = self._now()
        cur = self._write(
            "INSERT INTO cases (person, t_from, t_to, purpose, jurisdiction, min_overlap,"
            " linger, depth, default_dwell, opened_by, opened_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(person), t_from, t_to, purpose, jurisdiction, min_overlap, linger, depth,
             default_dwell, opened_by, now))
        return self.get_case(cur.lastrowid)

    def get_case(self, case_id: int) -> Case | None:
        """The case with this id, or None. Found ones are kept in memory: a case changes
        only when closed, which this object applies at once and another process's close
        within RECHECK_S (the memory is dropped when the database changed)."""
        found = self._cases.get(case_id)
        if found is None:
            rows = self._read(f"SELECT {_C_COLS} FROM cases WHERE id = ?", (case_id,))
            if not rows:
                return None
            found = self._cases[case_id] = _case(rows[0])
        return found

    def close_case(self, case_id: int, closed_by: int) -> Case | None:
        """Close the case (once: a closed case keeps its first closing); returns it, or
        None when there is no such case."""
        self._write("UPDATE cases SET closed_at = ?, closed_by = ? WHERE id = ? AND "
                    "closed_at IS NULL", (self._now(), closed_by, case_id), principals=True)
        self._cases.pop(case_id, None)
        return self.get_case(case_id)

    def delete_cases_ended_before(self, horizon: int) -> int:
        """Delete the cases whose window ended before `horizon` (epoch seconds): the
        retention purge has deleted their check-ins, and a case row still names a person
        as a confirmed case with when they were infectious. Returns how many."""
        deleted = self._write("DELETE FROM cases WHERE t_to < ?", (int(horizon),)).rowcount
        if deleted:
            with self._lock:
                self._cases = {}
                # the write-ahead log still holds the rows' pages as they were: copy the
                # log into the database and empty it (secure_delete zeroed them there)
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def case_in_memory(self, case_id: int) -> Case | None:
        """The case if `get_case` found it before (no database read), else None."""
        return self._cases.get(case_id)

    def cases(self, jurisdiction: str = "") -> list[Case]:
        """Cases inside `jurisdiction` ("" = all), newest first."""
        rows = self._read(f"SELECT {_C_COLS} FROM cases ORDER BY id DESC")
        return [c for c in map(_case, rows) if in_jurisdiction(c.jurisdiction, jurisdiction)]

    # ---- QR points and revocations --------------------------------------------------

    def add_qr_point(self, venue: int, key_id: int, issued_at: int | None = None) -> None:
        """Count one venue QR code issued (posted at the venue), at `issued_at` (epoch
        seconds; default now)."""
        self._write("INSERT INTO qr_points (venue, key_id, issued_at) VALUES (?, ?, ?)",
                    (str(venue), key_id, self._now() if issued_at is None else issued_at))

    def qr_points(self, t_from: int | None = None, t_to: int | None = None
                  ) -> dict[int, int]:
        """QR points per venue: venue codes issued plus devices bound to it; those posted
        at some time in [t_from, t_to) (epoch seconds; both None: those live now): a
        venue whose code was posted after a day cannot be silent on it."""
        out: dict[int, int] = {}
        if t_from is None or t_to is None:
            codes = self._read("SELECT venue, COUNT(*) FROM qr_points GROUP BY venue")
            devices = self._read("SELECT venue, COUNT(*) FROM principals WHERE role = "
                                 "'device' AND revoked IS NULL GROUP BY venue")
        else:
            codes = self._read("SELECT venue, COUNT(*) FROM qr_points WHERE issued_at < ? "
                               "GROUP BY venue", (t_to,))
            devices = self._read(
                "SELECT venue, COUNT(*) FROM principals WHERE role = 'device' AND "
                "created < ? AND (revoked IS NULL OR revoked > ?) GROUP BY venue",
                (t_to, t_from))
        for venue, n in [*codes, *devices]:
            out[int(venue)] = out.get(int(venue), 0) + n
        return out

    def revoke_token_id(self, kind: str, token_id: int) -> None:
        """Stop personal (kind "person") or venue ("venue") tokens of this id from
        checking in."""
        self._write("INSERT OR IGNORE INTO revocations (kind, id, revoked_at) VALUES (?, ?, ?)",
                    (kind, str(token_id), self._now()))

    def revoked_token_ids(self) -> list[tuple[str, int]]:
        """Every revoked (kind, id)."""
        return [(k, int(i)) for k, i in self._read("SELECT kind, id FROM revocations")]


_P_COLS = "id, name, role, jurisdiction, venue, created, revoked, expires"
_C_COLS = ("id, person, t_from, t_to, purpose, jurisdiction, min_overlap, linger, depth,"
           " default_dwell, opened_by, opened_at, closed_at, closed_by")


def _principal(row: tuple) -> Principal:
    pid, name, role, jurisdiction, venue, created, revoked, expires = row
    return Principal(pid, name, role, jurisdiction, None if venue is None else int(venue),
                     created, revoked, expires)


def _case(row: tuple) -> Case:
    return Case(row[0], int(row[1]), *row[2:])
