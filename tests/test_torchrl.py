"""Integration tests with real TorchRL envs, collectors, ParallelEnv, MultiSyncCollector and Trainer."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.envs import ParallelEnv, TransformedEnv
from torchrl.envs.utils import check_env_specs

from currlearn import (
    DiscreteCurriculum,
    DiscreteSpace,
    DomainRandomization,
    LevelCurriculum,
    LinearSchedule,
    ScheduledCurriculum,
)
from currlearn.envs import PointMassGateEnv, make_pendulum
from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer
from currlearn.integrations.torchrl import CurriculumHook, CurriculumTransform, sync_workers, transform_path
from currlearn.testing import make_pendulum_with_step_counter, make_scheduled_pendulum

GATES = {"gate_width": [8.0, 4.0, 2.0, 1.0, 0.5], "gate_position": [0.0, 1.0, 2.0, 2.5, 2.5]}


class RecordingCurriculum(DiscreteCurriculum):
    """Uniform over tasks; records the env_ids of every sample call."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed=seed)
        self.calls: list[torch.Tensor] = []

    def _compute_weights(self):
        return torch.ones(self.space.num_tasks)

    def _sample(self, num, env_ids):
        self.calls.append(env_ids.clone())
        return super()._sample(num, env_ids)


class TestCurriculumTransform:
    def _make_env(self, curriculum, num_envs=4, max_steps=50):
        return TransformedEnv(PointMassGateEnv(num_envs, max_steps=max_steps, seed=0), CurriculumTransform(curriculum))

    def test_specs(self):
        env = self._make_env(DomainRandomization(DiscreteSpace(GATES), seed=0))
        check_env_specs(env)

    def test_params_apply_from_first_observation_and_step(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=1)
        env = self._make_env(cur, num_envs=8)
        td = env.reset()
        expected = cur.space.params(td["task_id"])
        # The reset observation already shows the sampled gate (obs[..., 4:6] = position, width).
        torch.testing.assert_close(td["observation"][:, 4], expected["gate_position"])
        torch.testing.assert_close(td["observation"][:, 5], expected["gate_width"])
        td = env.rand_step(td)
        torch.testing.assert_close(td["next", "params", "gate_width"], expected["gate_width"])
        torch.testing.assert_close(td["next", "task_id"], td["task_id"])

    def test_partial_reset_samples_only_reset_envs(self):
        cur = RecordingCurriculum(DiscreteSpace(GATES))
        env = self._make_env(cur, num_envs=4)
        td = env.reset()
        before = td["task_id"].clone()
        assert cur.calls[-1].tolist() == [0, 1, 2, 3]
        td["_reset"] = torch.tensor([[False], [True], [False], [True]])
        out = env.reset(td)
        assert cur.calls[-1].tolist() == [1, 3]
        assert out["task_id"][[0, 2]].tolist() == before[[0, 2]].tolist()

    def test_collector_autoreset_tags_transitions(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        env = self._make_env(cur, num_envs=4, max_steps=5)
        collector = Collector(env, None, frames_per_batch=40, total_frames=80, auto_register_policy_transforms=False)
        try:
            for batch in collector:
                params = cur.space.params(batch["next", "task_id"])
                torch.testing.assert_close(params["gate_width"], batch["next", "params", "gate_width"])
                torch.testing.assert_close(batch["next", "observation"][..., 5], batch["next", "params", "gate_width"])
                # Tasks change only across episode boundaries.
                same = batch["task_id"][:, 1:] == batch["task_id"][:, :-1]
                assert bool(
                    (same | batch["done"][:, :-1].squeeze(-1) | batch["next", "done"][:, :-1].squeeze(-1)).all()
                )
        finally:
            collector.shutdown()

    def test_step_input_without_parameters_gets_them(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        env = self._make_env(cur, num_envs=4)
        td = env.reset()
        expected = cur.space.params(td["task_id"])["gate_width"]
        out = env.rand_step(td.exclude("params", "task_id"))
        torch.testing.assert_close(out["next", "params", "gate_width"], expected)
        torch.testing.assert_close(out["next", "task_id"], td["task_id"])

    def test_partial_reset_parameters_reach_the_next_steps(self):
        """After a partial reset, the following steps play the new task of the reset env (the
        step input is not rewritten while nothing changes: the reset output carries it)."""
        cur = RecordingCurriculum(DiscreteSpace(GATES))
        env = self._make_env(cur, num_envs=4)
        td = env.reset()
        td["_reset"] = torch.tensor([[False], [True], [False], [False]])
        td = env.reset(td)
        for _ in range(3):
            td = env.rand_step(td)
            expected = cur.space.params(td["next", "task_id"])["gate_width"]
            torch.testing.assert_close(td["next", "params", "gate_width"], expected)
            torch.testing.assert_close(td["next", "observation"][:, 5], expected)
            td = td["next"].exclude("done", "terminated", "truncated")

    def test_unknown_parameter_lists_env_parameters(self):
        cur = DomainRandomization(DiscreteSpace({"mass": [1.0, 2.0]}), seed=0)
        env = TransformedEnv(make_pendulum(2, seed=0), CurriculumTransform(cur))
        with pytest.raises(ValueError, match=r"parameter\(s\) \['mass'\].*the env's parameters are \[.*'m'"):
            env.reset()

    def test_box_params_recorded_per_step_are_not_overwritten(self):
        cur = ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=2)})
        env = TransformedEnv(make_pendulum(2, seed=0), CurriculumTransform(cur))
        td = env.reset()
        first = env.rand_step(td)
        cur.step()
        env.transform.refresh()
        second = env.rand_step(first["next"].clone())
        assert first["next", "params", "m"].tolist() == [0.5, 0.5]
        assert second["next", "params", "m"].tolist() == [1.25, 1.25]


