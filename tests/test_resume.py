"""Exact resume: a run killed with SIGKILL and resumed from its last checkpoint, again and
again, ends bit-identical to the run that was never interrupted (real subprocesses)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

FRAMES = 8192  # 8 iterations of 1024 frames
COMMON = [
    "algo.frames_per_batch=1024", "checkpoint_every=1", "eval.episodes=16", "eval.every=3", "eval.every_episodes=8",
    "progress=false", "log=none", "output.plots=false",
]  # fmt: skip
ENV = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {"PYTHONWARNINGS": "ignore"}
TIMEOUT = 300  # s per run: about 8 s on an idle 2-core machine, torch's import included


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "currlearn.app", *COMMON, *args]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_time"} for r in csv.DictReader(f)]


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def _run_to_the_end(args: list[str], run_dir: Path, cwd: Path) -> None:
    r = subprocess.run(
        _cmd(*args, f"hydra.run.dir={run_dir}"), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert r.returncode == 0, r.stderr


def _run_until_killed(args: list[str], run_dir: Path, after_rows: int, cwd: Path) -> None:
    """Start the app, SIGKILL it once metrics.csv has ``after_rows`` rows (the checkpoint of that
    iteration is written next, or is being written: either is a valid kill point)."""
    p = subprocess.Popen(_cmd(*args, f"hydra.run.dir={run_dir}"), cwd=cwd, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + TIMEOUT
    try:
        while time.time() < deadline and p.poll() is None:
            path = run_dir / "metrics.csv"
            if path.exists() and len(path.read_text().splitlines()) - 1 >= after_rows:
                break
            time.sleep(0.02)
        assert p.poll() is None, f"the run ended before the kill point: {p.communicate()[1][-2000:]}"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)


def _assert_same(a: object, b: object, path: str = "") -> None:
    """Exact equality of nested checkpoint contents (tensors, arrays, numbers, containers)."""
    import numpy as np

    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), path
    elif hasattr(a, "batch_size"):  # a TensorDict
        assert sorted(map(str, a.keys(True, True))) == sorted(map(str, b.keys(True, True))), path
        assert bool((a == b).all()), path
    elif not callable(a):
        assert a == b or (a != a and b != b), path  # NaN == NaN here


@pytest.mark.parametrize(
    "choice",
    [
        ["curriculum=level"],
        ["curriculum=plr"],
        ["curriculum=scheduled"],
        # an opponent pool that grows across the kills: snapshots, win rates, the game's generator
        ["env=tictactoe", "curriculum=pfsp", "curriculum.snapshot_every=2"],
    ],
    ids=["level", "plr", "scheduled", "pfsp"],
)
def test_killed_and_resumed_three_times_ends_bit_identical(tmp_path, choice):
    ref = tmp_path / "uninterrupted"
    _run_to_the_end([*choice, f"frames={FRAMES}"], ref, tmp_path)

    previous = None
    for i, after_rows in enumerate((2, 4, 6)):  # kill points: after iterations 2, 4 and 6
        run_dir = tmp_path / f"killed{i}"
        args = [*choice, f"frames={FRAMES}"]
        if previous is not None:
            args.append(f"resume={previous}")
        _run_until_killed(args, run_dir, after_rows, tmp_path)
        # a kill in the middle of a checkpoint write leaves its temporary file, never a torn last.pt
        torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
        previous = run_dir
    final = tmp_path / "resumed"
    _run_to_the_end([f"frames={FRAMES}", f"resume={previous}", "log=csv"], final, tmp_path)

    assert _rows(final) == _rows(ref)  # every row, those replayed from checkpoints included
    assert [r["eval/success"] != "" for r in _rows(ref)] == [i % 3 == 0 for i in range(1, 9)]
    # the logger (taken up on resume) goes on at the resumed step: the iterations after the checkpoint
    resumed_from = torch.load(previous / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    done = len(resumed_from["rows"])
    logged = (final / "logs" / "currlearn" / "scalars" / "train" / "return.csv").read_text().split()
    assert [int(line.split(",")[0]) for line in logged] == [int(r["frames"]) for r in _rows(ref)[done:]]
    a = torch.load(ref / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    b = torch.load(final / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    for key in ("trainer", "collector", "rng", "episode_stats", "iteration", "rows"):
        # policy, optimizer, curriculum and its generator, envs in progress, global generators
        _assert_same(a[key] if key != "rows" else _strip(a[key]), b[key] if key != "rows" else _strip(b[key]), key)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ref, final))
    for key in ("target_success", "target_return", "final_return", "curriculum_metrics", "frames"):
        assert sa[key] == sb[key], key


def test_an_evaluation_depends_on_its_iteration_alone():
    """With several evaluation tasks, an evaluation at iteration 20 is the same after one at
    iteration 10 (the uninterrupted run) as without it (a run resumed after iteration 10), and
    so is the final one."""
    from hydra import compose, initialize_config_module

    from currlearn.app.build import build_eval_curriculum
    from currlearn.app.evaluate import PeriodicEval, evaluate
    from currlearn.app.run import prepare

    targets = "task.target={gate_width: [0.5, 2.0, 4.0], gate_position: [1.0, 0.0, -1.0]}"
    with initialize_config_module("currlearn.conf", version_base="1.3"):
        cfg = compose("train", overrides=["frames=2048", "eval.every_episodes=8", "eval.episodes=8", targets])
    p = prepare(cfg, [], {"curriculum": "level", "env": "point_mass"})
    policy = p.trainer.collector.policy
    assert p.eval_curriculum.space.num_tasks == 9
    going_on = PeriodicEval(p.conf, policy, p.eval_curriculum, None, lambda: 0)
    going_on(10)
    after = going_on(20)
    resumed = PeriodicEval(p.conf, policy, build_eval_curriculum(p.conf), None, lambda: 0)
    assert resumed(20) == after
    finals = []
    for curriculum in (p.eval_curriculum, build_eval_curriculum(p.conf)):
        torch.manual_seed(0)  # the global generator, as the checkpoint restores it
        finals.append(evaluate(p.conf, policy, curriculum))
    assert finals[0] == finals[1]
    p.close()
