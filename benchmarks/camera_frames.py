"""Held-out synthetic camera frames of QR codes, with ground truth.

A second generator, written without looking at ``benchmarks/synth_frames.py`` or the
decoder, so that the decoder can be checked on frames it was not tuned on. Each frame is
a function of ``(seed, index)`` only. The scene model, in the order a frame is made:

1. Scene: a background albedo map (room, wall, table, poster with print, tiles, stripes,
   textures, gradients), sometimes with decoys that are not QR codes (checkerboards, random
   module grids, Data Matrix, Aztec, PDF417 and 1-D symbols, bull's-eyes).
2. Carriers: each code is printed on a paper card or sticker (ink on white, a border of 1-8
   modules, dot gain, sometimes a printed frame, a caption or a slight bend) or shown on a
   phone (dark bezel, light or dark-mode screen, inverted codes on most dark screens, pixel
   grid or moire, glass reflections). A pinhole camera sees it with a 3-D pose (any roll,
   tilt up to 45 degrees): an antialiased texture is warped into the scene.
3. Light, in linear units: paper and background reflect an illumination field (gradient,
   lamp hot spot, a shadow edge that crosses a code), screens emit their own light, glossy
   surfaces add specular glare; auto exposure, sometimes dim and veiled, sometimes clipped.
4. Optics and sensor: lens blur, defocus disk, motion streak, vignetting, shot and read
   noise, ISP denoise, tone curve, sharpening halos, then JPEG (quality 35-95) for ~70%.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import cv2
import numpy as np
import zxingcpp

__all__ = ["CameraFrame", "camera_frame", "generate_camera_frames"]

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%*+-./:"
URL_CHARS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
SIZES = ((640, 480), (1280, 720))
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)
URL_HOSTS = ("checkin.example.org", "qr.gemeinde.example", "t.example.net", "go.example.eu")

# 256 equiprobable quantiles of N(0, 1): Gaussian noise from random bytes through cv2.LUT,
# several times faster than numpy's float32 normals at 1280x720.
_GAUSS_LUT = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)


@dataclass(frozen=True)
class CameraFrame:
    """One grayscale camera frame and what is in it."""

    image: np.ndarray  # 2-D uint8 (height, width) grayscale
    texts: frozenset[str]  # texts of the codes in the frame (empty: no code)
    attrs: dict[str, Any]  # plain values; "size": (width, height), "tags": sorted list[str]
    jpeg: bytes | None = None  # the JPEG stream `image` was decoded from, if any

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.attrs["tags"])


@dataclass
class _Carrier:
    """A card or phone as a texture: premultiplied reflectance, emission and alpha."""

    tex: np.ndarray  # (h, w, 4) float32; the 4th channel is unused (OpenCV warps 4 faster)
    code_rect: tuple[float, float, float, float]  # x, y, width, height of the symbol
    modules: tuple[int, int]  # rows, cols of the symbol
    quiet: float  # light margin around the symbol, in modules
    kind: str  # "paper" or "screen"
    inverted: bool
    glossy: bool
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Placed:
    carrier: _Carrier
    H: np.ndarray  # texture px -> frame px
    quad: np.ndarray  # (4, 2) symbol corners in the frame: TL, TR, BR, BL
    outline: np.ndarray  # (4, 2) carrier corners in the frame
    pose: dict[str, float]


# --------------------------------------------------------------------------- helpers


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1] with about `cells` bumps across the width."""
    cw = max(2, cells)
    ch = max(2, round(cells * h / w))
    small = rng.random((ch + 2, cw + 2), dtype=np.float32)
    # bicubic to a quarter of the size (cropping the border cells), then bilinear
    hq, wq = max(2, h // 4), max(2, w // 4)
    mid = cv2.resize(small, (wq * (cw + 2) // cw, hq * (ch + 2) // ch),
                     interpolation=cv2.INTER_CUBIC)
    oy, ox = hq // ch, wq // cw
    mid = np.clip(mid[oy : oy + hq, ox : ox + wq], 0, 1)
    return cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)


def _grain(rng: np.random.Generator, h: int, w: int, step: int = 2) -> np.ndarray:
    """Fine zero-mean noise (std ~1), spatially correlated over `step` pixels."""
    hs, ws = max(1, h // step), max(1, w // step)
    small = _gauss_noise(rng, hs, ws)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _gray(rng: np.random.Generator, lo: float, hi: float) -> int:
    return int(rng.uniform(lo, hi) * 255)


_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))


def _word(rng: np.random.Generator, lo: int = 2, hi: int = 9) -> str:
    return "".join(_LETTERS[rng.integers(0, len(_LETTERS), int(rng.integers(lo, hi)))])


def _line(rng: np.random.Generator, nchars: int) -> str:
    """Random words separated by spaces, `nchars` characters in all."""
    chars = _LETTERS[rng.integers(0, len(_LETTERS), nchars)]
    chars[rng.random(nchars) < 0.17] = " "
    return "".join(chars).strip()


def _text_block(
    rng: np.random.Generator,
    img: np.ndarray,
    x: int,
    y: int,
    width: int,
    lines: int,
    scale: float,
    color: int,
) -> None:
    """Lines of random words, like print seen from afar."""
    font = int(rng.choice(FONTS))
    thick = 1 if scale < 0.9 else int(rng.integers(1, 3))
    (tw, th), _ = cv2.getTextSize("abcdefghijKLMNOP", font, scale, thick)
    per_line = int(width / (tw / 16))
    step = int(th * _u(rng, 1.6, 2.2)) + 1
    for j in range(lines):
        n = int(per_line * (_u(rng, 0.3, 1.0) if j == lines - 1 else _u(rng, 0.85, 1.0)))
        if n > 0:
            cv2.putText(img, _line(rng, n), (x, y + j * step), font, scale, color, thick,
                        cv2.LINE_AA)


def _symbol(text: str, fmt: zxingcpp.BarcodeFormat, **kw: Any) -> np.ndarray:
    """Module matrix of a symbol, True where dark."""
    bc = zxingcpp.create_barcode(text, fmt, **kw)
    return np.asarray(bc.to_image(scale=1, add_quiet_zones=False)) < 128


def _upscale_modules(mods: np.ndarray, kx: int, ky: int) -> np.ndarray:
    rows, cols = mods.shape
    return cv2.resize(mods.astype(np.uint8), (cols * kx, rows * ky),
                      interpolation=cv2.INTER_NEAREST)


