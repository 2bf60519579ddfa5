"""Generated levels: the maze env's step rate, and the level buffer's operations against a
bare-torch floor of the same sizes, in the same run.

1. ``MazeEnv`` (13 x 13, 5 x 5 view): env steps per second (envs x steps / s) for a few batch
   sizes, random actions, through TorchRL's ``step_and_maybe_reset`` (resets included).
2. ``LevelReplay`` over ``MazeGenerator`` levels, buffer full, batches of 4096, at capacity 1e4
   and 1e5 (ms per call, median of blocks):

   - ``sample_replay``: 4096 draws from the buffer (``replay_prob=1``); floor: ``cumsum`` of the
     capacity's weights, ``searchsorted`` of 4096 uniforms, the gather of 4096 levels;
   - ``sample_new``: 4096 new levels generated into fresh rows (``replay_prob=0``); floor: the
     generator's draws (``rand`` + ``argsort`` of 4096 x 169 cells) and the copy into the rows;
   - ``insert``: ``update`` with 4096 episodes on new levels (hashes, dedup against the buffer,
     eviction of the lowest scores); floor: a ``sort`` of the buffer's scores, a ``sort`` of
     4096 scores, a ``searchsorted`` of 4096 hashes and the copy of 4096 levels into slots;
   - ``update_replay``: ``update`` with 4096 episodes on buffer levels (PLR's score update with
     rank prioritisation, which re-ranks the buffer); floor: ``index_add_`` of 4096 scores, one
     ``sort`` of the capacity's scores (the re-ranking) and a ``cumsum`` of its weights;
   - ``edit``: ``MazeEditor(5)`` on 4096 levels; floor: 5 ``randint`` + ``gather`` + ``scatter``
     of 4096 cells.

Run ``python benchmarks/bench_levels.py`` (``--device cuda`` on a GPU, ``--quick`` for a short
run). The last lines are ``maze_steps_per_s_<envs>=<x>`` and
``ratio_to_floor_<op>_<capacity>=<x>`` (target <= 2).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from currlearn.curricula.level_replay import LevelReplay
from currlearn.envs.maze import MazeEditor, MazeEnv, MazeGenerator
from currlearn.feedback import episode_feedback

BATCH = 4096


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(step: Callable[[], None], repeats: int, device: torch.device, block: int = 3) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        for _ in range(block):
            step()
        _sync(device)
        times.append((time.perf_counter() - t) / block)
    return statistics.median(times) * 1e3


def maze_rate(num_envs: int, steps: int, device: torch.device) -> float:
    """Env steps per second of ``num_envs`` mazes with random actions."""
    env = MazeEnv(num_envs, max_steps=64, device=device)
    td = env.reset()
    g = torch.Generator(device=device).manual_seed(0)

    def run(n: int) -> None:
        nonlocal td
        for _ in range(n):
            td.set("action", torch.randint(3, (num_envs,), generator=g, device=device))
            _, td = env.step_and_maybe_reset(td)

    run(10)
    _sync(device)
    t = time.perf_counter()
    run(steps)
    _sync(device)
    return num_envs * steps / (time.perf_counter() - t)


def full_buffer(capacity: int, device: torch.device) -> LevelReplay:
    cur = LevelReplay(MazeGenerator(), capacity=capacity, fresh=4 * BATCH, replay_prob=0.0, seed=0, device=device)
    g = torch.Generator(device=device).manual_seed(1)
    while cur.occupancy() < capacity:
        t = cur.sample(BATCH)
        cur.update(
            episode_feedback(t, torch.zeros(BATCH, device=device), score=torch.rand(BATCH, generator=g, device=device))
        )
    return cur


def buffer_ops(capacity: int, repeats: int, device: torch.device) -> dict[str, tuple[float, float]]:
    """``{op: (ms, floor ms)}`` at ``capacity``."""
    cur = full_buffer(capacity, device)
    g = torch.Generator(device=device).manual_seed(2)
    zeros = torch.zeros(BATCH, device=device)
    out: dict[str, tuple[float, float]] = {}
    table = cur.space.table
    walls = table["walls"]

    # sample_replay
    cur.replay_prob = 1.0
    weights = torch.rand(capacity, device=device, dtype=torch.float64)

    def floor_sample() -> None:
        cdf = torch.cumsum(weights, 0)
        ids = torch.searchsorted(cdf, torch.rand(BATCH, device=device, dtype=torch.float64) * cdf[-1])
        walls.index_select(0, ids.clamp_max(capacity - 1))

    out["sample_replay"] = (
        _median_ms(lambda: cur.levels(cur.sample(BATCH)), repeats, device),
        _median_ms(floor_sample, repeats, device),
    )

    # sample_new
    cur.replay_prob = 0.0
    rows = torch.arange(BATCH, device=device) + capacity
    cells = 13 * 13

    def floor_new() -> None:
        order = torch.rand(BATCH, cells, device=device).argsort(1)
        flat = torch.zeros(BATCH, cells, dtype=torch.bool, device=device).scatter_(1, order[:, :60], True)
        walls.index_copy_(0, rows, flat.view(BATCH, 13, 13))

    out["sample_new"] = (_median_ms(lambda: cur.sample(BATCH), repeats, device), _median_ms(floor_new, repeats, device))

    # insert: new levels scored, proposed to the full buffer
    def insert() -> None:
        t = cur.sample(BATCH)
        cur.update(episode_feedback(t, zeros, score=torch.rand(BATCH, generator=g, device=device)))

    scores = torch.rand(capacity, device=device)
    hashes = torch.randint(2**62, (capacity,), device=device)
    new_scores = torch.rand(BATCH, device=device)
    slots = torch.randperm(capacity, device=device)[:BATCH]

    def floor_insert() -> None:
        floor_new()  # the sample() inside insert() generates too
        torch.sort(scores)
        torch.sort(new_scores, descending=True)
        torch.searchsorted(torch.sort(hashes).values, hashes[:BATCH])
        walls.index_copy_(0, slots, walls.index_select(0, rows))

    out["insert"] = (_median_ms(insert, repeats, device), _median_ms(floor_insert, repeats, device))

    # update_replay: scores of buffer levels
    def update_replay() -> None:
        t = torch.randint(capacity, (BATCH,), generator=g, device=device)
        cur.update(episode_feedback(t, zeros, score=torch.rand(BATCH, generator=g, device=device)))

    def floor_update() -> None:
        t = torch.randint(capacity, (BATCH,), device=device)
        scores.index_add_(0, t, new_scores)
        torch.sort(scores, descending=True)
        torch.cumsum(scores, 0)

    out["update_replay"] = (_median_ms(update_replay, repeats, device), _median_ms(floor_update, repeats, device))

    # edit
    editor = MazeEditor(5)
    levels = cur.space.levels(torch.arange(BATCH, device=device))
    flat_walls = levels["walls"].reshape(BATCH, cells)

    def floor_edit() -> None:
        w = flat_walls.clone()
        for _ in range(5):
            c = torch.randint(cells, (BATCH, 1), device=device)
            w.scatter_(1, c, ~w.gather(1, c))

    out["edit"] = (_median_ms(lambda: editor(levels, g), repeats, device), _median_ms(floor_edit, repeats, device))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="capacity 1e4 only, fewer repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 3 if args.quick else 7
    print(f"# torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    rates = {n: maze_rate(n, 50 if args.quick else 200, device) for n in (64, 1024, 4096)}
    print("MazeEnv 13x13, random actions: env steps per second")
    for n, r in rates.items():
        print(f"  {n:5d} envs  {r:12,.0f}")
    capacities = (10_000,) if args.quick else (10_000, 100_000)
    results = {c: buffer_ops(c, repeats, device) for c in capacities}
    print(f"LevelReplay, batches of {BATCH}: ms per call (floor ms, ratio)")
    for c, ops in results.items():
        print(f"  capacity {c:.0e}".replace("+0", ""))
        for op, (ms, floor) in ops.items():
            print(f"    {op:15s} {ms:9.3f}  ({floor:7.3f}, {ms / floor:5.2f}x)")
    for n, r in rates.items():
        print(f"maze_steps_per_s_{n}={r:.0f}")
    for c, ops in results.items():
        for op, (ms, floor) in ops.items():
            print(f"ratio_to_floor_{op}_{c:.0e}={ms / floor:.2f}".replace("+0", ""))


if __name__ == "__main__":
    main()
