"""currlearn.integrations.gym with real Gymnasium and MiniGrid envs (no mocks): the three ways
(attributes, constructor rebuild, env ids) and level seeds, in one process, in ParallelEnv
workers and in MultiSyncCollector workers, bad input, and PPO on the DoorKey ladder.
"""

from __future__ import annotations

import functools

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.envs import ParallelEnv, TransformedEnv
from torchrl.envs.utils import check_env_specs

from currlearn import DiscreteSpace, DomainRandomization, LevelCurriculum
from currlearn.integrations.gym import (
    ChooseEnvId,
    GymTaskEnv,
    RebuildFromKwargs,
    SetAttributes,
    evaluate_seeds,
    make_cartpole_params_env,
    make_minigrid_ladder_env,
    seed_spaces,
    with_curriculum,
)
from currlearn.integrations.torchrl import CurriculumHook, CurriculumTransform, transform_path
from currlearn.testing import (
    CARTPOLE_TASKS,
    DOORKEY_IDS,
    PENDULUM_TASKS,
    make_gym_cartpole,
    make_gym_doorkey_ladder,
    make_gym_doorkey_seeds,
    make_gym_pendulum_rebuild,
    make_gym_worker_with_curriculum,
)

pytest.importorskip("minigrid")

DOORKEY_SIZES = [5.0, 6.0, 8.0]
CASES = {
    # kind: (worker factory, task table, applied name -> expected value of task params)
    "cartpole": (make_gym_cartpole, CARTPOLE_TASKS),
    "pendulum": (make_gym_pendulum_rebuild, PENDULUM_TASKS),
    "doorkey_ladder": (make_gym_doorkey_ladder, {"env_index": [0, 1, 2]}),
    "doorkey_seeds": (make_gym_doorkey_seeds, {"seed": list(range(16))}),
}


def _check_batch(batch, tasks: dict, several: bool = True) -> None:
    """Every transition's applied parameters (read back from the Gymnasium env) are those of
    its task id, and (``several``) the batch holds more than one task.
    """
    space = DiscreteSpace(tasks)
    expected = space.params(batch["next", "task_id"])
    for name in tasks:
        got = batch["next", "applied", name]
        torch.testing.assert_close(got, expected[name].to(got.dtype), msg=lambda m, n=name: f"{n}: {m}")
    if several:
        assert batch["next", "task_id"].unique().numel() > 1, batch["next", "task_id"].unique()


class TestGymTaskEnv:
    def test_specs_and_reset_applies_attributes(self):
        env = make_cartpole_params_env(record_applied=True)
        check_env_specs(env)
        td = env.reset(TensorDict({"params": {"length": torch.tensor(2.0), "masscart": torch.tensor(3.0)}}))
        assert td["applied", "length"] == 2.0 and td["applied", "masscart"] == 3.0
        cart = env._env.unwrapped
        assert cart.polemass_length == pytest.approx(cart.masspole * 2.0)
        assert cart.total_mass == pytest.approx(cart.masspole + 3.0)
        # a reset without parameters keeps the env as it is
        assert env.reset()["applied", "length"] == 2.0

    def test_pole_length_changes_dynamics(self):
        """Same state, same action: a longer pole tips more slowly."""
        env = make_cartpole_params_env()
        accs = []
        for length in (0.25, 2.0):
            env.reset(TensorDict({"params": {"length": torch.tensor(length), "masscart": torch.tensor(1.0)}}))
            env._env.unwrapped.state = (0.0, 0.0, 0.1, 0.0)
            td = env.rand_step(env.reset(TensorDict({"params": {"length": torch.tensor(length)}})).clone())
            accs.append(td["next", "observation"][3].abs())
        assert accs[0] > accs[1], accs

    def test_rebuild_only_when_task_changes(self):
        applier = RebuildFromKwargs("Pendulum-v1", ["g"])
        env = GymTaskEnv(applier, record_applied=True)
        assert applier.num_builds == 1
        for g, builds in ((5.0, 2), (5.0, 2), (2.0, 3), (2.0, 3)):
            td = env.reset(TensorDict({"params": {"g": torch.tensor(g)}}))
            assert env._env.unwrapped.g == g and td["applied", "g"] == g
            assert applier.num_builds == builds

    def test_choose_env_id_switches_grid(self):
        applier = ChooseEnvId(DOORKEY_IDS, wrappers=["minigrid.wrappers.ImgObsWrapper"])
        env = GymTaskEnv(applier)
        check_env_specs(env)
        for i, size in enumerate(DOORKEY_SIZES):
            env.reset(TensorDict({"params": {"env_index": torch.tensor(i)}}))
            assert env._env.unwrapped.width == size
            assert applier.current_env_id == DOORKEY_IDS[i]

    def test_level_seed_fixes_layout(self):
        env = make_gym_doorkey_seeds()
        layouts = []
        for seed in (3, 4, 3):
            td = env.reset(TensorDict({"params": {"seed": torch.tensor(seed)}}))
            layouts.append((td["observation"].clone(), env._env.unwrapped.agent_pos))
        assert torch.equal(layouts[0][0], layouts[2][0]) and layouts[0][1] == layouts[2][1]


