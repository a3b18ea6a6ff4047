"""benchmarks.shards: the sharded traces it times give the one index's answers."""

from __future__ import annotations

import json

from benchmarks import shards


def test_the_shards_benchmark_compares_equal_answers_and_reports_both(capsys):
    assert shards.main(["--checkins", "30000", "--shards", "3", "--cases", "40",
                        "--depth", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answers_equal"] == 40 and out["contacts_per_case"] > 0
    assert len(out["shard_checkins"].split()) == 3
    assert sum(map(int, out["shard_checkins"].split())) == out["checkins"]
    assert out["sharded_p50_ms"] > 0 and out["one_p50_ms"] > 0
    assert out["counts_rows"] > 0 and out["counts_sharded_ms"] > 0


def test_the_shards_benchmark_asks_shard_servers_with_remote(capsys):
    assert shards.main(["--checkins", "20000", "--shards", "2", "--cases", "20", "--remote",
                        "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["remote"] is True and out["answers_equal"] == 20
    assert out["counts_rows"] > 0 and out["counts_sharded_ms"] > 0
