"""`qrtrace serve --data DIR [--kafka HOST:PORT] [--host H] [--port P] [--workers N]`:
the HTTP API (and the officials' page) with embedded ingestion.

The admin token comes from QRTRACE_ADMIN_TOKEN when set; otherwise one is created on the
first start and printed once (only its hash is kept). With --kafka, scans are produced to
the topic and an in-process worker indexes them. With --workers N, N processes serve on
the one address: this one owns the index and writes, the others follow it and answer
reads (api/workers.py). With --shard URL (repeatable), officials' traces also cover
those shard servers (`qrtrace shard`: other workers' indexes), asked with
QRTRACE_SHARD_TOKEN; the server is not ready while one does not answer.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from api.cli import UsageError, bound_socket, check_bootstrap

MAX_WORKERS = 64


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `serve`."""
    p = subparsers.add_parser("serve", help="serve the HTTP API and the officials' page",
                              description="The HTTP API (and the officials' page) with "
                                          "embedded ingestion, or with --kafka through a "
                                          "Kafka topic.")
    p.add_argument("--data", type=Path, default=Path("data"), metavar="DIR",
                   help="data folder (created if needed; default ./data)")
    p.add_argument("--kafka", metavar="HOST:PORT",
                   help="produce scans to Kafka (topic qrtrace.scans) instead of the "
                        "embedded index; an in-process worker indexes them")
    p.add_argument("--topic", default="qrtrace.scans",
                   help="with --kafka: the scans topic (default qrtrace.scans)")
    p.add_argument("--group", default="qrtrace-index",
                   help="with --kafka: the indexing consumer group (default qrtrace-index)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (default 1): one writer, the others followers "
                        "that answer reads and forward checked scans to it")
    p.add_argument("--retention-days", type=int, default=21,
                   help="days check-ins are kept (default 21)")
    p.add_argument("--device-burst", type=int, default=20_000, metavar="N",
                   help="scans one device may post at once (default 20000)")
    p.add_argument("--device-per-hour", type=int, default=5_000, metavar="N",
                   help="scans per hour a device's allowance refills by (default 5000)")
    p.add_argument("--venue-burst", type=int, default=50_000, metavar="N",
                   help="scans one venue may take at once (default 50000)")
    p.add_argument("--venue-per-hour", type=int, default=20_000, metavar="N",
                   help="scans per hour a venue's allowance refills by (default 20000)")
    p.add_argument("--person-per-hour", type=int, default=50, metavar="N",
                   help="check-ins of one person at one venue per hour (default 50)")
    p.add_argument("--no-rate-limits", action="store_true",
                   help="switch the per-device, per-venue and per-person limits off "
                        "(benchmarks only)")
    p.add_argument("--demo", action="store_true",
                   help="load a demo commune into the data folder (first start only) and "
                        "print sign-in tokens for its officials")
    p.add_argument("--audit-fsync", choices=("after-answer", "before-answer"),
                   default="after-answer",
                   help="when an exposure page's audit line is fsynced: its line is always "
                        "written before the query runs; before-answer also waits for the "
                        "disk; after-answer (default) asks for the fsync at once and does "
                        "not wait (a power cut can lose the last lines, at most 1 s of them)")
    p.add_argument("--shard", metavar="URL", action="append", default=[],
                   help="a shard server (qrtrace shard, another worker's index) that "
                        "officials' traces also cover, asked with QRTRACE_SHARD_TOKEN; "
                        "repeatable")
    p.add_argument("--log-level", default="warning", help="uvicorn's log level")
    p.set_defaults(func=run)


# An admin token shorter than this is taken, with a warning: the operator chose it, and a
# server that refused to start would leave check-in points without a service.
STRONG_TOKEN = 24


def check_admin_token(token: str) -> None:
    """Refuse an admin token that no client could send in a Bearer header (whitespace,
    control or non-ASCII characters); warn about a short one."""
    if not all("!" <= ch <= "~" for ch in token):
        raise UsageError("QRTRACE_ADMIN_TOKEN may hold only printable ASCII characters "
                         "without spaces (it is sent as 'Authorization: Bearer TOKEN')")
    if len(token) < STRONG_TOKEN:
        print(f"warning: QRTRACE_ADMIN_TOKEN has {len(token)} characters; anyone who guesses"
              f" it administers the service: use {STRONG_TOKEN} or more, e.g. the output of"
              " python3 -c 'import secrets; print(secrets.token_urlsafe(24))'",
              file=sys.stderr, flush=True)


