"""The contact rule's parameters and the shapes of a trace's answer.

These plain dataclasses are the contract between the index (which computes them), the
graph and reports (which read them) and the CLI and API (which print and serve them).
Times are integer seconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple


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


@dataclass(frozen=True, slots=True)
class TraceResult:
    """The answer for one case: its window, the rule used, contacts and zones."""

    case: int
    window_from: int
    window_to: int
    rule: ContactRule
    contacts: tuple[Contact, ...]
    zones: tuple[Zone, ...]

    def to_dict(self) -> dict:
        return {
            "case": self.case,
            "from": self.window_from,
            "to": self.window_to,
            "rule": self.rule.to_dict(),
            "contacts": [c.to_dict() for c in self.contacts],
            "zones": [z.to_dict() for z in self.zones],
        }
