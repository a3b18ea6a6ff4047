"""Turning what a caller hands us into grayscale frames, or a reason why not.

`to_gray` accepts a 2-D uint8 array (grayscale), a 3-D uint8 array of shape (H, W, C)
with 1, 3 (RGB) or 4 (RGBA) channels, or the encoded bytes of a PNG, JPEG, WebP, BMP,
GIF, PPM or TIFF image of one frame (an animated or multi-page image is refused). It
never raises for bad input: it returns a `BadInput` that names the problem, so a batch
can report it for that frame and go on.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

# A frame larger than this is refused before its pixels are decoded: a 4K camera frame
# is 8.3 MP, and a hostile PNG can claim gigapixels in a few hundred bytes.
MAX_PIXELS = 40_000_000
# Encoded images larger than this are refused before they are parsed.
MAX_ENCODED_BYTES = 32 * 1024 * 1024
# Fewer pixels than this on either side cannot hold a QR code of version 1 (21 modules).
MIN_SIDE = 21
# zxing-cpp refuses a side longer than this (and raised out of a whole batch for it).
MAX_SIDE = 65_535


@dataclass(frozen=True, slots=True)
class BadInput:
    """Why a frame could not be used: `status` (a FrameStatus value) and a message."""

    status: str
    detail: str


def to_gray(item: object, *, max_pixels: int = MAX_PIXELS) -> np.ndarray | BadInput:
    """Return `item` as a C-contiguous 2-D uint8 array, or a BadInput naming the problem.

    Takes an ndarray (2-D grayscale or H x W x C with C in 1, 3, 4) or encoded image
    bytes (bytes, bytearray or memoryview). Never raises for bad input.
    """
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _decode_encoded(bytes(item), max_pixels)
    if isinstance(item, np.ndarray):
        return _gray_from_array(item, max_pixels)
    return BadInput("unreadable_input", f"unsupported frame type {type(item).__name__}; "
                    "expected a uint8 numpy array or encoded PNG/JPEG bytes")


def _gray_from_array(arr: np.ndarray, max_pixels: int) -> np.ndarray | BadInput:
    if arr.dtype != np.uint8:
        return BadInput("unreadable_input", f"frame dtype is {arr.dtype}, expected uint8")
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        channels = arr.shape[2]
    elif arr.ndim == 2:
        channels = 0
    else:
        return BadInput("unreadable_input",
                        f"frame shape {arr.shape} is not (H, W) or (H, W, 1|3|4)")
    height, width = arr.shape[:2]
    size_problem = _check_size(width, height, max_pixels)
    if size_problem is not None:
        return size_problem
    if channels == 0:
        return np.ascontiguousarray(arr)
    if channels == 1:
        return np.ascontiguousarray(arr[:, :, 0])
    # Luma of RGB, Pillow's as for encoded images (integer arithmetic, no float copy of
    # the frame: 13 ms for a 4K RGBA frame, against 146 through float32); alpha is
    # ignored. BGR input gives a slightly different gray level, which does not matter
    # for a black-and-white symbol.
    image = Image.fromarray(arr, "RGB" if channels == 3 else "RGBA")
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _check_size(width: int, height: int, max_pixels: int) -> BadInput | None:
    if width == 0 or height == 0:
        return BadInput("empty", f"frame has no pixels ({width}x{height})")
    if width * height > max_pixels:
        return BadInput("too_large", f"frame is {width}x{height} = {width * height:,} pixels, "
                        f"over the cap of {max_pixels:,}")
    if width > MAX_SIDE or height > MAX_SIDE:
        return BadInput("too_large", f"frame is {width}x{height}, over {MAX_SIDE:,} pixels on "
                        "a side")
    if width < MIN_SIDE or height < MIN_SIDE:
        return BadInput("too_small", f"frame is {width}x{height}, smaller than a QR code "
                        f"({MIN_SIDE}x{MIN_SIDE} pixels at the least)")
    return None


def _decode_encoded(data: bytes, max_pixels: int) -> np.ndarray | BadInput:
    if not data:
        return BadInput("empty", "encoded image is 0 bytes")
    if len(data) > MAX_ENCODED_BYTES:
        return BadInput("too_large", f"encoded image is {len(data):,} bytes, over the cap of "
                        f"{MAX_ENCODED_BYTES:,}")
    try:
        with warnings.catch_warnings():
            # Our own size cap comes first; Pillow's bomb warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in ("PNG", "JPEG", "WEBP", "BMP", "GIF", "PPM", "TIFF"):
                    return BadInput("unreadable_input", f"unsupported image format {img.format}")
                frames = getattr(img, "n_frames", 1)
                if frames > 1:
                    # reading the first alone would drop the codes of the others unseen
                    return BadInput("unreadable_input", f"the {img.format} image holds "
                                    f"{frames} frames; give each frame as an item of its own")
                width, height = img.size
                size_problem = _check_size(width, height, max_pixels)
                if size_problem is not None:
                    return size_problem
                gray = _to_luma(img)
    except UnidentifiedImageError:
        # Pillow's message names only the BytesIO object it was given
        return BadInput("unreadable_input", "not a readable image: no known image format "
                        "(PNG, JPEG, WebP, BMP, GIF, PPM or TIFF) in these bytes")
    except Image.DecompressionBombError as exc:
        return BadInput("too_large", f"image would decompress too large: {exc}")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports truncated or corrupt data through these.
        return BadInput("unreadable_input", f"corrupt or truncated image: {exc}")
    except Exception as exc:  # one hostile image must not end the batch
        # Crafted headers reach errors Pillow does not wrap (an OverflowError from a
        # TIFF strip offset past 2**63, for one); the frame is unreadable all the same.
        return BadInput("unreadable_input",
                        f"corrupt image: its decoder failed ({type(exc).__name__}: {exc})")
    return gray


# Pillow modes of more than 8 bits a sample (16-bit PNG and PGM, 32-bit and float TIFF):
# convert("L") clips them to 0..255, which turns a 16-bit code whose modules are at
# 10,000 and 50,000 all white.
_WIDE_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def _to_luma(img: Image.Image) -> np.ndarray:
    """The image's gray levels as a 2-D uint8 array: colour through Pillow's luma, wider
    samples stretched from their own range onto 0..255 (a code is read by contrast)."""
    if img.mode not in _WIDE_MODES:
        return np.asarray(img.convert("L"), dtype=np.uint8)
    wide = np.asarray(img, dtype=np.float64)
    low, high = float(np.nanmin(wide)), float(np.nanmax(wide))
    if not high > low:  # flat (or all NaN): nothing to stretch
        return np.zeros(wide.shape, np.uint8)
    scaled = np.nan_to_num((wide - low) * (255.0 / (high - low)), nan=0.0)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
