"""Frame-decoding benchmark: our batch decoder against zxing-cpp, pyzbar and OpenCV.

Generates synthetic camera frames (not timed), then runs each decoder over the same list
after a short warm-up and reports, per decoder, frames/s (wall clock), CPU ms per frame,
the decode rate (expected texts found / expected texts), wrong texts (found but not in
the frame) and false-positive frames (no-code frames where something was found), with
decode rates by frame trait. The targets for decode_frames: a decode rate at least
zxing-cpp default's, 6x its throughput and 40x pyzbar's.

    python -m benchmarks.frames [--frames N] [--seed S]
                                [--generator synth|camera|kiosk|kiosk_low_contrast]
                                [--json] [--workers W]
                                [--decoders zxing_default,pyzbar,...] [--repeat R]
                                [--jpeg-input] [--plot FILE.svg|FILE.png]

Three generators make the frames: `synth` (benchmarks.synth_frames, the default; the
cascade's settings were chosen on some of its seeds), `camera` (benchmarks.camera_frames,
written separately from the decoder and never used to tune it: a held-out check of another
scene model, as the acceptance check's frames will be) and `kiosk`
(benchmarks.kiosk_frames, written apart too: cluttered venue scenes with phones, posters,
stickers and table tents, some with faded or low-contrast print). `kiosk_low_contrast` is
kiosk with every code on paper with low-contrast print, the weakness those scenes found;
the locator's edge (decoder/locate.py) was chosen on kiosk seeds 1-4 and
kiosk_low_contrast seeds 101-102, so other seeds are the held-out ones.

A decoder that cannot be imported (pyzbar without libzbar0, OpenCV not installed: the
bench extras) is skipped with the reason. Progress goes to stderr; results to stdout;
`--plot` also draws them (frames a second against the goals, decode rate by trait).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from benchmarks.camera_frames import generate_camera_frames
from benchmarks.charts import check_path, frames_chart
from benchmarks.environment import describe
from benchmarks.kiosk_frames import generate_kiosk_frames
from benchmarks.synth_frames import SynthFrame, generate_frames

Tick = Callable[[int], None]
# A runner decodes every frame and returns the set of texts found in each, in order,
# plus counts of whatever else the decoder reports (statuses, cascade stages).
Runner = Callable[[list[object], Tick], tuple[list[set[str]], Counter[str]]]
WARMUP_FRAMES = 8
BREAKDOWN_TAGS = (
    "small",
    "inverted",
    "screen",
    "steep",
    "defocus",
    "motion_blur",
    "shadow",
    "dim",
    "glare",
    "jpeg_low",
    "noisy",
    "two_codes",
    "low_contrast",
)
ALL_DECODERS = ("decode_frames", "zxing_default", "pyzbar", "opencv", "opencv_aruco")
DEFAULT_DECODERS = ("decode_frames", "zxing_default", "pyzbar", "opencv")
GENERATORS = {
    "synth": generate_frames,
    "camera": generate_camera_frames,
    "kiosk": generate_kiosk_frames,
    "kiosk_low_contrast": partial(generate_kiosk_frames, focus="low_contrast"),
}


@dataclass
class Score:
    """How one decoder did on the frames."""

    key: str
    label: str
    frames: int
    seconds: float
    cpu_seconds: float
    expected: int = 0
    found: int = 0
    wrong: int = 0
    false_positive_frames: int = 0
    by_tag: dict[str, list[int]] = field(default_factory=dict)  # tag -> [found, expected]
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else float("inf")

    @property
    def rate(self) -> float:
        return self.found / self.expected if self.expected else float("nan")


def _ours(workers: int | None) -> Runner | str:
    try:
        from decoder import decode_frames
    except ImportError as exc:
        return f"decoder.decode_frames is not importable yet ({exc})"
    decode = decode_frames
    if workers is not None:
        try:
            from decoder import FrameDecoder

            decode = FrameDecoder(workers=workers).decode
        except (ImportError, TypeError) as exc:
            print(f"--workers ignored: no FrameDecoder(workers=...) ({exc})", file=sys.stderr)

    def run(images: list[object], tick: Tick) -> list[set[str]]:
        results = decode(images)
        if len(results) != len(images):
            raise RuntimeError(
                f"decode_frames returned {len(results)} results for {len(images)} frames"
            )
        tick(len(images))
        outcomes = Counter(f"status {getattr(r.status, 'value', r.status)}" for r in results)
        outcomes.update(f"stage {r.stage}" for r in results if getattr(r, "stage", -1) >= 0)
        return [set(result.texts) for result in results], outcomes

    return run


def _zxing_default() -> Runner | str:
    import zxingcpp

    qr = zxingcpp.BarcodeFormat.QRCode

    def run(images: list[object], tick: Tick) -> list[set[str]]:
        found = []
        for i, image in enumerate(images):
            found.append({code.text for code in zxingcpp.read_barcodes(image, formats=qr)})
            tick(i + 1)
        return found, Counter()

    return run


def _pyzbar() -> Runner | str:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:  # OSError: libzbar0 is not installed
        return f"pyzbar unavailable ({exc}); apt-get install libzbar0"
    symbols = [pyzbar.ZBarSymbol.QRCODE]

    def run(images: list[object], tick: Tick) -> list[set[str]]:
        found = []
        for i, image in enumerate(images):
            codes = pyzbar.decode(image, symbols=symbols)
            found.append({code.data.decode("utf-8", "replace") for code in codes})
            tick(i + 1)
        return found, Counter()

    return run


def _opencv(aruco: bool) -> Runner | str:
    import cv2

    if aruco and not hasattr(cv2, "QRCodeDetectorAruco"):
        return f"cv2.QRCodeDetectorAruco is absent from OpenCV {cv2.__version__}"
    detector = cv2.QRCodeDetectorAruco() if aruco else cv2.QRCodeDetector()

    def run(images: list[object], tick: Tick) -> list[set[str]]:
        found = []
        for i, image in enumerate(images):
            ok, texts, _points, _straight = detector.detectAndDecodeMulti(image)
            found.append({text for text in texts if text} if ok else set())
            tick(i + 1)
        return found, Counter()

    return run


LABELS = {
    "decode_frames": "decoder.decode_frames (ours, batch)",
    "decode_frames_jpeg": "decoder.decode_frames on JPEG bytes",
    "zxing_default": "zxing-cpp read_barcodes, QR, defaults",
    "pyzbar": "pyzbar (zbar), QR only",
    "opencv": "OpenCV QRCodeDetector.detectAndDecodeMulti",
    "opencv_aruco": "OpenCV QRCodeDetectorAruco.detectAndDecodeMulti",
}


def _runner(key: str, workers: int | None) -> Runner | str:
    if key in ("decode_frames", "decode_frames_jpeg"):
        return _ours(workers)
    if key == "zxing_default":
        return _zxing_default()
    if key == "pyzbar":
        return _pyzbar()
    return _opencv(aruco=key == "opencv_aruco")


def _progress(label: str, total: int) -> Tick:
    """A tick(done) that rewrites one stderr line at most twice a second."""
    last = [0.0]

    def tick(done: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] > 0.5:
            last[0] = now
            end = "\n" if done == total else ""
            print(f"\r  {label}: {done}/{total} frames", end=end, file=sys.stderr, flush=True)

    return tick


def measure(
    key: str, run: Runner, frames: list[SynthFrame], inputs: list[object], repeat: int = 1
) -> Score:
    """Warm `run` up on a few frames, time it over all `inputs` `repeat` times (keeping
    the fastest pass, the one least disturbed by other work) and score it against the
    truth in `frames`. Returns a Score."""
    run(inputs[:WARMUP_FRAMES], lambda done: None)
    best_wall = best_cpu = float("inf")
    for attempt in range(repeat):
        tick = _progress(key if repeat == 1 else f"{key} #{attempt + 1}", len(inputs))
        wall, cpu = time.perf_counter(), time.process_time()
        found, outcomes = run(inputs, tick)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    score = Score(key, LABELS[key], len(inputs), best_wall, best_cpu, outcomes=outcomes)
    for frame, texts in zip(frames, found, strict=True):
        hits = len(texts & frame.texts)
        score.expected += len(frame.texts)
        score.found += hits
        score.wrong += len(texts - frame.texts)
        score.false_positive_frames += bool(texts) and not frame.texts
        for tag in frame.tags:
            tally = score.by_tag.setdefault(tag, [0, 0])
            tally[0] += hits
            tally[1] += len(frame.texts)
    return score


def mix(frames: list[SynthFrame]) -> dict[str, int]:
    """How many frames carry each trait, plus frame and code counts."""
    counts: dict[str, int] = {"frames": len(frames), "codes": 0}
    for frame in frames:
        counts["codes"] += len(frame.texts)
        for tag in frame.tags:
            counts[tag] = counts.get(tag, 0) + 1
        size = "x".join(map(str, frame.attrs["size"]))
        counts[size] = counts.get(size, 0) + 1
    head = {k: counts.pop(k) for k in ("frames", "codes", "640x480", "1280x720") if k in counts}
    return head | dict(sorted(counts.items()))


def _ratio(scores: dict[str, Score], over: str) -> float | None:
    ours = scores.get("decode_frames")
    other = scores.get(over)
    if ours is None or other is None:
        return None
    return ours.fps / other.fps


def flat_json(
    info: dict, args: argparse.Namespace, scores: dict[str, Score], skipped: dict[str, str]
) -> dict[str, object]:
    """One flat object: machine, parameters, then <decoder>_<figure> keys and ratios."""
    out: dict[str, object] = {k: v for k, v in info.items() if k != "versions"}
    out.update({f"version_{k}": v for k, v in info["versions"].items()})
    out["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    out.update(frames=args.frames, seed=args.seed, generator=args.generator,
               workers=args.workers, repeat=args.repeat)
    for key, s in scores.items():
        out.update(
            {
                f"{key}_fps": round(s.fps, 2),
                f"{key}_cpu_ms_per_frame": round(1000 * s.cpu_seconds / s.frames, 3),
                f"{key}_rate": round(s.rate, 4),
                f"{key}_found": s.found,
                f"{key}_expected": s.expected,
                f"{key}_wrong_texts": s.wrong,
                f"{key}_false_positive_frames": s.false_positive_frames,
            }
        )
        for tag in BREAKDOWN_TAGS:
            hits, expected = s.by_tag.get(tag, (0, 0))
            if expected:
                out[f"{key}_rate_{tag}"] = round(hits / expected, 4)
        for outcome, count in sorted(s.outcomes.items()):
            out[f"{key}_{outcome.replace(' ', '_')}"] = count
    for key, reason in skipped.items():
        out[f"{key}_skipped"] = reason
    for other, name in (("zxing_default", "zxing"), ("pyzbar", "pyzbar")):
        ratio = _ratio(scores, other)
        out[f"speedup_vs_{name}"] = None if ratio is None else round(ratio, 2)
    return out


def report(
    info: dict, counts: dict[str, int], scores: dict[str, Score], skipped: dict[str, str]
) -> str:
    """The human-readable report: machine, frame mix, table, breakdown, ratios."""
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"load {info['load_average_1m']} at start; python {info['python']}",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"Date: {info['date']}   Command: {info['command']}",
        "Frames: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
        "",
        f"{'decoder':<48} {'frames/s':>9} {'cpu ms/fr':>9} {'rate':>7} "
        f"{'found':>9} {'wrong':>5} {'FP fr':>5}",
    ]
    for s in scores.values():
        lines.append(
            f"{s.label:<48} {s.fps:>9.1f} {1000 * s.cpu_seconds / s.frames:>9.2f} "
            f"{s.rate:>7.1%} {f'{s.found}/{s.expected}':>9} {s.wrong:>5} "
            f"{s.false_positive_frames:>5}"
        )
    for key, reason in skipped.items():
        lines.append(f"{LABELS[key]:<48} skipped: {reason}")
    for s in scores.values():
        if s.outcomes:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items()))
            lines.append(f"{s.key}: {outcomes}")
    lines += [
        "",
        "Decode rate by trait:",
        f"{'trait':<14}" + "".join(f"{key:>20}" for key in scores),
    ]
    for tag in BREAKDOWN_TAGS:
        cells = []
        for s in scores.values():
            hits, expected = s.by_tag.get(tag, (0, 0))
            cells.append(f"{hits / expected:.1%} of {expected}" if expected else "-")
        lines.append(f"{tag:<14}" + "".join(f"{c:>20}" for c in cells))
    lines.append("")
    for other, goal in (("zxing_default", 6), ("pyzbar", 40)):
        ratio = _ratio(scores, other)
        if ratio is not None:
            lines.append(f"throughput decode_frames / {other}: {ratio:.2f}x (goal {goal}x)")
    if "decode_frames" in scores and "zxing_default" in scores:
        ours, ref = scores["decode_frames"], scores["zxing_default"]
        verdict = "meets" if ours.rate >= ref.rate else "misses"
        lines.append(
            f"decode rate decode_frames {ours.rate:.1%} vs zxing default "
            f"{ref.rate:.1%}: {verdict} the goal"
        )
    load = round(os.getloadavg()[0], 2)
    if max(load, info["load_average_1m"]) >= 0.5 * (info["usable_cores"] or 1):
        lines.append(
            f"Note: load average {info['load_average_1m']} at start, {load} at the end, "
            f"on {info['usable_cores']} cores: other work shared the CPU, so frames/s "
            "are contended; cpu ms/frame is the steadier figure."
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.frames",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=300, help="frames to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (held-out: another)")
    parser.add_argument(
        "--generator",
        choices=sorted(GENERATORS),
        default="synth",
        help="scene model: synth (default); camera, kiosk or kiosk_low_contrast (written "
        "apart from the decoder)",
    )
    parser.add_argument("--json", action="store_true", help="print one flat JSON object")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads for decode_frames (default: its own, all cores)",
    )
    parser.add_argument(
        "--decoders",
        default=",".join(DEFAULT_DECODERS),
        help=f"comma-separated subset of {', '.join(ALL_DECODERS)}",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed passes per decoder; the fastest counts"
    )
    parser.add_argument(
        "--jpeg-input",
        action="store_true",
        help="also time decode_frames on the frames' JPEG bytes",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the results into FILE (.svg or .png)",
    )
    args = parser.parse_args(argv)
    if args.plot:
        try:
            check_path(args.plot)
        except ValueError as exc:
            parser.error(str(exc))
    args.decoders = [k.strip() for k in args.decoders.split(",") if k.strip()]
    unknown = set(args.decoders) - set(ALL_DECODERS)
    if unknown:
        parser.error(f"unknown decoder(s) {sorted(unknown)}; choose from {ALL_DECODERS}")
    if args.frames < 1 or args.seed < 0 or args.repeat < 1:
        parser.error("--frames and --repeat must be at least 1, --seed non-negative")
    if args.jpeg_input:
        args.decoders.insert(1, "decode_frames_jpeg")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the report (or JSON) on stdout. Returns an exit code."""
    args = parse_args(argv)
    info = describe("benchmarks.frames", ("zxing-cpp", "pyzbar", "opencv-python-headless", "numpy"))
    print(f"generating {args.frames} {args.generator} frames (seed {args.seed})...",
          file=sys.stderr)
    tick = _progress("generate", args.frames)
    generate = GENERATORS[args.generator]
    frames = generate(args.frames, args.seed, progress=lambda done, _total: tick(done))
    images: list[object] = [frame.image for frame in frames]
    scores: dict[str, Score] = {}
    skipped: dict[str, str] = {}
    for key in args.decoders:
        run = _runner(key, args.workers)
        if isinstance(run, str):
            skipped[key] = run
            print(f"  {key}: skipped: {run}", file=sys.stderr)
            continue
        inputs = images
        if key == "decode_frames_jpeg":
            inputs = [frame.jpeg if frame.jpeg is not None else frame.image for frame in frames]
        scores[key] = measure(key, run, frames, inputs, args.repeat)
    if args.json:
        print(json.dumps(flat_json(info, args, scores, skipped)))
    else:
        print(report(info, mix(frames), scores, skipped))
    if args.plot and scores:
        title = (f"{args.frames} {args.generator} frames (seed {args.seed}); {info['cpu']}, "
                 f"{info['usable_cores']} cores; {info['date'][:16]}")
        written = frames_chart(args.plot, scores, BREAKDOWN_TAGS, title,
                               {"zxing_default": 6, "pyzbar": 40})
        print(f"chart written to {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
