"""CSV exports for officials' spreadsheets: contacts, zones and the adoption report.

A spreadsheet treats a cell that starts with `=`, `+`, `-` or `@` as a formula, and a tab
or carriage return in front can hide one (OWASP, "CSV Injection"). In 2021 researchers
showed that a name typed into the Luca check-in app reached health offices' spreadsheets
as a live formula that way. So every cell here goes through `safe_cell`, which puts a
single quote in front of such text; the csv module then quotes commas, double quotes and
line breaks (RFC 4180, CRLF line ends).

Negative numbers are prefixed too: telling "-1" (data) from "-1+cmd|..." (a formula)
means parsing, and a prefix on a real number costs nothing here, since every number these
exports write (ids, counts, durations, epoch days) is non-negative. Times are ISO 8601
with the local offset ("2022-01-08T08:00:00+07:00"), days ISO dates ("2022-01-08").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from tracing.adoption import AdoptionReport, iso_day
from tracing.model import TraceResult
from tracing.venues import VenueTable

VIETNAM_OFFSET_S = 7 * 3600
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

CONTACT_COLUMNS = ("person", "level", "exposed_at", "venue", "venue_name", "start", "end",
                   "minutes")
ZONE_COLUMNS = ("venue", "venue_name", "village", "level", "start", "end", "hours", "exposed")
ADOPTION_COLUMNS = ("venue", "name", "village", "category", "qr_points", "checkins",
                    "days_with_checkins", "days_without_checkins", "first_date", "last_date",
                    "silent")
VILLAGE_COLUMNS = ("village", "venues", "venues_with_qr_points", "silent_venues", "checkins",
                   "checkins_per_venue_day")


def safe_cell(value: object) -> str:
    """The text of one cell, made inert for spreadsheets.

    Takes any value (None is an empty cell). Returns str(value), with a leading single
    quote when that text starts with =, +, -, @, a tab or a carriage return (negative
    numbers included, see the module docstring). Raises nothing.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def iso_time(t: int, tz_offset_s: int = VIETNAM_OFFSET_S) -> str:
    """Epoch seconds `t` as ISO 8601 local time with its offset, to the second."""
    zone = timezone(timedelta(seconds=tz_offset_s))
    return datetime.fromtimestamp(t, zone).isoformat(timespec="seconds")


def write_csv(header: Iterable[object], rows: Iterable[Iterable[object]]) -> str:
    """A header and rows as CSV text, every cell through safe_cell. Raises nothing."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([safe_cell(x) for x in header])
    writer.writerows([safe_cell(x) for x in row] for row in rows)
    return out.getvalue()


def _name(venues: VenueTable, venue: int) -> str:
    found = venues.get(venue)
    return found.name if found is not None else ""


def contacts_csv(result: TraceResult, venues: VenueTable,
                 tz_offset_s: int = VIETNAM_OFFSET_S) -> str:
    """A trace's contacts, one row per evidence (a qualifying overlap), in the result's order.

    Takes the trace, the venue table (for names; "" when unknown) and the local offset.
    Returns CSV text with the columns CONTACT_COLUMNS; a contact without evidence still
    gets one row, its venue cells empty. Raises nothing.
    """
    def rows():
        for c in result.contacts:
            exposed = iso_time(c.exposed_at, tz_offset_s)
            if not c.evidence:
                yield (c.person, c.level, exposed, "", "", "", "", "")
            for e in c.evidence:
                yield (c.person, c.level, exposed, e.venue, _name(venues, e.venue),
                       iso_time(e.start, tz_offset_s), iso_time(e.end, tz_offset_s),
                       round(e.minutes, 2))
    return write_csv(CONTACT_COLUMNS, rows())


def zones_csv(result: TraceResult, venues: VenueTable,
              tz_offset_s: int = VIETNAM_OFFSET_S) -> str:
    """A trace's zones (venue and hours to close, clean and test), in the result's order.

    Takes the trace, the venue table (names and villages; "" when unknown) and the local
    offset. Returns CSV text with the columns ZONE_COLUMNS. Raises nothing.
    """
    def rows():
        for z in result.zones:
            found = venues.get(z.venue)
            yield (z.venue, _name(venues, z.venue), found.village if found else "", z.level,
                   iso_time(z.start, tz_offset_s), iso_time(z.end, tz_offset_s),
                   round((z.end - z.start) / 3600, 2), z.exposed)
    return write_csv(ZONE_COLUMNS, rows())


def adoption_csv(report: AdoptionReport) -> str:
    """The adoption report's venue rows, in the report's order (silent venues first), and
    nothing else. Takes the report; returns CSV text with the columns ADOPTION_COLUMNS
    (dates empty for a venue without check-ins, silent "yes" or "no"). Raises nothing."""
    rows = ((r.venue, r.name, r.village, r.category, r.qr_points, r.checkins,
             r.days_with_checkins, r.days_without_checkins,
             "" if r.first_day is None else iso_day(r.first_day),
             "" if r.last_day is None else iso_day(r.last_day), "yes" if r.silent else "no")
            for r in report.venues)
    return write_csv(ADOPTION_COLUMNS, rows)


def village_csv(report: AdoptionReport) -> str:
    """The adoption report's village summary (what a commune sends to its district).

    Takes the report; returns CSV text with the columns VILLAGE_COLUMNS and then one
    column of check-ins per day, headed by its ISO date. Raises nothing.
    """
    header = (*VILLAGE_COLUMNS, *(iso_day(d) for d in report.days))
    rows = ((v.village, v.venues, v.venues_with_qr_points, v.silent_venues, v.checkins,
             round(v.checkins_per_venue_day, 3), *v.daily) for v in report.villages)
    return write_csv(header, rows)
