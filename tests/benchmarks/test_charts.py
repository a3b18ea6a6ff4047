"""The benchmarks' pictures: written where asked, in the format asked, saying what they
show (decoders, goals, percentiles)."""

from __future__ import annotations

import re

import pytest

from benchmarks import charts, frames, tracing
from benchmarks.frames import Score


def _score(key: str, fps: float, found: int, by_tag: dict) -> Score:
    score = Score(key, frames.LABELS[key], frames=100, seconds=100 / fps, cpu_seconds=0.15,
                  expected=200, found=found)
    score.by_tag = by_tag
    return score


def test_the_frames_chart_names_every_decoder_its_figures_and_the_goals(tmp_path):
    scores = {
        "decode_frames": _score("decode_frames", 1200.0, 170, {"small": [30, 40]}),
        "zxing_default": _score("zxing_default", 300.0, 160, {"small": [25, 40]}),
        "pyzbar": _score("pyzbar", 40.0, 100, {"small": [5, 40]}),
    }
    path = charts.frames_chart(tmp_path / "sub" / "frames.svg", scores, frames.BREAKDOWN_TAGS,
                               "seed 7", {"zxing_default": 6, "pyzbar": 40})
    svg = path.read_text()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    for label in ("decoder.decode_frames (ours,", "zxing-cpp read_barcodes,", "pyzbar (zbar),",
                  "1,200/s", "300/s", "40/s", "goal: 6x zxing_default", "goal: 40x pyzbar",
                  "all (200)", "small (40)", "seed 7"):
        assert label in svg, label
    assert "two_codes" not in svg  # no decoder met that trait: no empty row


def test_a_latency_chart_labels_each_series_with_its_percentiles(tmp_path):
    ours = [0.00002 * (i + 1) for i in range(100)]  # 0.02 .. 2 ms: p50 1.01 ms
    peer = [0.05] * 10
    path = charts.latency_chart(tmp_path / "lat.svg", {"ours": ours, "peer": peer, "none": []},
                                "10M check-ins", {"F1 p99 goal": 1.0})
    svg = path.read_text()
    assert re.search(r"ours: p50 1\.01 ms, p99 1\.98 ms \(100 queries\)", svg)
    assert "peer: p50 50 ms, p99 50 ms (10 queries)" in svg
    assert "none:" not in svg  # an empty series is left out, not drawn as nothing
    assert "F1 p99 goal" in svg and "10M check-ins" in svg


def test_a_png_is_a_png(tmp_path):
    path = charts.latency_chart(tmp_path / "lat.png", {"ours": [0.001, 0.002]}, "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_picture_format_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"not 'results\.pdf'"):
        charts.check_path("results.pdf")
    with pytest.raises(SystemExit) as exited:
        frames.parse_args(["--plot", "results.txt"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        tracing.main(["--plot", "results.jpeg"])
    assert exited.value.code == 2


def test_the_tracing_benchmark_draws_its_latencies(tmp_path, capsys):
    path = tmp_path / "tracing.svg"
    assert tracing.main(["--checkins", "20000", "--cases", "10", "--batch", "10",
                         "--warmup-queries", "0", "--no-duckdb", "--json",
                         "--plot", str(path)]) == 0
    svg = path.read_text()
    assert "F1, ours: p50" in svg and "F2, ours: p50" in svg and "DuckDB" not in svg
    assert "20,000 check-ins" in svg
