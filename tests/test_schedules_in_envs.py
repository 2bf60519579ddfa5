"""A decision that holds mid-episode (a schedule's step) reaches running envs: at the next env
step with or without the hook, and, under TorchRL's Trainer, from the first transition of the
next batch on (real TorchRL env, collector and trainer)."""

from __future__ import annotations

import torch
from torchrl.envs import TransformedEnv

from currlearn import LinearSchedule, ScheduledCurriculum, StepSchedule
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.envs import PointMassGateEnv


def _env(cur: ScheduledCurriculum, num_envs: int = 2) -> TransformedEnv:
    return TransformedEnv(PointMassGateEnv(num_envs=num_envs, max_steps=1000, seed=0), CurriculumTransform(cur))


def test_step_alone_reaches_running_envs_at_the_next_step():
    cur = ScheduledCurriculum({"gate_width": LinearSchedule(8.0, 2.0, total=4)}, seed=0)
    env = _env(cur)
    roll = env.rollout(3, auto_reset=True, break_when_any_done=False)
    assert torch.equal(roll["next", "params", "gate_width"], torch.full((2, 3), 8.0))
    cur.step()  # no hook, no transform.refresh()
    td = roll[..., -1]["next"].clone()
    roll = env.rollout(2, tensordict=td, auto_reset=False, break_when_any_done=False)
    assert torch.equal(roll["next", "params", "gate_width"], torch.full((2, 2), 6.5))  # 8 - 6 / 4
    assert torch.equal(env.transform.tasks.reshape(-1), torch.full((2,), 6.5))


def test_the_first_transition_of_each_batch_carries_the_current_parameters():
    from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer

    torch.manual_seed(0)
    schedule = LinearSchedule(8.0, 2.0, total=4)
    cur = ScheduledCurriculum({"gate_width": schedule}, seed=0)
    settings = PPOSettings(frames_per_batch=64, total_frames=256, num_epochs=1, minibatch_size=32, hidden=8)
    trainer, _ = make_ppo_trainer(_env(cur, num_envs=4), cur, settings)
    seen = []
    trainer.register_op("batch_process", lambda batch: seen.append(batch.get(("params", "gate_width")).clone()))
    trainer.train()
    assert len(seen) == 4
    for i, widths in enumerate(seen):  # [envs, time]: every transition of batch i, the first included
        assert torch.allclose(widths, torch.full_like(widths, float(schedule(i)))), (i, widths[:, :3])


def test_step_schedule_copies_its_tables_once_per_device():
    s = StepSchedule([1.0, 2.0, 3.0], boundaries=[10, 20])
    assert s(torch.tensor([0, 10, 20])).tolist() == [1.0, 2.0, 3.0]
    tables = s._tables(torch.device("cpu"))
    s(torch.tensor([5]))
    assert s._tables(torch.device("cpu"))[0] is tables[0]  # no new copy per call
