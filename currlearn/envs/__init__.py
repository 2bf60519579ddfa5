"""Environments for curriculum learning: the point-mass gate task and a batched pendulum.

``make_pendulum`` returns torchrl's :class:`~torchrl.envs.PendulumEnv` with batch
size ``[num_envs]`` and one set of physical parameters per env.
"""

from __future__ import annotations

import torch
from torchrl.envs import PendulumEnv

from currlearn.envs.point_mass import PointMassGateEnv

__all__ = ["PointMassGateEnv", "make_pendulum"]


def make_pendulum(
    num_envs: int = 1,
    device: torch.device | str | None = None,
    seed: int | None = None,
) -> PendulumEnv:
    """Builds a ``PendulumEnv`` simulating ``num_envs`` pendulums with per-env params.

    ``PendulumEnv`` is built unbatched (``batch_size=[]``); its specs are expanded
    to ``[num_envs]`` through the public spec setters and the batch size is then
    set, so ``reset()`` draws ``gen_params(batch_size=[num_envs])`` (one params
    row per env, shape ``[num_envs]``) and ``check_env_specs`` passes.

    To give envs different params, reset with a tensordict holding them, e.g.
    ``td = PendulumEnv.gen_params(batch_size=[n]); td["params", "g"] = g_per_env;
    env.reset(td, set_state=False)``. Do not pass a ``[n]`` tensor as ``g=`` to
    ``gen_params``: it is broadcast to ``[n, n]``. Partial resets work with a
    ``"_reset"`` mask of shape ``[n, 1]`` in a tensordict that also holds the
    current state; auto-resets (``maybe_reset``) see only ``"_reset"`` and draw
    default params for the reset envs. Pass ``set_state=False`` to ``reset``
    when the input holds ``"th"``/``"thdot"``/``"params"`` to get a fresh random
    state and avoid torchrl 0.14's ``FutureWarning``.

    Args:
        num_envs: Number of pendulums (env batch size ``[num_envs]``).
        device: Torch device of the env (default CPU).
        seed: Seed of the env's generator (random if ``None``).

    Returns:
        A ``PendulumEnv`` with ``batch_size == torch.Size([num_envs])``.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    if seed is None:
        seed = torch.Generator().seed()
    env = PendulumEnv(device=torch.device("cpu") if device is None else device, seed=seed)
    env.full_observation_spec = env.full_observation_spec.expand(num_envs).clone()
    env.full_state_spec = env.full_state_spec.expand(num_envs).clone()
    env.full_action_spec = env.full_action_spec.expand(num_envs).clone()
    env.full_reward_spec = env.full_reward_spec.expand(num_envs).clone()
    env.full_done_spec = env.full_done_spec.expand(num_envs).clone()
    env.batch_size = torch.Size([num_envs])
    return env
