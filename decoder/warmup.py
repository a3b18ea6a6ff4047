"""Every decoder kernel a long-running process calls, called once before it serves.

numba compiles a kernel on its first call and, even with its on-disk cache, loads and
links it then, holding the GIL (see tracing/warmup.py). `warm_up()` verifies tokens the
ways scans bring them (a list of texts, packed S43 columns, writable and read-only,
batches large enough for all cores, more distinct tokens than the verified-token cache
first holds) and decodes frames (arrays with and without a code, and PNG bytes) and
makes each rescue copy (decoder.filters), with a key ring and images of its own.
"""

from __future__ import annotations

import io

import numpy as np
import zxingcpp
from PIL import Image

from decoder.filters import double_bicubic, gaussian_blur, unsharp_mask
from decoder.frames import decode_frames
from decoder.tokens import PARALLEL_ROWS, TOKEN_LEN, KeyRing, issue_token, verify_tokens

# more distinct tokens than the verified-token cache's first table holds (it then grows)
DISTINCT_TOKENS = 600


def warm_up() -> None:
    """Call every kernel of token verification and frame decoding once (see the module
    docstring). Reads and writes no file."""
    ring = KeyRing({1: bytes(range(32))}, active=1)
    texts = [issue_token("person", i, ring) for i in range(1, DISTINCT_TOKENS)]
    texts.append(issue_token("venue", 1, ring))
    verify_tokens([*texts[:20], "not a token", b"\xff" * TOKEN_LEN], ring)
    column = np.array(texts, dtype=f"S{TOKEN_LEN}")
    # columns read from a request body are read-only: numba compiles those apart
    for writable in (True, False):
        column = column.copy()
        column.setflags(write=writable)
        verify_tokens(column, ring)  # the cache's lookups, and its growth
        verify_tokens(np.resize(column[::-1], PARALLEL_ROWS), ring)  # on every core
        fresh = KeyRing({1: bytes(range(32))}, active=1)
        verify_tokens(column, fresh)
        verify_tokens(np.resize(column, PARALLEL_ROWS), fresh)  # hashed on every core
    code = zxingcpp.create_barcode(texts[0], zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    frame = np.full((480, 640), 200, np.uint8)
    symbol = np.asarray(code.to_image(scale=6))
    frame[100:100 + symbol.shape[0], 200:200 + symbol.shape[1]] = symbol
    png = io.BytesIO()
    Image.fromarray(frame).save(png, format="PNG")
    # arrays, and an encoded image (decoded into a read-only array)
    decode_frames([frame, np.full((480, 640), 90, np.uint8), png.getvalue()])
    # the rescues run only on codes located and not read: their kernels are called here,
    # on a read-only image too (a decoded PNG's pixels), which numba compiles apart
    for writable in (True, False):
        image = symbol.copy()
        image.setflags(write=writable)
        double_bicubic(image)
        unsharp_mask(gaussian_blur(image, 1), 2, 160, 2)
