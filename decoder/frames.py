"""Batch QR decoding of camera frames: a cascade of zxing-cpp passes over all cores.

The default cascade (decoder.passes.LOCATE_FIRST) finds the codes first with a cheap
finder-pattern scan (decoder.locate) and lets zxing-cpp read only crops around them, so
that a cluttered frame, or one without a code, costs a fraction of zxing-cpp's own
search. Only a frame in which nothing was read and loose finder patterns were seen gets
the robust settings, on the part of it around those patterns, and only codes located and
still not read get the costly extra attempts (rescaled and filtered copies of their
crops). zxing-cpp and the scan release the GIL, so frames spread over a thread pool use
every core.

`decode_frames(frames)` returns one `FrameResult` per frame, in order. Bad input (an
empty or wrongly typed array, truncated or non-image bytes, an image over the size cap)
gives that frame a status and a detail; it never stops the batch.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

import numpy as np
import zxingcpp

from decoder.images import MAX_PIXELS, BadInput, to_gray
from decoder.locate import CodeRegion, Located, crop_pixels, locate
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
    stage: index of the first cascade pass that read a code, or -1 if none did.
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
        # One task a thread, each taking the next frame not taken yet, rather than a
        # future a frame (the pool's map): the caller then waits on two futures, not
        # on one a frame. Measured, 600 frames, alternated: 5% less CPU a frame, 7%
        # more frames a second.
        results: list[FrameResult | None] = [None] * len(items)
        take = itertools.count().__next__  # one C call: atomic under the GIL

        def work() -> None:
            while (i := take()) < len(items):
                results[i] = self._decode_one(items[i])

        for task in [self._pool.submit(work) for _ in range(min(self.workers, len(items)))]:
            task.result()
        return results  # type: ignore[return-value]

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
        read: list[zxingcpp.Barcode] = []
        first_stage = -1
        unread: list[Box] = []  # regions of codes located but not read so far
        # regions of three finder patterns in which zxing-cpp found no code: worth some
        # rescues, but not evidence of an unreadable code
        likely: list[Box] = []
        whole: Box = (0, 0, gray.shape[1], gray.shape[0])
        # the part of the frame an if_unsure pass reads (all of it until a finder scan
        # says where codes could still be); None: nothing more to read
        unsure: Box | None = whole
        for stage, decode_pass in enumerate(self.cascade):
            if decode_pass.on_finders:
                found, unread, likely, unsure = _read_located(decode_pass, gray)
                if found:
                    read.extend(found)
                    first_stage = stage if first_stage < 0 else first_stage
                continue
            if decode_pass.if_unsure and unsure is None:
                continue
            if decode_pass.on_located:
                if likely and decode_pass.name in LIKELY_RESCUES:
                    rescued, likely = _rescue(decode_pass, gray, likely)
                    read.extend(rescued)
                    first_stage = stage if rescued and first_stage < 0 else first_stage
                if not unread:
                    continue
                rescued, unread = _rescue(decode_pass, gray, unread)
                if rescued:
                    read.extend(rescued)
                    first_stage = stage if first_stage < 0 else first_stage
                continue
            part = unsure if decode_pass.if_unsure else whole
            found, located, read_boxes = _read_part(decode_pass, gray, part)
            valid = [b for b in found if b.valid]
            unread = [box for box in _merge(unread, located)
                      if not any(_overlap(box, done) for done in read_boxes)]
            if valid:
                read.extend(valid)
                first_stage = stage if first_stage < 0 else first_stage
                if not located:
                    break  # every code this pass located is read: the frame is done
        if read:
            return _result(read, first_stage, len(unread))
        if unread:
            return FrameResult([], FrameStatus.UNREADABLE_CODE,
                               f"{len(unread)} QR code(s) located but their data could not "
                               "be corrected")
        return FrameResult([], FrameStatus.NO_CODE)


# A region of the frame: x0, y0, x1, y1 in pixels, end exclusive.
Box = tuple[int, int, int, int]
# A crop around a located code reaches this share of its size beyond each side: the
# corners zxing-cpp reports can be off, and the quiet zone belongs to the code.
CROP_MARGIN = 0.5


def _box(barcode: zxingcpp.Barcode, scale: float, shape: tuple[int, int]) -> Box:
    corners = barcode.position
    xs = [p.x * scale for p in (corners.top_left, corners.top_right,
                                corners.bottom_left, corners.bottom_right)]
    ys = [p.y * scale for p in (corners.top_left, corners.top_right,
                                corners.bottom_left, corners.bottom_right)]
    margin = CROP_MARGIN * max(max(xs) - min(xs), max(ys) - min(ys), 8)
    height, width = shape
    return (max(0, int(min(xs) - margin)), max(0, int(min(ys) - margin)),
            min(width, int(max(xs) + margin) + 1), min(height, int(max(ys) + margin) + 1))


def _overlap(a: Box, b: Box) -> bool:
    """Whether the two regions share more than a third of the smaller one."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height * 3 > smaller


