"""The benchmark's functions at a tiny size (not timed), so that the benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

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


def test_scaling_table_runs_at_a_tiny_size(bench):
    results = bench.time_update_scaling("easy_first", sizes=(20, 50), items=(1, 8), repeats=1)
    assert set(results) == {(20, 1), (20, 8), (50, 1), (50, 8)}
    assert all(v > 0 and math.isfinite(v) for v in results.values())
    text = bench.scaling_table("easy_first", results)
    assert "k=8" in text and "5e1" in text


def test_headline_lines(bench):
    results = {("plr_rank", "1e5"): 0.002, ("syllabus_plr*", "1e5"): 20.0, ("floor", "1e5"): 0.001}
    assert bench.headline(results) == {"speedup_vs_syllabus_plr_1e5": 10_000.0, "ratio_to_floor_1e5": 2.0}


def test_floor_ratios(bench):
    results = {("plr_rank", "1e5"): 0.003, ("easy_first", "1e5"): 0.0045, ("floor", "1e5"): 0.0015}
    results[("alp_gmm", "box")] = 0.05  # continuous rows have no floor
    assert bench.floor_ratios(results) == pytest.approx(
        {"ratio_to_floor_plr_rank_1e5": 2.0, "ratio_to_floor_easy_first_1e5": 3.0}
    )


@pytest.mark.skipif(importlib.util.find_spec("syllabus") is None, reason="syllabus-rl not installed")
def test_syllabus_rows_run(bench):
    if not bench.syllabus_available():
        pytest.skip("syllabus-rl does not import here")
    secs, extrapolated = bench.time_syllabus_plr(50, calls=4, episodes=16)
    assert secs > 0
    assert extrapolated
    assert bench.time_syllabus_dr(50, repeats=1, episodes=16) > 0


def test_ppo_share_runs_at_a_tiny_size():
    """bench_ppo_share.py end to end (a real PPO trainer, a few iterations): every hook op is
    timed and both headline lines are printed with fractions in (0, 1)."""
    import subprocess
    import sys

    script = BENCH.parent / "bench_ppo_share.py"
    args = ["--tasks", "1000", "--num-envs", "8", "--max-steps", "16", "--frames-per-batch", "256"]
    args += ["--iterations", "4", "--warmup", "1", "--epochs", "1", "--minibatch", "128", "--log-interval", "0"]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300, check=True)
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if line.startswith("curriculum_share"))
    hook = float(lines["curriculum_share_of_ppo_iteration_1000"])
    total = float(lines["curriculum_share_with_transform_1000"])
    assert 0 < hook < total < 1, (hook, total)
    for op in ("hook/process_batch", "hook/first_epoch", "hook/end_iteration", "hook/log"):
        assert op in out.stdout, f"{op} was not timed:\n{out.stdout}"


def test_replay_benchmark_runs_at_a_tiny_size():
    """bench_replay.py end to end: every row timed, the three headline lines printed."""
    import subprocess
    import sys

    script = BENCH.parent / "bench_replay.py"
    args = ["--items", "5000", "--tasks", "10", "--batch", "32", "--repeats", "5", "--warmup", "1"]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300, check=True)
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line and " " not in line)
    assert float(lines["curriculum_sampler_step_ms"]) > 0
    assert float(lines["ratio_to_torchrl_prioritized"]) > 0
    assert float(lines["speedup_vs_dense"]) > 0
    for row in ("RandomSampler", "TorchRL PrioritizedSampler", "dense recompute", "new task weights"):
        assert row in out.stdout, out.stdout


def test_level_benchmark_runs_at_a_tiny_size(monkeypatch):
    """bench_levels.py's rows at a tiny batch and capacity: every operation and its floor timed."""
    script = BENCH.parent / "bench_levels.py"
    spec = importlib.util.spec_from_file_location("bench_levels", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "BATCH", 32)
    cpu = torch.device("cpu")
    assert bench.maze_rate(8, 5, cpu) > 0
    ops = bench.buffer_ops(64, 1, cpu)
    assert sorted(ops) == ["edit", "insert", "sample_new", "sample_replay", "update_replay"]
    assert all(ms > 0 and floor > 0 for ms, floor in ops.values()), ops


def test_scaleout_benchmark_runs_at_a_tiny_size():
    """bench_scaleout.py's feedback rows at a tiny batch, and one push to 2 real workers."""
    script = BENCH.parent / "bench_scaleout.py"
    spec = importlib.util.spec_from_file_location("bench_scaleout", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    batch = bench.make_batch(workers=2, envs=4, steps=16, episode=4)
    for name, cur in bench.feedback_curricula().items():
        tasks = batch.clone()
        tasks["next", "task_id"] %= cur.space.num_tasks
        assert bench.feedback_rate(cur, tasks, 2) > 0, name
        # the warm-up and the 2 timed repeats each fed the batch's 8 envs x 16 steps / 4 episodes
        assert int(cur.counters["episodes"]) == 3 * 8 * 16 // 4, name
    ms = bench.push_ms("shared", "schedule", 2)
    assert ms > 0 and math.isfinite(ms)