class TestBadInput:
    def test_unknown_attribute_lists_attributes(self):
        with pytest.raises(ValueError, match=r"no attribute\(s\) \['pole_len'\].*'length'.*'masscart'"):
            GymTaskEnv(SetAttributes("CartPole-v1", ["pole_len"]))

    def test_rejected_kwarg_shows_env_error_and_task(self):
        env = GymTaskEnv(RebuildFromKwargs("Pendulum-v1", ["gravity"], env_kwargs={}))
        with pytest.raises(
            ValueError, match=r"rejected .* task \{'gravity': 3.0\}.*unexpected keyword argument 'gravity'"
        ):
            env.reset(TensorDict({"params": {"gravity": torch.tensor(3.0)}}))

    def test_rejected_kwarg_through_transform(self):
        cur = DomainRandomization(DiscreteSpace({"gravity": [3.0]}), seed=0)
        env = with_curriculum(GymTaskEnv(RebuildFromKwargs("Pendulum-v1", ["gravity"])), cur)
        with pytest.raises(ValueError, match=r"task \{'gravity': 3.0\}"):
            env.reset()

    def test_incompatible_env_ids(self):
        with pytest.raises(
            ValueError, match=r"MiniGrid-DoorKey-6x6-v0 has observation space .*\(6, 6, 3\).*common spec"
        ):
            GymTaskEnv(
                ChooseEnvId(
                    ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-6x6-v0"],
                    wrappers=["minigrid.wrappers.FullyObsWrapper", "minigrid.wrappers.ImgObsWrapper"],
                )
            )
        with pytest.raises(ValueError, match=r"Pendulum-v1 has observation space .*common spec"):
            GymTaskEnv(ChooseEnvId(["CartPole-v1", "Pendulum-v1"]))

    def test_declared_common_spec_accepts_narrower_envs(self):
        import gymnasium as gym
        import numpy as np

        obs = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
        env = GymTaskEnv(
            ChooseEnvId(
                ["MiniGrid-LavaCrossingS9N1-v0", "MiniGrid-LavaCrossingS9N2-v0", "MiniGrid-LavaCrossingS9N3-v0"],
                wrappers=["minigrid.wrappers.ImgObsWrapper"],
                observation_space=obs,
                action_space=gym.spaces.Discrete(7),
            )
        )
        assert env.observation_spec["observation"].shape == (7, 7, 3)

    def test_env_index_out_of_range(self):
        env = make_minigrid_ladder_env(DOORKEY_IDS)
        with pytest.raises(ValueError, match=r"env_index=3 is outside \[0, 3\)"):
            env.reset(TensorDict({"params": {"env_index": torch.tensor(3)}}))

    def test_seed_outside_declared_set(self):
        env = make_gym_doorkey_seeds()
        with pytest.raises(ValueError, match=r"seed 99 is outside the 20 declared level seeds"):
            env.reset(TensorDict({"params": {"seed": torch.tensor(99)}}))

    def test_unregistered_id(self):
        with pytest.raises(ValueError, match=r"not registered"):
            GymTaskEnv(SetAttributes("CartPole-v9", ["length"]))

    def test_curriculum_param_the_env_lacks(self):
        cur = DomainRandomization(DiscreteSpace({"mass": [1.0]}), seed=0)
        env = TransformedEnv(make_cartpole_params_env(), CurriculumTransform(cur))
        with pytest.raises(ValueError, match=r"parameter\(s\) \['mass'\].*'length'"):
            env.reset()


@pytest.mark.parametrize("kind", list(CASES))
def test_in_process_collector(kind):
    factory, tasks = CASES[kind]
    env = with_curriculum(factory(), DomainRandomization(DiscreteSpace(tasks), seed=0))
    collector = Collector(env, None, frames_per_batch=300, total_frames=600, auto_register_policy_transforms=False)
    try:
        for batch in collector:
            _check_batch(batch, tasks)
    finally:
        collector.shutdown()