def _merge(boxes: list[Box], more: list[Box]) -> list[Box]:
    merged = list(boxes)
    for box in more:
        if not any(_overlap(box, seen) for seen in merged):
            merged.append(box)
    return merged


# A crop whose code was not read is read again this much larger on each side (and at
# full size: CROP_MODULE_PX): under a steep perspective the fourth corner lies beyond
# where the three finders put it.
REGROW = 0.25
# A frame in which nothing was read goes on to the robust pass when it shows more loose
# finder patterns than this...
UNSURE_LOOSE = 0
# ... over the part of the frame within this many modules of them (about half a frame).
# Every code that the pass read over whole frames (38 on seeds 1-3, 6, 7 and 11) lay
# within 20 modules of a loose pattern. Over 13 seeds (3,900 frames): 12% less CPU a
# frame than the whole frame, 3,099 codes read against 3,100.
UNSURE_REACH = 60
# A frame in which nothing was read, no loose pattern was left and a located code was
# seen by zxing-cpp and not read goes to the robust pass over the part within this
# share of that code's size around it: a defocused code whose third finder pattern the
# scan missed, taking a false one in its place, made a crop that cut the code, and the
# frame was unreadable_code where zxing-cpp's defaults read it. On 4,200 benchmark
# frames it ran on 1-6 frames in 300 and read nothing more. The same when zxing-cpp saw
# nothing in the crops of the located codes (three patterns that fit): such a frame got
# no further pass, and a bent, defocused code (low-contrast seed 112, frame 183) was
# no_code where zxing-cpp's defaults read it. Over 17 benchmark sets: 2 more codes, for
# 0.4% more CPU a frame; 30 tuning seeds: 3 more.
UNREAD_REACH = 0.5
# A frame of at most this many pixels in which nothing was read goes whole to the
# robust pass, loose patterns or not: the scan's rows cannot see modules of one pixel,
# as in a symbol saved at scale 1 (41x41 pixels for a token; a review's 29x29 'HELLO'
# and a sample photo of 41x41 were read by zxing-cpp's defaults, not by us). At this
# size the pass costs about a tenth of a millisecond. A frame scanned at a reduced size
# (over 800 pixels on its short side: 1080p, phone photos) goes whole too: a code of
# two-pixel modules has one-pixel modules in the scanned copy.
SMALL_FRAME_PIXELS = 256 * 256
# After codes were read, this many loose finder patterns outside them, of the size of
# theirs (within these factors of a read code's module), send the part of the frame
# within LEFTOVER_REACH modules of them to the robust pass: a sheet of codes in a grid
# read 3 of 9 and 3 of 16 without it. Over 9,000 benchmark frames (synth seeds 1-18,
# camera 1-12) it ran on 23 (two more codes read, CPU within the run-to-run spread). The
# whole frame goes when the scan kept only some of its patterns (Located.crowded) and
# read a code: a 6x6 sheet read 18 of 36 through the part around the 40 kept, a 10x10
# sheet 22 of 100 with too few kept patterns left over; 20 of 3,600 benchmark frames
# are crowded (codes read over the 9,000 unchanged, CPU within the spread).
LEFTOVER_MIN = 3
LEFTOVER_SIZE = (0.8, 1.25)
LEFTOVER_REACH = 30
# A region narrower than this (pixels) cannot hold a QR code: 21 modules of a pixel.
MIN_CODE_PX = 21
# The rescues that also try regions of three finder patterns where no code was seen.
LIKELY_RESCUES = frozenset({"double"})
# ... when their modules are smaller than this (pixels): a small code is what the
# detector misses and an upscaled copy rescues.
LIKELY_MAX_MODULE = 5.0
# Three finder patterns that measure under this many pixels a module (12 pixels across)
# are not read, nor rescued: over 36 benchmark sets (10,800 frames, all three
# generators), the 1,482 crops of such triples read no code, first or wider or doubled,
# and cost 6% of the CPU (kiosk frames: 6-12%); they are the clutter of text and
# textures at that scale. Small codes come out larger (1.75 and up) and stay read.
MIN_READ_MODULE = 1.7
# Crops of codes with larger modules than this (pixels) are read at a reduced size: the
# detector's cost grows with pixels, and three pixels a module read well, mostly. The
# finder patterns of a blurred code look larger than its modules, and under perspective
# its far side is smaller: reduced, some of those came out under two pixels a module and
# their data could not be corrected, so the crop's second, wider read is at full size.
# Over 13 benchmark sets (3,900 frames): 2,303 codes against 2,296 when both reads were
# reduced, for 0.2% more CPU a frame; never reducing read 2,300, for 6.7% more.
CROP_MODULE_PX = 3.0


