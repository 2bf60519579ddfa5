"""Tests for ``currlearn.envs``: the point-mass gate env and the batched pendulum."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tensordict import TensorDictBase
from torchrl.envs import PendulumEnv
from torchrl.envs.utils import check_env_specs, step_mdp

from currlearn.envs import PointMassGateEnv, make_pendulum
from currlearn.envs.point_mass import GOAL, START, START_NOISE

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]
Policy = Callable[[TensorDictBase], TensorDictBase]


def straight_up(td: TensorDictBase) -> TensorDictBase:
    """Pushes straight towards +y, ignoring the gate."""
    action = torch.zeros_like(td["position"])
    action[..., 1] = 1.0
    td["action"] = action
    return td


def through_gate(target_x: torch.Tensor | None = None) -> Policy:
    """Waypoint PD controller: line up below the wall at ``target_x``, go up, then to the goal.

    Args:
        target_x: ``[B]`` gate x to aim for; ``None`` reads ``("params", "gate_position")``.

    Returns:
        A policy writing ``"action"`` of shape ``[B, 2]``.
    """

    def policy(td: TensorDictBase) -> TensorDictBase:
        pos, vel = td["position"], td["velocity"]
        tx = td["params", "gate_position"] if target_x is None else target_x.to(pos.device)
        below = pos[..., 1] < 0
        aligned = (pos[..., 0] - tx).abs() < 0.1
        wp_x = torch.where(below, tx, torch.full_like(tx, GOAL[0]))
        wp_y = torch.where(below & ~aligned, torch.full_like(tx, -0.75), torch.full_like(tx, GOAL[1]))
        err = torch.stack([wp_x, wp_y], dim=-1) - pos
        td["action"] = (2.0 * err - 2.0 * vel).clamp(-1.0, 1.0)
        return td

    return policy


def run(env: PointMassGateEnv, policy: Policy, steps: int, td: TensorDictBase | None = None) -> TensorDictBase:
    """Steps ``env`` without auto-reset; returns the stacked ``"next"`` data, ``[B, steps]``."""
    td = env.reset() if td is None else td
    outs = []
    for _ in range(steps):
        td = env.step(policy(td))
        outs.append(td["next"].clone())
        td = step_mdp(td)
    return torch.stack(outs, dim=1)


def first_done(out: TensorDictBase) -> TensorDictBase:
    """Selects, per env, the ``"next"`` entry of the first done step; shape ``[B]``."""
    done = out["done"].squeeze(-1)
    assert done.any(dim=1).all(), "some env never finished its episode"
    idx = done.int().argmax(dim=1)
    return out[torch.arange(out.shape[0], device=idx.device), idx]


@pytest.mark.parametrize("device", DEVICES)
def test_check_env_specs(device: str) -> None:
    env = PointMassGateEnv(3, device=device, seed=0)
    assert env.batch_size == torch.Size([3])
    check_env_specs(env, seed=0)
    td = env.reset()
    assert td["observation"].shape == (3, 6)
    assert td["observation"].dtype == torch.float32
    assert td["success"].shape == (3, 1)
    assert not td["success"].any()
    assert td["params", "gate_position"].shape == (3,)
    torch.testing.assert_close(td["observation"][:, 4], td["params", "gate_position"])
    torch.testing.assert_close(td["observation"][:, 5], td["params", "gate_width"])
    start = torch.tensor(START, device=device)
    assert ((td["position"] - start).abs() <= START_NOISE).all()
    out = env.rand_step(td)
    assert out["next", "reward"].shape == (3, 1)
    assert out["next", "success"].dtype == torch.bool
    assert out["next", "success"].shape == (3, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_partial_reset_leaves_other_envs_alone(device: str) -> None:
    env = PointMassGateEnv(4, device=device, seed=1)
    td = env.reset()
    for _ in range(4):
        td = step_mdp(env.step(straight_up(td)))
    before = td.clone()
    mask = torch.tensor([True, False, True, False], device=device)
    td["_reset"] = mask.unsqueeze(-1)
    td["params", "gate_width"] = torch.where(mask, 3.0, td["params", "gate_width"])
    out = env.reset(td)
    keep, new = ~mask, mask
    for key in ["position", "velocity", "elapsed_steps", "observation", ("params", "gate_width")]:
        torch.testing.assert_close(out[key][keep], before[key][keep])
    assert (out["elapsed_steps"][new] == 0).all()
    assert (out["velocity"][new] == 0).all()
    assert (out["position"][new][:, 1] < START[1] + START_NOISE + 1e-6).all()
    assert (before["position"][new][:, 1] > START[1] + 1.0).all()  # they really had moved
    assert (out["params", "gate_width"][new] == 3.0).all()
    assert (out["observation"][new][:, 5] == 3.0).all()
    assert "_reset" not in out


@pytest.mark.parametrize("device", DEVICES)
def test_per_env_params_change_dynamics(device: str) -> None:
    env = PointMassGateEnv(2, device=device, seed=2)
    td = env.reset()
    td["params", "gate_position"] = torch.tensor([2.0, -2.0], device=device)
    td["params", "gate_width"] = torch.tensor([1.0, 1.0], device=device)
    out = run(env, through_gate(torch.tensor([2.0, 2.0])), 50, td)
    end = first_done(out)
    assert end["success"].squeeze(-1).tolist() == [True, False]
    assert end["terminated"].squeeze(-1).tolist() == [True, True]  # env 1 crashed
    assert end["position"][1, 1] < 0  # blocked below the wall


@pytest.mark.parametrize("device", DEVICES)
def test_scripted_policy_passes_target_gate(device: str) -> None:
    env = PointMassGateEnv(8, device=device, seed=3)
    out = run(env, through_gate(), 50)
    end = first_done(out)
    assert end["success"].all()
    assert end["terminated"].all()
    assert not end["truncated"].any()
    assert (end["reward"] >= 1.0).all()
    assert ((end["position"] - torch.tensor(GOAL, device=device)).norm(dim=-1) <= 0.5).all()


@pytest.mark.parametrize("device", DEVICES)
def test_straight_up_solves_easy_gate_only(device: str) -> None:
    easy = run(
        PointMassGateEnv(8, gate_position=0.0, gate_width=2.0, device=device, seed=4),
        straight_up,
        50,
    )
    end = first_done(easy)
    assert end["success"].all()
    target = run(PointMassGateEnv(8, device=device, seed=4), straight_up, 50)
    end = first_done(target)
    assert not target["success"].any()
    assert end["terminated"].all()
    assert (end["position"][:, 1] < 0).all()  # crashed into the wall
    assert (end["reward"] < 0.5).all()


@pytest.mark.parametrize("device", DEVICES)
def test_params_written_into_input_take_effect_at_once(device: str) -> None:
    env = PointMassGateEnv(4, device=device, seed=5)
    td = env.reset()
    td["params"] = env.gen_params(4, gate_position=0.0, gate_width=8.0, device=device)["params"]
    out = run(env, straight_up, 50, td)
    assert first_done(out)["success"].all()
    assert (out["observation"][:, 0, 5] == 8.0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_truncation_at_max_steps(device: str) -> None:
    env = PointMassGateEnv(3, max_steps=5, device=device, seed=6)

    def idle(td: TensorDictBase) -> TensorDictBase:
        td["action"] = torch.zeros_like(td["position"])
        return td

    out = run(env, idle, 5)
    assert not out["done"][:, :4].any()
    assert out["truncated"][:, 4].all()
    assert out["done"][:, 4].all()
    assert not out["terminated"].any()
    assert not out["success"].any()
    assert (out["elapsed_steps"][:, 4] == 5).all()
    rollout = env.rollout(12, break_when_any_done=False)  # auto-reset after truncation
    assert rollout["next", "truncated"].squeeze(-1).sum(dim=1).tolist() == [2, 2, 2]


def test_seeding_is_reproducible() -> None:
    a, b, c = (PointMassGateEnv(4, seed=s) for s in (7, 7, 8))
    torch.testing.assert_close(a.reset()["position"], b.reset()["position"])
    assert not torch.equal(a.reset()["position"], c.reset()["position"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_envs": 0}, r"num_envs must be an int >= 1, got 0"),
        ({"num_envs": 2.0}, r"num_envs .* got 2\.0"),
        ({"max_steps": 0}, r"max_steps must be an int >= 1, got 0"),
        ({"gate_position": 4.5}, r"gate_position must lie in \[-4\.0, 4\.0\], got 4\.5"),
        ({"gate_position": float("nan")}, r"gate_position must be a finite float, got nan"),
        ({"gate_width": 0.0}, r"gate_width must lie in \(0\.0, 8\.0\], got 0\.0"),
        ({"gate_width": 9.0}, r"gate_width .* got 9\.0"),
        ({"seed": "x"}, r"seed must be an int or None, got 'x'"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PointMassGateEnv(**kwargs)


def test_gen_params() -> None:
    td = PointMassGateEnv.gen_params([3], gate_position=torch.tensor([-1.0, 0.0, 1.0]), gate_width=2.0)
    assert td.batch_size == (3,)
    assert td["params", "gate_width"].tolist() == [2.0, 2.0, 2.0]
    assert td["params", "gate_position"].tolist() == [-1.0, 0.0, 1.0]
    assert PointMassGateEnv.gen_params()["params", "gate_position"].shape == ()
    with pytest.raises(ValueError, match=r"gate_width must lie in"):
        PointMassGateEnv.gen_params(2, gate_width=torch.tensor([1.0, -1.0]))


@pytest.mark.parametrize("device", DEVICES)
def test_make_pendulum_per_env_params(device: str) -> None:
    env = make_pendulum(4, device=device, seed=0)
    assert isinstance(env, PendulumEnv)
    assert env.batch_size == torch.Size([4])
    check_env_specs(env, seed=0)
    assert env.reset()["params", "g"].shape == (4,)
    td = PendulumEnv.gen_params(batch_size=[4], device=device)
    g = torch.tensor([0.0, 5.0, 10.0, 20.0], device=device)
    td["params", "g"] = g
    td = env.reset(td, set_state=False)
    torch.testing.assert_close(td["params", "g"], g)
    td["th"] = torch.full((4,), 1.0, device=device)
    td["thdot"] = torch.zeros(4, device=device)
    td["action"] = torch.zeros(4, 1, device=device)
    nxt = env.step(td)["next"]
    torch.testing.assert_close(nxt["params", "g"], g)
    thdot = nxt["thdot"]
    assert thdot[0] == 0
    assert (thdot[1:] > 0).all()
    assert (thdot.diff()[1:] > 0).all()
    # partial reset: only envs 0 and 2 get new state; the others keep theirs.
    nxt = step_mdp(env.step(td))
    nxt["_reset"] = torch.tensor([[True], [False], [True], [False]], device=device)
    before = nxt.clone()
    out = env.reset(nxt, set_state=False)
    torch.testing.assert_close(out["th"][1::2], before["th"][1::2])
    torch.testing.assert_close(out["params", "g"], g)
    assert (out["th"][0::2] != before["th"][0::2]).all()


def test_make_pendulum_bad_num_envs() -> None:
    with pytest.raises(ValueError, match=r"num_envs must be an int >= 1, got -1"):
        make_pendulum(-1)
