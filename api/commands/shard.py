"""`qrtrace shard --data DIR [--host H] [--port P]`: serve one data folder's index as a
shard of sharded traces (api/shard_server.py), beside the worker that writes it.

The token comes from QRTRACE_SHARD_TOKEN (at least 24 characters); coordinators
(`qrtrace trace --shard URL`, `qrtrace serve --shard URL`) send the same one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from api.cli import UsageError, bound_socket
from ingest.runtime import index_path

TOKEN_ENV = "QRTRACE_SHARD_TOKEN"
MIN_TOKEN = 24


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `shard`."""
    p = subparsers.add_parser(
        "shard", help="answer sharded traces from one data folder's index",
        description="Serve the index of a data folder (read-only: a worker may be writing "
                    "it) as one shard of traces over several folders. Needs "
                    f"{TOKEN_ENV}.")
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="data folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    p.add_argument("--log-level", default="warning", help="uvicorn's log level")
    p.set_defaults(func=run)


def shard_token() -> str:
    """QRTRACE_SHARD_TOKEN; raises UsageError when unset or short."""
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN:
        raise UsageError(f"{TOKEN_ENV} must be set to a token of at least {MIN_TOKEN} "
                         "characters (the same on the shard and its coordinators)")
    return token


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns 0. Raises UsageError for a missing index or token."""
    token = shard_token()
    folder = index_path(args.data)
    if not (folder / "MANIFEST.json").exists():
        raise UsageError(f"data folder {args.data} has no index yet")
    import uvicorn

    from api import warmup
    from api.audit import audit_path
    from api.shard_server import create_shard_app

    sock = bound_socket(args.host, args.port)  # first: a busy port is named at once
    try:
        print(warmup.NOTICE, file=sys.stderr, flush=True)
        warmup.warm_up()
        print(f"qrtrace shard serving {args.data} on http://{args.host}:{args.port}/",
              file=sys.stderr, flush=True)
        sock.listen(2048)
        config = uvicorn.Config(create_shard_app(folder, token, audit_path(args.data)),
                                log_level=args.log_level,
                                access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
