"""The curriculum's share of a real TorchRL PPO iteration, at 1e5 tasks.

``make_ppo_trainer`` (TorchRL ``Collector`` + ``ClipPPOLoss`` + ``GAE`` + ``Trainer``) on
``PointMassGateEnv`` wrapped in a ``CurriculumTransform``, with ``PrioritizedLevelReplay``
(rank prioritisation, L1 value loss scores) over a ``DiscreteSpace`` of 100_000 gates (a
400 x 250 grid of gate widths in [0.5, 8] and positions in [-4, 4]).

Timed per iteration (the first ``--warmup`` iterations are dropped):

- the curriculum hook, from the trainer's own op timing: TorchRL's ``Trainer`` wraps every
  registered op in ``torchrl._utils.timeit("hook/<name>")``; the hook's ops are
  ``process_batch`` (``batch_process``), ``first_epoch`` (``pre_epoch``: episode tracking, PLR
  scores per episode from PPO's own GAE, ``curriculum.update``), ``end_iteration``
  (``post_steps``: ``curriculum.step``) and ``log`` (``post_steps_log``: the curriculum's
  metrics, at most every ``--log-interval`` frames as the trainer's logger);
- transform sampling: ``CurriculumTransform._assign`` (``curriculum.sample`` for the envs being
  reset and the parameters of the sampled tasks), timed with ``perf_counter``;
- transform writes: the task ids and parameters the transform copies into the reset and step
  tensordicts (``_write``, ``_step``);
- the iteration: ``perf_counter`` between consecutive ``post_steps`` (collection of
  ``--frames-per-batch`` frames, GAE, ``--epochs`` epochs of minibatch updates, hooks).

Run ``python benchmarks/bench_ppo_share.py``; the last lines are
``curriculum_share_of_ppo_iteration_1e5=<x>`` (the hook's ops, a fraction; target < 0.01) and
``curriculum_share_with_transform_1e5=<x>`` (hook + transform sampling + transform writes).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torchrl.envs import TransformedEnv

from currlearn import DiscreteSpace, PrioritizedLevelReplay
from currlearn.envs.point_mass import PointMassGateEnv
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer


def gate_space(num_tasks: int) -> DiscreteSpace:
    """``num_tasks`` gates on a grid (widths x positions, about 8 : 5)."""
    nw = max(1, round((num_tasks * 8 / 5) ** 0.5))
    while num_tasks % nw:
        nw -= 1
    npos = num_tasks // nw
    w = torch.linspace(0.5, 8.0, nw)
    p = torch.linspace(-4.0, 4.0, npos)
    return DiscreteSpace({"gate_width": w.repeat_interleave(npos).tolist(), "gate_position": p.repeat(nw).tolist()})


class Timer:
    """Accumulates ``perf_counter`` time of wrapped callables (not nested: an inner call made
    while another wrapped call of the same timer runs is not counted twice)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t0
                self.calls += 1
                self._depth -= 1

        return timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--max-steps", type=int, default=50)
    p.add_argument("--frames-per-batch", type=int, default=4096)
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--minibatch", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--log-interval", type=int, default=10_000, help="trainer log_interval in frames (TorchRL's default 10000)"
    )
    p.add_argument(
        "--prefetch", type=int, default=64, help="CurriculumTransform prefetch (0: one sample call per reset)"
    )
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from torchrl._utils import timeit

    space = gate_space(args.tasks)
    plr = PrioritizedLevelReplay(space, seed=args.seed)
    transform = CurriculumTransform(plr, prefetch=args.prefetch)
    env = TransformedEnv(PointMassGateEnv(args.num_envs, max_steps=args.max_steps, seed=args.seed), transform)
    settings = PPOSettings(
        frames_per_batch=args.frames_per_batch,
        total_frames=args.frames_per_batch * args.iterations,
        num_epochs=args.epochs,
        minibatch_size=args.minibatch,
    )
    trainer, hook = make_ppo_trainer(env, plr, settings, log_interval=args.log_interval)
    assert hook is not None

    sampling, plumbing = Timer(), Timer()
    transform._assign = sampling.wrap(transform._assign)  # type: ignore[method-assign]
    for name in ("_write", "_step"):
        setattr(transform, name, plumbing.wrap(getattr(transform, name)))

    hook_keys = ("hook/process_batch", "hook/first_epoch", "hook/end_iteration", "hook/log")
    rows: list[dict[str, float]] = []
    last = {"t": time.perf_counter(), "hooks": 0.0, "sampling": 0.0, "plumbing": 0.0}

    def reg_total(prefix: tuple[str, ...]) -> float:
        return sum(v[1] for k, v in timeit._REG.items() if k in prefix)

    def on_iteration() -> None:
        now = time.perf_counter()
        hooks = reg_total(hook_keys)
        rows.append(
            {
                "iteration_s": now - last["t"],
                "hooks_s": hooks - last["hooks"],
                "sampling_s": sampling.total - last["sampling"],
                "plumbing_s": plumbing.total - last["plumbing"],
                "episodes": float(plr.counters["episodes"]),
            }
        )
        last.update(t=now, hooks=hooks, sampling=sampling.total, plumbing=plumbing.total)

    timeit._REG.clear()
    trainer.register_op("post_steps", on_iteration)  # after the curriculum hook's end_iteration
    last["t"] = time.perf_counter()
    try:
        trainer.train()
    finally:
        trainer.shutdown()

    # the end_iteration of iteration k runs before this op of iteration k: attribution is exact
    keep = rows[args.warmup :]
    if not keep:
        raise SystemExit("no iteration left after the warm-up: raise --iterations")

    def med(key: str) -> float:
        return statistics.median(r[key] for r in keep)

    it_s = sum(r["iteration_s"] for r in keep)
    hook_s = sum(r["hooks_s"] for r in keep)
    all_s = sum(r["hooks_s"] + r["sampling_s"] + r["plumbing_s"] for r in keep)
    print(
        f"PPO on PointMassGateEnv x{args.num_envs}, PrioritizedLevelReplay over {space.num_tasks} gates; "
        f"{args.frames_per_batch} frames/iteration, {args.epochs} epochs x minibatch {args.minibatch}, "
        f"log_interval {args.log_interval} frames, prefetch {args.prefetch}, torch threads {torch.get_num_threads()}; "
        f"{len(keep)} iterations timed after {args.warmup} warm-up"
    )
    print(f"{'':44s}{'median ms/iter':>16s}{'share':>10s}")
    for label, key in (
        ("whole PPO iteration", "iteration_s"),
        ("curriculum hook ops (trainer's timing)", "hooks_s"),
        ("transform sampling at resets (_assign)", "sampling_s"),
        ("transform writes (_write, _step)", "plumbing_s"),
    ):
        total = sum(r[key] for r in keep)
        print(f"{label:44s}{1e3 * med(key):16.3f}{total / it_s:10.4%}")
    for name in hook_keys:
        if name in timeit._REG:
            print(f"  {name:42s}{1e3 * timeit._REG[name][0]:16.3f} ms per call, {timeit._REG[name][2]} calls")
    episodes = statistics.median(b["episodes"] - a["episodes"] for a, b in itertools.pairwise(rows))
    print(f"episodes scored per iteration (median): {episodes:.0f}")
    print(
        f"transform sampling calls: {sampling.calls} ({1e6 * sampling.total / max(sampling.calls, 1):.0f} us each); "
        f"num_seen={int(plr.state['num_seen'])} of {space.num_tasks}"
    )
    size = "1e5" if space.num_tasks == 100_000 else str(space.num_tasks)
    print(f"curriculum_share_of_ppo_iteration_{size}={hook_s / it_s:.5f}")
    print(f"curriculum_share_with_transform_{size}={all_s / it_s:.5f}")


if __name__ == "__main__":
    main()
