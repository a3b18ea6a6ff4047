"""`qrtrace trace`: the contacts (F1, F2, ...) and zones of a case, by the contact rule.

`--json` prints the TraceResult as one object (times in epoch seconds) plus the query
time; otherwise a table in local time (UTC+7 unless `--tz` says otherwise) with venue
names from the folder's venue table. `--graphml`/`--graph-json`/`--svg` also write the
contact graph (tracing.graph); one of them may be '-', standard output, and the trace is
then printed to standard error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from api.cli import UsageError
from api.notice import notice_if_slow
from ingest.runtime import index_path
from tracing.checkins import MAX_TIME
from tracing.csvio import parse_time
from tracing.errors import TracingError
from tracing.model import ContactRule, TraceResult
from tracing.venues import VenueTable, VenueTableError

"""The index lives in DATA/index: it owns that folder (and deletes files it does not
know there), while DATA itself holds other tables (venues.json, keys, ...)."""

# Shown when the first trace of a process takes seconds rather than milliseconds.
COMPILING = ("trace: still tracing after 2 s (the first run after an install compiles the "
             "kernels: tens of seconds; later runs load them from the cache; a deep trace "
             "over a big index takes a while too)...")
# A trace that took longer than this is not run again: loading the kernels is a small
# share of it, and a deep trace over a big index would cost its time twice.
REPEAT_UNDER_MS = 2000.0

_TZ = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `trace`."""
    p = subparsers.add_parser(
        "trace", help="contacts and zones of a confirmed case",
        description="Trace a case: who shared a venue with the case during its infectious "
                    "window (F1), who shared one with those people afterwards (F2), and "
                    "the venues and hours to act on (zones). Times: ISO 8601 with an "
                    "offset, or epoch seconds.")
    p.add_argument("--data", metavar="DIR", action="append", default=[],
                   help="data folder; repeat it to trace over several shards as one index "
                        "(one folder per Kafka worker: each holds some venues' check-ins)")
    p.add_argument("--shard", metavar="URL", action="append", default=[],
                   help="a shard server (qrtrace shard) to trace over too, with the token "
                        "of QRTRACE_SHARD_TOKEN; repeatable")
    p.add_argument("--case", required=True, metavar="PERSON", help="the case's person id")
    p.add_argument("--from", dest="window_from", required=True, metavar="T",
                   help="start of the infectious window")
    p.add_argument("--to", dest="window_to", required=True, metavar="T",
                   help="end of the infectious window (exclusive)")
    p.add_argument("--depth", type=int, default=2, help="levels to trace (default 2: F1, F2)")
    p.add_argument("--min-overlap", type=float, default=10, metavar="MIN",
                   help="minutes two visits must overlap (default 10)")
    p.add_argument("--linger", type=float, default=0, metavar="MIN",
                   help="minutes a presence lingers after leaving (default 0)")
    p.add_argument("--dwell-default", type=float, default=60, metavar="MIN",
                   help="visit length without check-out when the venue names none (default 60)")
    p.add_argument("--purpose", metavar="TEXT", required=True,
                   help="why this trace is run (3 characters or more), written to the "
                        "audit log with it, as an official's case carries one")
    p.add_argument("--audit-log", metavar="FILE",
                   help="an audit log to record the trace in, besides each --data folder's "
                        "audit/audit.log (needed when tracing over --shard servers alone)")
    p.add_argument("--tz", default="+07:00", help="offset for printed times (default +07:00)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--graphml", metavar="FILE",
                   help="write the contact graph as GraphML ('-' for stdout: the trace is "
                        "then printed to stderr)")
    p.add_argument("--graph-json", metavar="FILE",
                   help="write the contact graph as JSON ('-' for stdout, likewise)")
    p.add_argument("--svg", metavar="FILE",
                   help="draw the contact graph as SVG ('-' for stdout, likewise)")
    p.set_defaults(func=run)


def parse_offset(text: str) -> timezone:
    """A fixed offset from '+07:00', '+7', 'UTC+7', 'Z' or 'UTC'; raises UsageError."""
    if text.strip().upper() in ("Z", "UTC", "GMT"):
        return UTC
    m = _TZ.match(text.strip())
    if not m or int(m.group(2)) > 14 or int(m.group(3) or 0) > 59:
        raise UsageError(f"--tz {text!r} is not an offset like +07:00")
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))


def _minutes(value: float, option: str, low: float = 0) -> int:
    """Seconds of `value` minutes, from `low` to a day (as the API takes them)."""
    if not low <= value <= 1440:  # NaN and inf fail too
        raise UsageError(f"{option} must be from {low:g} to 1440 minutes (a day), got {value}")
    return round(value * 60)


def build_rule(args: argparse.Namespace) -> ContactRule:
    """The ContactRule from the command's options; raises UsageError for bad values."""
    if not 1 <= args.depth <= 8:
        raise UsageError(f"--depth must be from 1 to 8, got {args.depth}")
    # a dwell under a minute would end every visit without a check-out at once
    return ContactRule(min_overlap=_minutes(args.min_overlap, "--min-overlap"),
                       linger=_minutes(args.linger, "--linger"), depth=args.depth,
                       default_dwell=_minutes(args.dwell_default, "--dwell-default", 1))