def _read_located(decode_pass: DecodePass, gray: np.ndarray
                  ) -> tuple[list[zxingcpp.Barcode], list[Box], list[Box], Box | None]:
    """Locate the codes of `gray` and run `decode_pass` on a crop around each, then,
    when one was read, on the wider regions around finder patterns left over
    (`Located.guesses`) that overlap no code read: a second code one of whose patterns
    the scan missed. Returns the codes read; the regions of codes that zxing-cpp
    located and could not read; the regions of three finder patterns in which it found
    no code; and, when the frame is unsure (nothing read, and loose finder patterns
    seen, or none seen and a code located that could not be read), the part of it
    around those patterns or that code (the whole frame when nothing was read in a
    small frame or one scanned at reduced size: SMALL_FRAME_PIXELS), or when codes were
    read and patterns of their size are left over (a grid of codes), the part around
    those (else None)."""
    located = locate(gray)
    read: list[zxingcpp.Barcode] = []
    unread: list[Box] = []
    likely: list[Box] = []
    done: list[Box] = []
    modules: list[float] = []  # of the codes read
    # triples of patterns too small to be a code's are neither read nor rescued
    regions = [region for region in located.codes if region.module >= MIN_READ_MODULE]
    for region in regions:
        found, seen = _read_region(decode_pass, gray, region, 0.0)
        if not found:
            found, seen = _read_region(decode_pass, gray, region, REGROW, reduce=False)
        read.extend(found)
        if found:
            done.append(region.box)
            modules.append(region.module)
        if seen and not found:
            unread.append(region.box)
        elif not found and region.module < LIKELY_MAX_MODULE:
            likely.append(region.box)
    if read:
        for region in located.guesses():
            if any(_overlap(region.box, box) for box in done):
                continue
            found, seen = _read_region(decode_pass, gray, region, 0.0)
            read.extend(found)
            unread.extend(seen)
        return read, unread, likely, _around_leftovers(located, done, modules, gray.shape)
    # Nothing read: the guesses are not read on their own. The robust pass reads the
    # part of the frame around the loose patterns next, and it read their codes as well
    # but for a few in clutter: over the 13 benchmark sets, reading the guesses first
    # cost 4.5% of the CPU a frame (kiosk frames 5-6.5%: 220-270 crops a set for 0-5
    # codes) for 3 codes (2,323 against 2,320).
    if gray.size <= SMALL_FRAME_PIXELS or located.scale > 1:
        return read, unread, likely, (0, 0, gray.shape[1], gray.shape[0])
    if located.loose <= UNSURE_LOOSE:
        # codes zxing-cpp saw and could not read, else those the patterns say are there
        tried = unread or [region.box for region in regions]
        return read, unread, likely, _around_unread(tried, gray.shape) if tried else None
    return read, unread, likely, _around_loose(located, gray.shape)


def _around_unread(unread: list[Box], shape: tuple[int, int]) -> Box:
    """The part of the frame around the boxes of codes located and not read, reaching
    UNREAD_REACH of its size beyond each side."""
    x0, y0 = min(box[0] for box in unread), min(box[1] for box in unread)
    x1, y1 = max(box[2] for box in unread), max(box[3] for box in unread)
    dx, dy = int(UNREAD_REACH * (x1 - x0)), int(UNREAD_REACH * (y1 - y0))
    height, width = shape
    return max(0, x0 - dx), max(0, y0 - dy), min(width, x1 + dx), min(height, y1 + dy)