@pytest.mark.parametrize("kind", list(CASES))
def test_parallel_env_two_workers(kind):
    factory, tasks = CASES[kind]
    cur = DomainRandomization(DiscreteSpace(tasks), seed=0)
    env = with_curriculum(ParallelEnv(2, factory), cur)
    collector = Collector(env, None, frames_per_batch=200, total_frames=200, auto_register_policy_transforms=False)
    try:
        for batch in collector:
            assert batch.shape == (2, 100)
            _check_batch(batch, tasks)
    finally:
        collector.shutdown()


@pytest.mark.parametrize("kind", ["cartpole", "doorkey_ladder"])
def test_multisync_collector_two_workers(kind):
    _, tasks = CASES[kind]
    factories = [functools.partial(make_gym_worker_with_curriculum, kind, seed) for seed in range(2)]
    path = transform_path(factories[0]())
    cur = DomainRandomization(DiscreteSpace(tasks), seed=0)
    collector = MultiSyncCollector(factories, None, frames_per_batch=200, total_frames=400)
    hook = CurriculumHook(cur, collector=collector, worker_path=path)
    played = set()
    try:
        for batch in collector:
            # one batch may be a single long episode per worker (random actions on a long pole)
            _check_batch(batch, tasks, several=False)
            played |= set(batch["next", "task_id"].unique().tolist())
            hook.process_batch(batch)
            hook.end_iteration()
    finally:
        collector.shutdown()
    assert len(played) > 1, played
    assert cur.counters["episodes"] > 0


class TestLevelSeeds:
    def test_train_and_test_sets(self):
        train, test, seeds = seed_spaces(16, 4)
        assert set(train.table["seed"].tolist()).isdisjoint(test.table["seed"].tolist())
        env = make_gym_doorkey_seeds(record_applied=True)
        out = {}
        for name, space in (("train", train), ("test", test)):
            res = evaluate_seeds(env, None, space.table["seed"].tolist()[:3], max_steps=50)
            assert res["seed"].tolist() == space.table["seed"].tolist()[:3]
            assert res["length"].min() >= 1 and res["length"].max() <= 50
            assert torch.isfinite(res["return"]).all()
            out[name] = res
        assert seeds == list(range(20))

    def test_curriculum_draws_only_training_seeds(self):
        train, _, _ = seed_spaces(16, 4)
        env = with_curriculum(make_gym_doorkey_seeds(), DomainRandomization(train, seed=0))
        collector = Collector(env, None, frames_per_batch=300, total_frames=300, auto_register_policy_transforms=False)
        try:
            for batch in collector:
                seeds = train.params(batch["next", "task_id"])["seed"]
                assert torch.equal(batch["next", "applied", "seed"], seeds.float())
                assert seeds.max() < 16
        finally:
            collector.shutdown()


def _doorkey_ppo(total_frames: int, frames_per_batch: int, threshold: float, min_episodes: int):
    from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer

    torch.manual_seed(0)
    cur = LevelCurriculum({"env_index": [0, 1, 2]}, threshold=threshold, metric="success", min_episodes=min_episodes)
    env = with_curriculum(ParallelEnv(2, functools.partial(make_minigrid_ladder_env, DOORKEY_IDS)), cur)
    settings = PPOSettings(
        frames_per_batch=frames_per_batch,
        total_frames=total_frames,
        minibatch_size=min(256, frames_per_batch),
        lr=1e-3,
        entropy_coef=1e-2,
        num_epochs=4,
    )
    trainer, hook = make_ppo_trainer(env, cur, settings)
    return trainer, hook, cur


def test_ppo_doorkey_ladder_loop_runs():
    """Tiny: the PPO loop runs on the ladder with discrete actions and image observations, and
    the curriculum receives episodes.
    """
    trainer, _, cur = _doorkey_ppo(total_frames=1024, frames_per_batch=512, threshold=0.99, min_episodes=4)
    try:
        trainer.train()
    finally:
        trainer.shutdown() if hasattr(trainer, "shutdown") else None
    assert cur.iteration == 2
    assert cur.counters["episodes"] > 0, cur.metrics()


@pytest.mark.slow
def test_ppo_doorkey_ladder_advances_levels():
    trainer, _, cur = _doorkey_ppo(total_frames=60_000, frames_per_batch=2048, threshold=0.5, min_episodes=16)
    try:
        trainer.train()
    finally:
        trainer.shutdown() if hasattr(trainer, "shutdown") else None
    assert int(cur.level.max()) >= 1, cur.metrics()
