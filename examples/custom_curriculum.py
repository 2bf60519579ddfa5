"""Write your own curriculum: a DiscreteCurriculum subclass that learns from a user metric."""

from __future__ import annotations

import torch
from torchrl.envs import TransformedEnv

from currlearn.base import DiscreteCurriculum
from currlearn.envs import PointMassGateEnv
from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.spaces import DiscreteSpace


def steps_past_wall(batch):
    """Per step: True where the mass is beyond the wall (y > 0); summed, an episode's time there."""
    return batch["next", "position"][..., 1] > 0


class FewestPasses(DiscreteCurriculum):
    """Prefer the gates whose episodes have spent the least time past the wall so far."""

    def __init__(self, space, **kwargs):
        super().__init__(space, metric=steps_past_wall, **kwargs)
        self.state["past_wall"] = torch.zeros(space.num_tasks, device=self.device)

    def _compute_weights(self):  # the one abstract method
        return 1.0 / (1.0 + self.state["past_wall"])

    def _update(self, feedback):  # feedback["metric"]: steps_past_wall summed per episode
        self.state["past_wall"].index_add_(0, feedback["task"], feedback["metric"])


torch.manual_seed(0)
curriculum = FewestPasses(DiscreteSpace({"gate_width": [8.0, 4.0, 2.0]}), seed=0)
env = TransformedEnv(PointMassGateEnv(num_envs=16, seed=0), CurriculumTransform(curriculum))
trainer, _ = make_ppo_trainer(env, curriculum, PPOSettings(frames_per_batch=1024, total_frames=4096))
trainer.train()
print("steps past the wall per gate:", curriculum.state["past_wall"].tolist())
print("task distribution:", [round(p, 3) for p in curriculum.weights().tolist()])
