"""`qrtrace decode PATH... [--json]`: the texts and status of every image given."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from api.notice import notice_if_slow
from decoder import FrameResult, FrameStatus, decode_frames

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("decode", help="read the QR codes in image files",
                            description="Read the QR codes in images (files, or folders of "
                            "images) and print each image's texts and status.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    files = expand(args.paths)
    results: list[FrameResult | None] = [None] * len(files)
    readable: list[int] = []
    blobs: list[bytes] = []
    for i, path in enumerate(files):
        try:
            blobs.append(path.read_bytes())
            readable.append(i)
        except OSError as exc:
            results[i] = FrameResult([], FrameStatus.UNREADABLE_INPUT,
                                     f"cannot read file: {exc.strerror or exc}")
    with notice_if_slow(f"decode: reading {len(blobs):,} images (the first run after an "
                        "install also compiles the kernels: tens of seconds)..."):
        decoded = decode_frames(blobs)
    for i, result in zip(readable, decoded, strict=True):
        results[i] = result

    counts = Counter(r.status.value for r in results)
    if args.json:
        print(json.dumps({
            "images": [{"path": str(p), "status": r.status.value, "texts": r.texts,
                        "detail": r.detail} for p, r in zip(files, results, strict=True)],
            "summary": {"images": len(results), **counts},
        }, ensure_ascii=False))
    else:
        for path, result in zip(files, results, strict=True):
            shown = "  ".join(result.texts) if result.texts else result.detail
            print(f"{path}\t{result.status.value}\t{shown}".rstrip())
        print(f"{len(results)} images: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    bad_input = {FrameStatus.UNREADABLE_INPUT, FrameStatus.EMPTY, FrameStatus.TOO_LARGE}
    return 1 if any(r.status in bad_input for r in results) else 0
