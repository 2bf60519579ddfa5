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