def _around_leftovers(located: Located, done: list[Box], modules: list[float],
                      shape: tuple[int, int]) -> Box | None:
    """The part of the frame within LEFTOVER_REACH modules of the loose finder patterns
    outside the codes read that are the size of theirs, when there are LEFTOVER_MIN of
    them or more (else None): a sheet of codes in a grid, whose aligned patterns the scan
    grouped wrongly, so that only some codes were read. The whole frame when the scan
    kept only some of the patterns it met (a sheet of more than 13 codes)."""
    if not modules:
        return None
    height, width = shape
    if located.crowded:  # the patterns kept are some of the sheet's only: others anywhere
        return 0, 0, width, height
    if located.loose < LEFTOVER_MIN:
        return None
    # plain floats: a frame has a few dozen patterns at most, and numpy per step costs more
    low, high = LEFTOVER_SIZE
    left = [(x, y, size) for x, y, size, _, _ in located.finders[located.loose_indices].tolist()
            if any(low * m <= size / 7 <= high * m for m in modules)
            and not any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in done)]
    if len(left) < LEFTOVER_MIN:
        return None
    xs, ys = [p[0] for p in left], [p[1] for p in left]
    reach = LEFTOVER_REACH * max(p[2] for p in left) / 7
    return (max(0, int(min(xs) - reach)), max(0, int(min(ys) - reach)),
            min(width, int(max(xs) + reach) + 1), min(height, int(max(ys) + reach) + 1))


def _around_loose(located: Located, shape: tuple[int, int]) -> Box:
    """The part of the frame within UNSURE_REACH modules (of the largest) of the loose
    finder patterns."""
    loose = located.finders[located.loose_indices]
    reach = UNSURE_REACH * float(loose[:, 2].max()) / 7
    height, width = shape
    return (max(0, int(loose[:, 0].min() - reach)), max(0, int(loose[:, 1].min() - reach)),
            min(width, int(loose[:, 0].max() + reach) + 1),
            min(height, int(loose[:, 1].max() + reach) + 1))


def _read_part(decode_pass: DecodePass, gray: np.ndarray, part: Box
               ) -> tuple[list[zxingcpp.Barcode], list[Box], list[Box]]:
    """`decode_pass` over `part` of the frame: the codes it finds (unreadable ones
    included), and the boxes in frame pixels of those it could not read and of those it
    read."""
    x0, y0, x1, y1 = part
    height, width = gray.shape
    whole = (x1 - x0) * (y1 - y0) * 10 >= 9 * width * height
    if whole:
        x0 = y0 = 0
        image = gray
    else:
        image = np.ascontiguousarray(gray[y0:y1, x0:x1])
    found, scale = decode_pass.run(image)
    unread, read = [], []
    for barcode in found:
        bx0, by0, bx1, by1 = _box(barcode, scale, image.shape)
        (read if barcode.valid else unread).append((bx0 + x0, by0 + y0, bx1 + x0, by1 + y0))
    return found, unread, read


