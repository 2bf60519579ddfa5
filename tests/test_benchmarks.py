"""The benchmark's functions at a tiny size (not timed), so that the benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sampling.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sampling", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_row_runs_at_a_tiny_size(bench):
    results = bench.run(sizes=(50,), repeats=1, warmup=1, with_syllabus=False, episodes=16)
    rows = {r for r, _ in results}
    assert set(bench.DISCRETE) | {"floor", "alp_gmm", "adr"} <= rows
    assert all(v > 0 and math.isfinite(v) for v in results.values())
    text = bench.table(results)
    assert "plr_rank" in text
    assert "5e1" in text


def test_headline_lines(bench):
    results = {("plr_rank", "1e5"): 0.002, ("syllabus_plr*", "1e5"): 20.0, ("floor", "1e5"): 0.001}
    assert bench.headline(results) == {"speedup_vs_syllabus_plr_1e5": 10_000.0, "ratio_to_floor_1e5": 2.0}


@pytest.mark.skipif(importlib.util.find_spec("syllabus") is None, reason="syllabus-rl not installed")
def test_syllabus_rows_run(bench):
    if not bench.syllabus_available():
        pytest.skip("syllabus-rl does not import here")
    secs, extrapolated = bench.time_syllabus_plr(50, calls=4, episodes=16)
    assert secs > 0
    assert extrapolated
    assert bench.time_syllabus_dr(50, repeats=1, episodes=16) > 0
