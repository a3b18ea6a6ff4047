"""The venue table: ids, names, villages, categories and dwell times.

A visit without a check-out ends after its venue's dwell (DESIGN.md, rule 2): the venue's
own dwell minutes, else its category's default below, else the contact rule's
`default_dwell` (60 minutes unless the official says otherwise).

Category defaults, in minutes, and why:

| category         | dwell | why                                                  |
|------------------|-------|------------------------------------------------------|
| market           |  60   | a morning shopping round in a wet market             |
| school           | 480   | a school day, 7:00 to 15:00                          |
| office           | 480   | a working day                                        |
| enterprise       | 480   | a factory or enterprise shift                        |
| shop             |  20   | a grocery, pharmacy or convenience store visit       |
| clinic           |  45   | a consultation with waiting time                     |
| commune_office   |  30   | an administrative errand at the commune People's Committee |
| cafe             |  45   | a coffee, a meal                                     |
| home             |  60   | a visit to a household                               |
| other            |  60   | the rule's own default                               |

The table lives in the data folder as `venues.json`, written atomically (temporary
file, fsync, rename, directory fsync). Nothing here imports anything of ours.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VENUES_FILE = "venues.json"
FORMAT_VERSION = 1

# Minutes a visit lasts without a check-out, per category (see the module docstring).
CATEGORY_DWELL_MINUTES: dict[str, int] = {
    "market": 60,
    "school": 480,
    "office": 480,
    "enterprise": 480,
    "shop": 20,
    "clinic": 45,
    "commune_office": 30,
    "cafe": 45,
    "home": 60,
    "other": 60,
}

MAX_VENUE_ID = 2**64 - 1


class VenueTableError(ValueError):
    """A venue row or a venues file that cannot be used, with the reason."""


# A visit without a check-out lasts its venue's dwell: a day at the most.
MAX_DWELL_MINUTES = 1440


def normal_place(text: str) -> str:
    """A place name in one spelling: Unicode NFC (a keyboard may type "Đức" decomposed),
    with runs of spaces made one and none at the ends."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def normal_jurisdiction(text: str) -> str:
    """"District" or "District/Commune" with each part a normal_place."""
    return "/".join(normal_place(part) for part in text.split("/"))


@dataclass(frozen=True, slots=True)
class Venue:
    """One venue: `dwell_minutes` is None when the category default applies.

    `commune` and `district` place the venue in the administrative hierarchy (district >
    commune > village) that officials' jurisdictions follow; empty when unknown.
    """

    venue: int
    name: str = ""
    village: str = ""
    category: str = "other"
    dwell_minutes: int | None = None
    commune: str = ""
    district: str = ""

    def __post_init__(self) -> None:
        # places are compared as text with officials' jurisdictions: one spelling each
        for name in ("village", "commune", "district"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, normal_place(value))
        if not isinstance(self.venue, int) or not 0 <= self.venue <= MAX_VENUE_ID:
            raise VenueTableError(
                f"venue id must be an integer from 0 to 2^64-1, got {self.venue!r}"
            )
        if self.dwell_minutes is not None and (
            not isinstance(self.dwell_minutes, int)
            or not 0 < self.dwell_minutes <= MAX_DWELL_MINUTES
        ):
            raise VenueTableError(
                f"venue {self.venue}: dwell_minutes must be an integer from 1 to "
                f"{MAX_DWELL_MINUTES} (a day), got {self.dwell_minutes!r}"
            )

    def dwell_seconds(self) -> int | None:
        """The venue's dwell in seconds: its own, else its category's, else None."""
        if self.dwell_minutes is not None:
            return self.dwell_minutes * 60
        default = CATEGORY_DWELL_MINUTES.get(self.category)
        return None if default is None else default * 60

    def to_dict(self) -> dict:
        """The venue as a JSON-ready dict (the venues.json row)."""
        return {"venue": self.venue, "name": self.name, "village": self.village,
                "category": self.category, "dwell_minutes": self.dwell_minutes,
                "commune": self.commune, "district": self.district}

    @property
    def jurisdiction(self) -> str:
        """"district/commune" (the officials' jurisdiction path), "" when unknown."""
        return f"{self.district}/{self.commune}" if self.commune else self.district


class VenueTable:
    """Venues by id. Adding a venue that exists replaces it (the newest list wins)."""

    def __init__(self, venues: Iterable[Venue] = ()) -> None:
        self._by_id: dict[int, Venue] = {}
        self._by_village: dict[str, list[int]] | None = None
        self.update(venues)

    def update(self, venues: Iterable[Venue]) -> None:
        """Add or replace venues."""
        for venue in venues:
            self._by_id[venue.venue] = venue
        self._by_village = None

    def in_villages(self, names: Iterable[str]) -> list[int]:
        """Ids of the venues in any of the villages `names` (an index built once per
        change of the table: a city has tens of thousands of venues)."""
        if self._by_village is None:
            by_village: dict[str, list[int]] = {}
            for venue in self._by_id.values():
                by_village.setdefault(venue.village, []).append(venue.venue)
            self._by_village = by_village
        return [vid for name in names for vid in self._by_village.get(name, ())]

    def get(self, venue: int) -> Venue | None:
        """The venue with this id, or None."""
        return self._by_id.get(int(venue))

    def name_of(self, venue: int) -> str:
        """A label for printing: the venue's name when known, else its id."""
        found = self._by_id.get(int(venue))
        return found.name if found is not None and found.name else str(venue)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(sorted(self._by_id.values(), key=lambda v: v.venue))

    def __contains__(self, venue: object) -> bool:
        return venue in self._by_id

    def resolved_dwell(self) -> tuple[np.ndarray, np.ndarray]:
        """Venue ids (uint64) and dwell seconds (int64) for venues with a known dwell.

        A venue whose own dwell is empty and whose category has no default is left out,
        so that the contact rule's `default_dwell` applies to it.
        """
        pairs = [(v.venue, d) for v in self if (d := v.dwell_seconds()) is not None]
        ids = np.fromiter((p[0] for p in pairs), dtype=np.uint64, count=len(pairs))
        dwell = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
        return ids, dwell

    # Persistence ---------------------------------------------------------------------

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the table to `folder/venues.json` atomically; returns the path.

        Raises OSError when the folder cannot be written.
        """
        folder = Path(folder)
        target = folder / VENUES_FILE
        payload = {"format": "qrtrace-venues", "version": FORMAT_VERSION,
                   "category_dwell_minutes": CATEGORY_DWELL_MINUTES,
                   "venues": [v.to_dict() for v in self]}
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=".venues.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike) -> VenueTable:
        """Read `folder/venues.json`; an absent file is an empty table.

        Raises VenueTableError when the file exists but is not a venue table.
        """
        path = Path(folder) / VENUES_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        try:
            payload = json.loads(raw)
            if payload.get("format") != "qrtrace-venues":
                raise VenueTableError(f"{path}: not a qrtrace venues file")
            if payload.get("version") != FORMAT_VERSION:
                raise VenueTableError(f"{path}: unknown version {payload.get('version')!r}")
            return cls(Venue(**row) for row in payload["venues"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, VenueTableError):
                raise
            raise VenueTableError(f"{path}: unreadable venue table ({exc})") from exc


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
