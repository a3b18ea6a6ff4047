"""`qrtrace simulate`: write a synthetic town's check-ins (and venues) as CSV.

The check-ins stream out day by day in vectorised chunks, so 100 million rows need no
more memory than one day's worth; a progress bar on stderr counts the days.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from api.cli import UsageError
from tracing import csvio, simulate
from tracing.checkins import MAX_TIME

LOCAL = timezone(timedelta(seconds=simulate.LOCAL_OFFSET))
# A city of tens of millions at the most: more would only exhaust memory before a row.
MAX_PEOPLE = 50_000_000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `simulate`."""
    p = subparsers.add_parser(
        "simulate", help="write synthetic check-ins of a simulated commune or city (CSV)",
        description="Simulate a town (villages, homes, markets, schools, offices, shops, "
                    "clinics) and write its QR check-ins as CSV: person,venue,check_in,"
                    "check_out in epoch seconds (UTC+7 daily routines).")
    p.add_argument("--people", type=int, required=True, help="number of persons")
    p.add_argument("--venues", type=int, required=True, help="number of venues")
    p.add_argument("--days", type=int, required=True, help="number of days")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--start", metavar="ISO-DATE",
                   help="first local day, e.g. 2021-12-01 (default: DAYS days before today, UTC+7)")
    p.add_argument("--out", required=True, help="check-in CSV to write ('-' for stdout)")
    p.add_argument("--venues-out", metavar="FILE", help="also write the venue table as CSV")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _start_day(text: str | None, days: int) -> int:
    if text is None:
        today = datetime.now(LOCAL).date()
        return (today - date(1970, 1, 1)).days - days
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--start {text!r} is not a date like 2021-12-01") from None
    first = (day - date(1970, 1, 1)).days
    if first < 1 or (first + days + 1) * 86400 >= MAX_TIME:
        raise UsageError(f"--start {text} and --days {days} must lie within the times the "
                         "index stores (1970 to 2106)")
    return first


def run(args: argparse.Namespace) -> int:
    """Simulate and write; returns 0. Raises UsageError for bad sizes or paths."""
    from tqdm import tqdm

    for name, most in (("people", MAX_PEOPLE), ("venues", MAX_PEOPLE), ("days", 366)):
        if not 1 <= getattr(args, name) <= most:
            raise UsageError(f"--{name} must be from 1 to {most:,}, got {getattr(args, name)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    start_day = _start_day(args.start, args.days)
    for path in (args.out, args.venues_out):
        if path and path != "-" and not Path(path).resolve().parent.is_dir():
            raise UsageError(f"cannot write {path}: folder {Path(path).parent} does not exist")
        if path and path != "-" and Path(path).is_dir():
            raise UsageError(f"cannot write {path}: it is a folder")
    began = time.perf_counter()
    town = simulate.build_town(args.people, args.venues, args.seed)
    if args.venues_out:
        csvio.write_venues(args.venues_out, town.venues())
    rows = 0
    blocks = -(-args.people // (1 << 20))
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
    try:
        csvio.write_checkins(out, [], [], [], [], header=True)
        with tqdm(total=args.days * blocks, unit="day-block", file=sys.stderr,
                  disable=args.no_progress, desc="simulate") as bar:
            for chunk in simulate.iter_checkins(town, args.days, start_day):
                csvio.write_checkins(out, chunk.person, chunk.venue, chunk.t_in, chunk.t_out)
                rows += len(chunk)
                bar.update(1)
                bar.set_postfix(rows=rows, refresh=False)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    elapsed = time.perf_counter() - began
    print(f"simulate: {rows} check-ins of {args.people} people at {args.venues} venues over "
          f"{args.days} days from {date(1970, 1, 1) + timedelta(days=start_day)} (UTC+7) "
          f"in {elapsed:.1f} s -> {args.out}", file=sys.stderr)
    return 0