def test_scheduled_mass_parallel_env_two_workers():
    """ScheduledCurriculum changes the pendulum mass every iteration in a ParallelEnv(2)."""
    cur = ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=3)}, seed=0)
    env = TransformedEnv(ParallelEnv(2, make_pendulum_with_step_counter), CurriculumTransform(cur))
    collector = Collector(env, None, frames_per_batch=32, total_frames=32 * 5, auto_register_policy_transforms=False)
    hook = CurriculumHook(cur, transform=env.transform)
    seen = []
    try:
        for batch in collector:
            seen.append(batch["next", "params", "m"].unique().tolist())
            hook.process_batch(batch)
            hook.end_iteration()
    finally:
        collector.shutdown()  # also closes the ParallelEnv
    expected = [LinearSchedule(0.5, 2.0, total=3)(i).item() for i in range(5)]
    assert seen == [[pytest.approx(v)] for v in expected], seen


def test_scheduled_mass_multisync_collector():
    """The same schedule, with the transform replicas living in MultiSyncCollector workers."""
    path = transform_path(make_scheduled_pendulum())
    cur = ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=3)}, seed=0)
    collector = MultiSyncCollector(
        [make_scheduled_pendulum, make_scheduled_pendulum], None, frames_per_batch=32, total_frames=32 * 4
    )
    hook = CurriculumHook(cur, collector=collector, worker_path=path)
    seen = []
    try:
        for batch in collector:
            seen.append(batch["next", "params", "m"].unique().tolist())
            hook.process_batch(batch)
            hook.end_iteration()
    finally:
        collector.shutdown()
    expected = [LinearSchedule(0.5, 2.0, total=3)(i).item() for i in range(4)]
    assert seen == [[pytest.approx(v)] for v in expected], seen
    assert cur.counters["episodes"] > 0


def test_sync_workers_requires_path():
    cur = ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=3)})
    with pytest.raises(ValueError, match="worker_path"):
        CurriculumHook(cur, collector=object())
    with pytest.raises(ValueError, match="no CurriculumTransform"):
        transform_path(make_pendulum(1))
    assert callable(sync_workers)


def _ppo_on_gates(total_frames, seed=0, ckpt=None):
    torch.manual_seed(seed)
    curriculum = LevelCurriculum(GATES, threshold=0.6, metric="success", min_episodes=32, seed=seed)
    env = TransformedEnv(PointMassGateEnv(num_envs=16, seed=seed), CurriculumTransform(curriculum))
    trainer, hook = make_ppo_trainer(env, curriculum, PPOSettings(total_frames=total_frames), save_path=ckpt)
    return trainer, hook, curriculum


# The short real PPO run in which a LevelCurriculum climbs is the README example, run by
# tests/test_readme.py::test_torchrl_example_runs_and_climbs.


