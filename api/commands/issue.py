"""`qrtrace issue person|venue ID [--png FILE] [--svg FILE]`: a signed token and its QR code."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from api.cli import UsageError
from api.keystore import KeystoreError, load_keyring
from api.qrimage import write_qr
from decoder.tokens import DecoderError, Kind, issue_token

EPOCH = date(1970, 1, 1)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("issue", help="issue a signed person or venue token and its QR code",
                            description="Issue a signed token for a person or a venue under "
                            "the active key of DATA/keys.json (created on first use), print "
                            "it, and write its QR code.")
    parser.add_argument("kind", choices=["person", "venue"])
    parser.add_argument("id", help="the person's or venue's id, 0..2**64-1")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="data folder holding keys.json (default: ./data)")
    parser.add_argument("--png", type=Path, metavar="FILE", help="write the QR code as PNG")
    parser.add_argument("--svg", type=Path, metavar="FILE", help="write the QR code as SVG")
    parser.add_argument("--expires", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the day from which the token is refused (default: never)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def parse_id(text: str) -> int:
    """The id in `text` as an int; raises UsageError naming the problem."""
    try:
        value = int(text, 10)
    except ValueError:
        raise UsageError(f"ID must be a whole number, got {text!r}") from None
    if not 0 <= value < 2**64:
        raise UsageError(f"ID must be in 0..2**64-1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    ident = parse_id(args.id)
    expires_day = None if args.expires is None else (args.expires - EPOCH).days
    try:
        ring = load_keyring(args.data)
        token = issue_token(Kind[args.kind.upper()], ident, ring, expires_day=expires_day)
    except (KeystoreError, DecoderError) as exc:
        raise UsageError(str(exc)) from exc
    written = []
    for path in (args.png, args.svg):
        if path is None:
            continue
        try:
            write_qr(token, path)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        written.append(str(path))
    if args.json:
        print(json.dumps({"kind": args.kind, "id": ident, "token": token, "files": written}))
    else:
        print(token)
    return 0