def _read_region(decode_pass: DecodePass, gray: np.ndarray, region: CodeRegion,
                 grow: float, reduce: bool = True) -> tuple[list[zxingcpp.Barcode], list[Box]]:
    """The codes `decode_pass` reads in a crop around `region` (grown by `grow` of its
    size on each side; at a reduced size when its modules are large, unless `reduce`
    is False), and the boxes (in frame pixels) of those it located but could not read."""
    x0, y0, x1, y1 = region.box
    dx, dy = int(grow * (x1 - x0)), int(grow * (y1 - y0))
    height, width = gray.shape
    x0, y0 = max(0, x0 - dx), max(0, y0 - dy)
    x1, y1 = min(width, x1 + dx), min(height, y1 + dy)
    full_shape = (y1 - y0, x1 - x0)
    shrink = int(region.module // CROP_MODULE_PX) if reduce else 1
    if shrink < 2 or min(full_shape) < 42 * shrink:
        shrink = 1
    crop = crop_pixels(gray, (x0, y0, x1, y1), region.inverted, shrink)
    found, scale = decode_pass.run(crop)
    scale *= full_shape[1] / crop.shape[1]
    seen = []
    for barcode in found:
        if not barcode.valid:
            bx0, by0, bx1, by1 = _box(barcode, scale, full_shape)
            seen.append((bx0 + x0, by0 + y0, bx1 + x0, by1 + y0))
    return [b for b in found if b.valid], seen


def _rescue(decode_pass: DecodePass, gray: np.ndarray,
            unread: list[Box]) -> tuple[list[zxingcpp.Barcode], list[Box]]:
    """Run `decode_pass` on a crop around each unread code: the codes it reads, and the
    regions still unread. A region that overlaps one tried before in this call is the
    same code seen twice and is tried once; one narrower than a QR code's smallest side
    (21 modules of a pixel) holds nothing to read."""
    rescued: list[zxingcpp.Barcode] = []
    still: list[Box] = []
    tried: list[Box] = []
    for box in unread:
        x0, y0, x1, y1 = box
        if min(x1 - x0, y1 - y0) < MIN_CODE_PX or any(_overlap(box, b) for b in tried):
            continue
        tried.append(box)
        # The crop, however large: a filtered or rescaled copy of the whole frame costs
        # up to 24 ms (2x a 720p frame), and over 3,000 frames of both generators it
        # read five codes that the crops did not (one of them outside every crop).
        found, _ = decode_pass.run(np.ascontiguousarray(gray[y0:y1, x0:x1]))
        valid = [b for b in found if b.valid]
        rescued.extend(valid)
        if not valid:
            still.append(box)
    return rescued, still


def _result(barcodes: Iterable[zxingcpp.Barcode], stage: int, unread: int) -> FrameResult:
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
        detail = f"{unread} more code(s) located but not read" if unread else ""
        return FrameResult(texts, FrameStatus.OK, detail, binary=binary, stage=stage)
    return FrameResult([], FrameStatus.BINARY_CONTENT,
                       f"{len(binary)} code(s) hold binary data, not UTF-8 text",
                       binary=binary, stage=stage)


def _as_items(frames: object) -> list[object]:
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3 and frames.shape[2] in (3, 4) and frames.shape[1] >= MIN_CODE_PX:
            # (N, H, 3) would be frames 3 pixels wide, which hold no code: this is one
            # colour image, and read as a batch it gave H results of "too small"
            raise TypeError(f"an array of shape {frames.shape} is one colour image, not a "
                            "batch: wrap it in a list")
        if frames.ndim in (3, 4) or (frames.ndim == 1 and frames.dtype == object):
            return list(frames)
        raise TypeError(f"a batch array must have shape (N, H, W) or (N, H, W, C), "
                        f"got shape {frames.shape}")
    if isinstance(frames, (bytes, bytearray, memoryview, str)):
        raise TypeError("decode_frames takes a batch: wrap a single image in a list")
    if isinstance(frames, (Mapping, AbstractSet)):
        raise TypeError(f"decode_frames takes a sequence of frames, in order, not a "
                        f"{type(frames).__name__}")
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


def frame_tokens(frames: object, decoder: FrameDecoder | None = None
                 ) -> list[tuple[list[str], str | None]]:
    """For each frame of a batch (as `decode_frames` takes it), the token texts to store
    and None, or [] and why none: "frame: no token found" (codes, but none a token) or
    "frame: <status>", followed by " (<detail>)" for bad input.

    A frame may show several people's codes (a family at a counter, a sheet of cards):
    every text shaped like a personal token (43 ASCII characters, kind P) is one, in the
    order read. A venue's poster beside a person's code adds nothing; a frame showing
    only other token-shaped texts gives the first of them, so that verification names
    what it is ("not a person token", a bad MAC). Texts are not verified: that is
    `verify_tokens`' work. `decoder`: a FrameDecoder of one's own (another size cap),
    else decode_frames' default."""
    from decoder.tokens import PREFIX, TOKEN_LEN, Kind

    out: list[tuple[list[str], str | None]] = []
    results = decode_frames(frames) if decoder is None else decoder.decode(frames)
    for result in results:
        shaped = [t for t in result.texts if len(t) == TOKEN_LEN and t.isascii()]
        persons = [t for t in shaped
                   if t.startswith(PREFIX) and t[len(PREFIX) + 1] == Kind.PERSON.char]
        if persons or shaped:
            out.append((persons or shaped[:1], None))
        else:
            status = str(getattr(result.status, "value", result.status))
            reason = "frame: no token found" if status == "ok" else f"frame: {status}"
            out.append(([], f"{reason} ({result.detail})" if result.detail else reason))
    return out
