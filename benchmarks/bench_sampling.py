"""Curriculum update + sample throughput: currlearn vs. syllabus-rl 0.7 vs. a bare-torch floor.

Workload per iteration: ``update`` with 4096 finished episodes (random tasks and scores), then
``sample`` 4096 tasks, at 1e3, 1e5 and 1e6 tasks. Rows:

- currlearn: PrioritizedLevelReplay (rank, the paper's default; power; robust), learning
  progress, learnability, easy-first, competence, domain randomization; ALP-GMM and ADR over a
  2-d box (continuous: one row each, the size column does not apply).
- syllabus-rl 0.7 (if installed): its ``PrioritizedLevelReplay`` (score updates through its
  ``TaskSampler.update_task_score``, the per-episode step of its rollout update, so the rollout
  and GAE processing it also does are *not* counted) and ``DomainRandomization``. Syllabus
  works per item in Python: at large sizes a few calls are timed and scaled to 4096 (marked
  ``*``).
- floor: bare torch ``index_add_`` (update) + ``cumsum`` + ``searchsorted`` (sample) of the
  same sizes.

Steady state for the PLRs: every level has been seen and scored (state filled before timing,
for currlearn and syllabus alike), so replay sampling is what is measured.

A row is the median over blocks of 5 iterations of their mean: work done once every few
iterations (a full ``topk`` when the spare top-k candidates run out) counts at its share.

Then comes a scaling table: one ``update`` of ``k`` = 1 and 4096 episodes of easy-first and
competence, at 1e3 to 1e6 tasks.

Run ``python benchmarks/bench_sampling.py`` (``--device cuda`` for a GPU, ``--quick`` for a
short run, ``--threads 2`` for two intra-op threads; the default, 1, keeps the medians stable
when other processes share the cores). Then come ``ratio_to_floor_<curriculum>_<size>=<x>``
(every discrete curriculum over the floor of its size, same run), and last
``speedup_vs_syllabus_plr_1e5=<x>`` and ``ratio_to_floor_1e5=<x>`` (currlearn PLR vs. syllabus
PLR and vs. the floor, at 1e5 tasks).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from currlearn.base import Curriculum
from currlearn.curricula.adr import ADRCurriculum
from currlearn.curricula.alp_gmm import ALPGMMCurriculum
from currlearn.curricula.difficulty import CompetenceCurriculum, EasyFirstCurriculum
from currlearn.curricula.domain_randomization import DomainRandomization
from currlearn.curricula.learning_progress import LearnabilityCurriculum, LearningProgressCurriculum
from currlearn.curricula.plr import PrioritizedLevelReplay
from currlearn.feedback import episode_feedback
from currlearn.spaces import BoxSpace, DiscreteSpace

EPISODES = 4096
SIZES = (1_000, 100_000, 1_000_000)

DISCRETE: dict[str, Callable[[DiscreteSpace], Curriculum]] = {
    "plr_rank": lambda s: PrioritizedLevelReplay(s, seed=0),
    "plr_power": lambda s: PrioritizedLevelReplay(s, prioritization="power", temperature=0.3, seed=0),
    "plr_robust": lambda s: PrioritizedLevelReplay(s, robust=True, replay_schedule="fixed", seed=0),
    "learning_progress": lambda s: LearningProgressCurriculum(s, seed=0),
    "learnability": lambda s: LearnabilityCurriculum(s, seed=0),
    "easy_first": lambda s: EasyFirstCurriculum(s, seed=0),
    "competence": lambda s: CompetenceCurriculum(s, seed=0),
    "domain_randomization": lambda s: DomainRandomization(s, seed=0),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_feedbacks(
    num_tasks: int, count: int, device: torch.device, box: BoxSpace | None = None, episodes: int = EPISODES
) -> list[Any]:
    """``count`` feedback TensorDicts of ``episodes`` random episodes each (built before timing)."""
    g = torch.Generator(device="cpu").manual_seed(123)
    out = []
    for _ in range(count):
        task = torch.randint(num_tasks, (episodes,), generator=g) if box is None else box.sample_uniform(episodes, g)
        success = (torch.rand(episodes, generator=g) < 0.5).float()
        ret = torch.rand(episodes, generator=g)
        score = torch.rand(episodes, generator=g)
        out.append(episode_feedback(task, ret, success=success, score=score).to(device))
    return out


def fill_plr(cur: PrioritizedLevelReplay, seed: int = 0) -> None:
    """Steady state: every level seen with a random score, random staleness."""
    n = cur.space.num_tasks
    g = torch.Generator().manual_seed(seed)
    st = cur.state
    score = torch.rand(n, generator=g).to(cur.device)
    st["score"].copy_(score)
    st["seen"].fill_(True)
    st["num_seen"].fill_(n)
    st["episode_count"].fill_(10 * n)
    st["timestamp"].copy_(torch.randint(10 * n, (n,), generator=g).to(cur.device))
    st["order"] = torch.sort(score, descending=True, stable=True).indices
    cur._on_load()


BLOCK = 5
"""Iterations per timed block: a row is the median over blocks of the mean iteration of a
block, so that work done every few iterations (a full top-k once the spare candidates run
out) counts at its share, while a stall of the machine moves one block only."""


def _blocks(step: Callable[[int], None], repeats: int, warmup: int, device: torch.device) -> float:
    for i in range(warmup):
        step(i)
    means = []
    for b in range(max(1, repeats // BLOCK)):
        _sync(device)
        t0 = time.perf_counter()
        for i in range(BLOCK):
            step(warmup + b * BLOCK + i)
        _sync(device)
        means.append((time.perf_counter() - t0) / BLOCK)
    return statistics.median(means)


def time_iterations(
    cur: Curriculum, feedbacks: list[Any], repeats: int, warmup: int, device: torch.device, episodes: int = EPISODES
) -> float:
    """Seconds of one ``update(feedback)`` + ``sample(episodes)`` (median of block means)."""

    def step(i: int) -> None:
        cur.update(feedbacks[i % len(feedbacks)])
        cur.sample(episodes)

    return _blocks(step, repeats, warmup, device)


def time_floor(num_tasks: int, repeats: int, warmup: int, device: torch.device, episodes: int = EPISODES) -> float:
    """Bare torch: ``index_add_`` of the episodes' scores, ``cumsum``, ``searchsorted``."""
    g = torch.Generator(device=device).manual_seed(0)
    w = torch.rand(num_tasks, device=device)
    tasks = torch.randint(num_tasks, (episodes,), device=device, generator=g)
    scores = torch.rand(episodes, device=device, generator=g) * 1e-3

    def step(i: int) -> None:
        w.index_add_(0, tasks, scores)
        cdf = torch.cumsum(w, 0)
        u = torch.rand(episodes, device=device, generator=g) * cdf[-1]
        torch.searchsorted(cdf, u)

    return _blocks(step, repeats, warmup, device)