def _window(args: argparse.Namespace) -> tuple[int, int]:
    try:
        lo = parse_time(args.window_from, "--from")
        hi = parse_time(args.window_to, "--to")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if hi <= lo:
        raise UsageError(f"--to {args.window_to} is not after --from {args.window_from}")
    if lo < 0 or hi > MAX_TIME:
        raise UsageError("the window must lie within the times the index stores (1970 to "
                         "2106)")
    return lo, hi


def run(args: argparse.Namespace) -> int:
    """Trace and print; returns 0. Raises UsageError for bad input or a missing folder."""
    try:
        case = int(args.case)
    except ValueError:
        raise UsageError(f"--case {args.case!r} is not a person id (an integer)") from None
    if not 0 <= case < 2**64:
        raise UsageError(f"--case {case} is out of range (0 to 2^64-1)")
    purpose = args.purpose.strip()
    if len(purpose) < 3 or not purpose.isprintable():  # no control or format characters
        raise UsageError("--purpose must say why this trace is run, in 3 visible characters "
                         "or more: it goes into the audit log")
    lo, hi = _window(args)
    rule = build_rule(args)
    graph_files = _graph_files(args)
    tz = parse_offset(args.tz)
    folders = [Path(d) for d in args.data]
    if not folders and not args.shard:
        raise UsageError("give a data folder (--data DIR) or a shard (--shard URL)")
    for data in folders:
        if not data.is_dir():
            raise UsageError(f"data folder {data} does not exist")
        if not (index_path(data) / "MANIFEST.json").exists():
            raise UsageError(f"data folder {data} has no index yet (run qrtrace import first)")
    venues = VenueTable()
    for data in folders:
        try:
            venues.update(VenueTable.load(data))
        except VenueTableError as exc:
            raise UsageError(str(exc)) from None
    try:
        idx = _open(folders, args.shard)
    except (TracingError, OSError, ValueError) as exc:
        where = ", ".join([*map(str, folders), *args.shard])
        raise UsageError(f"cannot open the index in {where}: {exc}") from None
    def timed() -> tuple[TraceResult, float]:
        began = time.perf_counter()
        traced = idx.trace(case, lo, hi, rule=rule)
        return traced, (time.perf_counter() - began) * 1000

    try:
        _audit(args, purpose, folders, case, lo, hi, rule)
        # A process's first trace loads the numba kernels from their cache (a few hundred
        # ms, against well under one for the query itself): the same trace again shows
        # what a query costs in a running server.
        with notice_if_slow(COMPILING) as first:
            result, first_ms = timed()
        query_ms = first_ms
        if first_ms < REPEAT_UNDER_MS:
            result, query_ms = timed()
        presences = _contact_presences(idx, result) if graph_files else None
    except TracingError as exc:
        raise UsageError(str(exc)) from None
    finally:
        idx.close()
    _write_graph(graph_files, result, venues, presences)
    # with a graph on standard output, the trace itself goes to standard error
    out = sys.stderr if any(path == "-" for _, path in graph_files) else sys.stdout
    if args.json:
        print(json.dumps({**result.to_dict(), "query_ms": round(query_ms, 3),
                          "first_query_ms": round(first_ms, 3)}, ensure_ascii=False), file=out)
    else:
        repeated = first_ms < REPEAT_UNDER_MS
        print(format_table(result, venues, tz, query_ms, first_ms if repeated else None,
                           compiled=first.shown), file=out)
    return 0


def _audit(args: argparse.Namespace, purpose: str, folders: list[Path], case: int, lo: int,
           hi: int, rule: ContactRule) -> None:
    """Record the trace, before it runs, in the audit log of every data folder it reads
    (the one a server of that folder keeps: DATA/audit/audit.log) and in --audit-log:
    like an official's query through the API, a trace on the command line reads
    citizens' movements. Raises UsageError when there is no log to write or one cannot
    be written: the trace is then refused."""
    from api.audit import AuditError, AuditLog, audit_path

    logs = [audit_path(data) for data in folders]
    if args.audit_log:
        logs.append(Path(args.audit_log))
    if not logs:
        raise UsageError("a trace over shard servers alone is recorded nowhere: give "
                         "--audit-log FILE (traces are audited like officials' queries)")
    # the traced person under detail.person, as the API's entries name theirs; "case"
    # holds a case's id there, and a trace on the command line has none
    detail = {"person": case, "from": lo, "to": hi, "depth": rule.depth,
              "min_overlap": rule.min_overlap, "linger": rule.linger,
              "folders": [str(d.resolve()) for d in folders], "shards": list(args.shard)}
    for path in logs:
        try:
            with AuditLog(path) as log:
                log.record(actor=_os_user(), role="command_line", action="trace",
                           purpose=purpose, detail=detail)
        except AuditError as exc:
            raise UsageError(f"cannot write the audit log, so the trace is refused: {exc}") \
                from None


