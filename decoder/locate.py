"""Where the QR codes of a frame are, before anything tries to read them.

zxing-cpp's own search costs about as much as the rest of its work on a cluttered camera
frame, and a frame without a code pays it in full. `locate` finds finder patterns with
a cheap scan (decoder._locate_kernels), groups them in threes as a code's corners, and
returns the regions worth decoding, so that zxing-cpp only reads small crops.

`locate(gray)` returns a `Located`: `codes`, regions around three finder patterns that
fit together (best fit first), `loose`, the number of finder patterns left over (a code
whose third pattern hides under glare or blur, or a false alarm), and `guesses()`,
wider regions around those. The caller decides what a frame with loose patterns
deserves: decoder.frames reads the guesses when it read a code (a second code), and
the part of the frame around them when it read none.

Measured on 1,200 synthetic frames (benchmarks.synth_frames, seeds 1-4): of the 948
codes that zxing-cpp's defaults read, 92.8% lie in a triple's region and 98.0% in a
triple's or a guess's; none of the 171 frames without a code gets a triple's region.
About 0.6 ms a frame on one core (load 5), against 3-4 ms for zxing-cpp's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decoder import _locate_kernels as kernels

# Tiles of the local threshold, in pixels of the scanned image.
BLOCK = 24
# Tiles whose neighbourhood varies less than this (grey levels) hold no pattern.
MIN_CONTRAST = 24
# Every ROW_STEP-th row is scanned where a finder pattern is (every other one of them
# whole, the rest across the patterns those found): a finder of the smallest readable
# code (two pixels a module, 14 pixels tall) still meets several.
ROW_STEP = 3
# The threshold of a tile is the mean of a sample, every SAMPLE_STEP pixels each way,
# of its 3x3 neighbourhood, moved MIDRANGE_PERCENT of the way to the middle of the
# sample's darkest and lightest pixels. A defocused code's finder pattern has its light
# ring blurred to about the mean of a neighbourhood that is mostly paper, and at the
# mean alone its 1:1:3:1:1 runs broke up: frames of large defocused codes came back
# no_code where zxing-cpp's defaults read them. Over 4,200 benchmark frames, 2,859
# codes read against 2,830 at the mean (20%: 2,857; 35%: 2,847; from 50% on, cluttered
# kiosk frames lose codes), for the same CPU.
SAMPLE_STEP = 4
MIDRANGE_PERCENT = 25
# A frame in which that scan finds no code (three patterns that fit together), nor the
# half-size scans (HALF_RESCANS, which go first), is scanned again with each of these
# (midrange percent, reach in tiles of the neighbourhood) in turn, and the first scan
# that finds one is kept, with the first scan's patterns outside its regions as loose
# ones:
# - the mid-range of the 3x3 neighbourhood: a code defocused further still (the second
#   scan of 940bfbf);
# - the mean of the tile alone: a small code printed faint (modules of about 3 pixels,
#   ink 20-40 grey levels under its paper). Its finder pattern about fills one tile, and
#   the 72 pixels around it hold darker things (the card's edge, the surround, the
#   code's data), which put the neighbourhood's threshold at or under the ink: the
#   pattern binarised light and the frame was no_code where zxing-cpp's defaults read
#   it;
# - halfway from the tile's own mean to its mid-range: a faint print whose pattern fills
#   most of a tile (or little of it) puts the mean among the ink's (or the paper's)
#   noise. Low-contrast seed 107, frame 75, a row through a pattern's centre: ink
#   122-133, light ring 144-155; the mean (133) split the centre run, halfway (135)
#   does not. Over the 13 sets below: 2,310 codes against 2,303 (kiosk and
#   low-contrast +6, seed 107 66 against zxing-cpp's defaults' 65), for 6% more CPU a
#   frame; in place of the mean, 2 fewer.
# Until 2c076fa only frames without any pattern were scanned again; a false pattern
# elsewhere (light-on-dark marks at a frame's edge), or two of the code's three, kept
# faint and defocused codes from the rescans. Over 13 benchmark sets (3,900 frames): 2,296
# codes, against 2,278 with the mid-range rescan alone for frames without a pattern
# (low-contrast kiosk seeds 101 and 107: 64 and 64 against 62 and 60; zxing-cpp's
# defaults 64 and 65), one fewer on two frames. The rescans run on 30-65% of frames;
# with a faster row scan (428b6f5) the first two cost about 5% more CPU a frame than
# none, and the third 6% more (RESULTS.md).
RESCANS = ((100, 1), (0, 0), (50, 0))
_MIDRANGE_PERCENTS = np.array([MIDRANGE_PERCENT] + [m for m, _ in RESCANS], np.int64)
_REACHES = np.array([1] + [r for _, r in RESCANS], np.int64)
# Before those, a frame in which the first scan finds no code is scanned at half size
# (means of 2x2 pixels) with each of these, in the same way: a large code printed faint
# under sensor noise (modules of 7 pixels, ink 25 grey levels under its paper, noise of
# about 8) breaks into runs of a few pixels at full size, and no scan found a pattern;
# halved, the noise is half as strong and the runs hold. At the tile's own mean (a tile
# there covers 48 pixels of the frame). A quarter of the pixels: it goes before the
# full-size rescans, and spares them on the frames where it finds a code. Over the 13
# benchmark sets: 2,323 codes against 2,311, for 2.0% more CPU a frame (low-contrast
# seeds 101 and 107: 67 and 68, against zxing-cpp's defaults' 64 and 65); at the first
# scan's thresholds, 2,319 for 1.7%; after the full-size rescans, 2,317 for 2.1%; a
# second half-size scan (at the first scan's thresholds, or halfway to the mid-range),
# 2 more (each without HALF_SIDE_WEIGHT, which costs one code).
HALF_RESCANS = ((0, 0),)
_HALF_MIDRANGE_PERCENTS = np.array([m for m, _ in HALF_RESCANS], np.int64)
_HALF_REACHES = np.array([r for _, r in HALF_RESCANS], np.int64)
# In the half-size scans, a pattern's centre run is at least this many quarters of its
# side runs' mean. The 1:1:3:1:1 test allows 2/7 of a pixel beyond its share to each
# run, which at half size lets runs of one width pass: a checkerboard of 9-pixel squares
# halved (runs of 4 and 5) gave two code regions, and crops to read, where the
# full-size scans see nothing. A finder's centre is three times its sides. At full size
# the same bound costs codes (over the 13 sets, 8 fewer for 2.5% less CPU); at half
# size, one.
HALF_SIDE_WEIGHT = 5
# Images whose short side is over this are scanned at a reduced size.
SCAN_MAX_SIDE = 800
# A finder's light rings are this much brighter than its dark parts (grey levels), or
# EDGE_PERCENT of its neighbourhood's contrast where that is less, but never under
# EDGE_FLOOR: a code printed faint or in a dim corner has no 20 levels to show. Held to
# 20 everywhere, the scan found no pattern on such codes and the frame was no_code:
# frames of low-contrast prints read 173 codes against zxing-cpp's defaults' 186; 187
# now (floor 8: 185, with more CPU a frame; see RESULTS.md).
MIN_EDGE = 20
EDGE_FLOOR = 12
EDGE_PERCENT = 25
# Sizes of the kernels' output buffers; a frame fills MAX_HITS only with pathological
# clutter (at most 996 hits in 1,800 synthetic frames).
MAX_HITS = 4096
# Every hit may start a cluster of its own. With room for 256, the clutter found first in
# a busy frame (24 of those 1,800) filled the buffer, and every finder pattern further
# down the frame was dropped unseen.
MAX_CLUSTERS = MAX_HITS
MAX_TRIPLES = 512
# A finder pattern is crossed by several scanned rows; one hit alone is mostly noise.
MIN_HITS = 2
# A loose finder pattern alone is worth a look when this many scanned rows crossed it,
# in a square reaching this many modules from it (a version 4 code and its quiet zone).
SINGLE_MIN_HITS = 3
SINGLE_REACH = 34
MAX_GUESSES = 3
# Only the loose patterns crossed by the most rows are paired.
MAX_LOOSE = 10
# Triples are sought among the patterns crossed by the most rows only (cubic cost).
MAX_FINDERS = 40


@dataclass(frozen=True, slots=True)
class CodeRegion:
    """A likely code: the box x0, y0, x1, y1 (pixels of the frame, end exclusive) that
    holds it with its quiet zone, its module size in pixels, and whether it is inverted
    (light modules on dark)."""

    box: tuple[int, int, int, int]
    module: float
    inverted: bool


@dataclass(frozen=True, slots=True)
class Located:
    """What `locate` found: regions of likely codes (best-fitting triple first), the
    count of finder patterns that belong to none, every pattern found, the frame's
    shape (for `guesses`), and how many times smaller the scanned copy was (1: the frame
    itself; a larger frame's scan misses modules under two pixels of the frame)."""

    codes: list[CodeRegion]
    loose: int
    finders: np.ndarray  # (k, 5): x, y, size, polarity, hits; in frame pixels
    loose_indices: list[int]  # rows of `finders` in no code region, most hits first
    shape: tuple[int, int]
    scale: int = 1

    @property
    def crowded(self) -> bool:
        """Whether the scan met more finder patterns than it keeps (MAX_FINDERS, those
        crossed by the most rows): others may lie anywhere in the frame."""
        return len(self.finders) >= MAX_FINDERS

    def guesses(self) -> list[CodeRegion]:
        """Wider regions around the loose finder patterns that could belong to a code
        whose other patterns were not seen: pairs first, then singles."""
        return _guesses(self.finders, self.loose_indices[:MAX_LOOSE], self.shape)


def locate(gray: np.ndarray) -> Located:
    """Find QR codes in a 2-D uint8 array by their finder patterns.

    Returns a Located; raises ValueError if `gray` is not a 2-D uint8 array.
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"locate takes a 2-D uint8 array, got {gray.dtype} {gray.shape}")
    scale = 1
    image = gray
    while min(image.shape) > SCAN_MAX_SIDE:
        scale *= 2
        image = kernels.halve(image)
    image = np.ascontiguousarray(image)
    # One kernel call: the Python and numpy steps between four calls held the GIL for
    # as long as the scan of a small frame takes.
    clusters, boxes, modules, polarities, used = kernels.locate_finders(
        image, BLOCK, SAMPLE_STEP, MIN_CONTRAST, ROW_STEP, MIN_EDGE, EDGE_FLOOR, EDGE_PERCENT,
        _MIDRANGE_PERCENTS, _REACHES, MAX_HITS, MAX_CLUSTERS, MIN_HITS, MAX_FINDERS,
        MAX_TRIPLES, float(scale), gray.shape[0], gray.shape[1], _HALF_MIDRANGE_PERCENTS,
        _HALF_REACHES, HALF_SIDE_WEIGHT)
    codes = [CodeRegion((x0, y0, x1, y1), module, inverted=polarity == 0)
             for (x0, y0, x1, y1), module, polarity
             in zip(boxes.tolist(), modules.tolist(), polarities.tolist(), strict=True)]
    finders = clusters.copy()
    finders[:, :3] *= scale
    loose = np.flatnonzero(~used).tolist()
    return Located(codes, len(loose), finders, loose, gray.shape, scale)


def crop_pixels(gray: np.ndarray, box: tuple[int, int, int, int], inverted: bool,
                shrink: int = 1) -> np.ndarray:
    """The pixels of `box` (x0, y0, x1, y1, end exclusive) of a 2-D uint8 array as a new
    C-contiguous array: inverted (255 - v) if `inverted`, so that a light-on-dark code
    reads dark on light, and reduced `shrink` times by box means exactly as Pillow's
    Image.reduce would. One pass that releases the GIL (Pillow's reduce and the copies
    around it held it for most of their time). Raises ValueError for an empty box, a
    box outside the array or a shrink under 1."""
    x0, y0, x1, y1 = (int(v) for v in box)
    height, width = gray.shape
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height) or shrink < 1:
        raise ValueError(f"cannot crop {box} (shrink {shrink}) from an image of {width}x{height}")
    return kernels.crop_reduced(gray, x0, y0, x1, y1, bool(inverted), int(shrink))


def _guesses(finders: np.ndarray, loose: list[int],
             shape: tuple[int, int]) -> list[CodeRegion]:
    """Regions that would hold a code of which only some finder patterns were seen: around
    each pair of loose patterns that could be two corners of one code (the code lies on
    either side of them, or they are opposite corners), then around each loose pattern
    crossed by at least SINGLE_MIN_HITS rows that is in no pair."""
    regions: list[CodeRegion] = []
    paired: set[int] = set()
    for n, i in enumerate(loose):
        for j in loose[n + 1:]:
            a, b = finders[i], finders[j]
            if a[3] != b[3] or max(a[2], b[2]) > 2 * min(a[2], b[2]):
                continue
            module = (a[2] + b[2]) / 14
            distance = float(np.hypot(a[0] - b[0], a[1] - b[1]))
            if not 10 * module <= distance <= 90 * module:
                continue
            reach = 1.15 * distance + 8 * module
            regions.append(_square((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, reach, module,
                                   a[3] == 0, shape))
            paired.update((i, j))
    for i in loose:
        if i not in paired and finders[i, 4] >= SINGLE_MIN_HITS:
            module = finders[i, 2] / 7
            regions.append(_square(finders[i, 0], finders[i, 1], SINGLE_REACH * module,
                                   module, finders[i, 3] == 0, shape))
    return regions[:MAX_GUESSES]


def _square(x: float, y: float, reach: float, module: float, inverted: bool,
            shape: tuple[int, int]) -> CodeRegion:
    height, width = shape
    box = (max(0, int(x - reach)), max(0, int(y - reach)),
           min(width, int(x + reach) + 1), min(height, int(y + reach) + 1))
    return CodeRegion(box, float(module), bool(inverted))

