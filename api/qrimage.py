"""QR symbols for tokens, as PNG and SVG files (zxing-cpp writes QR codes itself)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import zxingcpp
from PIL import Image

from tracing.storage import open_private

# Error correction M: the level the token format is sized for (version 3 or 4 at M).
EC_LEVEL = "M"


def qr_symbol(text: str) -> zxingcpp.Barcode:
    """The QR code symbol of `text` at error correction M."""
    return zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=EC_LEVEL)


def qr_pixels(text: str, scale: int = 8) -> np.ndarray:
    """`text` as a QR code: a 2-D uint8 array, `scale` pixels a module, quiet zone included."""
    return np.asarray(qr_symbol(text).to_image(scale=scale))


def qr_png(text: str, scale: int = 8) -> bytes:
    """`text` as a QR code in PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(qr_pixels(text, scale)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def qr_svg(text: str, scale: int = 8) -> str:
    """`text` as a QR code in an SVG document."""
    return qr_symbol(text).to_svg(scale=scale)


def qr_document(text: str, kind: str = "png", scale: int = 8) -> bytes:
    """`text` as a QR code in a PNG or SVG document (`kind`). Raises ValueError for
    another kind."""
    if kind == "svg":
        return qr_svg(text, scale).encode()
    if kind == "png":
        return qr_png(text, scale)
    raise ValueError(f"a QR code is written as png or svg, not {kind!r}")


def write_qr(text: str, path: Path, kind: str = "png", scale: int = 8) -> None:
    """Write `text` as a QR code to `path` as `kind` ("png" or "svg"), whatever the name's
    suffix, readable by its owner only: a personal token's code is a credential. Raises
    ValueError for another kind."""
    document = qr_document(text, kind, scale)
    with open_private(path) as out:
        out.write(document)
