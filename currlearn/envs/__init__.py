"""Environments for curriculum learning: the point-mass gate task, a batched grid maze over
generated levels (:mod:`currlearn.envs.maze`), a batched pendulum and batched tic-tac-toe
against chosen opponents (:mod:`currlearn.envs.tictactoe`: scripted bots, a perfect one).

``make_pendulum`` returns torchrl's :class:`~torchrl.envs.PendulumEnv` with batch
size ``[num_envs]`` and one set of physical parameters per env; ``pendulum_env`` adds a time
limit and a vector observation, for the app's ``env=pendulum``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite, Unbounded
from torchrl.envs import Compose, PendulumEnv, StepCounter, TransformedEnv
from torchrl.envs.transforms import Transform

from currlearn.envs.maze import MazeEditor, MazeEnv, MazeGenerator, held_out_levels
from currlearn.envs.point_mass import PointMassGateEnv
from currlearn.envs.tictactoe import TicTacToeEnv

__all__ = [
    "MazeEditor",
    "MazeEnv",
    "MazeGenerator",
    "PendulumObservation",
    "PointMassGateEnv",
    "TicTacToeEnv",
    "held_out_levels",
    "make_pendulum",
    "pendulum_env",
]


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


class PendulumObservation(Transform):
    """``observation = (cos th, sin th, thdot / 8)``: the pendulum's state as one vector."""

    def __init__(self) -> None:
        super().__init__(in_keys=["th", "thdot"], out_keys=["observation"])

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        th, thdot = td.get("th"), td.get("thdot")
        td.set("observation", torch.stack([th.cos(), th.sin(), thdot / 8.0], -1))
        return td

    def _reset(self, td: TensorDictBase, td_reset: TensorDictBase) -> TensorDictBase:
        return self._call(td_reset)

    def transform_observation_spec(self, spec: Composite) -> Composite:  # noqa: D102
        spec["observation"] = Unbounded(shape=(*spec.shape, 3), dtype=torch.float32, device=spec.device)
        return spec


def pendulum_env(
    num_envs: int = 1,
    max_steps: int = 200,
    device: torch.device | str | None = None,
    seed: int | None = None,
) -> TransformedEnv:
    """:func:`make_pendulum` with a time limit (``StepCounter(max_steps)``) and a vector
    ``"observation"`` (:class:`PendulumObservation`), ready for a policy network; its
    physics parameters (``g``, ``m``, ``l``, ...) stay under ``"params"`` per env.

    Raises:
        ValueError: ``num_envs`` or ``max_steps`` is not an int >= 1.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
    base = make_pendulum(num_envs, device=device, seed=seed)
    return TransformedEnv(base, Compose(StepCounter(max_steps), PendulumObservation()))