def test_trainer_checkpoint_holds_curriculum(tmp_path):
    ckpt = str(tmp_path / "trainer.pt")
    trainer, _, curriculum = _ppo_on_gates(total_frames=4 * 1024, ckpt=ckpt)
    trainer.train()
    saved = curriculum.state_dict()
    expected_next = curriculum.sample(64)

    trainer2, _, curriculum2 = _ppo_on_gates(total_frames=4 * 1024, seed=1)
    assert not torch.equal(curriculum2.generator.get_state(), saved["rng"])
    trainer2.load_from_file(ckpt, weights_only=False)
    for key, value in saved["state"].items():
        torch.testing.assert_close(curriculum2.state[key], value)
    torch.testing.assert_close(curriculum2.sample(64), expected_next)
    trainer2.shutdown()


def test_hook_logs_curriculum_metrics(tmp_path):
    from torchrl.record.loggers import CSVLogger

    torch.manual_seed(0)
    curriculum = LevelCurriculum(GATES, threshold=0.6, metric="success", min_episodes=32, seed=0)
    env = TransformedEnv(PointMassGateEnv(num_envs=16, seed=0), CurriculumTransform(curriculum))
    logger = CSVLogger(exp_name="run", log_dir=str(tmp_path))
    trainer, _ = make_ppo_trainer(env, curriculum, PPOSettings(total_frames=2 * 1024), logger=logger)
    trainer.train()
    level_csv = tmp_path / "run" / "scalars" / "curriculum" / "level_max.csv"
    assert level_csv.exists(), sorted(p.name for p in (tmp_path / "run" / "scalars").rglob("*"))
    rows = level_csv.read_text().strip().splitlines()
    assert len(rows) == 2
    assert TensorDict  # the batch type the hook consumes


def _gate_batch(env_steps=24, seed=0):
    """A real collected batch on 4 point-mass envs with a uniform curriculum over GATES."""
    cur = DomainRandomization(DiscreteSpace(GATES), seed=seed)
    env = TransformedEnv(PointMassGateEnv(4, max_steps=8, seed=seed), CurriculumTransform(cur))
    collector = Collector(
        env, None, frames_per_batch=4 * env_steps, total_frames=-1, auto_register_policy_transforms=False
    )
    try:
        batch = next(iter(collector))
    finally:
        collector.shutdown()
    return batch


