"""Replay sampling with curriculum weights: ``CurriculumSampler`` against TorchRL's samplers.

Workload per step, as in an off-policy loop with prioritised replay: ``rb.sample()`` of
``--batch`` items from a full ``LazyTensorStorage`` of ``--items`` transitions over ``--tasks``
tasks, then ``rb.update_priority`` of the sampled items (TD errors). Rows, in one run:

- ``RandomSampler``: uniform replay, no weights (the floor of a replay step);
- TorchRL ``PrioritizedSampler(alpha=0.6, beta=0.4)``: a C++ sum tree over TD-error priorities;
- ``CurriculumSampler(alpha=0.6, beta=0.4)`` with task weights: task weight x difficulty x
  priority, on its sum tree (``SumTree``);
- dense recompute: the same weights recomputed and searched at every step
  (``item_weights`` + ``cumsum`` + ``searchsorted``: ``O(items)`` a step);
- ``CurriculumSampler`` after a new task-weight decision: the step that rebuilds the tree.

Run ``python benchmarks/bench_replay.py``; the last lines are ``curriculum_sampler_step_ms=<x>``,
``ratio_to_torchrl_prioritized=<x>`` and ``speedup_vs_dense=<x>``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, PrioritizedSampler, RandomSampler, ReplayBuffer

from currlearn.integrations.replay import CurriculumSampler


def make_buffer(sampler, items: int, tasks: int, batch: int, seed: int) -> ReplayBuffer:
    """A full buffer of ``items`` transitions with random task ids."""
    g = torch.Generator().manual_seed(seed)
    rb = ReplayBuffer(storage=LazyTensorStorage(items), sampler=sampler, batch_size=batch)
    chunk = 100_000
    for start in range(0, items, chunk):
        k = min(chunk, items - start)
        rb.extend(TensorDict({"task_id": torch.randint(tasks, (k,), generator=g), "obs": torch.randn(k, 4)}, [k]))
    return rb


def time_steps(step: Callable[[], None], repeats: int, warmup: int) -> float:
    """Median seconds of ``step``."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def replay_step(rb: ReplayBuffer, prioritized: bool) -> Callable[[], None]:
    def step() -> None:
        _, info = rb.sample(return_info=True)
        if prioritized:
            rb.update_priority(info["index"], torch.rand(info["index"].shape[0]))

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    n, b = args.items, args.batch
    rows: dict[str, float] = {}

    rows["RandomSampler"] = time_steps(
        replay_step(make_buffer(RandomSampler(), n, args.tasks, b, args.seed), False), args.repeats, args.warmup
    )
    per = make_buffer(PrioritizedSampler(n, alpha=0.6, beta=0.4), n, args.tasks, b, args.seed)
    rows["TorchRL PrioritizedSampler"] = time_steps(replay_step(per, True), args.repeats, args.warmup)

    sampler = CurriculumSampler(num_tasks=args.tasks, capacity=n, alpha=0.6, beta=0.4, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed)
    sampler.set_task_weights(torch.rand(args.tasks, generator=g))
    rb = make_buffer(sampler, n, args.tasks, b, args.seed)
    rows["CurriculumSampler"] = time_steps(replay_step(rb, True), args.repeats, args.warmup)

    storage = rb.storage

    def dense() -> None:
        w = sampler.item_weights(storage).double()
        cdf = torch.cumsum(w, 0)
        u = torch.rand(b, generator=g, dtype=torch.float64) * cdf[-1]
        index = torch.searchsorted(cdf, u, right=True).clamp_max(n - 1)
        sampler.update_priority(index, torch.rand(b))

    rows["dense recompute (item_weights + cumsum)"] = time_steps(dense, max(args.repeats // 5, 3), 1)

    def new_decision() -> None:
        sampler.set_task_weights(torch.rand(args.tasks, generator=g))
        replay_step(rb, True)()

    rows["CurriculumSampler, new task weights"] = time_steps(new_decision, max(args.repeats // 5, 3), 1)

    print(
        f"replay step: sample {b} of {n} stored items ({args.tasks} tasks) + update_priority; "
        f"torch threads {torch.get_num_threads()}; median of {args.repeats}"
    )
    for name, secs in rows.items():
        print(f"{name:42s}{1e3 * secs:10.3f} ms")
    step = rows["CurriculumSampler"]
    print(f"curriculum_sampler_step_ms={1e3 * step:.4f}")
    print(f"ratio_to_torchrl_prioritized={step / rows['TorchRL PrioritizedSampler']:.2f}")
    print(f"speedup_vs_dense={rows['dense recompute (item_weights + cumsum)'] / step:.1f}")


if __name__ == "__main__":
    main()
