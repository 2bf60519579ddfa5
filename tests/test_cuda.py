"""CUDA only (marked ``gpu``, skipped without a GPU): the app on ``device=cuda`` and the
curricula's hot paths without a host-device synchronisation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_adaptive import DISCRETE_FACTORIES

from currlearn import DiscreteSpace, DomainRandomization, LevelCurriculum, episode_feedback

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CUDA = torch.device("cuda:0")
FACTORIES = {
    **DISCRETE_FACTORIES,
    "domain_randomization": lambda n, d=None: DomainRandomization(DiscreteSpace(num_tasks=n, device=d), seed=3),
    "level": lambda n, d=None: LevelCurriculum(
        {"g": [float(i) for i in range(n)]}, threshold=0.5, metric="success", min_episodes=4, seed=3, device=d
    ),
}


def _feedback(cur, k: int, generator: torch.Generator):
    tasks = cur.sample(k)
    score = torch.rand(k, generator=generator, device=CUDA)
    return episode_feedback(
        tasks,
        torch.rand(k, generator=generator, device=CUDA),
        success=(torch.rand(k, generator=generator, device=CUDA) < 0.5).float(),
        score=score,
        value_mean=score,
    )


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_update_and_sample_do_not_synchronise(name):
    cur = FACTORIES[name](1000, CUDA)
    g = torch.Generator(device=CUDA).manual_seed(0)
    cur.update(_feedback(cur, 256, g))  # first call: lazy allocations may synchronise
    cur.sample(256)
    fb = _feedback(cur, 256, g)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        cur.update(fb)
        tasks = cur.sample(256)
        weights = cur.weights() if hasattr(cur, "weights") else None
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert tasks.device == CUDA
    if weights is not None:
        assert weights.device == CUDA and torch.isfinite(weights).all()


def test_app_trains_on_cuda(tmp_path):
    run_dir = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable, "-m", "currlearn.app", "device=cuda", "frames=2048", "algo.frames_per_batch=1024",
            "eval.episodes=16", "progress=false", "log=none", f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(Path(run_dir / "summary.json").read_text())
    assert summary["frames"] == 2048
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["config"]["device"] == "cuda"
    assert ckpt["rng"]["cuda"][0].dtype == torch.uint8  # the CUDA generators are in the checkpoint


def test_level_replay_and_maze_on_cuda_match_the_cpu():
    """ACCEL and the maze on the GPU: levels, draws and buffer decisions stay on the device, and
    the egocentric observations equal the CPU env's for the same levels."""
    from torchrl.envs import Compose, TransformedEnv

    from currlearn import ACCEL
    from currlearn.envs import MazeEditor, MazeEnv, MazeGenerator
    from currlearn.integrations.replay import ReplayDecisionTransform
    from currlearn.integrations.torchrl import CurriculumTransform

    cur = ACCEL(
        MazeGenerator(9, 9), MazeEditor(3), capacity=32, fresh=256, min_fill=0.25, num_envs=8, seed=0, device=CUDA
    )
    env = TransformedEnv(
        MazeEnv(8, height=9, width=9, max_steps=20, device=CUDA),
        Compose(CurriculumTransform(cur), ReplayDecisionTransform(cur)),
    )
    g = torch.Generator(device=CUDA).manual_seed(0)
    for _ in range(6):
        rollout = env.rollout(40, break_when_any_done=False)
        assert rollout.device == CUDA
        t = cur.sample(16)
        cur.update(episode_feedback(t, torch.zeros(16, device=CUDA), score=torch.rand(16, generator=g, device=CUDA)))
        cur.step()
    slots, levels, scores = cur.buffer_levels()
    assert slots.device == CUDA and levels["walls"].device == CUDA and cur.occupancy() > 0
    cpu_env = MazeEnv(8, height=9, width=9, max_steps=20)
    params = rollout[0]["params"]
    td_gpu = env.base_env.reset(rollout[0].select("params").clone())
    td_cpu = cpu_env.reset(rollout[0].select("params").cpu())
    assert torch.equal(td_gpu["observation"].cpu(), td_cpu["observation"]) and params.device == CUDA