class TestHook:
    def test_pre_epoch_feedback_updates_once_per_iteration(self):
        batch = _gate_batch()
        finished = int(batch["next", "done"].sum())
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        hook = CurriculumHook(cur, feedback_at="pre_epoch")
        hook.process_batch(batch)
        assert int(cur.counters["episodes"]) == 0  # waits for the first epoch
        for _ in range(3):  # three epochs
            assert hook.first_epoch(batch) is batch
        hook.end_iteration()
        assert int(cur.counters["episodes"]) == finished > 0

    def test_pre_epoch_feedback_rejects_a_flattened_batch(self):
        batch = _gate_batch()
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        hook = CurriculumHook(cur, feedback_at="pre_epoch")
        hook.process_batch(batch)
        with pytest.raises(ValueError, match=r"pre_epoch batch has shape \[96\], the collected one \[4, 24\]"):
            hook.first_epoch(batch.reshape(-1))
        assert int(cur.counters["episodes"]) == 0

    def test_pre_epoch_feedback_without_epochs_updates_at_post_steps(self):
        batch = _gate_batch()
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        hook = CurriculumHook(cur, feedback_at="pre_epoch")
        hook.process_batch(batch)
        hook.end_iteration()
        assert int(cur.counters["episodes"]) == int(batch["next", "done"].sum()) > 0
        assert int(cur.counters["iteration"]) == 1

    def test_make_ppo_trainer_scores_plr_from_the_first_epoch_gae(self, monkeypatch):
        """PLR reads PPO's own GAE (one pass per epoch): no extra advantage pass for the curriculum."""
        from torchrl.objectives.value import GAE

        from currlearn import PrioritizedLevelReplay

        calls = []
        forward = GAE.forward

        def counting(self, tensordict, *args, **kwargs):
            calls.append(tuple(tensordict.batch_size))
            return forward(self, tensordict, *args, **kwargs)

        monkeypatch.setattr(GAE, "forward", counting)
        plr = PrioritizedLevelReplay(DiscreteSpace(GATES), seed=0)
        env = TransformedEnv(PointMassGateEnv(8, max_steps=16, seed=0), CurriculumTransform(plr))
        settings = PPOSettings(frames_per_batch=256, total_frames=512, num_epochs=2, minibatch_size=128, hidden=16)
        trainer, hook = make_ppo_trainer(env, plr, settings)
        try:
            trainer.train()
        finally:
            trainer.shutdown()
        assert hook.feedback_at == "pre_epoch"
        assert calls == [(8, 32)] * 4  # 2 iterations x 2 epochs, on the unflattened batch
        assert int(plr.counters["episodes"]) > 0
        assert int(plr.state["num_seen"]) > 0
        assert bool((plr.state["score"][plr.state["seen"]] >= 0).all())

    def test_log_interval_follows_the_trainer_rule(self):
        batch = _gate_batch()  # 96 frames
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        hook = CurriculumHook(cur, log_interval=200)
        reports = []
        for _ in range(6):
            hook.process_batch(batch)
            hook.end_iteration()
            reports.append(hook.log() is not None)
        # frames 96, 192, 288 (> 200: report), 384, 480, 576 (288 after the last: report)
        assert reports == [False, False, True, False, False, True]
        every = CurriculumHook(cur)
        every.process_batch(batch)
        assert every.log()["curriculum/iteration"] == 6

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            (
                {"feedback_at": "post_steps"},
                r"feedback_at='post_steps' is not one of \['batch_process', 'pre_epoch'\]",
            ),
            ({"log_interval": -1}, r"log_interval must be an int >= 0.*-1"),
            ({"log_interval": 1.5}, r"log_interval must be an int >= 0.*1.5"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            CurriculumHook(DomainRandomization(DiscreteSpace(GATES)), **kwargs)


class TestHookOnATrainer:
    """The hook finds the transform's curriculum and places its pre_epoch op, at register."""

    SETTINGS = PPOSettings(frames_per_batch=128, total_frames=256, num_epochs=2, minibatch_size=64, hidden=8)

    def _trainer(self, curriculum=None):
        env = TransformedEnv(PointMassGateEnv(8, max_steps=8, seed=0), CurriculumTransform(curriculum))
        trainer, _ = make_ppo_trainer(env, None, self.SETTINGS)  # no hook of its own
        return trainer, env.transform

    def test_without_curriculum_drives_the_transforms(self):
        trainer, transform = self._trainer(DomainRandomization(DiscreteSpace(GATES), seed=0))
        hook = CurriculumHook(log_interval=10)
        assert hook.curriculum is None
        with pytest.raises(RuntimeError, match="has no curriculum yet: register it on a trainer"):
            hook.process_batch(TensorDict({}, [2, 3]))
        hook.register(trainer)
        try:
            assert hook.curriculum is transform.curriculum
            assert hook.transform is transform
            assert hook.log_interval == 10
            trainer.train()
        finally:
            trainer.shutdown()
        assert transform.curriculum.iteration == 2
        assert "tasks" in hook.state_dict()

    def test_another_curriculum_object_is_refused(self):
        trainer, _ = self._trainer(DomainRandomization(DiscreteSpace(GATES), seed=0))
        copy = DomainRandomization(DiscreteSpace(GATES), seed=0)
        try:
            with pytest.raises(ValueError, match=r"drop `curriculum` from the hook config: it drives the transform"):
                CurriculumHook(copy).register(trainer)
            with pytest.raises(ValueError, match="transform drives another curriculum object than curriculum"):
                CurriculumHook(copy, transform=trainer.collector.env.transform)
        finally:
            trainer.shutdown()

    def test_without_curriculum_needs_one_transform(self):
        env = PointMassGateEnv(4, max_steps=8, seed=0)
        trainer, _ = make_ppo_trainer(env, None, self.SETTINGS)
        try:
            with pytest.raises(ValueError, match=r"trainer.collector.env, which has 0: pass curriculum="):
                CurriculumHook().register(trainer)
        finally:
            trainer.shutdown()

    def test_pre_epoch_op_is_placed_whatever_the_order(self):
        from currlearn import PrioritizedLevelReplay

        plr = PrioritizedLevelReplay(DiscreteSpace(GATES), seed=0)
        trainer, _ = self._trainer(plr)
        theirs = [op.__wrapped__ for op, _ in trainer._pre_epoch_ops]  # ValueEstimatorHook, rbt.extend
        trainer._pre_epoch_ops.clear()
        hook = CurriculumHook(feedback_at="pre_epoch")
        hook.register(trainer)  # first, this time
        for op in theirs:
            trainer.register_op("pre_epoch", op)
        try:
            trainer.train()  # re-placed when training starts
        finally:
            trainer.shutdown()
        order = [op.__wrapped__ for op, _ in trainer._pre_epoch_ops]
        assert order == [theirs[0], hook.first_epoch, theirs[1]], order
        assert int(plr.state["num_seen"]) > 0
        assert bool((plr.state["score"][plr.state["seen"]] > 0).all())

    def test_old_checkpoint_layout_loads(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        saved = cur.state_dict()
        cur.sample(5)
        hook = CurriculumHook(cur)
        hook.load_state_dict({"curriculum": saved})  # before the tasks were checkpointed too
        assert torch.equal(cur.generator.get_state(), saved["rng"])


def test_make_ppo_trainer_passes_the_tracker():
    from currlearn import EpisodeTracker

    cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
    env = TransformedEnv(PointMassGateEnv(4, max_steps=8, seed=0), CurriculumTransform(cur))
    tracker = EpisodeTracker()
    trainer, hook = make_ppo_trainer(
        env, cur, PPOSettings(frames_per_batch=64, total_frames=64, minibatch_size=64), tracker=tracker
    )
    trainer.shutdown()
    assert hook.tracker is tracker
    with pytest.raises(TypeError, match="tracker must be an EpisodeTracker or None, got str"):
        make_ppo_trainer(env, cur, tracker="next")
    with pytest.raises(ValueError, match="tracker is given but curriculum is not"):
        make_ppo_trainer(env, None, tracker=tracker)


def test_parallel_env_first_episodes_play_their_tasks():
    """Workers of a ParallelEnv have no parameters to hand over before their first reset: the
    transform resets them again with the sampled ones, so no transition is mislabelled."""
    from currlearn.testing import make_gym_cartpole

    cur = DomainRandomization(DiscreteSpace({"length": [0.3, 0.5, 1.0, 2.0]}), seed=0)
    env = TransformedEnv(ParallelEnv(2, make_gym_cartpole), CurriculumTransform(cur))
    collector = Collector(env, None, frames_per_batch=64, total_frames=64, auto_register_policy_transforms=False)
    try:
        batch = next(iter(collector))
    finally:
        collector.shutdown()
    expected = cur.space.params(batch["task_id"])["length"]
    torch.testing.assert_close(batch["applied", "length"], expected)


class TestPrefetch:
    def test_block_is_dropped_when_the_decision_changes(self):
        # A LevelCurriculum without per-env state: every draw is the current level.
        cur = LevelCurriculum(GATES, threshold=0.5, min_episodes=1, seed=0)
        env = TransformedEnv(PointMassGateEnv(4, seed=0), CurriculumTransform(cur, prefetch=16))
        td = env.reset()
        td["_reset"] = torch.tensor([[True], [False], [False], [False]])
        assert env.reset(td)["task_id"].tolist() == [0, 0, 0, 0]
        calls = int(cur.counters["samples"])
        td["_reset"] = torch.tensor([[False], [True], [False], [False]])
        env.reset(td)
        assert int(cur.counters["samples"]) == calls  # served from the block
        from currlearn import episode_feedback

        cur.update(episode_feedback(torch.tensor([0]), torch.tensor([1.0])))  # promote to level 1
        td["_reset"] = torch.tensor([[False], [False], [True], [False]])
        out = env.reset(td)
        assert out["task_id"][2].item() == 1, "a stale block served a task of the old decision"
        torch.testing.assert_close(out["params", "gate_width"][2], torch.tensor(GATES["gate_width"][1]))

    def test_per_env_curricula_sample_per_reset(self):
        cur = LevelCurriculum(GATES, threshold=0.5, per_env=True, num_envs=4, seed=0)
        env = TransformedEnv(PointMassGateEnv(4, seed=0), CurriculumTransform(cur, prefetch=16))
        td = env.reset()
        td["_reset"] = torch.tensor([[False], [True], [False], [False]])
        before = int(cur.counters["samples"])
        env.reset(td)
        assert int(cur.counters["samples"]) == before + 1

    def test_bad_prefetch(self):
        with pytest.raises(ValueError, match=r"prefetch must be an int >= 0.*-1"):
            CurriculumTransform(DomainRandomization(DiscreteSpace(GATES)), prefetch=-1)
