"""Pictures of the benchmarks' results, for the figures people would rather see than read.

`frames_chart` draws the decoders side by side (frames a second against the goals, and
the decode rate by trait); `latency_chart` draws the distribution of query latencies
(ours and a peer's) on a log scale. Each writes an SVG or a PNG, by the file's suffix,
with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # benchmarks.frames imports this module
    from benchmarks.frames import Score

SUFFIXES = (".svg", ".png")


def check_path(path: str | Path) -> Path:
    """`path` as a Path; ValueError if its suffix is not one we can write."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"a chart is written as {' or '.join(SUFFIXES)}, not {path.name!r}")
    return path


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> Path:
    import matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    # text stays text in an SVG (searchable, smaller), not glyph outlines
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(path, format=path.suffix.lower().lstrip("."), dpi=120)
    return path


def frames_chart(path: str | Path, scores: Mapping[str, Score], tags: Sequence[str],
                 title: str, goals: Mapping[str, float]) -> Path:
    """Frames a second of each decoder (log scale), with a line at each goal (`goals`:
    peer key -> the multiple of its frames a second asked of us), and the decode rate of
    each decoder over all frames and by trait. `scores`: decoder key -> its Score.
    Returns the path written."""
    path = check_path(path)
    fig = _figure(12, 6.5)
    speed, rate = fig.subplots(1, 2, width_ratios=(1, 1.2))
    keys = list(scores)
    colours = [f"C{i}" for i in range(len(keys))]
    labels = [scores[k].label for k in keys]
    fps = [scores[k].fps for k in keys]
    y = np.arange(len(keys))[::-1]
    speed.barh(y, fps, color=colours)
    speed.set_xscale("log")
    speed.set_yticks(y, [label.replace(", ", ",\n", 1) for label in labels], fontsize=8)
    for yi, k in zip(y, keys, strict=True):
        s = scores[k]
        speed.text(s.fps * 1.08, yi, f"{s.fps:,.0f}/s, {1000 * s.cpu_seconds / s.frames:.2f} "
                   "ms CPU", va="center", fontsize=8)
    for peer, multiple in goals.items():
        if peer in scores:
            target = multiple * scores[peer].fps
            speed.axvline(target, color="k", linestyle="--", linewidth=1)
            speed.text(target * 1.04, y[-1] - 0.4, f"goal: {multiple:g}x {peer}", fontsize=8,
                       rotation=90, va="bottom")
    speed.set_xlim(right=max(fps + [m * scores[p].fps for p, m in goals.items()
                                     if p in scores]) * 4)
    speed.set_xlabel("frames a second (log scale)")
    speed.set_title("Throughput")
    rows = ["all", *[t for t in tags if any(t in scores[k].by_tag for k in keys)]]
    height = 0.8 / len(keys)
    ticks = np.arange(len(rows))[::-1]
    for i, k in enumerate(keys):
        s = scores[k]
        values = [s.rate] + [_share(s.by_tag.get(t, (0, 0))) for t in rows[1:]]
        rate.barh(ticks + 0.4 - (i + 0.5) * height, [100 * v for v in values], height,
                  color=colours[i], label=k)
    counts = [scores[keys[0]].expected] + [scores[keys[0]].by_tag.get(t, (0, 0))[1]
                                           for t in rows[1:]]
    rate.set_yticks(ticks, [f"{r} ({n})" for r, n in zip(rows, counts, strict=True)],
                    fontsize=8)
    rate.set_xlim(0, 100)
    rate.set_xlabel("codes read, % of those in the frames")
    rate.set_title("Decode rate, all frames and by trait (codes)")
    rate.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _share(pair: Sequence[int]) -> float:
    found, expected = pair
    return found / expected if expected else float("nan")


def latency_chart(path: str | Path, series: Mapping[str, Sequence[float]], title: str,
                  goals: Mapping[str, float] | None = None) -> Path:
    """The distribution of each series of latencies (`series`: label -> seconds) as the
    share of queries answered within a time, on a log scale, with each series' p50 and
    p99 in its label and a line at each goal (`goals`: label -> milliseconds).
    Returns the path written."""
    path = check_path(path)
    fig = _figure(9, 5.5)
    ax = fig.subplots()
    for label, seconds in series.items():
        ms = np.sort(np.asarray(seconds, np.float64)) * 1000
        if not ms.size:
            continue
        share = np.arange(1, ms.size + 1) / ms.size
        p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
        ax.step(ms, 100 * share, where="post",
                label=f"{label}: p50 {_ms(p50)}, p99 {_ms(p99)} ({ms.size} queries)")
    for label, ms in (goals or {}).items():
        ax.axvline(ms, color="k", linestyle="--", linewidth=1)
        ax.text(ms, 98, f"{label} ", fontsize=8, rotation=90, va="top", ha="right")
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel("latency, ms (log scale)")
    ax.set_ylabel("queries answered within it, %")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _ms(value: float) -> str:
    return f"{value:.3g} ms"