def settings_from(args: argparse.Namespace):
    """The Settings of a `serve` command line and the environment."""
    from api.ratelimit import ScanLimits
    from api.settings import Secret, Settings

    token = os.environ.get("QRTRACE_ADMIN_TOKEN") or None  # set but empty: as unset
    if token is not None:
        check_admin_token(token)
    for name in ("device_burst", "device_per_hour", "venue_burst", "venue_per_hour",
                 "person_per_hour"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if not 1 <= args.retention_days <= 3650:
        raise UsageError(f"--retention-days must be from 1 to 3650, got {args.retention_days}")
    shard_token = None
    if args.shard:
        from api.commands.shard import shard_token as read_shard_token
        from api.shard_client import shard_address

        shard_token = Secret(read_shard_token())
        for url in args.shard:
            try:
                shard_address(url)
            except ValueError as exc:
                raise UsageError(f"--shard: {exc}") from None
    return Settings(data=args.data, kafka=args.kafka, topic=args.topic, group=args.group,
                    admin_token=Secret(token) if token else None,
                    retention_days=args.retention_days,
                    scan_limits=ScanLimits(
                        device_burst=args.device_burst, device_per_hour=args.device_per_hour,
                        venue_burst=args.venue_burst, venue_per_hour=args.venue_per_hour,
                        person_per_hour=args.person_per_hour,
                        enabled=not args.no_rate_limits),
                    audit_fsync_before_answer=args.audit_fsync == "before-answer",
                    shards=tuple(args.shard), shard_token=shard_token)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns 0. Raises UsageError for bad options or data."""
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be from 1 to {MAX_WORKERS}, got {args.workers}")
    if args.kafka:
        check_bootstrap(args.kafka)
    if args.workers > 1:
        from api.workers import share_metrics
        share_metrics()  # before any metric exists (api.app makes them)

    import uvicorn

    from api import warmup
    from api.app import create_asgi
    from api.service import Service
    from ingest.log import LogError

    settings = settings_from(args)
    # first: a busy port is named at once, not after the index and Kafka are open
    sock = bound_socket(args.host, args.port)
    try:
        service = Service(settings)
    except LogError as exc:  # the data folder is fine: Kafka is not
        sock.close()
        raise UsageError(str(exc)) from None
    except Exception as exc:  # every part names its own problem
        sock.close()
        raise UsageError(f"cannot open the data folder {args.data}: {exc}") from None
    try:
        if service.admin_token_created:
            print("An admin token was created (shown only this once; keep it safe):\n"
                  f"  {service.admin_token_created}", file=sys.stderr, flush=True)
        if args.demo:
            _demo(service)
        print(warmup.NOTICE, file=sys.stderr, flush=True)
        warmup.warm_up()
        print(f"qrtrace serving {args.data} on http://{args.host}:{args.port}/",
              file=sys.stderr, flush=True)
        # what start-up made (modules, the venue table, keys) lives as long as the server:
        # out of the cyclic GC's generations, full collections stop rescanning it
        gc.collect()
        gc.freeze()
        sock.listen(2048)  # ready: connections are taken from now on
        if args.workers == 1:
            config = uvicorn.Config(create_asgi(settings, service), log_level=args.log_level,
                                    access_log=False, proxy_headers=False)
            uvicorn.Server(config).run(sockets=[sock])
        else:
            _serve_processes(args, settings, service, sock)
    finally:
        sock.close()
        service.close()
    return 0


def _serve_processes(args: argparse.Namespace, settings, service, sock) -> None:
    """This process (the writer) and args.workers - 1 followers on the socket `sock`."""
    import uvicorn

    from api.app import create_asgi
    from api.workers import Followers

    followers = Followers(settings, service, sock, count=args.workers - 1,
                          log_level=args.log_level)
    followers.start()
    service.readiness_checks.append(followers.readiness_problem)
    try:
        config = uvicorn.Config(create_asgi(settings, service), log_level=args.log_level,
                                access_log=False, proxy_headers=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        followers.stop()


def _demo(service) -> None:
    """Load the demo commune on first use; print the officials' sign-in tokens."""
    from api import demo_commune

    if not demo_commune.is_loaded(service):
        print("loading the demo commune (first start only)...", file=sys.stderr, flush=True)
        demo_commune.load(service, progress=lambda text: print(text, file=sys.stderr))
    tokens = demo_commune.sign_in_tokens(service)
    print("Sign in to the officials' page with one of these tokens (new at each start):\n"
          f"  commune official ({demo_commune.JURISDICTION}): {tokens.commune_official}\n"
          f"  district official ({demo_commune.DISTRICT}): {tokens.district_official}\n"
          f"  open case: #{tokens.case_id}", file=sys.stderr, flush=True)
