"""`qrtrace decode PATH... [--json]`: the texts and status of every image given."""

from __future__ import annotations

import argparse
import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from api.cli import UsageError
from api.notice import notice_if_slow
from decoder import FrameResult, FrameStatus, decode_frames
from decoder.images import MAX_ENCODED_BYTES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# Files are read and decoded this many bytes at a time: a folder of thousands of phone
# photos never sits in memory at once.
BATCH_BYTES = 256 * 1024 * 1024


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("decode", help="read the QR codes in image files",
                            description="Read the QR codes in images (files, or folders of "
                            "images) and print each image's texts and status.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it, sorted
    (a broken link among them included: its line says so). A folder that cannot be
    listed, or holds no image file, is kept as it is (its line says why)."""
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        try:
            inside = sorted(p for p in path.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
        except OSError:
            inside = []
        files.extend(inside or [path])
    return files


def _problem(path: Path) -> tuple[FrameResult | None, int]:
    """A result for a path that is not a readable image file of a size we take (else
    None), and the file's size."""
    try:
        info = path.stat()
    except OSError as exc:
        return _unreadable(f"cannot read file: {exc.strerror or exc}"), 0
    if stat.S_ISDIR(info.st_mode):  # expand() keeps a folder it found no image file in
        try:
            next(path.iterdir(), None)
        except OSError as exc:
            return _unreadable(f"cannot list this folder: {exc.strerror or exc}"), 0
        return _unreadable("this folder holds no image file (" +
                           ", ".join(sorted(IMAGE_SUFFIXES)) + ")"), 0
    if not stat.S_ISREG(info.st_mode):
        return _unreadable("not a regular file (a pipe, a device or a socket)"), 0
    if info.st_size > MAX_ENCODED_BYTES:
        return FrameResult([], FrameStatus.TOO_LARGE,
                           f"file is {info.st_size:,} bytes, over the cap of "
                           f"{MAX_ENCODED_BYTES:,}"), 0
    return None, info.st_size


def _unreadable(detail: str) -> FrameResult:
    return FrameResult([], FrameStatus.UNREADABLE_INPUT, detail)


def _batches(files: list[Path], results: list) -> Iterator[list[tuple[int, bytes]]]:
    """The readable files' bytes, a batch of up to BATCH_BYTES at a time; what cannot be
    read gets its result in `results` instead."""
    batch: list[tuple[int, bytes]] = []
    size = 0
    for i, path in enumerate(files):
        results[i], length = _problem(path)
        if results[i] is not None:
            continue
        if batch and size + length > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        try:
            batch.append((i, path.read_bytes()))
            size += length
        except OSError as exc:
            results[i] = _unreadable(f"cannot read file: {exc.strerror or exc}")
    if batch:
        yield batch


def _visible(text: str) -> str:
    """`text` with its control characters escaped: a code's content cannot start a line
    of its own in the table (a forged row) nor hide in it."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _path_text(path: Path) -> str:
    """The path as valid text: bytes of a name that is not UTF-8 as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def run(args: argparse.Namespace) -> int:
    files = expand(args.paths)
    if all(path.is_dir() for path in files):  # only folders without an image file
        raise UsageError("no image files (.png, .jpg, ...) in " +
                         ", ".join(str(p) for p in args.paths))
    results: list[FrameResult | None] = [None] * len(files)
    with notice_if_slow(f"decode: reading {len(files):,} images (the first run after an "
                        "install also compiles the kernels: tens of seconds)..."):
        for batch in _batches(files, results):
            for (i, _), result in zip(batch, decode_frames([b for _, b in batch]),
                                      strict=True):
                results[i] = result

    counts = Counter(r.status.value for r in results)
    if args.json:
        print(json.dumps({
            "images": [{"path": _path_text(p), "status": r.status.value, "texts": r.texts,
                        "detail": r.detail} for p, r in zip(files, results, strict=True)],
            "summary": {"images": len(results), **counts},
        }, ensure_ascii=False))
    else:
        for path, result in zip(files, results, strict=True):
            # one text a column: _visible escapes a tab inside a text
            shown = "\t".join(map(_visible, result.texts)) if result.texts else result.detail
            print(f"{_visible(_path_text(path))}\t{result.status.value}\t{shown}".rstrip())
        print(f"{len(results)} images: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    bad_input = {FrameStatus.UNREADABLE_INPUT, FrameStatus.EMPTY, FrameStatus.TOO_LARGE}
    return 1 if any(r.status in bad_input for r in results) else 0