SCALING_SIZES = (1_000, 10_000, 100_000, 1_000_000)
SCALING_ITEMS = (1, 4096)


def time_update_scaling(
    name: str,
    sizes: tuple[int, ...] = SCALING_SIZES,
    items: tuple[int, ...] = SCALING_ITEMS,
    repeats: int = 10,
    device: torch.device | None = None,
) -> dict[tuple[int, int], float]:
    """Seconds of one ``update`` of ``k`` episodes (``k`` in ``items``, distinct random tasks)
    for every size: how an update's cost grows with the number of tasks and of episodes."""
    dev = torch.device("cpu") if device is None else device
    out = {}
    for n in sizes:
        cur = DISCRETE[name](DiscreteSpace(num_tasks=n, device=dev))
        g = torch.Generator().manual_seed(1)
        for k in items:
            fbs = []
            for _ in range(4):
                task = torch.randperm(n, generator=g)[: min(k, n)]
                ret = torch.rand(task.numel(), generator=g)
                fbs.append(episode_feedback(task, ret, success=(ret < 0.5).float(), score=ret).to(dev))
            out[(n, k)] = _blocks(lambda i, cur=cur, fbs=fbs: cur.update(fbs[i % 4]), repeats, 2, dev)
    return out


def scaling_table(name: str, results: dict[tuple[int, int], float]) -> str:
    """Milliseconds per update, one row per number of episodes, one column per size."""
    sizes = sorted({n for n, _ in results})
    items = sorted({k for _, k in results})
    lines = [
        f"{name} update, ms (k episodes)".ljust(34) + "".join(f"{n:.0e}".replace("+0", "").rjust(11) for n in sizes)
    ]
    for k in items:
        lines.append(f"  k={k}".ljust(34) + "".join(f"{results[(n, k)] * 1e3:11.3f}" for n in sizes))
    return "\n".join(lines)


