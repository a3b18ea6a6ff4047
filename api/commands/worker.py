"""`qrtrace worker --kafka HOST:PORT --data DIR`: consume scan records from Kafka into
the data folder's index, in consumer group `qrtrace-index`; runs until interrupted.

Logs are JSON lines on stderr (a metrics line every --report seconds).

Tokens are verified with the key ring of --keys (default DATA/keys.json), which must be
the server's: a copy of `qrtrace serve`'s DATA/keys.json, or that file itself on shared
storage. The worker reads it again when it changes, so a key rotation reaches it without
a restart; it never makes keys of its own (tokens nobody issued with them would all go
to the dead-letter topic). Revoked token ids come likewise from --revoked (default
DATA/revoked.json, which `qrtrace serve` writes after each revocation).

The worker deletes check-ins older than the folder's retention period (--retention-days,
stored in the folder) every --purge-every seconds: its folder is a shard that no server
purges.

A worker is a static member of the group (its --instance-id, by default from the host and
the data folder): restarted within the session timeout, it takes its partitions back
without a rebalance. --leave makes a stopped worker leave the group at once instead.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import socket
import threading
from pathlib import Path

from api.cli import UsageError, check_bootstrap


def _instance_id(data: Path) -> str:
    """One worker per data folder (the index is locked), so host + folder names it."""
    digest = hashlib.blake2b(str(data.resolve()).encode(), digest_size=6).hexdigest()
    return f"{socket.gethostname()}-{digest}"


def _key_file(path: Path):
    """The key ring file the worker verifies with, watched (api/keystore.KeyFile).
    Raises UsageError when it is missing or not a key ring."""
    from api.keystore import KeyFile, KeystoreError

    if not path.exists():
        raise UsageError(f"no key ring at {path}: a worker verifies the tokens the server "
                         f"issued, so it needs the server's keys.json (copy it there with "
                         f"mode 0600, or pass --keys FILE)")
    try:
        return KeyFile(path)
    except KeystoreError as exc:
        raise UsageError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `worker`."""
    p = subparsers.add_parser(
        "worker", help="consume scan events from Kafka into the index",
        description="Consume topic qrtrace.scans (group qrtrace-index) into the index of a "
                    "data folder; records that can never be processed go to "
                    "qrtrace.scans.dlq with their reason.")
    p.add_argument("--kafka", required=True, metavar="HOST:PORT", help="bootstrap server")
    p.add_argument("--data", required=True, metavar="DIR", help="data folder (created if needed)")
    p.add_argument("--topic", default="qrtrace.scans", help="topic (default qrtrace.scans)")
    p.add_argument("--group", default="qrtrace-index", help="consumer group")
    p.add_argument("--instance-id", metavar="ID",
                   help="static group member id, kept across restarts (default: from the "
                        "host name and the data folder)")
    p.add_argument("--max-records", type=int, default=5000, help="records per batch")
    p.add_argument("--idle-exit", type=float, metavar="S",
                   help="exit after S seconds without records (default: run until stopped)")
    p.add_argument("--report", type=float, default=10.0, metavar="S",
                   help="seconds between metrics lines (default 10)")
    p.add_argument("--keys", metavar="FILE",
                   help="the server's key ring file, read again when it changes (default: "
                        "DATA/keys.json, which must exist: copy the server's)")
    p.add_argument("--revoked", metavar="FILE",
                   help="the server's list of revoked token ids, read again when it "
                        "changes (default: DATA/revoked.json; none: nothing is revoked)")
    p.add_argument("--retention-days", type=int, default=None, metavar="N",
                   help="delete check-ins older than N days (stored in the folder; default: "
                        "the folder's period, 21 for a new one)")
    p.add_argument("--purge-every", type=float, default=6 * 3600, metavar="S",
                   help="seconds between retention purges (default 21600: six hours; the "
                        "first a minute after start)")
    p.add_argument("--leave", action="store_true",
                   help="on SIGINT/SIGTERM, leave the group so that its partitions move to "
                        "the other workers at once (scaling down); without it they wait "
                        "for this worker's restart up to the session timeout (30 s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the worker until SIGINT/SIGTERM (or --idle-exit); returns 0. Raises UsageError."""
    from api.datafolder import open_index
    from api.keystore import KEYS_FILE
    from api.revocations import REVOKED_FILE, RevocationFile, RevocationFileError
    from ingest.kafka_log import KafkaLog
    from ingest.log import LogError
    from ingest.runtime import offsets_path
    from ingest.worker import Worker, configure_json_logging

    if args.retention_days is not None and not 1 <= args.retention_days <= 3650:
        raise UsageError(f"--retention-days must be from 1 to 3650, got {args.retention_days}")
    if not args.purge_every > 0:
        raise UsageError(f"--purge-every must be a positive number of seconds, got "
                         f"{args.purge_every}")
    if not 1 <= args.max_records <= 1_000_000:
        raise UsageError(f"--max-records must be from 1 to 1,000,000, got {args.max_records}")
    if args.idle_exit is not None and not args.idle_exit > 0:
        raise UsageError(f"--idle-exit must be a positive number of seconds, got "
                         f"{args.idle_exit}")
    if not args.report > 0:
        raise UsageError(f"--report must be a positive number of seconds, got {args.report}")
    check_bootstrap(args.kafka)
    configure_json_logging()
    data = Path(args.data)
    keys = _key_file(Path(args.keys) if args.keys else data / KEYS_FILE)
    try:
        revoked = RevocationFile(Path(args.revoked) if args.revoked else data / REVOKED_FILE)
    except RevocationFileError as exc:
        raise UsageError(str(exc)) from None
    index = open_index(data, args.retention_days)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        log = KafkaLog(args.kafka, offsets_path(data), topic=args.topic, group=args.group,
                       instance_id=args.instance_id or _instance_id(data))
    except LogError as exc:
        index.close()
        raise UsageError(str(exc)) from None
    try:
        Worker(log, index, keys, max_records=args.max_records,
               purge_every_s=args.purge_every, revoked=revoked).run(
            stop, idle_exit_s=args.idle_exit, report_every_s=args.report)
    except LogError as exc:
        raise UsageError(str(exc)) from None
    finally:
        log.close(leave=args.leave)
        index.close()
    return 0
