"""The contact rule's parameters and the shapes of a trace's answer.

These plain dataclasses are the contract between the index (which computes them), the
graph and reports (which read them) and the CLI and API (which print and serve them).
Times are integer seconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import NamedTuple

import numpy as np

from tracing.gc_pause import gc_paused


@dataclass(frozen=True, slots=True)
class ContactRule:
    """Parameters of the contact rule (see DESIGN.md, "The contact rule").

    min_overlap: seconds two visits must overlap to count (effective minimum 1 s).
    linger: seconds an infectious presence lingers after the person leaves.
    depth: how many levels to trace (1 = F1 only, 2 = F1 and F2, ...).
    default_dwell: seconds a visit lasts when it has no check-out and its venue
        (and the venue's category) names no dwell.
    """

    min_overlap: int = 600
    linger: int = 0
    depth: int = 2
    default_dwell: int = 3600

    def __post_init__(self) -> None:
        for name in ("min_overlap", "linger", "default_dwell"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"ContactRule.{name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.depth, int) or not 1 <= self.depth <= 8:
            raise ValueError(
                f"ContactRule.depth must be an integer from 1 to 8, got {self.depth!r}")

    @property
    def effective_min_overlap(self) -> int:
        """The overlap, in seconds, that a contact needs: max(min_overlap, 1)."""
        return max(self.min_overlap, 1)

    def to_dict(self) -> dict:
        """The rule as a JSON-ready dict, named, so every result says how it was made."""
        return {"name": "qrtrace-colocation-v1", **asdict(self)}


class Evidence(NamedTuple):
    """One qualifying overlap: at `venue`, from `start` to `end` (seconds).

    A named tuple rather than a dataclass: a trace makes thousands of these, and a tuple
    is several times cheaper to create than a frozen dataclass.
    """

    venue: int
    start: int
    end: int

    @property
    def minutes(self) -> float:
        return (self.end - self.start) / 60.0

    def to_dict(self) -> dict:
        return {"venue": self.venue, "start": self.start, "end": self.end,
                "minutes": round(self.minutes, 2)}


class Contact(NamedTuple):
    """A person exposed at `level` (1 = F1, 2 = F2, ...), first at `exposed_at`.

    `evidence` lists every qualifying overlap with a presence of the level above,
    ordered by start. A named tuple, like Evidence, because an F2 trace makes thousands.
    """

    person: int
    level: int
    exposed_at: int
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict:
        return {"person": self.person, "level": self.level, "exposed_at": self.exposed_at,
                "evidence": [e.to_dict() for e in self.evidence]}


class Zone(NamedTuple):
    """A venue and merged interval of level-`level` presence, with `exposed` persons.

    `exposed` counts distinct level-(level+1) persons whose evidence falls in it. A named
    tuple like Evidence (cheaper to make than a dataclass; note that the cyclic GC still
    tracks named tuples, unlike plain tuples of ints, so a service that keeps results
    alive should keep few: see api/cases.py).
    """

    venue: int
    level: int
    start: int
    end: int
    exposed: int

    def to_dict(self) -> dict:
        return {"venue": self.venue, "level": self.level, "start": self.start,
                "end": self.end, "exposed": self.exposed}


_U64 = np.dtype(np.uint64)


class TraceColumns(NamedTuple):
    """A trace's answer as three uint64 matrices (views of trace_kernels.trace's flat
    answer: see `from_flat`).

    contacts [n, 5]: person, level, exposed_at, first and end row of its evidence;
        ordered by (level, exposed_at, person).
    evidence [m, 3]: venue, start, end; each contact's rows ordered by (start, end, venue).
    zones [z, 5]: venue, level, start, end, exposed; ordered by (level, venue, start).
    """

    contacts: np.ndarray
    evidence: np.ndarray
    zones: np.ndarray

    @classmethod
    def from_flat(cls, flat: np.ndarray, n: int, m: int, z: int) -> TraceColumns:
        """The matrices of n contacts, m evidence rows and z zones that a flat uint64
        array holds row-major, one after another (views, not copies)."""
        view = np.ndarray  # over flat's buffer from a byte offset: cheaper than slicing
        return cls(view((n, 5), _U64, flat, 0), view((m, 3), _U64, flat, 40 * n),
                   view((z, 5), _U64, flat, 40 * n + 24 * m))


_new_evidence = partial(tuple.__new__, Evidence)
_new_contact = partial(tuple.__new__, Contact)
_new_zone = partial(tuple.__new__, Zone)


def _read_only(name: str, doc: str) -> property:
    """A public attribute of TraceResult: read from slot `_name`, never set."""
    slot = "_" + name

    def refuse(self, value):
        raise AttributeError(f"TraceResult is frozen: cannot set {name!r}")

    return property(lambda self: getattr(self, slot), refuse, doc=doc)


class TraceResult:
    """The answer for one case: its window, the rule used, contacts and zones.

    Either made from Contact and Zone tuples (`TraceResult(case, window_from, window_to,
    rule, contacts, zones)`) or, by a trace, from the kernel's answer (`from_answer`) or
    TraceColumns (`from_columns`): then the tuples are built on first access of
    `contacts` or `zones`, and `columns` and `contact_persons` read the answer without
    building them. A trace's F2 is thousands of tuples, most of which a caller that pages,
    counts or exports never reads. Frozen (its public attributes are read-only), compared
    and hashed by (case, window_from, window_to, rule, contacts, zones) like the dataclass
    it was; pickled as columns when it has them.

    Plain slots set in __init__, read through properties: made once per trace, a frozen
    class that set its slots through object.__setattr__ cost 1.8 us to make, this 0.25.
    """

    __slots__ = ("_answer", "_case", "_columns", "_contacts", "_rule", "_window_from",
                 "_window_to", "_zones")

    case = _read_only("case", "The traced person's id.")
    window_from = _read_only("window_from", "Start of the infectious window (seconds).")
    window_to = _read_only("window_to", "End of the infectious window (seconds).")
    rule = _read_only("rule", "The ContactRule the trace used.")

    def __init__(self, case: int, window_from: int, window_to: int, rule: ContactRule,
                 contacts: tuple[Contact, ...] | None = (),
                 zones: tuple[Zone, ...] | None = (), answer: tuple | None = None) -> None:
        self._case = case
        self._window_from = window_from
        self._window_to = window_to
        self._rule = rule
        self._contacts = contacts
        self._zones = zones
        self._answer = answer
        self._columns = None

    @classmethod
    def from_answer(cls, case: int, window_from: int, window_to: int, rule: ContactRule,
                    answer: tuple) -> TraceResult:
        """A result holding trace_kernels.trace's answer `(flat, n, m, z)` as it came:
        its columns are made on first read (TraceColumns.from_flat), its tuples after."""
        return cls(case, window_from, window_to, rule, None, None, answer)

    @classmethod
    def from_columns(cls, case: int, window_from: int, window_to: int, rule: ContactRule,
                     columns: TraceColumns) -> TraceResult:
        """A result whose contacts and zones are built from `columns` when first read."""
        result = cls(case, window_from, window_to, rule, None, None)
        result._columns = columns
        return result

    @property
    def contacts(self) -> tuple[Contact, ...]:
        """Contacts ordered by (level, exposed_at, person), each with its evidence."""
        contacts = self._contacts
        if contacts is None:
            # two threads may both build it: equal tuples, the last one kept
            contacts = self._contacts = _contacts_of(self.columns)
        return contacts

    @property
    def zones(self) -> tuple[Zone, ...]:
        """Zones ordered by (level, venue, start)."""
        zones = self._zones
        if zones is None:
            zones = self._zones = _zones_of(self.columns)
        return zones

    @property
    def columns(self) -> TraceColumns | None:
        """The answer as columns when a trace made this result, else None."""
        columns = self._columns
        if columns is None and self._answer is not None:
            columns = self._columns = TraceColumns.from_flat(*self._answer)
        return columns

    @property
    def contact_persons(self) -> np.ndarray:
        """The contacts' person ids (uint64), in the order of `contacts`."""
        columns = self.columns
        if columns is not None:
            return columns.contacts[:, 0].copy()
        return np.fromiter((c.person for c in self.contacts), np.uint64,
                           len(self.contacts))

    @property
    def contact_levels(self) -> np.ndarray:
        """The contacts' levels (int64), in the order of `contacts`."""
        columns = self.columns
        if columns is not None:
            return columns.contacts[:, 1].astype(np.int64)
        return np.fromiter((c.level for c in self.contacts), np.int64, len(self.contacts))

    def contacts_slice(self, start: int, stop: int | None = None) -> tuple[Contact, ...]:
        """`contacts[start:stop]` (start, stop >= 0), building only those tuples when
        the result holds columns and has not built them all: a page of a town's F2."""
        columns = self.columns
        if self._contacts is not None or columns is None:
            return self.contacts[start:stop]
        rows = columns.contacts[start:stop]
        if rows.shape[0] == 0:
            return ()
        # a contact's evidence rows follow those of the contact before it
        first, end = int(rows[0, 3]), int(rows[-1, 4])
        rows = rows.copy()
        rows[:, 3:] -= np.uint64(first)
        return _contacts_of(TraceColumns(rows, columns.evidence[first:end],
                                         columns.zones[:0]))

    def _key(self) -> tuple:
        return (self.case, self.window_from, self.window_to, self.rule, self.contacts,
                self.zones)

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self):
        columns = self.columns
        if columns is not None:
            return (TraceResult.from_columns, (self.case, self.window_from, self.window_to,
                                               self.rule, columns))
        return (TraceResult, self._key())

    def __repr__(self) -> str:
        columns = self.columns
        if columns is not None:
            n, z = columns.contacts.shape[0], columns.zones.shape[0]
        else:
            n, z = len(self._contacts), len(self._zones)
        return (f"TraceResult(case={self.case!r}, window_from={self.window_from!r}, "
                f"window_to={self.window_to!r}, rule={self.rule!r}, contacts=<{n}>, "
                f"zones=<{z}>)")

    def to_dict(self) -> dict:
        return {
            "case": self.case,
            "from": self.window_from,
            "to": self.window_to,
            "rule": self.rule.to_dict(),
            "contacts": [c.to_dict() for c in self.contacts],
            "zones": [z.to_dict() for z in self.zones],
        }


def _contacts_of(columns: TraceColumns) -> tuple[Contact, ...]:
    """Contact tuples (with their Evidence tuples) from a trace's columns."""
    # tuple.__new__ over zipped column lists: the cheapest way found to build many named
    # tuples (a fifth less CPU than over the rows of a 2-D tolist())
    ev, ct = columns.evidence, columns.contacts
    with gc_paused():
        evidence = list(map(_new_evidence, zip(*_lists(ev), strict=True)))
        person, level, exposed_at, lo, hi = _lists(ct)
        rows = [tuple(evidence[a:b]) for a, b in zip(lo, hi, strict=True)]
        return tuple(map(_new_contact, zip(person, level, exposed_at, rows, strict=True)))


def _zones_of(columns: TraceColumns) -> tuple[Zone, ...]:
    """Zone tuples from a trace's columns."""
    with gc_paused():
        return tuple(map(_new_zone, zip(*_lists(columns.zones), strict=True)))


def _lists(matrix: np.ndarray) -> list[list[int]]:
    """Each column of a 2-D array as a list of Python ints."""
    return [matrix[:, j].tolist() for j in range(matrix.shape[1])]