# ---------------------------------------------------------------------- syllabus-rl 0.7
def syllabus_available() -> bool:
    """Whether syllabus-rl (and the scipy it imports without declaring it) can be imported."""
    if importlib.util.find_spec("syllabus") is None:
        return False
    try:
        import syllabus.curricula  # noqa: F401
    except Exception as err:  # a broken install: report, don't crash the benchmark
        print(f"# syllabus-rl is installed but does not import: {type(err).__name__}: {err}", file=sys.stderr)
        return False
    return True


def time_syllabus_plr(num_tasks: int, calls: int, episodes: int = EPISODES) -> tuple[float, bool]:
    """Seconds per iteration of syllabus's PLR; ``calls`` per-item calls timed and scaled.

    Returns ``(seconds, extrapolated)``.
    """
    import gymnasium as gym
    import numpy as np
    from syllabus.curricula import PrioritizedLevelReplay as SyllabusPLR
    from syllabus.task_space import DiscreteTaskSpace

    # num_processes=1: its partial-score arrays are [num_processes, num_tasks].
    # replay_prob=1.0: with its default 0.5, TaskSampler.sample() raises AttributeError
    # ('TaskSampler' object has no attribute 'evaluator') once every level is seen and the replay
    # coin says "new level" (syllabus-rl 0.7, task_sampler.py:846, non-robust PLR). With all
    # levels seen, currlearn's proportionate schedule also replays with probability 1.
    plr = SyllabusPLR(
        DiscreteTaskSpace(num_tasks),
        gym.spaces.Box(-1, 1, (1,)),
        num_processes=1,
        num_steps=8,
        task_sampler_kwargs_dict={"strategy": "value_l1", "replay_prob": 1.0},
    )
    sampler = plr._task_sampler
    rng = np.random.default_rng(0)
    sampler.unseen_task_weights[:] = 0.0  # steady state: all seen, scored
    sampler.task_scores[:] = rng.random(num_tasks).astype(np.float32)
    sampler.task_staleness[:] = rng.integers(0, 10 * num_tasks, num_tasks).astype(np.float32)
    tasks = rng.integers(0, num_tasks, episodes).tolist()
    scores = rng.random(episodes).tolist()
    n = min(calls, episodes)
    plr.sample(k=1)  # warm up
    t0 = time.perf_counter()
    for i in range(n):
        sampler.update_task_score(0, tasks[i], scores[i], scores[i], 10)
    t_update = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    plr.sample(k=n)
    t_sample = (time.perf_counter() - t0) / n
    return episodes * (t_update + t_sample), n < episodes


def time_syllabus_dr(num_tasks: int, repeats: int, episodes: int = EPISODES) -> float:
    """Seconds per iteration of syllabus's DomainRandomization: 4096 episode updates, one sample(4096)."""
    from syllabus.curricula import DomainRandomization as SyllabusDR
    from syllabus.task_space import DiscreteTaskSpace

    dr = SyllabusDR(DiscreteTaskSpace(num_tasks))
    dr.sample(k=1)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in range(episodes):
            dr.update_on_episode(0.0, 10, t % num_tasks, 0.0)
        dr.sample(k=episodes)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---------------------------------------------------------------------- driver
