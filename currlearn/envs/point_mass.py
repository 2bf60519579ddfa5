"""Batched point-mass-through-a-gate environment with per-env task parameters.

A small, pure-torch version of the point-mass task of Self-Paced Deep RL
(Klink et al. 2020, arXiv:2002.12036). A point mass starts near ``(0, -3)`` in
the square arena ``[-4, 4]^2`` and must reach the goal disk of radius 0.5
around ``(0, 3)``. A wall along ``y = 0`` blocks the way except for a gate
centred at ``x = gate_position`` with width ``gate_width``.

Dynamics (per step): ``v' = 0.5 v + 0.25 a`` with ``a`` in ``[-1, 1]^2`` (so
``|v_i| <= 0.5``), ``p' = clip(p + v', -4, 4)``. A step whose segment ``p -> p'``
crosses ``y = 0`` outside the gate is a *crash*: the mass stays at ``p`` with
zero velocity and the episode terminates without success. Terminating (rather
than sliding along the wall) makes the narrow off-centre target gate hard to
discover by undirected exploration while wide centred gates are trivial,
which is what makes a curriculum over the gate parameters pay off.

The constructor defaults are the *target* task, SPDL's: a gate at ``x = 2.5`` of width
0.5. A gate of width 8 (``EASY_GATE_WIDTH``) means no wall at all.

Reward: ``0.1 * (d - d')`` progress shaping (``d`` = distance to the goal; it
sums to at most 0.6 over an episode and has no per-step cost, so ending an
episode early by crashing is never attractive) plus ``+1`` on success. Flying straight
into the wall earns ~0.3; passing the gate earns ~1.6.

The task parameters live under ``"params"`` (like torchrl's ``PendulumEnv``):
``_step`` reads them from the input every step, so per-env values and
transforms that edit ``"params"`` take effect at once. ``_reset`` takes
``"params"`` from the reset tensordict when present, else the env defaults.
Note that on auto-resets (``maybe_reset``) only ``"_reset"`` reaches ``_reset``;
to set new params on reset from a transform, write them in
``_reset_env_preprocess`` so the first observation is consistent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from currlearn.envs._parts import done_spec, seeded_generator

ARENA: float = 4.0
START: tuple[float, float] = (0.0, -3.0)
START_NOISE: float = 0.25
GOAL: tuple[float, float] = (0.0, 3.0)
GOAL_RADIUS: float = 0.5
MAX_SPEED: float = 0.5
INERTIA: float = 0.5
SHAPING: float = 0.1
SUCCESS_BONUS: float = 1.0
GATE_POSITION_RANGE: tuple[float, float] = (-ARENA, ARENA)
GATE_WIDTH_RANGE: tuple[float, float] = (0.0, 2 * ARENA)  # (exclusive, inclusive]
DEFAULT_GATE_POSITION: float = 2.5
DEFAULT_GATE_WIDTH: float = 0.5
EASY_GATE_POSITION: float = 0.0
EASY_GATE_WIDTH: float = 2 * ARENA


def _check_gate(gate_position: object, gate_width: object) -> None:
    """Raises ValueError if a gate parameter (float or tensor) is out of range."""
    lo, hi = GATE_POSITION_RANGE
    pos = torch.as_tensor(gate_position, dtype=torch.float64)
    if not bool(torch.all((pos >= lo) & (pos <= hi))):
        raise ValueError(f"gate_position must lie in [{lo}, {hi}], got {gate_position!r}")
    width = torch.as_tensor(gate_width, dtype=torch.float64)
    if not bool(torch.all((width > GATE_WIDTH_RANGE[0]) & (width <= GATE_WIDTH_RANGE[1]))):
        lo, hi = GATE_WIDTH_RANGE
        raise ValueError(f"gate_width must lie in ({lo}, {hi}], got {gate_width!r}")


class PointMassGateEnv(EnvBase):
    """Batched 2-D point mass that must pass a gate in a wall to reach a goal.

    Args:
        num_envs: Number of simulated envs; the env batch size is ``[num_envs]``.
        max_steps: Episode length after which ``truncated`` is set.
        gate_position: Default gate centre x, in ``[-4, 4]`` (target: 2.5).
        gate_width: Default gate width, in ``(0, 8]`` (target: 0.5; 8 = no wall).
        device: Torch device for all tensors (default CPU).
        seed: Seed of the env's own generator (random if ``None``).

    Keys (``B = num_envs``): ``"observation"`` ``[B, 6]`` float32 =
    ``(x, y, vx, vy, gate_position, gate_width)``; ``"position"`` ``[B, 2]``;
    ``"velocity"`` ``[B, 2]``; ``"elapsed_steps"`` ``[B, 1]`` int64;
    ``"success"`` ``[B, 1]`` bool; ``("params", "gate_position"|"gate_width")``
    ``[B]``; ``"action"`` ``[B, 2]`` in ``[-1, 1]``; ``"reward"``, ``"done"``,
    ``"terminated"``, ``"truncated"`` ``[B, 1]``.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        max_steps: int = 50,
        gate_position: float = DEFAULT_GATE_POSITION,
        gate_width: float = DEFAULT_GATE_WIDTH,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
        if not isinstance(gate_position, (int, float)) or not math.isfinite(gate_position):
            raise ValueError(f"gate_position must be a finite float, got {gate_position!r}")
        if not isinstance(gate_width, (int, float)) or not math.isfinite(gate_width):
            raise ValueError(f"gate_width must be a finite float, got {gate_width!r}")
        _check_gate(gate_position, gate_width)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        device = torch.device("cpu") if device is None else torch.device(device)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.gate_position = float(gate_position)
        self.gate_width = float(gate_width)
        self.rng: torch.Generator | None = None
        self._make_specs()
        self.set_seed(torch.Generator().seed() if seed is None else seed)

    @staticmethod
    def gen_params(
        batch_size: int | Sequence[int] | torch.Size | None = None,
        *,
        gate_position: float | torch.Tensor = DEFAULT_GATE_POSITION,
        gate_width: float | torch.Tensor = DEFAULT_GATE_WIDTH,
        device: torch.device | str | None = None,
    ) -> TensorDict:
        """Builds a ``{"params": {...}}`` tensordict of gate parameters.

        Args:
            batch_size: Batch shape, e.g. ``[num_envs]`` (``None`` = unbatched).
            gate_position: Gate centre x, scalar or tensor broadcastable to ``batch_size``.
            gate_width: Gate width, scalar or tensor broadcastable to ``batch_size``.
            device: Device of the returned tensors.

        Returns:
            TensorDict of batch size ``batch_size`` with float32 entries
            ``("params", "gate_position")`` and ``("params", "gate_width")``.
        """
        _check_gate(gate_position, gate_width)
        if batch_size is None:
            shape = torch.Size([])
        elif isinstance(batch_size, int):
            shape = torch.Size([batch_size])
        else:
            shape = torch.Size(batch_size)

        def _full(value: float | torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(value, dtype=torch.float32, device=device).expand(shape).clone()

        params = TensorDict(
            {"gate_position": _full(gate_position), "gate_width": _full(gate_width)},
            batch_size=shape,
            device=device,
        )
        return TensorDict({"params": params}, batch_size=shape, device=device)

    def _make_specs(self) -> None:
        n = self.num_envs
        params = Composite(
            gate_position=Unbounded((n,), dtype=torch.float32),
            gate_width=Unbounded((n,), dtype=torch.float32),
            shape=(n,),
        )
        state = Composite(
            position=Bounded(-ARENA, ARENA, (n, 2), dtype=torch.float32),
            velocity=Bounded(-MAX_SPEED, MAX_SPEED, (n, 2), dtype=torch.float32),
            elapsed_steps=Unbounded((n, 1), dtype=torch.int64),
            params=params,
            shape=(n,),
        )
        obs = state.clone()
        obs["observation"] = Unbounded((n, 6), dtype=torch.float32)
        obs["success"] = Categorical(2, (n, 1), dtype=torch.bool)
        self.observation_spec = obs
        self.state_spec = state
        self.action_spec = Bounded(-1.0, 1.0, (n, 2), dtype=torch.float32)
        self.reward_spec = Unbounded((n, 1), dtype=torch.float32)
        self.full_done_spec = done_spec(n)

    @staticmethod
    def _observe(position: torch.Tensor, velocity: torch.Tensor, params: TensorDictBase) -> torch.Tensor:
        """Concatenates ``[B, 2]`` position/velocity and ``[B]`` gate params into ``[B, 6]``."""
        gate = torch.stack([params["gate_position"], params["gate_width"]], dim=-1)
        return torch.cat([position, velocity, gate.to(position.dtype)], dim=-1)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: object) -> TensorDictBase:
        if tensordict is not None and "params" in tensordict:
            params = tensordict["params"].clone()
        else:
            params = self.gen_params(
                self.batch_size,
                gate_position=self.gate_position,
                gate_width=self.gate_width,
                device=self.device,
            )["params"]
        n, dev = self.num_envs, self.device
        noise = torch.rand((n, 2), generator=self.rng, device=dev) * 2.0 - 1.0
        position = torch.tensor(START, device=dev) + START_NOISE * noise
        velocity = torch.zeros((n, 2), device=dev)
        false = torch.zeros((n, 1), dtype=torch.bool, device=dev)
        return TensorDict(
            {
                "position": position,
                "velocity": velocity,
                "elapsed_steps": torch.zeros((n, 1), dtype=torch.int64, device=dev),
                "params": params,
                "observation": self._observe(position, velocity, params),
                "success": false,
                "done": false.clone(),
                "terminated": false.clone(),
                "truncated": false.clone(),
            },
            batch_size=self.batch_size,
            device=dev,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        pos, vel = tensordict["position"], tensordict["velocity"]
        params = tensordict["params"]
        gate_pos, gate_width = params["gate_position"], params["gate_width"]
        action = tensordict["action"].clamp(-1.0, 1.0)
        new_vel = INERTIA * vel + (1.0 - INERTIA) * MAX_SPEED * action
        new_pos = (pos + new_vel).clamp(-ARENA, ARENA)
        # Wall test: does the segment pos -> new_pos cross y = 0 outside the gate?
        y0, y1 = pos[..., 1], new_pos[..., 1]
        crosses = (y0 < 0) != (y1 < 0)
        dy = torch.where(crosses, y1 - y0, torch.ones_like(y0))
        x_cross = pos[..., 0] + (new_pos[..., 0] - pos[..., 0]) * (-y0 / dy)
        crashed = crosses & ((x_cross - gate_pos).abs() > 0.5 * gate_width)
        new_pos = torch.where(crashed.unsqueeze(-1), pos, new_pos)
        new_vel = torch.where(crashed.unsqueeze(-1), torch.zeros_like(new_vel), new_vel)
        dist = torch.hypot(pos[..., 0] - GOAL[0], pos[..., 1] - GOAL[1])
        new_dist = torch.hypot(new_pos[..., 0] - GOAL[0], new_pos[..., 1] - GOAL[1])
        success = (new_dist <= GOAL_RADIUS).unsqueeze(-1)
        elapsed = tensordict["elapsed_steps"] + 1
        terminated = success | crashed.unsqueeze(-1)
        truncated = elapsed >= self.max_steps
        reward = SHAPING * (dist - new_dist).unsqueeze(-1) + SUCCESS_BONUS * success.to(pos.dtype)
        return TensorDict(
            {
                "position": new_pos,
                "velocity": new_vel,
                "elapsed_steps": elapsed,
                "params": params,
                "observation": self._observe(new_pos, new_vel, params),
                "success": success,
                "reward": reward,
                "done": terminated | truncated,
                "terminated": terminated,
                "truncated": truncated,
            },
            batch_size=tensordict.batch_size,
            device=tensordict.device,
        )

    def _set_seed(self, seed: int | None) -> None:
        self.rng = seeded_generator(seed, self.device)