def _os_user() -> str:
    """Who runs the command, from the process's user id (not from $USER, which anyone
    can set): "name (uid N)", or "uid N" for an id with no account name."""
    import pwd

    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _open(folders: list[Path], shard_urls: list[str]):
    """One folder's index, or several folders and shard servers read together as one;
    folders through read-only followers, so a server or worker may be writing them."""
    if len(folders) == 1 and not shard_urls:
        from tracing.follower import IndexFollower

        return IndexFollower.open(index_path(folders[0]), poll_s=None)
    from api.shard_client import RemoteShard
    from tracing.shards import ShardedIndex

    remotes = []
    if shard_urls:
        from api.commands.shard import shard_token

        token = shard_token()
        remotes = [RemoteShard(url, token) for url in shard_urls]
    return ShardedIndex.open([index_path(d) for d in folders], remotes)


def _contact_presences(idx, result: TraceResult):
    """Where the contacts were after their exposure (for the graph's who-exposed-whom),
    from the index the trace read."""
    from tracing.shards import ShardedIndex, contact_presences

    if isinstance(idx, ShardedIndex):
        return idx.contact_presences(result)
    return contact_presences([idx.snapshot()], result)


def _graph_files(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The graph documents asked for: [(format, path or "-" for standard output)].
    Raises UsageError when more than one asks for standard output."""
    files = [(format, path) for format, path in
             (("graphml", args.graphml), ("json", args.graph_json), ("svg", args.svg)) if path]
    if sum(path == "-" for _, path in files) > 1:
        raise UsageError("only one of --graphml, --graph-json and --svg can be '-' "
                         "(standard output)")
    return files


def _write_graph(files: list[tuple[str, str]], result: TraceResult, venues: VenueTable,
                 presences) -> None:
    """Write the contact graph in each of `files` (_graph_files); "-" to standard output."""
    if not files:
        return
    from tracing import graph

    g = graph.contact_graph(result, venue_names={v.venue: v.name for v in venues if v.name},
                            presences=presences)
    for format, path in files:
        if path == "-":
            sys.stdout.buffer.write(graph.document(g, format))
            sys.stdout.buffer.flush()
            continue
        try:
            graph.write(g, path, format)
        except OSError as exc:
            raise UsageError(f"cannot write the graph to {path}: {exc}") from None


def format_table(result: TraceResult, venues: VenueTable, tz: timezone,
                 query_ms: float | None = None, first_ms: float | None = None,
                 compiled: bool = False) -> str:
    """A readable report of `result`: rule, contacts with evidence, zones; local times;
    the query's time, and the first one's of the process (which loaded the kernels, or
    compiled them: `compiled`)."""

    def when(t: int) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M")

    def until(a: int, b: int) -> str:
        start, end = when(a), when(b)
        return f"{start} - {end[11:] if end[:10] == start[:10] else end}"

    r = result.rule
    zone_name = datetime.fromtimestamp(result.window_from, tz).strftime("UTC%z")
    lines = [
        f"case {result.case}, infectious {until(result.window_from, result.window_to)} "
        f"({zone_name})",
        f"rule: min overlap {r.min_overlap // 60} min, linger {r.linger // 60} min, "
        f"depth {r.depth}, default dwell {r.default_dwell // 60} min",
    ]
    by_level: dict[int, int] = {}
    for c in result.contacts:
        by_level[c.level] = by_level.get(c.level, 0) + 1
    counts = ", ".join(f"F{lvl}: {n}" for lvl, n in sorted(by_level.items())) or "none"
    took = ""
    if query_ms is not None:
        first = "" if first_ms is None else \
            f"; the first in this process {first_ms:.0f} ms, " \
            f"{'compiling' if compiled else 'loading'} the kernels"
        took = f" ({query_ms:.1f} ms{first})"
    lines += [f"contacts: {counts}{took}", ""]
    if result.contacts:
        lines.append(f"{'level':<6}{'person':>20}  {'exposed at':<17}  evidence")
        for c in sorted(result.contacts, key=lambda c: (c.level, c.exposed_at, c.person)):
            ev = "; ".join(f"{venues.name_of(e.venue)} {until(e.start, e.end)} "
                           f"({e.minutes:.0f} min)" for e in c.evidence[:3])
            if len(c.evidence) > 3:
                ev += f"; +{len(c.evidence) - 3} more"
            lines.append(f"F{c.level:<5}{c.person:>20}  {when(c.exposed_at):<17}  {ev}")
        lines.append("")
    lines.append(f"zones: {len(result.zones)}")
    if result.zones:
        lines.append(f"{'level':<6}{'venue':<32}{'when':<30}{'exposed':>8}")
        for z in sorted(result.zones, key=lambda z: (z.level, z.start, z.venue)):
            name = venues.name_of(z.venue)
            label = name if name == str(z.venue) else f"{name} ({z.venue})"
            lines.append(f"F{z.level:<5}{label[:31]:<32}{until(z.start, z.end):<30}"
                         f"{z.exposed:>8}")
    return "\n".join(lines)
