"""The passes of the decoding cascade: zxing-cpp settings, and the copy they run on.

A pass is cheap or robust by its zxing-cpp settings (binarizer, inversion, downscaled
pyramid) and by the image it reads: the frame itself, or a rescaled or filtered copy
that rescues codes which are too small, too blurred or too noisy for the detector. The
copies are Pillow's (its box reduction, bicubic resize, Gaussian blur and unsharp mask),
made by numba kernels that give the same pixels without the GIL (decoder.filters,
decoder.locate.crop_pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zxingcpp

from decoder.filters import double_bicubic, gaussian_blur, unsharp_mask
from decoder.locate import crop_pixels

Transform = Callable[[np.ndarray], np.ndarray | None]

# zxing-cpp 3's QRCode format is a family: Micro QR and rMQR too. Tokens are model 2
# codes, and a crop around three finder-like marks can decode as a Micro QR code that
# is not there (a review read '4966' from a frame without any code), so the codes of
# NOT_OURS are dropped. The family is still asked for: asking for models 1 and 2 alone
# read 23 fewer of 6,910 codes on the benchmark's frames.
QR_FORMATS = zxingcpp.BarcodeFormat.QRCode
NOT_OURS = frozenset({zxingcpp.BarcodeFormat.MicroQRCode, zxingcpp.BarcodeFormat.RMQRCode})

# Upscaling is for small images and small codes; above this a 2x copy costs more than
# it can rescue.
MAX_UPSCALE_PIXELS = 1_000_000
# Frames whose short side is at least this are read at half size first.
COARSE_MIN_SIDE = 600


def identity(gray: np.ndarray) -> np.ndarray:
    return gray


def half(gray: np.ndarray) -> np.ndarray | None:
    """A 2x2-box downscaled copy: merges sensor noise and JPEG blocks into modules."""
    if min(gray.shape) < 84:
        return None
    return _reduce2(gray)


def half_if_large(gray: np.ndarray) -> np.ndarray | None:
    """A half-size copy of an HD frame (short side >= 600 px), else None (pass skipped).

    In a 1280x720 frame a check-in code is seldom smaller than 3 pixels a module, so a
    quarter of the pixels suffices for most codes at a quarter of the cost.
    """
    if min(gray.shape) < COARSE_MIN_SIDE:
        return None
    return _reduce2(gray)


def _reduce2(gray: np.ndarray) -> np.ndarray:
    """Pillow's `Image.reduce(2)`: means of 2x2 boxes (of fewer pixels at the far edges)."""
    return crop_pixels(gray, (0, 0, gray.shape[1], gray.shape[0]), False, 2)


def double(gray: np.ndarray) -> np.ndarray | None:
    """A bicubic 2x copy: gives tiny codes enough pixels per module."""
    if gray.size > MAX_UPSCALE_PIXELS:
        return None
    return double_bicubic(gray)


def smooth(gray: np.ndarray) -> np.ndarray:
    """A lightly blurred copy: removes noise and moiré that break the binarizer."""
    return gaussian_blur(gray, 1)


def sharpen(gray: np.ndarray) -> np.ndarray:
    """An unsharp-masked copy: restores module edges lost to motion or focus blur."""
    return unsharp_mask(gray, radius=2, percent=160, threshold=2)


@dataclass(frozen=True, slots=True)
class DecodePass:
    """One attempt: zxing-cpp settings applied to `transform(image)`.

    on_located: run this pass not on the whole frame but on a crop around each code an
        earlier pass located and could not read (zxing-cpp reports those, with their
        corners, under return_errors=True). Costly rescues use it: they then cost a
        fraction of a frame, and frames without any code never pay for them.
    on_finders: find the codes first (decoder.locate: finder patterns, grouped in
        threes) and run this pass on a crop around each, turned dark-on-light.
    if_unsure: a pass that runs only when an earlier on_finders pass read nothing and
        saw finder patterns that it could not group into a code (or read codes and left
        patterns of their size over: a grid of codes), over the part of the frame around
        them (or over the whole frame when no on_finders pass ran).
    """

    name: str
    binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage
    try_invert: bool = True
    try_downscale: bool = True
    transform: Transform = identity
    on_located: bool = False
    on_finders: bool = False
    if_unsure: bool = False

    def run(self, gray: np.ndarray) -> tuple[list[zxingcpp.Barcode], float]:
        """The QR codes this pass finds in `gray`, unreadable ones included, and the
        factor from the coordinates of their corners to those of `gray`."""
        image = self.transform(gray)
        if image is None:
            return [], 1.0
        found = zxingcpp.read_barcodes(
            image,
            formats=QR_FORMATS,
            try_rotate=False,  # QR detection finds any orientation by itself
            try_downscale=self.try_downscale,
            try_invert=self.try_invert,
            text_mode=zxingcpp.TextMode.Plain,
            binarizer=self.binarizer,
            return_errors=True,
        )
        # one that could not be read stays: it marks a place worth a rescue
        return [b for b in found if not (b.valid and b.format in NOT_OURS)], \
            gray.shape[1] / image.shape[1]


GH = zxingcpp.Binarizer.GlobalHistogram

# Rescue passes: rescaled and filtered copies of the region around each code that was
# located but not read; over a whole frame each would cost several robust passes.
RESCUES: tuple[DecodePass, ...] = (
    DecodePass("half", try_downscale=False, transform=half, on_located=True),
    DecodePass("smooth", binarizer=GH, transform=smooth, on_located=True),
    DecodePass("sharpen", try_downscale=False, transform=sharpen, on_located=True),
    DecodePass("double", try_downscale=False, transform=double, on_located=True),
)

# The default: zxing-cpp's own robust settings (local-average binarizer, inversion,
# pyramid; no rotation, which QR detection does not need), then the rescues. A cheaper
# first pass would end a frame at its first code: measured on two-code frames, it loses
# the second one, and so reads fewer codes than zxing-cpp's defaults.
THOROUGH: tuple[DecodePass, ...] = (DecodePass("robust"), *RESCUES)

# For streams of one code per frame (a turnstile), where throughput matters more than a
# second code: a half-size robust pass over HD frames, then a global-histogram pass with
# no inversion and no pyramid, and only the frames still unread go on to the robust
# pass and the rescues.
FAST: tuple[DecodePass, ...] = (
    DecodePass("coarse", try_downscale=False, transform=half_if_large),
    DecodePass("fast", binarizer=GH, try_invert=False, try_downscale=False),
    DecodePass("robust"),
    *RESCUES,
)

# Locate first: zxing-cpp reads only crops around the codes that the finder-pattern
# scan found (its own search over a cluttered frame costs most of its time); the part of
# the frame around loose finder patterns gets the robust pass only when the scan saw
# such patterns but no code was read.
LOCATE_FIRST: tuple[DecodePass, ...] = (
    DecodePass("located", try_invert=False, on_finders=True),
    DecodePass("robust", if_unsure=True),
    *RESCUES,
)

CASCADE = LOCATE_FIRST
