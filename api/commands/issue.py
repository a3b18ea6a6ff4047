"""`qrtrace issue person|venue ID [--png FILE] [--svg FILE]`: a signed token and its QR code."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from api.cli import UsageError
from api.keystore import KeystoreError, load_keyring
from api.qrimage import qr_document, write_qr
from decoder.tokens import DecoderError, Kind, issue_token

EPOCH = date(1970, 1, 1)
STDOUT = "-"  # --png - / --svg -


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("issue", help="issue a signed person or venue token and its QR code",
                            description="Issue a signed token for a person or a venue under "
                            "the active key of DATA/keys.json (created on first use), print "
                            "it, and write its QR code.")
    parser.add_argument("kind", choices=["person", "venue"])
    parser.add_argument("id", help="the person's or venue's id, 0..2**64-1")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="data folder holding keys.json (default: ./data)")
    parser.add_argument("--png", type=Path, metavar="FILE",
                        help="write the QR code as PNG (mode 0600; - : to stdout, and the "
                        "token to stderr)")
    parser.add_argument("--svg", type=Path, metavar="FILE",
                        help="write the QR code as SVG (mode 0600; - : to stdout)")
    parser.add_argument("--expires", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the day from which the token is refused (default: never)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def parse_id(text: str) -> int:
    """The id in `text` as an int; raises UsageError naming the problem. ASCII digits
    only: int() also takes " 12 ", "12_345" (the same token as 12345) and other scripts'
    digits."""
    shown = text if len(text) <= 40 else text[:40] + "..."
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"ID must be a whole number (digits 0-9), got {shown!r}")
    if len(text) > 20 or int(text) >= 2**64:
        raise UsageError(f"ID must be in 0..2**64-1, got {shown}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    ident = parse_id(args.id)
    expires_day = None
    if args.expires is not None:
        if args.expires <= datetime.now(UTC).date():  # token days are UTC days
            raise UsageError(f"--expires {args.expires} is not after today (UTC): the "
                             "token would be refused from the start")
        expires_day = (args.expires - EPOCH).days
    targets = [(path, kind) for path, kind in ((args.png, "png"), (args.svg, "svg"))
               if path is not None]
    to_stdout = [kind for path, kind in targets if str(path) == STDOUT]
    if len(to_stdout) > 1:
        raise UsageError("only one of --png and --svg may be - (stdout)")
    if to_stdout and args.json:
        raise UsageError(f"--json prints to stdout, where --{to_stdout[0]} - writes the QR "
                         "code: write it to a file")
    if args.png is not None and args.svg is not None and \
            args.png.resolve() == args.svg.resolve():
        raise UsageError(f"--png and --svg name the same file ({args.png})")
    try:
        ring = load_keyring(args.data)
        token = issue_token(Kind[args.kind.upper()], ident, ring, expires_day=expires_day)
    except (KeystoreError, DecoderError) as exc:
        raise UsageError(str(exc)) from exc
    written = []
    for path, kind in targets:
        if str(path) == STDOUT:
            continue
        try:
            write_qr(token, path, kind)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc} (the token: "
                             f"{token})") from exc
        written.append(str(path))
    if to_stdout:  # the picture on stdout: the token goes to stderr
        sys.stdout.buffer.write(qr_document(token, to_stdout[0]))
        sys.stdout.flush()
        print(token, file=sys.stderr)
    elif args.json:
        print(json.dumps({"kind": args.kind, "id": ident, "token": token, "files": written}))
    else:
        print(token)
    return 0