def _rounded_mask(h: int, w: int, radius: int) -> np.ndarray:
    """uint8 mask (255 inside) of a rectangle with rounded corners."""
    m = np.zeros((h, w), np.uint8)
    r = max(0, min(radius, h // 2, w // 2))
    if r < 2:
        m[:] = 255
        return m
    cv2.rectangle(m, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(m, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(m, (cx, cy), r, 255, -1, cv2.LINE_AA)
    return m


def _stamp(
    img: np.ndarray,
    patch: np.ndarray,
    center: tuple[float, float],
    angle: float,
    scale: float,
    mask: np.ndarray | None = None,
) -> None:
    """Paste a uint8 patch into img (uint8), rotated by `angle` degrees and scaled."""
    ph, pw = patch.shape
    h, w = img.shape
    m = cv2.getRotationMatrix2D((pw / 2, ph / 2), angle, scale)
    m[:, 2] += np.array(center) - np.array([pw / 2, ph / 2])
    corners = np.array([[0, 0, 1], [pw, 0, 1], [pw, ph, 1], [0, ph, 1]], np.float64) @ m.T
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    m[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(patch, m, size, flags=cv2.INTER_AREA if scale < 1 else
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(np.full_like(patch, 255) if mask is None else mask, m, size,
                       flags=cv2.INTER_LINEAR)
    roi = img[y0:y1, x0:x1]
    af = a.astype(np.float32) / 255
    roi[:] = (roi * (1 - af) + warped * af).astype(np.uint8)


# ----------------------------------------------------------------------- backgrounds


def _u8(f: np.ndarray, w: int, h: int) -> np.ndarray:
    """A low-resolution albedo field in [0, 1] as a uint8 image of size (w, h)."""
    img = (np.clip(f, 0, 1) * 255).astype(np.uint8)
    return img if img.shape == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _ramp(profile: np.ndarray, start: float, step: float, normal: tuple[float, float],
          h: int, w: int) -> np.ndarray:
    """Image whose value at (x, y) is `profile` sampled at (x*nx + y*ny - start) / step."""
    nx, ny = normal
    m = np.array([[nx / step, ny / step, -start / step], [0, 0, 0]], np.float64)
    src = np.ascontiguousarray(np.asarray(profile, np.float32)[None, :])
    return cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _bg_wall(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = _u(rng, 0.35, 0.85)
    hs, ws = h // 4, w // 4
    broad, fine = _smooth(rng, hs, ws, 3), _smooth(rng, hs, ws, 30)
    img = _u8(base * (1 + 0.25 * (broad - 0.5)) + 0.04 * (fine - 0.5), w, h)
    for _ in range(int(rng.integers(0, 4))):  # switches, frames, signs on the wall
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        bw, bh = int(rng.integers(w // 20, w // 4)), int(rng.integers(h // 20, h // 3))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), _gray(rng, 0.1, 0.95), -1, cv2.LINE_AA)
        if rng.random() < 0.5:
            _text_block(rng, img, x + 4, y + 14, bw - 8, int(rng.integers(1, 5)),
                        _u(rng, 0.3, 0.7), _gray(rng, 0.0, 0.3))
    return img


def _wood(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Wood grain at half resolution: long streaks and gently bent growth rings."""
    hs, ws = h // 2, w // 2
    vertical = rng.random() < 0.5
    along, across = (hs, ws) if vertical else (ws, hs)
    streaks = rng.random((4, int(rng.integers(40, 160))), dtype=np.float32)
    streaks = cv2.resize(streaks, (across, along), interpolation=cv2.INTER_CUBIC)
    period = _u(rng, 8, 40)
    bend = _smooth(rng, along, across, 2)
    x = np.arange(across, dtype=np.float32)[None, :]
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (x / period + _u(rng, 0.3, 1.5) * bend))
    f = 1 - _u(rng, 0.1, 0.3) * rings**4 - _u(rng, 0.05, 0.15) * streaks
    if not vertical:
        f = np.ascontiguousarray(f.T)
    base = _u(rng, 0.25, 0.7)
    return _u8(base * f * (0.9 + 0.2 * _smooth(rng, hs, ws, 4)), w, h)


def _bg_table(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    if rng.random() < 0.6:
        img = _wood(rng, h, w)
    else:  # laminate or desk mat with speckle
        hs, ws = h // 2, w // 2
        speckle, broad = _grain(rng, hs, ws, 1), _smooth(rng, hs, ws, 3)
        img = _u8(_u(rng, 0.2, 0.8) + 0.04 * speckle + 0.1 * (broad - 0.5), w, h)
    for _ in range(int(rng.integers(0, 4))):  # objects: cups, sheets of paper, pens
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            ax = (int(rng.integers(15, max(16, w // 6))), int(rng.integers(15, max(16, h // 5))))
            cv2.ellipse(img, c, ax, _u(rng, 0, 180), 0, 360, _gray(rng, 0.05, 0.95), -1,
                        cv2.LINE_AA)
        else:
            sheet = np.full((int(rng.integers(60, 300)), int(rng.integers(60, 300))),
                            _gray(rng, 0.75, 0.95), np.uint8)
            _text_block(rng, sheet, 8, 20, sheet.shape[1] - 16, sheet.shape[0] // 18,
                        _u(rng, 0.3, 0.6), _gray(rng, 0.05, 0.35))
            _stamp(img, sheet, c, _u(rng, 0, 360), _u(rng, 0.5, 1.5))
    return img


def _bg_indoor(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = _bg_wall(rng, h, w)
    horizon = int(h * _u(rng, 0.45, 0.9))
    fh = h - horizon
    img[horizon:] = _bg_table(rng, fh, w) if rng.random() < 0.6 else _wood(rng, fh, w)
    cv2.line(img, (0, horizon), (w, horizon), _gray(rng, 0.05, 0.9), int(rng.integers(1, 8)))
    for _ in range(int(rng.integers(1, 5))):  # door, window, shelf, picture, cabinet
        x, bw = int(rng.integers(-w // 8, w)), int(rng.integers(w // 12, w // 3))
        y, bh = int(rng.integers(-h // 4, horizon)), int(rng.integers(h // 8, h))
        skew = int(rng.integers(-bw // 6 - 1, bw // 6 + 1))
        pts = np.array([[x, y], [x + bw, y + skew], [x + bw, y + bh - skew], [x, y + bh]])
        cv2.fillConvexPoly(img, pts.astype(np.int32), _gray(rng, 0.03, 1.0), cv2.LINE_AA)
        if rng.random() < 0.4:  # window bars or shelf boards
            for t in np.linspace(0, 1, int(rng.integers(2, 5)))[1:-1]:
                yy = int(y + t * bh)
                cv2.line(img, (x, yy), (x + bw, yy + skew), _gray(rng, 0.05, 0.6), 3)
    sigma = _u(rng, 0.5, 3.0)  # out of the focus plane
    return cv2.GaussianBlur(img, (0, 0), sigma)


def _bg_poster(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    paper = _u(rng, 0.6, 0.95)
    img = np.full((h, w), int(paper * 255), np.uint8)
    ink = _gray(rng, 0.02, 0.3)
    y = int(rng.integers(10, 60))
    while y < h:
        kind = rng.random()
        if kind < 0.2:  # headline
            scale = _u(rng, 1.2, 3.0)
            cv2.putText(img, _word(rng, 4, 12).upper(), (int(rng.integers(5, w // 3)), y),
                        int(rng.choice(FONTS[:4])), scale, ink, int(rng.integers(2, 6)),
                        cv2.LINE_AA)
            y += int(40 * scale)
        elif kind < 0.35:  # a band or picture
            bh = int(rng.integers(30, h // 3))
            x0 = int(rng.integers(0, w // 2))
            patch = (_smooth(rng, bh, w - x0, int(rng.integers(3, 20))) * 255).astype(np.uint8)
            img[y : y + bh, x0:] = patch[: max(0, min(bh, h - y))]
            y += bh + int(rng.integers(10, 40))
        else:  # columns of small print
            lines = int(rng.integers(2, 10))
            scale = _u(rng, 0.3, 0.8)
            cols = int(rng.integers(1, 4))
            cw = w // cols
            for c in range(cols):
                _text_block(rng, img, c * cw + 10, y, cw - 20, lines, scale, ink)
            y += int(lines * 28 * scale) + int(rng.integers(10, 40))
    return img


def _bg_tiles(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    tile = _u(rng, 0.3, 0.9)
    hs, ws = h // 2, w // 2
    f = tile + 0.05 * (_smooth(rng, hs, ws, 6) - 0.5) + 0.015 * _grain(rng, hs, ws, 1)
    img = _u8(f, w, h)
    period = _u(rng, 25, 160)
    ang = _u(rng, 0, math.pi / 2) if rng.random() < 0.4 else _u(rng, -0.05, 0.05)
    grout = _gray(rng, 0.1, 0.95)
    thick = int(rng.integers(1, 6))
    diag = int(math.hypot(h, w))
    for direction in (ang, ang + math.pi / 2):
        d = np.array([math.cos(direction), math.sin(direction)])
        nrm = np.array([-d[1], d[0]])
        for k in range(-diag // int(period) - 1, diag // int(period) + 2):
            p = np.array([w / 2, h / 2]) + nrm * k * period
            a, b = (p - d * diag).astype(int), (p + d * diag).astype(int)
            cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), grout, thick,
                     cv2.LINE_AA)
    return img


def _bg_stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Blinds, bars, striped fabric: a periodic profile across the frame."""
    ang = _u(rng, 0, math.pi)
    period = _logu(rng, 5, 60)
    t = np.arange(int(period * 8), dtype=np.float32) / 8  # one period, 8 samples a pixel
    wave = np.sin(t / period * 2 * np.pi)
    if rng.random() < 0.5:  # hard edges
        wave = np.clip(wave * 8, -1, 1)
    lo, hi = sorted((_u(rng, 0.05, 0.9), _u(rng, 0.05, 0.9)))
    diag = math.hypot(h, w)
    profile = np.tile(lo + (hi - lo) * (0.5 + 0.5 * wave), int(2 * diag / period) + 2)
    f = _ramp(profile, -diag - _u(rng, 0, period), 1 / 8, (math.cos(ang), math.sin(ang)), h, w)
    f *= 0.9 + 0.2 * _smooth(rng, h, w, 3)
    return (np.clip(f, 0, 1) * 255).astype(np.uint8)


def _bg_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Concrete, carpet, fabric: noise at several scales (at half resolution)."""
    hs, ws = h // 2, w // 2
    f = _u(rng, 0.25, 0.75) + 0.25 * (_smooth(rng, hs, ws, int(rng.integers(3, 10))) - 0.5)
    f = f + 0.12 * (_smooth(rng, hs, ws, int(rng.integers(20, 80))) - 0.5)
    f = f + _u(rng, 0.02, 0.08) * _grain(rng, hs, ws, int(rng.integers(1, 3)))
    if rng.random() < 0.4:  # fabric weave
        period = _u(rng, 2.5, 5)
        yy = np.arange(hs, dtype=np.float32)[:, None]
        xx = np.arange(ws, dtype=np.float32)[None, :]
        f = f + 0.06 * np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)
    return _u8(f, w, h)


def _bg_gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = _u(rng, 0.05, 0.95), _u(rng, 0.05, 0.95)
    ang = _u(rng, 0, 2 * math.pi)
    hs, ws = h // 4, w // 4
    yy = np.linspace(-0.5, 0.5, hs, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, ws, dtype=np.float32)[None, :]
    t = 0.5 + xx * math.cos(ang) + yy * math.sin(ang)
    f = a + (b - a) * t + 0.03 * (_smooth(rng, hs, ws, 5) - 0.5)
    return _u8(f, w, h)


BACKGROUNDS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "indoor": _bg_indoor,
    "wall": _bg_wall,
    "table": _bg_table,
    "poster": _bg_poster,
    "tiles": _bg_tiles,
    "stripes": _bg_stripes,
    "texture": _bg_texture,
    "gradient": _bg_gradient,
}
BG_WEIGHTS = (0.2, 0.12, 0.15, 0.16, 0.1, 0.06, 0.11, 0.1)


# ---------------------------------------------------------------------------- decoys


def _decoy_patch(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A uint8 patch of a 2-D-looking pattern that is not a QR code, with a light margin."""
    cell = int(rng.integers(2, 9))
    light, dark = _gray(rng, 0.7, 0.95), _gray(rng, 0.02, 0.2)
    if kind == "checker":
        n = int(rng.integers(4, 12))
        mods = (np.add.outer(np.arange(n), np.arange(n)) % 2).astype(bool)
        cell = int(rng.integers(4, 20))
    elif kind == "grid":
        n = int(rng.integers(10, 40))
        mods = rng.random((n, n)) < _u(rng, 0.3, 0.6)
    elif kind == "bullseye":  # a lone finder-like icon
        mods = np.zeros((7, 7), bool)
        mods[0, :] = mods[-1, :] = mods[:, 0] = mods[:, -1] = True
        mods[2:5, 2:5] = True
        cell = int(rng.integers(3, 12))
    else:
        fmt = {"datamatrix": zxingcpp.BarcodeFormat.DataMatrix,
               "aztec": zxingcpp.BarcodeFormat.Aztec,
               "pdf417": zxingcpp.BarcodeFormat.PDF417,
               "code128": zxingcpp.BarcodeFormat.Code128}[kind]
        text = "".join(rng.choice(list(ALNUM[:36]), int(rng.integers(6, 30))))
        mods = _symbol(text, fmt)
    ky = cell * (int(rng.integers(3, 6)) if kind == "pdf417" else 1)
    if kind == "code128":
        mods = mods[:1]
        ky = int(rng.integers(30, 90))
    up = _upscale_modules(mods, cell, ky)
    margin = int(cell * _u(rng, 1, 4))
    patch = np.full((up.shape[0] + 2 * margin, up.shape[1] + 2 * margin), light, np.uint8)
    patch[margin:-margin, margin:-margin] = np.where(up > 0, dark, light)
    return patch


def _add_decoys(rng: np.random.Generator, img: np.ndarray) -> list[str]:
    kinds = ["checker", "grid", "bullseye", "datamatrix", "aztec", "pdf417", "code128"]
    h, w = img.shape
    used = []
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(kinds))
        patch = _decoy_patch(rng, kind)
        scale = min(1.0, 0.6 * min(h, w) / max(patch.shape)) * _u(rng, 0.6, 1.2)
        center = (_u(rng, 0.1, 0.9) * w, _u(rng, 0.1, 0.9) * h)
        _stamp(img, patch, center, _u(rng, -180, 180), scale)
        used.append(kind)
    return used


# -------------------------------------------------------------------------- carriers


def _dot_gain(rng: np.random.Generator, up: np.ndarray, k: int) -> np.ndarray:
    """Ink spread or thin print: grow or shrink dark modules by a fraction of a module."""
    soft = cv2.GaussianBlur(up.astype(np.float32), (0, 0), 0.15 * k)
    return (soft > _u(rng, 0.4, 0.6)).astype(np.uint8)


def _bend(rng: np.random.Generator, tex: np.ndarray) -> tuple[np.ndarray, Callable]:
    """A card on a pillar or bottle: a cylinder bend about the vertical axis, seen from the
    front. Returns the bent texture and the map of texture x to bent x."""
    h, w = tex.shape[:2]
    half = w / 2
    r = half / _u(rng, 0.3, 0.9)  # cylinder radius in texture px
    x = np.arange(w, dtype=np.float32) - half
    arc = r * np.arcsin(np.clip(x / r, -1, 1))  # where a visible point lies on the flat card
    mapx = np.tile((arc + half).astype(np.float32), (h, 1))
    mapy = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    bent = cv2.remap(tex, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    bent[..., 0] *= (0.8 + 0.2 * np.cos(arc / r))[None, :]  # light falls off around the bend

    def to_bent(xt: float) -> float:
        return half + r * math.sin((xt - half) / r)

    return bent, to_bent


def _paper_card(rng: np.random.Generator, mods: np.ndarray, k: int, thin: bool) -> _Carrier:
    rows, cols = mods.shape
    quiet = _u(rng, 1.0, 2.0) if thin else _u(rng, 2.5, 8.0)
    q = max(1, round(quiet * k))
    caption = 0 if thin or rng.random() < 0.6 else round(_u(rng, 3, 7) * k)
    paper = _u(rng, 0.72, 0.93)
    ink = _u(rng, 0.03, 0.1) if rng.random() < 0.85 else _u(rng, 0.12, 0.3)
    inverted = rng.random() < 0.05
    up = _upscale_modules(mods, k, k)
    if rng.random() < 0.5:
        up = _dot_gain(rng, up, k)
    ground, mark = (ink, paper) if inverted else (paper, ink)  # card, dark modules
    th, tw = rows * k + 2 * q + caption, cols * k + 2 * q
    card = np.full((th, tw), int(ground * 255), np.uint8)
    card[q : q + rows * k, q : q + cols * k] = np.where(up > 0, int(mark * 255),
                                                        int(ground * 255))
    if caption:
        _text_block(rng, card, q, q + rows * k + int(caption * 0.6), tw - 2 * q, 1,
                    caption / 60, int(mark * 255))
    x0, y0 = q, q
    if thin and rng.random() < 0.5:  # a printed frame right outside the thin margin
        b = max(1, round(_u(rng, 0.7, 3.0) * k))
        card = cv2.copyMakeBorder(card, b, b, b, b, cv2.BORDER_CONSTANT, value=int(ink * 255))
        x0, y0 = x0 + b, y0 + b
    refl = card.astype(np.float32) / 255
    refl *= 1 + 0.02 * _grain(rng, *refl.shape, step=max(1, k // 2))
    sticker = rng.random() < 0.4
    alpha = _rounded_mask(*refl.shape, round(_u(rng, 0.5, 2.5) * k) if sticker else 0)
    zero = np.zeros_like(refl)
    tex = np.dstack([refl, zero, alpha.astype(np.float32) / 255, zero])
    rect = (x0, y0, cols * k, rows * k)
    bent = rng.random() < 0.08
    if bent:
        tex, to_bent = _bend(rng, tex)
        xb0, xb1 = to_bent(x0), to_bent(x0 + cols * k)
        rect = (xb0, y0, xb1 - xb0, rows * k)
    tex[..., 0] *= tex[..., 2]
    return _Carrier(tex, rect, (rows, cols), quiet, "paper", inverted,
                    glossy=rng.random() < 0.25, extra={"bent": bent, "ink": ink, "paper": paper})


def _screen_pattern(rng: np.random.Generator, emit: np.ndarray, k: int) -> str:
    """Moire bands or a visible pixel grid on the screen texture (in place)."""
    h, w = emit.shape
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    if rng.random() < 0.6:
        period = _u(rng, 1.5, 6) * k
        ang = _u(rng, 0, math.pi)
        curve = _u(rng, -1, 1) / max(h, w)
        phase = (xx * math.cos(ang) + yy * math.sin(ang) + curve * (xx - w / 2) ** 2) / period
        emit *= 1 - _u(rng, 0.04, 0.18) * (0.5 + 0.5 * np.sin(2 * np.pi * phase))
        return "moire"
    pitch = max(2, k // int(rng.integers(2, 5)))
    grid = ((xx % pitch) < 1) | ((yy % pitch) < 1)
    emit *= np.where(grid, np.float32(_u(rng, 0.55, 0.85)), np.float32(1))
    return "pixel_grid"


def _phone(rng: np.random.Generator, mods: np.ndarray, k: int) -> _Carrier:
    rows, cols = mods.shape
    dark_mode = rng.random() < 0.55
    inverted = dark_mode and rng.random() < 0.85
    quiet = _u(rng, 1.5, 4.0)
    sw = round((cols + 2 * quiet) * k / _u(rng, 0.7, 0.95))
    sh = round(sw * _u(rng, 1.9, 2.2))
    bg = _u(rng, 0.88, 1.0) if not dark_mode else _u(rng, 0.03, 0.12)
    fg = 0.08 if not dark_mode else _u(rng, 0.7, 0.9)
    scr = np.full((sh, sw), int(bg * 255), np.uint8)
    header = int(sh * _u(rng, 0.06, 0.12))
    cv2.rectangle(scr, (0, 0), (sw, header), _gray(rng, 0.1, 0.8), -1)
    _text_block(rng, scr, 4, int(sh * 0.03), sw // 3, 1, max(0.25, k / 14), int(fg * 255))
    x0 = (sw - cols * k) // 2
    y0 = int(sh * _u(rng, 0.2, 0.38))
    up = _upscale_modules(mods, k, k)
    if inverted:
        lit = _gray(rng, 0.8, 1.0)
        scr[y0 : y0 + rows * k, x0 : x0 + cols * k] = np.where(up > 0, lit, int(bg * 255))
    else:
        q = round(quiet * k)
        white = _gray(rng, 0.9, 1.0)
        if dark_mode:  # a white box around the code
            cv2.rectangle(scr, (x0 - q, y0 - q), (x0 + cols * k + q, y0 + rows * k + q), white, -1)
        scr[y0 : y0 + rows * k, x0 : x0 + cols * k] = np.where(up > 0, _gray(rng, 0, 0.04),
                                                              white)
    ty = y0 + rows * k + int(quiet * k) + int(3 * k)
    _text_block(rng, scr, sw // 10, ty, sw * 8 // 10, int(rng.integers(1, 4)), max(0.25, k / 10),
                int(fg * 255))
    by = int(sh * _u(rng, 0.8, 0.9))
    cv2.rectangle(scr, (sw // 6, by), (sw * 5 // 6, by + 4 * k), _gray(rng, 0.2, 0.7), -1)
    emit = scr.astype(np.float32) / 255
    pattern = _screen_pattern(rng, emit, k) if rng.random() < 0.35 else "none"
    bez = max(2, round(sw * _u(rng, 0.025, 0.06)))
    chin = bez + (round(sw * _u(rng, 0.0, 0.15)) if rng.random() < 0.3 else 0)
    bh, bw = sh + bez + chin, sw + 2 * bez
    body_alpha = _rounded_mask(bh, bw, round(bw * _u(rng, 0.06, 0.14))).astype(np.float32) / 255
    scr_mask = _rounded_mask(sh, sw, round(sw * _u(rng, 0.03, 0.1))).astype(np.float32) / 255
    emit_full = np.zeros((bh, bw), np.float32)
    emit_full[bez : bez + sh, bez : bez + sw] = emit * scr_mask
    refl = np.full((bh, bw), _u(rng, 0.03, 0.08), np.float32)
    glass = np.float32(0.04) + 0.12 * _smooth(rng, sh, sw, 3) ** 2  # reflections in the glass
    refl[bez : bez + sh, bez : bez + sw] = glass * scr_mask + refl[0, 0] * (1 - scr_mask)
    tex = np.dstack([refl * body_alpha, emit_full * body_alpha, body_alpha,
                     np.zeros_like(refl)])
    if inverted or not dark_mode:  # the screen's background is the quiet zone
        quiet = min(x0, y0 - header) / k
    return _Carrier(tex, (x0 + bez, y0 + bez, cols * k, rows * k), (rows, cols), quiet,
                    "screen", inverted, glossy=True,
                    extra={"dark_mode": dark_mode, "pattern": pattern,
                           "brightness": _logu(rng, 0.5, 2.5)})


def _prefilter(tex: np.ndarray, shrink: float) -> np.ndarray:
    """Antialias a texture that the warp will shrink `shrink` times."""
    if shrink <= 1.05:
        return tex
    sigma = 0.5 * math.sqrt(shrink * shrink - 1)
    return cv2.GaussianBlur(tex, (0, 0), sigma)


# ------------------------------------------------------------------------ geometry


def _rotation(roll: float, tilt: float, axis: float) -> np.ndarray:
    """Roll in the card plane, then tilt about an in-plane axis (radians)."""
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0],
                   [0, 0, 1]])
    rt = cv2.Rodrigues(np.array([math.cos(axis), math.sin(axis), 0.0]) * tilt)[0]
    return rt @ rz


def _project(pts: np.ndarray, center: np.ndarray, unit: float, R: np.ndarray, Z: float,
             f: float) -> np.ndarray:
    world = np.zeros((len(pts), 3))
    world[:, :2] = (pts - center) * unit
    cam = world @ R.T
    cam[:, 2] += Z
    return f * cam[:, :2] / cam[:, 2:3]


def _apply_h(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ H.T
    return p[:, :2] / p[:, 2:3]


def _sample_pose(rng: np.random.Generator) -> dict[str, float]:
    roll = _u(rng, -180, 180) if rng.random() < 0.55 else float(rng.normal(0, 8))
    r = rng.random()
    tilt = _u(rng, 0, 10) if r < 0.4 else _u(rng, 10, 25) if r < 0.72 else _u(rng, 25, 45)
    return {"roll_deg": roll, "tilt_deg": tilt, "tilt_axis_deg": _u(rng, 0, 360)}


def _place(
    rng: np.random.Generator,
    car: _Carrier,
    side: float,
    size: tuple[int, int],
    f: float,
    taken: list[np.ndarray],
) -> _Placed | None:
    """Pose the carrier so that its symbol, side ~`side` px, lies inside the frame."""
    w, h = size
    th, tw = car.tex.shape[:2]
    x, y, cw, ch = car.code_rect
    center = np.array([x + cw / 2, y + ch / 2])
    unit = 1.0 / max(cw, ch)
    corners = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], float)
    code = np.array([[x, y], [x + cw, y], [x + cw, y + ch], [x, y + ch]], float)
    mod = cw / car.modules[1]
    margin = min(car.quiet, 1.0) * mod
    guard = code + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * margin
    pose = _sample_pose(rng)
    extent = float(np.max(np.hypot(*(corners - center).T))) * unit
    for attempt in range(24):
        Z = f / side
        tilt = min(pose["tilt_deg"], math.degrees(math.asin(min(1.0, 0.6 * Z / extent))))
        R = _rotation(math.radians(pose["roll_deg"]), math.radians(tilt),
                      math.radians(pose["tilt_axis_deg"]))
        dst = _project(corners, center, unit, R, Z, f)
        Hc = cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32))
        g = _apply_h(Hc, guard)
        lo, hi = g.min(0), g.max(0)
        room = np.array([w, h]) - 4 - (hi - lo)
        if np.any(room < 0) or attempt in (8, 16):
            side *= 0.85
            continue
        t = np.array([4, 4]) - lo + rng.random(2) * room
        H = np.array([[1, 0, t[0]], [0, 1, t[1]], [0, 0, 1]]) @ Hc
        outline = _apply_h(H, corners)
        if any(_overlaps(outline, o) for o in taken):
            continue
        quad = _apply_h(H, code)
        return _Placed(car, H, quad, outline, {**pose, "tilt_deg": tilt})
    return None


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    area, _ = cv2.intersectConvexConvex(a.astype(np.float32), b.astype(np.float32))
    return area > 0


def _composite(scene: np.ndarray, illum: np.ndarray, pl: _Placed, emission: float
               ) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Warp the carrier into the scene radiance (in place); return its ROI and alpha."""
    h, w = scene.shape
    lo = np.floor(pl.outline.min(0)).astype(int) - 1
    hi = np.ceil(pl.outline.max(0)).astype(int) + 2
    x0, y0 = max(0, lo[0]), max(0, lo[1])
    x1, y1 = min(w, hi[0]), min(h, hi[1])
    if x1 <= x0 or y1 <= y0:
        return None
    T = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float) @ pl.H
    warped = cv2.warpPerspective(pl.carrier.tex, T, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    roi = (slice(y0, y1), slice(x0, x1))
    alpha = warped[..., 2]
    sub = scene[roi]
    sub *= 1 - alpha
    sub += warped[..., 0] * illum[roi]
    if pl.carrier.kind == "screen":
        sub += warped[..., 1] * np.float32(emission)
    return roi, alpha


def _shadow_under(scene: np.ndarray, pl: _Placed, rng: np.random.Generator) -> None:
    """A soft contact shadow of a card or phone on the surface behind it."""
    h, w = scene.shape
    off = rng.normal(0, 3, 2)
    poly = (pl.outline + off).astype(np.float32)
    lo = np.maximum(np.floor(poly.min(0)).astype(int) - 12, 0)
    hi = np.minimum(np.ceil(poly.max(0)).astype(int) + 12, [w, h])
    if np.any(hi - lo < 2):
        return
    m = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
    cv2.fillConvexPoly(m, np.round((poly - lo) * 4).astype(np.int32), 255, cv2.LINE_AA, 2)
    m = cv2.GaussianBlur(m.astype(np.float32) / 255, (0, 0), _u(rng, 1.5, 5))
    scene[lo[1] : hi[1], lo[0] : hi[0]] *= 1 - _u(rng, 0.1, 0.35) * m


# --------------------------------------------------------------------------- light


def _illumination(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, dict]:
    """Illumination of reflecting surfaces: a gradient, a hot spot, smooth variation."""
    hs, ws = max(2, h // 8), max(2, w // 8)
    yy = np.linspace(-0.5, 0.5, hs, dtype=np.float32)[:, None] * (h / w)
    xx = np.linspace(-0.5, 0.5, ws, dtype=np.float32)[None, :]
    strong = rng.random() < 0.3
    slope = _u(rng, 0.8, 2.2) if strong else _u(rng, 0, 0.6)
    ang = _u(rng, 0, 2 * math.pi)
    f = np.exp(slope * (xx * math.cos(ang) + yy * math.sin(ang)))
    info: dict[str, Any] = {"light_slope": slope}
    if rng.random() < 0.2:  # a lamp's hot spot
        c = rng.uniform(-0.5, 0.5, 2)
        s = _u(rng, 0.08, 0.3)
        r2 = (xx - c[0]) ** 2 + (yy - c[1]) ** 2
        f = f * (1 + _u(rng, 0.5, 2.0) * np.exp(-r2 / (2 * s * s)))
        info["hot_spot"] = True
    f = f * (0.85 + 0.3 * _smooth(rng, hs, ws, 3))
    return cv2.resize(f.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR), info


def _shadow_edge(rng: np.random.Generator, illum: np.ndarray, through: np.ndarray) -> float:
    """Multiply a soft-edged shadow into `illum` whose edge crosses the point `through`."""
    h, w = illum.shape
    ang = _u(rng, 0, 2 * math.pi)
    normal = (math.cos(ang), math.sin(ang))
    width = _logu(rng, 1.0, 25.0)
    depth = _u(rng, 0.35, 0.75)
    profile = 1 - depth * np.clip(np.linspace(-1, 2, 49), 0, 1)  # 16 samples per edge width
    start = through[0] * normal[0] + through[1] * normal[1] - 1.5 * width
    cv2.multiply(illum, _ramp(profile, start, width / 16, normal, h, w), dst=illum)
    return depth


def _vignette(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    hs, ws = max(2, h // 8), max(2, w // 8)
    yy = np.linspace(-1, 1, hs, dtype=np.float32)[:, None] * (h / w)
    xx = np.linspace(-1, 1, ws, dtype=np.float32)[None, :]
    cx, cy = rng.normal(0, 0.1, 2)
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    return (1 - strength * np.clip(r2, 0, 1.5)).astype(np.float32)  # at 1/8 resolution


def _add_glare(rng: np.random.Generator, scene: np.ndarray, pl: _Placed, roi: tuple,
               alpha: np.ndarray, level: float) -> None:
    """A specular highlight on a glossy carrier, near or over the code."""
    ys, xs = roi
    q = pl.quad
    side = float(np.mean(np.hypot(*(q - np.roll(q, 1, 0)).T)))
    c = q.mean(0) + rng.uniform(-0.7, 0.7, 2) * side / 2
    sx, sy = _u(rng, 0.06, 0.35) * side, _u(rng, 0.04, 0.2) * side
    ang = _u(rng, 0, math.pi)
    yy = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] - c[1]
    xx = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] - c[0]
    u = xx * math.cos(ang) + yy * math.sin(ang)
    v = -xx * math.sin(ang) + yy * math.cos(ang)
    blob = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    scene[roi] += _u(rng, 0.3, 2.0) * level * blob * alpha


# -------------------------------------------------------------------- optics, sensor


def _disk(r: float) -> np.ndarray:
    n = math.ceil(r)
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
    k = np.clip(r + 0.5 - np.hypot(xx, yy), 0, 1).astype(np.float32)
    return k / k.sum()


def _streak(length: float, angle: float) -> np.ndarray:
    n = math.ceil(length / 2) + 1
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float64)
    d = np.array([math.cos(angle), math.sin(angle)])
    t = np.clip(xx * d[0] + yy * d[1], -length / 2, length / 2)
    dist = np.hypot(xx - t * d[0], yy - t * d[1])
    k = np.clip(1 - dist, 0, 1).astype(np.float32)
    return k / k.sum()


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution with a centered, mostly sparse kernel. OpenCV convolves kernels up to
    11x11 directly, over their nonzero taps only, and larger ones by DFT at ~20 ms a 720p
    frame; so a larger kernel is cut into tiles of at most 11x11, each applied on its own."""
    kh, kw = kernel.shape
    if kh <= 11 and kw <= 11:
        return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
    h, w = img.shape
    ry, rx = kh // 2, kw // 2
    padded = cv2.copyMakeBorder(img, ry, ry, rx, rx, cv2.BORDER_REFLECT)
    out = np.zeros_like(img)
    for r0 in range(0, kh, 11):
        for c0 in range(0, kw, 11):
            tile = np.ascontiguousarray(kernel[r0 : r0 + 11, c0 : c0 + 11])
            if not tile.any():
                continue
            part = cv2.filter2D(padded, -1, tile, anchor=(0, 0), borderType=cv2.BORDER_REFLECT)
            out += part[r0 : r0 + h, c0 : c0 + w]
    return out


def _blur(rng: np.random.Generator, img: np.ndarray, tags: set[str], attrs: dict) -> np.ndarray:
    """Lens blur, sometimes defocus (a disk) and motion (a streak), in linear light."""
    h, w = img.shape
    lens = _u(rng, 0.45, 0.9)
    attrs["lens_sigma"] = lens
    img = cv2.GaussianBlur(img, (0, 0), lens, dst=img)
    if rng.random() < 0.25:
        r = _logu(rng, 1.2, 4.5)
        if r < 2.0:
            img = cv2.filter2D(img, -1, _disk(r), borderType=cv2.BORDER_REFLECT)
        else:  # the disk removes what half the resolution cannot hold: filter there
            half = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            half = cv2.filter2D(half, -1, _disk(r / 2), borderType=cv2.BORDER_REFLECT)
            img = cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR)
        attrs["defocus_radius"] = r
        tags.add("defocus")
    if rng.random() < 0.22:
        length = _logu(rng, 2.5, 14.0)
        angle = _u(rng, 0, math.pi)
        img = _filter(img, _streak(length, angle))
        attrs["motion_length"] = length
        attrs["motion_angle_deg"] = math.degrees(angle)
        tags.add("motion_blur")
    return img


def _tone(gamma: float, contrast: float) -> Callable[[np.ndarray], np.ndarray]:
    """Camera tone curve, linear float -> uint8: x**(1/gamma), then an S-curve. Computed as
    a square root (cheap, and it keeps the shadows' precision in 8 bits), then a LUT."""
    x = np.linspace(0, 1, 256) ** (2 / gamma)
    s = (1 - contrast) * x + contrast * x * x * (3 - 2 * x)
    lut = np.clip(np.round(s * 255), 0, 255).astype(np.uint8)

    def apply(lin: np.ndarray) -> np.ndarray:
        out = cv2.convertScaleAbs(cv2.sqrt(np.maximum(lin, 0, out=lin)), alpha=255)
        return cv2.LUT(out, lut, dst=out)

    return apply


def _gauss_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Standard normal float32 noise (256 levels), from raw random bytes."""
    raw = rng.bit_generator.random_raw((h * w + 7) // 8).view(np.uint8)[: h * w]
    return cv2.LUT(raw.reshape(h, w), _GAUSS_LUT)


def _sensor(rng: np.random.Generator, lin: np.ndarray, dim: bool, tags: set[str],
            attrs: dict) -> np.ndarray:
    """Shot and read noise, ISP denoise, tone curve, sharpening: linear -> uint8."""
    h, w = lin.shape
    full_well = _logu(rng, 100, 600) if dim else _logu(rng, 800, 10000)
    read = _u(rng, 0.001, 0.004)
    std = cv2.addWeighted(lin, 1 / full_well, lin, 0, read * read)
    cv2.sqrt(std, dst=std)
    noise = _gauss_noise(rng, h, w)
    lin = cv2.add(lin, cv2.multiply(std, noise, dst=std), dst=lin)
    del std, noise
    denoise = rng.random() < (0.8 if dim else 0.3)  # the ISP smooths more in low light
    if denoise:
        lin = cv2.GaussianBlur(lin, (0, 0), _u(rng, 0.6, 1.2) if dim else _u(rng, 0.5, 0.9),
                               dst=lin)
    gamma, contrast = _u(rng, 1.9, 2.4), _u(rng, 0.0, 0.5)
    tone = _tone(gamma, contrast)
    img = tone(lin)
    # noise at the frame's median level, in 8-bit steps (before denoise)
    med = float(np.median(lin[::32, ::32]))
    sd = math.sqrt(max(med, 0) / full_well + read * read)
    probe = tone(np.array([[max(med - sd, 0), med + sd]], np.float32)).astype(float)
    sigma8 = float(probe[0, 1] - probe[0, 0]) / 2 * (0.6 if denoise else 1.0)
    attrs.update(full_well=full_well, noise_sigma=sigma8, gamma=gamma, denoise=denoise)
    if sigma8 >= 3.5:
        tags.add("noise")
    if rng.random() < 0.4:
        amount, radius = _u(rng, 0.3, 1.5), _u(rng, 0.8, 2.0)
        soft = cv2.GaussianBlur(img, (0, 0), radius)
        img = cv2.addWeighted(img, 1 + amount, soft, -amount, 0)
        attrs["sharpen"] = amount
        if amount >= 0.6:
            tags.add("sharpened")
    return img


# ---------------------------------------------------------------------------- codes


def _code_text(rng: np.random.Generator) -> tuple[str, str]:
    if rng.random() < 0.85:
        return "QT1P" + "".join(rng.choice(list(ALNUM), 39)), "alnum"
    token = "".join(rng.choice(list(URL_CHARS), int(rng.integers(6, 30))))
    host = str(rng.choice(URL_HOSTS))
    path = str(rng.choice(["c", "v", "in", "checkin", "s"]))
    return f"https://{host}/{path}/{token}", "url"


def _code_side(rng: np.random.Generator, n: int, h: int, two: bool) -> float:
    """Target symbol side in px; small codes have modules of 1.5-3 px."""
    if rng.random() < 0.15:
        return max(45.0, n * _u(rng, 1.6, 3.2))
    top = h * (0.42 if two else 0.85)
    return _logu(rng, max(100.0, 3.2 * n), max(top, 110.0))


def _make_carrier(rng: np.random.Generator, mods: np.ndarray, module_px: float,
                  screen: bool) -> _Carrier:
    k = int(np.clip(math.ceil(1.3 * module_px), 3, 8))
    car = _phone(rng, mods, k) if screen else _paper_card(rng, mods, k, rng.random() < 0.15)
    car.tex = _prefilter(car.tex, k / module_px)
    return car


def _blank_carrier(rng: np.random.Generator, side: float) -> _Carrier:
    """A card with a non-QR symbol or a phone without a code, for frames with no code."""
    kind = str(rng.choice(["datamatrix", "aztec", "grid", "checker"]))
    patch = _decoy_patch(rng, kind)
    mods = patch < 128
    # the patch is drawn already: one texture px per patch px
    car = _paper_card(rng, mods, 1, thin=False) if rng.random() < 0.7 else _phone(rng, mods, 1)
    car.inverted = False
    car.tex = _prefilter(car.tex, max(mods.shape) / side)
    return car


# ---------------------------------------------------------------------------- frame


def camera_frame(seed: int, index: int) -> CameraFrame:
    """Frame `index` of the stream `seed`; a function of (seed, index) only."""
    rng = np.random.default_rng([seed, index])
    w, h = SIZES[int(rng.random() < 0.5)]
    r = rng.random()
    n_codes = 0 if r < 0.15 else 2 if r < 0.25 else 1
    tags: set[str] = set()
    attrs: dict[str, Any] = {}

    bg_kind = str(rng.choice(list(BACKGROUNDS), p=BG_WEIGHTS))
    bg = BACKGROUNDS[bg_kind](rng, h, w)
    decoys = _add_decoys(rng, bg) if rng.random() < (0.45 if n_codes == 0 else 0.25) else []
    if decoys:
        tags.add("decoy")
    illum, light = _illumination(rng, h, w)

    f = w * _u(rng, 0.75, 1.3)  # focal length in px
    placed, codes = _place_codes(rng, n_codes, (w, h), f)
    if n_codes == 0 and rng.random() < 0.5:
        side = _u(rng, 60, h * 0.6)
        pl = _place(rng, _blank_carrier(rng, side), side, (w, h), f, [])
        placed += [pl] if pl else []
    shadow = None
    if placed and rng.random() < 0.18:
        through = placed[0].quad.mean(0) + rng.normal(0, 5, 2)
        shadow = _shadow_edge(rng, illum, through), placed[0].carrier.kind
    scene = cv2.multiply(bg, illum, scale=1 / 255, dtype=cv2.CV_32F)
    glare = _add_carriers(rng, scene, illum, placed, len(codes))

    vig_strength = _u(rng, 0.0, 0.6)
    lin, dim, exposure = _expose(rng, scene, _vignette(rng, h, w, vig_strength))
    lin = _blur(rng, lin, tags, attrs)
    img = _sensor(rng, lin, dim, tags, attrs)

    jpeg = None
    if rng.random() < 0.7:
        quality = int(rng.integers(35, 96))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        jpeg = buf.tobytes()
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        attrs["jpeg_quality"] = quality
        tags.add("jpeg")

    _frame_tags(tags, codes, placed, illum, vig_strength, shadow, dim, glare)
    attrs.update(
        size=(w, h),
        background=bg_kind,
        decoys=decoys,
        codes=codes,
        exposure=exposure,
        vignette=vig_strength,
        shadow_depth=shadow[0] if shadow else None,
        **light,
    )
    attrs["tags"] = sorted(tags)
    texts = frozenset(c["text"] for c in codes)
    return CameraFrame(np.ascontiguousarray(img), texts, _plain(attrs), jpeg)


def _add_carriers(rng: np.random.Generator, scene: np.ndarray, illum: np.ndarray,
                  placed: list[_Placed], n_codes: int) -> bool:
    """Composite the carriers into the scene; True if glare fell on a code's carrier."""
    white_level = float(np.median(illum[::8, ::8]))
    glare = False
    for i, pl in enumerate(placed):
        car = pl.carrier
        if car.kind == "paper" and rng.random() < 0.5:
            _shadow_under(scene, pl, rng)
        emission = car.extra.get("brightness", 1.0) * white_level
        res = _composite(scene, illum, pl, emission)
        if res and car.glossy and rng.random() < (0.35 if car.kind == "screen" else 0.25):
            level = emission if car.kind == "screen" else white_level
            _add_glare(rng, scene, pl, *res, level)
            glare = glare or i < n_codes
    return glare


def _place_codes(rng: np.random.Generator, n_codes: int, size: tuple[int, int], f: float
                 ) -> tuple[list[_Placed], list[dict[str, Any]]]:
    h = size[1]
    placed: list[_Placed] = []
    codes: list[dict[str, Any]] = []
    for _ in range(n_codes):
        text, mode = _code_text(rng)
        ec = str(rng.choice(["L", "M", "Q"], p=[0.3, 0.45, 0.25]))
        mods = _symbol(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ec)
        n = mods.shape[0]
        side = _code_side(rng, n, h, n_codes == 2)
        screen = rng.random() < 0.3
        car = _make_carrier(rng, mods, side / n, screen)
        pl = _place(rng, car, side, size, f, [p.outline for p in placed])
        if pl is None or text in {c["text"] for c in codes}:
            continue
        placed.append(pl)
        q = pl.quad
        edges = np.hypot(*(q - np.roll(q, -1, 0)).T)
        codes.append({
            "text": text, "mode": mode, "ec_level": ec, "version": (n - 17) // 4,
            "modules": n, "carrier": car.kind, "inverted": car.inverted,
            "quiet_zone_modules": car.quiet, "corners": q.tolist(),
            "side_px": float(edges.mean()), "module_px": float(edges.mean() / n),
            **pl.pose, **{k: v for k, v in car.extra.items() if k not in ("ink", "paper")},
        })
    return placed, codes


def _expose(rng: np.random.Generator, scene: np.ndarray, vignette: np.ndarray
            ) -> tuple[np.ndarray, bool, float]:
    """Vignetting and auto exposure on a center-weighted meter; sometimes dim and veiled,
    or clipped. `vignette` is at 1/8 of the frame's resolution."""
    h, w = scene.shape
    vh, vw = vignette.shape
    small = cv2.resize(scene, (vw, vh), interpolation=cv2.INTER_AREA) * vignette
    meter = float(small[h // 32 : -h // 32, w // 32 : -w // 32].mean()) + 1e-4
    high = float(np.percentile(small, 99)) + 1e-4
    target = _u(rng, 0.5, 0.7) ** 2.2
    exposure = min(target / meter, 1.05 / high) * 2 ** float(rng.normal(0, 0.3))
    r = rng.random()
    dim = r < 0.15
    if dim:
        exposure *= _u(rng, 0.12, 0.35)
    elif r > 0.92:
        exposure *= _u(rng, 1.4, 2.5)  # overexposed
    veil = _u(rng, 0.05, 0.3) if dim else _u(rng, 0.0, 0.08)
    gain = cv2.resize(vignette * np.float32(exposure * (1 - veil)), (w, h),
                      interpolation=cv2.INTER_LINEAR)
    out = cv2.multiply(scene, gain, dst=gain)
    out += np.float32(veil * meter * exposure)
    return out, dim, exposure


def _frame_tags(tags: set[str], codes: list[dict], placed: list[_Placed], illum: np.ndarray,
                vig: float, shadow: tuple[float, str] | None, dim: bool, glare: bool) -> None:
    tags.add(("no_code", "one_code", "two_codes")[len(codes)])
    h, w = illum.shape
    for c, pl in zip(codes, placed, strict=False):
        if c["side_px"] < 100:
            tags.add("small")
        if c["inverted"]:
            tags.add("inverted")
        tags.add("screen" if c["carrier"] == "screen" else "paper")
        if c["tilt_deg"] >= 15:
            tags.add("perspective")
        if c["quiet_zone_modules"] < 2.0:
            tags.add("thin_quiet_zone")
        if c.get("pattern", "none") != "none":
            tags.add("moire")
        q = pl.quad
        x0, y0 = np.clip(q.min(0).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(q.max(0).astype(int) + 1, 1, [w, h])
        patch = illum[y0:y1, x0:x1]
        if c["carrier"] == "paper" and float(patch.max()) > 1.5 * float(patch.min()):
            tags.add("uneven_light")
    if vig > 0.45 or (shadow is not None and codes and shadow[1] == "paper"):
        tags.add("uneven_light")
    if dim:
        tags.add("dim")
    if glare:
        tags.add("glare")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to plain Python values, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def generate_camera_frames(
    n: int, seed: int = 0, *, progress: Callable[[int, int], None] | None = None
) -> list[CameraFrame]:
    """`n` frames of the stream `seed`: frame i depends on (seed, i) only."""
    if n < 0 or seed < 0:
        raise ValueError("n and seed must be non-negative")
    frames = []
    for i in range(n):
        frames.append(camera_frame(seed, i))
        if progress is not None:
            progress(i + 1, n)
    return frames
