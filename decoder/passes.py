"""The passes of the decoding cascade: zxing-cpp settings, and the copy they run on.

A pass is cheap or robust by its zxing-cpp settings (binarizer, inversion, downscaled
pyramid) and by the image it reads: the frame itself, or a rescaled or filtered copy
that rescues codes which are too small, too blurred or too noisy for the detector.
Transforms use Pillow, which releases the GIL like zxing-cpp does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zxingcpp
from PIL import Image, ImageFilter

Transform = Callable[[np.ndarray], np.ndarray | None]

# Upscaling is for small images and small codes; above this a 2x copy costs more than
# it can rescue.
MAX_UPSCALE_PIXELS = 1_000_000


def identity(gray: np.ndarray) -> np.ndarray:
    return gray


def half(gray: np.ndarray) -> np.ndarray | None:
    """A 2x2-box downscaled copy: merges sensor noise and JPEG blocks into modules."""
    if min(gray.shape) < 84:
        return None
    return np.asarray(Image.fromarray(gray).reduce(2))


def double(gray: np.ndarray) -> np.ndarray | None:
    """A bicubic 2x copy: gives tiny codes enough pixels per module."""
    if gray.size > MAX_UPSCALE_PIXELS:
        return None
    height, width = gray.shape
    return np.asarray(Image.fromarray(gray).resize((2 * width, 2 * height), Image.BICUBIC))


def smooth(gray: np.ndarray) -> np.ndarray:
    """A lightly blurred copy: removes noise and moiré that break the binarizer."""
    return np.asarray(Image.fromarray(gray).filter(ImageFilter.GaussianBlur(1)))


def sharpen(gray: np.ndarray) -> np.ndarray:
    """An unsharp-masked copy: restores module edges lost to motion or focus blur."""
    return np.asarray(Image.fromarray(gray).filter(
        ImageFilter.UnsharpMask(radius=2, percent=160, threshold=2)))


@dataclass(frozen=True, slots=True)
class DecodePass:
    """One attempt: zxing-cpp settings applied to `transform(frame)`.

    only_if_seen: run this pass only when an earlier pass located a code it could not
        read (zxing-cpp reports those with return_errors=True); costly passes use it so
        that frames without any code do not pay for them.
    """

    name: str
    binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage
    try_invert: bool = True
    try_downscale: bool = True
    transform: Transform = identity
    only_if_seen: bool = False

    def run(self, gray: np.ndarray) -> list[zxingcpp.Barcode]:
        """The QR codes this pass finds in `gray`, unreadable ones included."""
        image = self.transform(gray)
        if image is None:
            return []
        return zxingcpp.read_barcodes(
            image,
            formats=zxingcpp.BarcodeFormat.QRCode,
            try_rotate=False,  # QR detection finds any orientation by itself
            try_downscale=self.try_downscale,
            try_invert=self.try_invert,
            text_mode=zxingcpp.TextMode.Plain,
            binarizer=self.binarizer,
            return_errors=True,
        )


GH = zxingcpp.Binarizer.GlobalHistogram

# Rescue passes: rescaled and filtered copies, each costing several robust passes, so
# they run only for frames where a code was located but could not be read.
RESCUES: tuple[DecodePass, ...] = (
    DecodePass("half", try_downscale=False, transform=half, only_if_seen=True),
    DecodePass("smooth", binarizer=GH, transform=smooth, only_if_seen=True),
    DecodePass("sharpen", try_downscale=False, transform=sharpen, only_if_seen=True),
    DecodePass("double", try_downscale=False, transform=double, only_if_seen=True),
)

# The default: zxing-cpp's robust binarizer with inversion first, so that every code in
# a frame is found in one pass (a cheap first pass stops at the first code and loses the
# second one of a two-code frame), then the rescues.
THOROUGH: tuple[DecodePass, ...] = (DecodePass("robust", try_downscale=False), *RESCUES)

# For streams of one code per frame (a turnstile): a global-histogram pass with no
# inversion and no pyramid reads most clear frames for a fraction of the cost; only the
# frames it misses go on to the robust pass and the rescues.
FAST: tuple[DecodePass, ...] = (
    DecodePass("fast", binarizer=GH, try_invert=False, try_downscale=False),
    DecodePass("robust", try_downscale=True),
    *RESCUES,
)

CASCADE = THOROUGH
