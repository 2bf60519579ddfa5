"""Off-policy curriculum replay: SAC (TorchRL) on the point-mass gate task.

A curriculum picks the gate of each episode *and* weights the replay buffer:

- :class:`currlearn.EasyFirstCurriculum` over a grid of 12 gates (width x position) drives
  the envs through a :class:`~currlearn.integrations.torchrl.CurriculumTransform`; after every
  collected batch its per-gate return EMA is updated from the finished episodes
  (``CurriculumHook.process_batch`` / ``end_iteration``), so its weights change each iteration;
- the replay buffer is ``ReplayBuffer(storage=LazyTensorStorage(capacity),
  sampler=CurriculumSampler(curriculum))``: a stored transition of gate ``t`` is replayed with
  probability ``w_t / sum_i w_{t(i)}`` (``w``: the curriculum's weights at the time of the draw;
  difficulty and TD priorities are left neutral here), whatever the mix of gates in storage.

LevelCurriculum and DomainRandomization cannot drive a ``CurriculumSampler`` directly: they are
not distributions over task ids (``DiscreteCurriculum``); any ``DiscreteCurriculum`` (PLR,
learning progress, learnability, easy-first, competence) can.

Each iteration prints the SAC losses and how closely the replayed gates follow the weights:
the total variation distance between the gate frequencies of a large check draw from the
buffer and the expected ``w_t n_t / sum_s w_s n_s`` (``n_t``: transitions of gate ``t`` in
storage), next to the same distance for the buffer's raw mix (what uniform replay would give).

Run: ``python examples/offpolicy_replay.py --frames 20000``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import TransformedEnv
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate

from currlearn import DiscreteSpace, EasyFirstCurriculum
from currlearn.envs.point_mass import PointMassGateEnv
from currlearn.integrations.replay import CurriculumSampler
from currlearn.integrations.torchrl import CurriculumHook, CurriculumTransform

WIDTHS = (8.0, 4.0, 2.0, 1.0)
POSITIONS = (0.0, 1.0, 2.5)


def gate_grid() -> DiscreteSpace:
    """The 4 x 3 = 12 gates (task id = width index * 3 + position index)."""
    return DiscreteSpace(
        {
            "gate_width": [w for w in WIDTHS for _ in POSITIONS],
            "gate_position": [p for _ in WIDTHS for p in POSITIONS],
        }
    )


def make_sac(env: Any, hidden: int) -> tuple[ProbabilisticActor, SACLoss]:
    n_act = env.action_spec.shape[-1]
    actor_net = nn.Sequential(MLP(out_features=2 * n_act, num_cells=[hidden, hidden]), NormalParamExtractor())
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        spec=env.full_action_spec_unbatched["action"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -1.0, "high": 1.0},
        return_log_prob=False,
    )
    qvalue = ValueOperator(MLP(out_features=1, num_cells=[hidden, hidden]), in_keys=["observation", "action"])
    with torch.no_grad():  # initialise the lazy layers
        td = env.fake_tensordict()
        actor(td)
        qvalue(td)
    loss = SACLoss(actor, qvalue, num_qvalue_nets=2, action_spec=env.full_action_spec_unbatched["action"])
    loss.make_value_estimator(gamma=0.99)
    return actor, loss


def task_frequencies(
    rb: ReplayBuffer, sampler: CurriculumSampler, num_tasks: int, draws: int
) -> dict[str, torch.Tensor]:
    """Observed gate frequencies of ``draws`` items drawn from ``rb`` by ``sampler``, the
    expected ones from the curriculum's weights, and the buffer's raw mix.
    """
    storage = rb.storage
    n = len(storage)
    stored = storage[:n].get("task_id").reshape(n, -1)[:, 0].long()
    counts = torch.bincount(stored, minlength=num_tasks).double()
    index, _ = sampler.sample(storage, draws)
    observed = torch.bincount(stored[index], minlength=num_tasks).double() / draws
    w = sampler.curriculum.weights().double()
    expected = w * counts / (w * counts).sum()
    return {"observed": observed, "expected": expected, "stored": counts / n, "weights": w}


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    """Total variation distance between two distributions."""
    return 0.5 * float((p - q).abs().sum())


def run(
    frames: int = 20_000,
    *,
    num_envs: int = 8,
    max_steps: int = 25,
    frames_per_batch: int = 200,
    batch_size: int = 256,
    updates_per_batch: int = 8,
    capacity: int = 100_000,
    hidden: int = 64,
    check_draws: int = 20_000,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train SAC for ``frames`` env steps; returns the per-iteration ``history`` (losses, TV
    distances), the curriculum's ``weights`` after each iteration, and the last frequency
    ``check`` (``observed``, ``expected``, ``stored``, ``weights``: tensors over gates).
    """
    torch.manual_seed(seed)
    space = gate_grid()
    curriculum = EasyFirstCurriculum(space, num_bins=3, temperature=0.3, anneal_iterations=1000, seed=seed)
    transform = CurriculumTransform(curriculum)
    env = TransformedEnv(PointMassGateEnv(num_envs, max_steps=max_steps, seed=seed), transform)
    hook = CurriculumHook(curriculum, transform=transform)
    actor, loss = make_sac(env, hidden)
    target = SoftUpdate(loss, tau=0.01)
    optim = torch.optim.Adam(loss.parameters(), lr=3e-4)
    sampler = CurriculumSampler(curriculum, capacity=capacity, seed=seed)
    rb = ReplayBuffer(storage=LazyTensorStorage(capacity), sampler=sampler, batch_size=batch_size)
    collector = Collector(
        env, actor, frames_per_batch=frames_per_batch, total_frames=frames, auto_register_policy_transforms=False
    )
    history: list[dict[str, float]] = []
    weights: list[torch.Tensor] = []  # the curriculum's weights after each iteration
    check: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    try:
        for it, batch in enumerate(collector):
            hook.process_batch(batch)  # finished episodes -> curriculum.update (weights move)
            rb.extend(batch.reshape(-1))
            losses = {}
            for _ in range(updates_per_batch):
                sample = rb.sample()
                out = loss(sample)
                total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
                optim.zero_grad()
                total.backward()
                optim.step()
                target.step()
                losses = {k: float(v.detach()) for k, v in out.items() if k.startswith("loss_")}
            collector.update_policy_weights_()
            hook.end_iteration()  # curriculum.step: iteration counter, refresh the envs
            check = task_frequencies(rb, sampler, space.num_tasks, check_draws)
            weights.append(check["weights"].clone())
            row = {
                "iteration": it + 1,
                "frames": (it + 1) * frames_per_batch,
                "episodes": float(curriculum.metrics()["curriculum/episodes"]),
                "tv_replay_vs_weights": tv(check["observed"], check["expected"]),
                "tv_stored_vs_weights": tv(check["stored"], check["expected"]),
                **losses,
            }
            history.append(row)
            if verbose:
                print(
                    f"it {row['iteration']:3d} frames {row['frames']:6d} episodes {row['episodes']:5.0f} "
                    f"loss_q {losses.get('loss_qvalue', float('nan')):7.3f} "
                    f"TV(replayed, expected) {row['tv_replay_vs_weights']:.4f} "
                    f"TV(stored mix, expected) {row['tv_stored_vs_weights']:.4f}"
                )
    finally:
        collector.shutdown()
    if verbose:
        print(f"done in {time.perf_counter() - t0:.1f} s; last check draw ({check_draws} items):")
        print("gate (width, position)   weight  stored  expected  replayed")
        for t in range(space.num_tasks):
            w, p = WIDTHS[t // len(POSITIONS)], POSITIONS[t % len(POSITIONS)]
            print(
                f"  ({w:3.1f}, {p:3.1f})            {float(check['weights'][t]):.3f}   {float(check['stored'][t]):.3f}"
                f"   {float(check['expected'][t]):.3f}     {float(check['observed'][t]):.3f}"
            )
    return {
        "history": history,
        "weights": weights,
        "check": check,
        "curriculum": curriculum,
        "sampler": sampler,
        "buffer": rb,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    run(args.frames, seed=args.seed)


if __name__ == "__main__":
    main()
