"""Batch QR decoding of camera frames: a cascade of zxing-cpp passes over all cores.

Most frames at a check-in point hold one clear code, and a cheap pass reads them. Only
the frames that pass misses get the robust settings, and only those still missed get
the costly extra attempts (rescaled and filtered copies). zxing-cpp releases the GIL, so
frames spread over a thread pool use every core.

`decode_frames(frames)` returns one `FrameResult` per frame, in order. Bad input (an
empty or wrongly typed array, truncated or non-image bytes, an image over the size cap)
gives that frame a status and a detail; it never stops the batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

import numpy as np
import zxingcpp

from decoder.images import MAX_PIXELS, BadInput, to_gray
from decoder.passes import CASCADE, DecodePass


class FrameStatus(StrEnum):
    """What happened to one frame."""

    OK = "ok"  # at least one code read as text
    NO_CODE = "no_code"  # a valid image, and no code found in it
    UNREADABLE_CODE = "unreadable_code"  # a code was seen but could not be read
    BINARY_CONTENT = "binary_content"  # codes read, but none holds UTF-8 text
    UNREADABLE_INPUT = "unreadable_input"  # not an image we can use (type, dtype, bytes)
    EMPTY = "empty"  # an image without pixels, or 0 bytes
    TOO_SMALL = "too_small"  # smaller than the smallest QR code
    TOO_LARGE = "too_large"  # over the pixel or byte cap


@dataclass(frozen=True, slots=True)
class FrameResult:
    """The outcome for one frame.

    texts: the text of every code read, in the order zxing-cpp reports them.
    status: a FrameStatus.
    detail: for bad input, what is wrong with it; otherwise "".
    binary: contents of codes that hold bytes rather than UTF-8 text (not in `texts`).
    stage: index of the cascade pass that read the frame, or -1 if none did.
    """

    texts: list[str]
    status: FrameStatus
    detail: str = ""
    binary: list[bytes] = field(default_factory=list)
    stage: int = -1

    @property
    def ok(self) -> bool:
        return self.status is FrameStatus.OK


class FrameDecoder:
    """A reusable batch decoder: a cascade of passes and a pool of worker threads.

    workers: threads decoding frames in parallel (default: the number of CPUs).
    cascade: the passes, cheapest first (default: decoder.passes.CASCADE).
    max_pixels: frames with more pixels are refused with status too_large.
    """

    def __init__(self, workers: int | None = None, cascade: Sequence[DecodePass] = CASCADE,
                 max_pixels: int = MAX_PIXELS) -> None:
        if not cascade:
            raise ValueError("cascade must hold at least one pass")
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.cascade = tuple(cascade)
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="qr-decode") \
            if self.workers > 1 else None

    def decode(self, frames: object) -> list[FrameResult]:
        """Decode a batch: one FrameResult per frame, in order.

        `frames` is a sequence whose items are 2-D uint8 arrays, (H, W, C) uint8 arrays
        or encoded image bytes; or an ndarray of shape (N, H, W) or (N, H, W, C).
        Raises TypeError only when `frames` itself is not a batch.
        """
        items = _as_items(frames)
        if self._pool is None or len(items) < 2:
            return [self._decode_one(item) for item in items]
        return list(self._pool.map(self._decode_one, items))

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> FrameDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode_one(self, item: object) -> FrameResult:
        gray = to_gray(item, max_pixels=self.max_pixels)
        if isinstance(gray, BadInput):
            return FrameResult([], FrameStatus(gray.status), gray.detail)
        code_seen = False
        for stage, decode_pass in enumerate(self.cascade):
            if decode_pass.only_if_seen and not code_seen:
                continue
            found = decode_pass.run(gray)
            valid = [b for b in found if b.valid]
            code_seen = code_seen or len(found) > len(valid)
            if valid:
                return _result(valid, stage)
        if code_seen:
            return FrameResult([], FrameStatus.UNREADABLE_CODE,
                               "a QR code was located but its data could not be corrected")
        return FrameResult([], FrameStatus.NO_CODE)


def _result(barcodes: Iterable[zxingcpp.Barcode], stage: int) -> FrameResult:
    texts: list[str] = []
    binary: list[bytes] = []
    for barcode in barcodes:
        raw = barcode.bytes
        if barcode.content_type == zxingcpp.ContentType.Binary:
            # zxing-cpp calls content Binary when it is not valid text in its declared
            # encoding; a token is ASCII, so such a code is never one of ours.
            binary.append(raw)
            continue
        text = barcode.text
        if text in texts:
            continue  # the same code found twice by one pass (e.g. on two scales)
        texts.append(text)
    if texts:
        return FrameResult(texts, FrameStatus.OK, binary=binary, stage=stage)
    return FrameResult([], FrameStatus.BINARY_CONTENT,
                       f"{len(binary)} code(s) hold binary data, not UTF-8 text",
                       binary=binary, stage=stage)


def _as_items(frames: object) -> list[object]:
    if isinstance(frames, np.ndarray):
        if frames.ndim in (3, 4):
            return list(frames)
        raise TypeError(f"a batch array must have shape (N, H, W) or (N, H, W, C), "
                        f"got shape {frames.shape}")
    if isinstance(frames, (bytes, bytearray, memoryview, str)):
        raise TypeError("decode_frames takes a batch: wrap a single image in a list")
    try:
        return list(frames)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"decode_frames takes a sequence of frames, "
                        f"got {type(frames).__name__}") from None


@cache
def _default_decoder() -> FrameDecoder:
    return FrameDecoder()


def decode_frames(frames: object) -> list[FrameResult]:
    """Decode a batch of camera frames with the default cascade on all cores.

    Takes a list of 2-D uint8 arrays, (H, W, C) uint8 arrays or encoded PNG/JPEG bytes,
    or a 3-D (N, H, W) / 4-D (N, H, W, C) uint8 array. Returns one FrameResult per
    frame, in order, each with `.texts` and `.status`. Bad frames get a status naming
    the problem; raises TypeError only if `frames` is not a batch at all.
    """
    return _default_decoder().decode(frames)