def run(
    sizes: tuple[int, ...] = SIZES,
    device: str = "cpu",
    repeats: int = 30,
    warmup: int = 3,
    syllabus_calls: dict[int, int] | None = None,
    with_syllabus: bool = True,
    episodes: int = EPISODES,
    curricula: tuple[str, ...] | None = None,
) -> dict[tuple[str, str], float]:
    """Measure every row; returns ``{(row, size_label): seconds per iteration}``."""
    dev = torch.device(device)
    results: dict[tuple[str, str], float] = {}
    names = tuple(DISCRETE) if curricula is None else curricula
    for n in sizes:
        label = f"{n:.0e}".replace("+0", "").replace("+", "")
        fbs = make_feedbacks(n, 4, dev, episodes=episodes)
        for name in names:
            if name not in DISCRETE:
                continue
            cur = DISCRETE[name](DiscreteSpace(num_tasks=n, device=dev))
            if isinstance(cur, PrioritizedLevelReplay):
                fill_plr(cur)
            results[(name, label)] = time_iterations(cur, fbs, repeats, warmup, dev, episodes)
        results[("floor", label)] = time_floor(n, repeats, warmup, dev, episodes)
        if with_syllabus:
            calls = (syllabus_calls or {}).get(n, episodes if n <= 1_000 else 16)
            secs, extrapolated = time_syllabus_plr(n, calls, episodes)
            results[("syllabus_plr" + ("*" if extrapolated else ""), label)] = secs
            results[("syllabus_dr", label)] = time_syllabus_dr(n, 1 if n > 1_000 else 3, episodes)
    box = BoxSpace({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, device=dev)
    fbs = make_feedbacks(0, 4, dev, box=box, episodes=episodes)
    if curricula is None or "alp_gmm" in curricula:
        alp = ALPGMMCurriculum(
            box, seed=0, fit_interval=min(250, episodes), fit_window=min(250, episodes)
        )  # defaults at full size
        results[("alp_gmm", "box")] = time_iterations(alp, fbs, max(repeats // 2, 1), 1, dev, episodes)
    if curricula is None or "adr" in curricula:
        adr = ADRCurriculum(box, initial={"a": 0.5, "b": 0.5}, seed=0)
        results[("adr", "box")] = time_iterations(adr, fbs, repeats, warmup, dev, episodes)
    return results


def table(results: dict[tuple[str, str], float]) -> str:
    """Milliseconds per iteration, one row per curriculum, one column per size."""
    rows = list(dict.fromkeys(r for r, _ in results))
    cols = list(dict.fromkeys(c for _, c in results))
    width = max(len(r) for r in rows) + 2
    lines = ["ms per iteration (update 4096 episodes + sample 4096)".ljust(width) + "".join(c.rjust(14) for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = results.get((r, c))
            cells.append(("-" if v is None else f"{v * 1e3:.3f}").rjust(14))
        lines.append(r.ljust(width) + "".join(cells))
    return "\n".join(lines)


def headline(results: dict[tuple[str, str], float]) -> dict[str, float]:
    """``speedup_vs_syllabus_plr_1e5`` and ``ratio_to_floor_1e5`` (NaN where not measured)."""
    ours = results.get(("plr_rank", "1e5"), math.nan)
    theirs = results.get(("syllabus_plr*", "1e5"), results.get(("syllabus_plr", "1e5"), math.nan))
    floor = results.get(("floor", "1e5"), math.nan)
    return {"speedup_vs_syllabus_plr_1e5": theirs / ours, "ratio_to_floor_1e5": ours / floor}


def floor_ratios(results: dict[tuple[str, str], float]) -> dict[str, float]:
    """``ratio_to_floor_<curriculum>_<size>``: each discrete curriculum's time over the floor's
    of the same size and the same run (the target is at most 1.5)."""
    out = {}
    for (row, col), value in results.items():
        floor = results.get(("floor", col))
        if row in DISCRETE and floor:
            out[f"ratio_to_floor_{row}_{col}"] = value / floor
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", default="cpu", help="device of the currlearn state and the floor (syllabus runs on CPU)"
    )
    parser.add_argument(
        "--repeats", type=int, default=30, help=f"timed iterations per row (median of blocks of {BLOCK})"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1e3 and 1e5 only, fewer repeats")
    parser.add_argument("--no-syllabus", action="store_true", help="skip syllabus-rl")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: stable timings on a shared machine; syllabus is single-threaded)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = SIZES[:2] if args.quick else SIZES
    repeats = BLOCK if args.quick else args.repeats
    with_syllabus = not args.no_syllabus and syllabus_available()
    if not args.no_syllabus and not with_syllabus:
        print("# syllabus-rl 0.7 is not importable here (pip install syllabus-rl==0.7 scipy); its rows are skipped")
    print(
        f"# torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads; * = syllabus timed on 16 calls and scaled to 4096"
    )
    results = run(sizes, args.device, repeats, 3, with_syllabus=with_syllabus)
    print(table(results))
    scaling_sizes = SCALING_SIZES[:3] if args.quick else SCALING_SIZES
    for name in ("easy_first", "competence"):
        print(scaling_table(name, time_update_scaling(name, scaling_sizes, device=torch.device(args.device))))
    for key, value in floor_ratios(results).items():
        print(f"{key}={value:.2f}")
    for key, value in headline(results).items():
        print(f"{key}={value:.1f}" if key.startswith("speedup") else f"{key}={value:.2f}")


if __name__ == "__main__":
    main()
