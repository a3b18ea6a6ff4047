"""`qrtrace demo [--data DIR]`: a walk through issuing codes and reading them back.

Issues a venue token and a few personal tokens, writes their QR codes as PNG files,
photographs them into camera-like frames (tilted, rotated, noisy, one on a dark-mode
phone screen, one frame with no code), reads the frames with the batch decoder and
verifies what it read, a forged token included. (`make run` serves the API and the
officials' page with a demo commune; this is the decoder's part alone.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from api.cli import UsageError
from api.keystore import KeystoreError, load_keyring
from api.notice import notice_if_slow
from api.qrimage import qr_pixels, write_qr
from decoder import decode_frames
from decoder.tokens import Kind, issue_token, verify_tokens

VENUE_ID = 1001
PERSON_IDS = (7, 8, 9, 10)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="issue QR codes, photograph them, read them back",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="data folder for keys.json and the demo's images (default: ./data)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated camera")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def photograph(code: np.ndarray, rng: np.random.Generator, *, inverted: bool = False,
               size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A camera-like grayscale frame of `code`: rotated, tilted, lit unevenly, noisy."""
    width, height = size
    if inverted:  # a phone in dark mode shows light modules on a dark screen
        code = 255 - code
    card = Image.fromarray(code).rotate(float(rng.uniform(0, 360)), Image.BICUBIC, expand=True,
                                        fillcolor=int(rng.integers(150, 230)))
    side = int(rng.uniform(0.35, 0.6) * height)
    card = card.resize((side, side), Image.BICUBIC)
    # A gentle perspective: the card is held at an angle to the camera.
    jitter = rng.uniform(-0.03, 0.03, size=8) * side
    quad = np.array([0, 0, 0, side, side, side, side, 0], dtype=float) + jitter
    card = card.transform((side, side), Image.QUAD, tuple(quad), Image.BICUBIC,
                          fillcolor=int(rng.integers(150, 230)))
    scene = rng.normal(120, 25, (height, width)).clip(0, 255).astype(np.uint8)
    frame = Image.fromarray(scene).filter(ImageFilter.GaussianBlur(6))
    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    frame.paste(card, (x, y))
    light = np.linspace(0.7, 1.1, width)[None, :] * np.linspace(1.05, 0.8, height)[:, None]
    pixels = np.asarray(frame.filter(ImageFilter.GaussianBlur(0.8)), dtype=float) * light
    pixels += rng.normal(0, 6, pixels.shape)
    return pixels.clip(0, 255).astype(np.uint8)


def run(args: argparse.Namespace) -> int:
    try:
        ring = load_keyring(args.data)
    except KeystoreError as exc:
        raise UsageError(str(exc)) from exc
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    rng = np.random.default_rng(args.seed)
    out = args.data / "demo"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make {out}: {exc.strerror or exc}") from exc

    # About a second; the first run after an install compiles the kernels first.
    with notice_if_slow("demo: compiling the decoder's and the tokens' kernels, once after "
                        "an install (tens of seconds)..."):
        return _walk_through(args, ring, rng, out)


def _walk_through(args: argparse.Namespace, ring, rng: np.random.Generator,
                  out: Path) -> int:
    """Issue, photograph, decode, verify and print; returns 0."""
    venue = issue_token(Kind.VENUE, VENUE_ID, ring)
    people = [issue_token(Kind.PERSON, pid, ring) for pid in PERSON_IDS]
    write_qr(venue, out / f"venue-{VENUE_ID}.png")
    for pid, token in zip(PERSON_IDS, people, strict=True):
        write_qr(token, out / f"person-{pid}.png")
    forged = people[0][:-1] + ("A" if people[0][-1] != "A" else "B")

    scenes = [(f"person {pid}", token, pid == PERSON_IDS[-1])
              for pid, token in zip(PERSON_IDS, people, strict=True)]
    scenes += [("forged copy of person 7", forged, False), ("empty turnstile", None, False)]
    frames = [photograph(qr_pixels(token, 4), rng, inverted=inverted) if token
              else photograph(np.full((100, 100), 200, np.uint8), rng)
              for _, token, inverted in scenes]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(out / f"frame-{i}.png")

    decoded = decode_frames(frames)
    texts = [r.texts[0] if r.texts else "" for r in decoded]
    verified = verify_tokens(texts, ring)
    rows = []
    for i, ((label, _, inverted), frame_result, token) in enumerate(
            zip(scenes, decoded, verified, strict=True)):
        scene = label + (" (dark mode)" if inverted else "")
        rows.append({"frame": f"frame-{i}.png", "scene": scene,
                     "frame_status": frame_result.status.value,
                     "token": token.reason if frame_result.texts else "-",
                     "kind": Kind(token.kind).name.lower() if token.ok else "-",
                     "id": int(token.id) if token.ok else None})
    if args.json:
        print(json.dumps({"folder": str(out), "venue_token": venue, "frames": rows}))
        return 0
    print(f"Venue {VENUE_ID}'s check-in code: {venue}")
    print(f"QR codes and camera frames written to {out}/\n")
    print(f"{'frame':<13} {'scene':<30} {'decoder':<10} {'token':<10} identity")
    for row in rows:
        who = f"{row['kind']} {row['id']}" if row["id"] is not None else "-"
        print(f"{row['frame']:<13} {row['scene']:<30} {row['frame_status']:<10} "
              f"{row['token']:<10} {who}")
    print("\nNext: qrtrace decode DIR, qrtrace issue person ID --png FILE (see README.md).")
    return 0
