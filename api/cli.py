"""The `qrtrace` command line: one console script, one module per subcommand.

Each module in `api.commands` exposes `add_parser(subparsers)` (which registers the
subcommand and sets `func`) and does its work in a function that takes the parsed
arguments and returns an exit code. Errors that a user can fix are printed as one line
naming the problem, with exit code 2; nothing prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommands, in the order `qrtrace --help` lists them.
COMMANDS = (
    "demo",
    "decode",
    "issue",
    "simulate",
    "import_",
    "trace",
    "ingest_",
    "worker",
    "shard",
    "serve",
)


class UsageError(Exception):
    """Bad input that the user can fix: printed as one line, exit code 2."""


def check_bootstrap(text: str) -> None:
    """Raise UsageError unless `text` is --kafka's HOST:PORT (or several, comma-separated):
    kafka-python takes "http://host:port" silently and says only "Unable to bootstrap"
    for a host without its port."""
    for server in text.split(","):
        host, colon, port = server.strip().rpartition(":")
        if not colon or not host or "/" in server or not port.isdigit() or \
                not 1 <= int(port) <= 65535:
            raise UsageError(f"--kafka {text!r}: give the broker as HOST:PORT (for example "
                             "127.0.0.1:9092), several separated by commas")


def bound_socket(host: str, port: int):
    """A socket bound to (host, port), not yet listening (api.workers.bind), for a
    server command to bind before anything slow; raises UsageError when the address is
    taken or cannot be bound."""
    from api.workers import bind

    try:
        return bind(host, port, listen=False)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="qrtrace",
        description="QR check-in ingestion and contact tracing.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"api.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qrtrace` console script; returns the process exit code."""
    try:
        # importing the commands (numba, numpy) takes a moment: Ctrl-C then is no traceback
        parser = build_parser()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"qrtrace {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) has gone: stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    # Under `python -m api.cli` this file runs as __main__, a second copy of the module
    # whose UsageError the commands do not raise: run the imported module's main.
    from api.cli import main as installed_main

    sys.exit(installed_main())
