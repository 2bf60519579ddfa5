"""Helpers for currlearn's tests and for users testing their own curricula.

Examples:
    >>> from currlearn.testing import get_default_devices
    >>> get_default_devices()[0]
    device(type='cpu')
"""

from __future__ import annotations

import torch

__all__ = ["get_default_devices", "make_pendulum_with_step_counter", "make_scheduled_pendulum"]


def get_default_devices() -> list[torch.device]:
    """Devices to parametrize tests over: CPU, plus the first CUDA device when one is available.

    The CUDA device carries its index (``cuda:0``) so that it compares equal to the ``device``
    attribute of the tensors placed on it.

    Returns:
        A list of :class:`torch.device`, CPU first.
    """
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda:0"))
    return devices


def make_scheduled_pendulum(num_envs: int = 2, total: int = 3) -> object:
    """A batched pendulum whose mass follows ``LinearSchedule(0.5, 2.0, total)``.

    Importable (not a lambda) so that collector worker processes started with ``spawn``
    can build it.
    """
    from torchrl.envs import StepCounter, TransformedEnv

    from currlearn.curricula import ScheduledCurriculum
    from currlearn.envs import make_pendulum
    from currlearn.integrations.torchrl import CurriculumTransform
    from currlearn.schedules import LinearSchedule

    curriculum = ScheduledCurriculum({"m": LinearSchedule(0.5, 2.0, total=total)}, seed=0)
    env = TransformedEnv(make_pendulum(num_envs, seed=0), StepCounter(max_steps=4))
    env.append_transform(CurriculumTransform(curriculum))
    return env


def make_pendulum_with_step_counter(num_envs: int = 2) -> object:
    """A batched pendulum that truncates every 4 steps (a worker env for ``ParallelEnv``)."""
    from torchrl.envs import StepCounter, TransformedEnv

    from currlearn.envs import make_pendulum

    return TransformedEnv(make_pendulum(num_envs, seed=0), StepCounter(max_steps=4))


# --------------------------------------------------------------------------- Gymnasium envs
# Worker factories for currlearn.integrations.gym (importable, so spawned workers can build them).
CARTPOLE_TASKS = {"length": [0.25, 0.5, 1.0, 2.0], "masscart": [0.5, 1.0, 2.0, 4.0]}
PENDULUM_TASKS = {"g": [2.0, 5.0, 10.0]}
DOORKEY_IDS = ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-6x6-v0", "MiniGrid-DoorKey-8x8-v0"]


def make_gym_cartpole(record_applied: bool = True) -> object:
    """CartPole whose ``length``/``masscart`` are set per task (a ``ParallelEnv`` worker env)."""
    from currlearn.integrations.gym import make_cartpole_params_env

    return make_cartpole_params_env(record_applied=record_applied)


def make_gym_pendulum_rebuild(record_applied: bool = True) -> object:
    """Pendulum rebuilt with constructor argument ``g`` per task (a ``ParallelEnv`` worker env)."""
    from currlearn.integrations.gym import GymTaskEnv, RebuildFromKwargs

    return GymTaskEnv(RebuildFromKwargs("Pendulum-v1", ["g"]), record_applied=record_applied)


def make_gym_doorkey_ladder(record_applied: bool = True, max_steps: int | None = 40) -> object:
    """DoorKey 5x5/6x6/8x8 chosen by ``env_index`` per task, episodes of at most ``max_steps``
    (a ``ParallelEnv`` worker env).
    """
    from currlearn.integrations.gym import make_minigrid_ladder_env

    return make_minigrid_ladder_env(DOORKEY_IDS, max_steps=max_steps, record_applied=record_applied)


def make_gym_doorkey_seeds(record_applied: bool = True, max_steps: int | None = 40) -> object:
    """DoorKey-5x5 with 16 training + 4 test level seeds, episodes of at most ``max_steps``
    (a ``ParallelEnv`` worker env).
    """
    from currlearn.integrations.gym import make_minigrid_seeds_env

    return make_minigrid_seeds_env(
        num_train_seeds=16, num_test_seeds=4, max_steps=max_steps, record_applied=record_applied
    )


_GYM_WORKERS = {
    "cartpole": (make_gym_cartpole, CARTPOLE_TASKS),
    "pendulum": (make_gym_pendulum_rebuild, PENDULUM_TASKS),
    "doorkey_ladder": (make_gym_doorkey_ladder, {"env_index": [0, 1, 2]}),
    "doorkey_seeds": (make_gym_doorkey_seeds, {"seed": list(range(16))}),
}


def make_gym_worker_with_curriculum(kind: str = "cartpole", seed: int = 0) -> object:
    """A ``MultiSyncCollector`` worker env: a Gymnasium task env with a CurriculumTransform over a
    ``DomainRandomization`` replica. ``kind`` is one of cartpole, pendulum, doorkey_ladder,
    doorkey_seeds.
    """
    from currlearn.curricula import DomainRandomization
    from currlearn.integrations.gym import with_curriculum
    from currlearn.spaces import DiscreteSpace

    factory, tasks = _GYM_WORKERS[kind]
    return with_curriculum(factory(), DomainRandomization(DiscreteSpace(tasks), seed=seed))
