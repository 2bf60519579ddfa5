from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from currlearn.normalization import TaskRewardNormalizer
from currlearn.testing import get_default_devices


class TestTaskRewardNormalizer:
    def _make_data(self, seed=0, n=3000, num_tasks=5):
        g = torch.Generator().manual_seed(seed)
        tasks = torch.randint(num_tasks - 1, (n,), generator=g)  # the last task is never seen
        scale = torch.tensor([0.1, 1.0, 10.0, 100.0, 1.0], dtype=torch.float64)
        rewards = (torch.randn(n, generator=g, dtype=torch.float64) + 3.0) * scale[tasks]
        return rewards.float(), tasks

    @pytest.mark.parametrize("device", get_default_devices())
    @pytest.mark.parametrize("chunks", [1, 7, 300])
    def test_matches_numpy(self, device, chunks):
        rewards, tasks = self._make_data()
        norm = TaskRewardNormalizer(num_tasks=5, device=device)
        for r, t in zip(rewards.chunk(chunks), tasks.chunk(chunks)):
            norm.update(r.to(device), t.to(device))
        r64, t = rewards.double().numpy(), tasks.numpy()
        for k in range(4):
            sel = r64[t == k]
            assert norm.count[k].item() == sel.size
            assert norm.mean[k].item() == pytest.approx(sel.mean(), rel=1e-9)
            assert norm.std[k].item() == pytest.approx(sel.std(), rel=1e-9)
        assert norm.count[4] == 0 and norm.mean[4] == 0 and norm.std[4] == 0
        assert norm.mean.device == torch.device(device)

    @pytest.mark.parametrize("center", [False, True])
    def test_normalize(self, center):
        rewards, tasks = self._make_data()
        norm = TaskRewardNormalizer(num_tasks=5, center=center)
        norm.update(rewards, tasks)
        out = norm.normalize(rewards, tasks)
        assert out.dtype == rewards.dtype and out.shape == rewards.shape
        r64, t = rewards.double().numpy(), tasks.numpy()
        for k in range(4):
            sel = r64[t == k]
            expected = ((sel - sel.mean()) if center else sel) / np.sqrt(sel.var() + 1e-8)
            np.testing.assert_allclose(out[tasks == k].numpy(), expected, rtol=1e-5)
        # an unseen task (fewer than min_count rewards) passes through unchanged
        assert norm.normalize(torch.tensor([5.0]), torch.tensor([4])).item() == 5.0

    def test_batch_call_normalizes_reward_before_loss(self):
        norm = TaskRewardNormalizer(num_tasks=2, raw_key=("next", "raw_reward"))
        reward = torch.tensor([[1.0, 3.0, 5.0], [10.0, 30.0, 50.0]]).unsqueeze(-1)
        batch = TensorDict(
            {"next": {"reward": reward.clone(), "task_id": torch.tensor([[0, 0, 0], [1, 1, 1]])}}, batch_size=[2, 3]
        )
        out = norm(batch)
        assert out is batch
        torch.testing.assert_close(batch["next", "raw_reward"], reward)
        std = torch.tensor([np.std([1, 3, 5]), np.std([10, 30, 50])], dtype=torch.float32)
        torch.testing.assert_close(batch["next", "reward"], reward / std.view(2, 1, 1), rtol=1e-5, atol=1e-6)

    def test_state_dict_round_trip_does_not_alias(self):
        rewards, tasks = self._make_data()
        a = TaskRewardNormalizer(num_tasks=5)
        a.update(rewards, tasks)
        sd = a.state_dict()
        b = TaskRewardNormalizer(num_tasks=5)
        b.load_state_dict(sd)
        torch.testing.assert_close(b.normalize(rewards, tasks), a.normalize(rewards, tasks))
        sd["mean"].add_(1.0)
        assert not torch.equal(b.mean, sd["mean"])

    def test_mismatched_state_dict_raises_and_keeps_state(self):
        a = TaskRewardNormalizer(num_tasks=3)
        a.update(torch.tensor([1.0, 2.0]), torch.tensor([0, 1]))
        before = a.state_dict()
        with pytest.raises(ValueError, match=r"num_tasks=5, this normalizer has num_tasks=3"):
            a.load_state_dict(TaskRewardNormalizer(num_tasks=5).state_dict())
        bad = dict(before, mean=torch.zeros(2))
        with pytest.raises(ValueError, match=r"state_dict\['mean'\] must be a tensor of shape \[3\]"):
            a.load_state_dict(bad)
        for k in ("count", "mean", "m2"):
            torch.testing.assert_close(a.state[k], before[k])

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"num_tasks must be an int >= 1, got 0"):
            TaskRewardNormalizer(num_tasks=0)
        with pytest.raises(ValueError, match=r"eps must be a number > 0"):
            TaskRewardNormalizer(num_tasks=2, eps=0.0)
        norm = TaskRewardNormalizer(num_tasks=2)
        with pytest.raises(ValueError, match=r"tasks has ids \[2\] outside \[0, 2\)"):
            norm.update(torch.tensor([1.0, 2.0]), torch.tensor([0, 2]))
        assert norm.count.sum() == 0
        with pytest.raises(ValueError, match=r"rewards has 2 elements but tasks has 1"):
            norm.update(torch.tensor([1.0, 2.0]), torch.tensor([0]))
        with pytest.raises(KeyError, match=r"task_key: the batch has no key"):
            norm(TensorDict({"next": {"reward": torch.ones(2, 1)}}, batch_size=[2]))

    def test_registers_on_trainer_before_gae(self):
        """Registered on a real PPO trainer: batch_process op and checkpointed module."""
        from torchrl.envs import TransformedEnv

        from currlearn import DiscreteSpace, DomainRandomization
        from currlearn.envs import PointMassGateEnv
        from currlearn.integrations.torchrl import CurriculumTransform
        from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer

        cur = DomainRandomization(DiscreteSpace({"gate_width": [8.0, 2.0]}), seed=0)
        env = TransformedEnv(PointMassGateEnv(num_envs=4, seed=0), CurriculumTransform(cur))
        trainer, _ = make_ppo_trainer(env, cur, PPOSettings(frames_per_batch=256, total_frames=512, minibatch_size=64))
        norm = TaskRewardNormalizer(num_tasks=2)
        norm.register(trainer)
        trainer.train()
        assert norm.count.sum() == 512
        assert trainer._modules["reward_normalizer"] is norm  # saved with the trainer's checkpoints
