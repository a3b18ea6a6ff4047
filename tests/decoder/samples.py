"""zxing-cpp's sample photos (../shared/samples/zxing-cpp) and what zxing-cpp's own
default QR settings read in an image: the yardstick the decoder's tests hold it to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zxingcpp

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "zxing-cpp"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no samples at {SAMPLES}")


def sample_corpus() -> list[tuple[Path, str]]:
    """(photo, the text its code holds) for every QR photo with an expected text."""
    corpus = []
    for folder in sorted(SAMPLES.glob("qrcode-*")):
        for image in sorted(folder.iterdir()):
            expected = image.with_suffix(".txt")
            if image.suffix in IMAGE_SUFFIXES and expected.exists():
                corpus.append((image, expected.read_bytes().decode("utf-8")))
    return corpus


def zxing_default_texts(pixels: np.ndarray) -> set[str]:
    """The texts zxing-cpp's default QR settings read in a grey image."""
    return {b.text for b in zxingcpp.read_barcodes(
        pixels, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain)}
