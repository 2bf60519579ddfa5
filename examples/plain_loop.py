"""A hand-written TorchRL loop with a curriculum: no trainer, one driver call per batch."""

from __future__ import annotations

import sys

import torch
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv

from currlearn import LevelCurriculum
from currlearn.driver import CurriculumDriver
from currlearn.envs import PointMassGateEnv
from currlearn.integrations.torchrl import CurriculumTransform

frames = int(sys.argv[1]) if len(sys.argv) > 1 else 4_800
levels = {"gate_width": [8.0, 4.0, 0.5], "gate_position": [0.0, 0.0, 2.5]}  # easy -> the target gate
cur = LevelCurriculum(levels, threshold=0.5, metric="success", min_episodes=16, seed=0)
env = TransformedEnv(PointMassGateEnv(16, max_steps=30, seed=0), CurriculumTransform(cur))
north = lambda td: td.set("action", torch.tensor([0.0, 1.0]).expand(*td.shape, 2))  # noqa: E731 (a scripted policy)
collector = Collector(env, north, frames_per_batch=480, total_frames=frames)
driver = CurriculumDriver(cur, env.transform)
for batch in collector:  # a TensorDict [envs, time]: optimise the policy on it here, then
    metrics = driver.process(batch)  # feedback -> update -> step -> envs; the metrics (None between reports)
print(f"level {int(cur.level)} after {frames} frames; last widths {batch['params', 'gate_width'].unique().tolist()}")
