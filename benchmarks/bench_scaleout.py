"""Scale-out: curriculum feedback throughput and decision-push latency to workers.

Rows:

- ``feedback/<curriculum>``: episodes per second that the trainer's curriculum absorbs from
  collected batches (``CurriculumDriver.observe``: the episode tracker, carried per global env
  id, then ``update``), for batches of 2 workers x 256 envs x 64 steps with 8-step episodes
  (16,384 episodes per batch). In currlearn the feedback travels in the batches the trainer
  collects anyway, so there is no transport to count.
- ``feedback/syllabus_queue_dr``: the same figure for syllabus-rl 0.7's multiprocessing sync
  (``make_multiprocessing_curriculum`` over its ``DomainRandomization``): 2 producer processes
  put one episode update each (the message its env wrapper sends, with a task request) into its
  queue, and its polling thread consumes them. Measured when syllabus-rl is installed
  (``benchmarks/requirements.txt``).
- ``push/<backend>/<decision>``: milliseconds per push of the decision (capture into the
  decision buffers + ``collector.update_policy_weights_``) to 2 workers: ``process`` and
  ``shared`` to a ``MultiSyncCollector``'s worker processes, ``ray`` to a ``RayCollector``'s 2
  actors on a local cluster (``--ray``; the first push, which sets up TorchRL's
  ``torch.distributed`` group, is not counted). ``schedule``: a schedule's few counters;
  ``plr_1e5``: PLR over 1e5 levels (about 3 MB of state).

Run ``python benchmarks/bench_scaleout.py`` (``--quick`` for fewer repeats, ``--ray`` to add
the Ray rows). The last lines are ``feedback_episodes_per_s=<x>`` (DR), ``speedup_vs_syllabus_queue=<x>``
and ``push_ms_<backend>=<x>`` (the schedule's decision).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import statistics
import sys
import time
from typing import Any

import torch
from tensordict import TensorDict

from currlearn.curricula import DomainRandomization, LevelCurriculum
from currlearn.driver import CurriculumDriver
from currlearn.spaces import DiscreteSpace

WORKERS, ENVS, STEPS, EPISODE = 2, 256, 64, 8
NUM_TASKS = 1000


# --------------------------------------------------------------------------- feedback
def make_batch(workers: int = WORKERS, envs: int = ENVS, steps: int = STEPS, episode: int = EPISODE) -> TensorDict:
    """A ``[workers * envs, steps]`` batch as the workers' transforms tag it."""
    g = torch.Generator().manual_seed(0)
    n = workers * envs
    t = torch.arange(steps).expand(n, steps)
    done = ((t + 1) % episode == 0).unsqueeze(-1)
    nxt = {
        "done": done,
        "reward": torch.rand(n, steps, 1, generator=g),
        "task_id": torch.randint(0, NUM_TASKS, (n, 1), generator=g).expand(n, steps).clone(),
        "env_id": torch.arange(n).unsqueeze(1).expand(n, steps).clone(),
        "decision_version": torch.zeros(n, steps, dtype=torch.int64),
    }
    return TensorDict({"next": TensorDict(nxt, [n, steps])}, [n, steps])


def feedback_rate(curriculum: Any, batch: TensorDict, repeats: int) -> float:
    """Episodes per second through ``CurriculumDriver.observe`` (median over ``repeats``)."""
    driver = CurriculumDriver(curriculum, env_id_key="env_id", version_key="decision_version")
    episodes = int(batch["next", "done"].sum())
    driver.observe(batch)  # warm-up (builds the tracker's carry)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        driver.observe(batch)
        times.append(time.perf_counter() - t0)
    return episodes / statistics.median(times)


def feedback_curricula() -> dict[str, Any]:
    space = DiscreteSpace({"level": list(range(NUM_TASKS))})
    return {
        "dr": DomainRandomization(space, seed=0),
        "per_env_ladder": LevelCurriculum(
            {"level": list(range(8))}, threshold=0.5, min_episodes=4, per_env=True, num_envs=WORKERS * ENVS, seed=0
        ),
    }


def syllabus_available() -> bool:
    if importlib.util.find_spec("syllabus") is None:
        return False
    try:
        import syllabus.core  # noqa: F401
        import syllabus.curricula  # noqa: F401
    except Exception as err:  # an install that does not import
        print(f"# syllabus-rl is installed but does not import: {type(err).__name__}: {err}", file=sys.stderr)
        return False
    return True


def _syllabus_producer(components: Any, count: int, worker: int) -> None:
    for i in range(count):
        update = {
            "update_type": "episode",
            "metrics": (1.0, EPISODE, i % NUM_TASKS, 0.0),
            "env_id": worker,
            "request_sample": True,
        }
        components.put_update([update])


def syllabus_queue_rate(episodes_per_worker: int) -> float:
    """Episodes per second consumed by syllabus-rl's multiprocessing curriculum sync."""
    from syllabus.core import make_multiprocessing_curriculum
    from syllabus.curricula import DomainRandomization as SyllabusDR
    from syllabus.task_space import DiscreteTaskSpace

    curriculum = make_multiprocessing_curriculum(SyllabusDR(DiscreteTaskSpace(NUM_TASKS)))
    total = episodes_per_worker * WORKERS
    ctx = mp.get_context()  # its queues are made in the default context
    procs = [
        ctx.Process(target=_syllabus_producer, args=(curriculum.components, episodes_per_worker, w))
        for w in range(WORKERS)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    while curriculum.num_assigned_tasks < total:
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    curriculum.stop()
    return total / elapsed


# --------------------------------------------------------------------------- pushes
def _push_times(collector: Any, curriculum: Any, pushes: int) -> list[float]:
    from currlearn.integrations.torchrl import CurriculumHook

    hook = CurriculumHook(curriculum, collector=collector)
    hook._sync(refresh=False)  # warm-up (Ray: sets up the process group)
    times = []
    for _ in range(pushes):
        t0 = time.perf_counter()
        hook._sync(refresh=False)
        times.append(time.perf_counter() - t0)
    return times


def push_ms(backend: str, decision: str, pushes: int) -> float:
    """Median milliseconds per push to 2 workers."""
    from torchrl.collectors import Collector, MultiSyncCollector

    from currlearn.integrations.sync import decision_schemes
    from currlearn.integrations.torchrl import transform_path
    from currlearn.testing import make_worker_curriculum, make_worker_pendulum

    kind = "plr" if decision == "plr_1e5" else "schedule"
    path = transform_path(make_worker_pendulum(kind=kind))
    curriculum = make_worker_curriculum(kind)
    schemes = decision_schemes(curriculum, path, backend=backend)
    kwargs = [{"worker": w, "kind": kind} for w in range(WORKERS)]
    if backend == "ray":
        from torchrl.collectors.distributed import RayCollector

        collector = RayCollector(
            [make_worker_pendulum] * WORKERS,
            policy=None,
            frames_per_batch=32,
            total_frames=32 * 10_000,
            collector_class=Collector,
            collector_kwargs=[{"create_env_kwargs": k} for k in kwargs],
            remote_configs={"num_cpus": 1},
            weight_sync_schemes=schemes,
            sync=True,
        )
    else:
        collector = MultiSyncCollector(
            [make_worker_pendulum] * WORKERS,
            None,
            frames_per_batch=32,
            total_frames=32 * 10_000,
            create_env_kwargs=kwargs,
            weight_sync_schemes=schemes,
        )
    try:
        next(iter(collector))  # workers up and collecting
        return 1e3 * statistics.median(_push_times(collector, curriculum, pushes))
    finally:
        collector.shutdown()


# --------------------------------------------------------------------------- report
def run(quick: bool = False, with_ray: bool = False, with_syllabus: bool = True) -> dict[str, float]:
    repeats = 5 if quick else 20
    results: dict[str, float] = {}
    batch = make_batch()
    for name, cur in feedback_curricula().items():
        tasks = batch.clone()
        tasks["next", "task_id"] %= cur.space.num_tasks
        results[f"feedback/{name}"] = feedback_rate(cur, tasks, repeats)
    backends = ["process", "shared", *(["ray"] if with_ray else [])]
    for backend in backends:
        for decision in ("schedule", "plr_1e5"):
            results[f"push/{backend}/{decision}"] = push_ms(backend, decision, 10 if quick else 30)
    if with_syllabus and syllabus_available():
        results["feedback/syllabus_queue_dr"] = syllabus_queue_rate(500 if quick else 2000)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--ray", action="store_true", help="add the Ray rows (starts a local cluster of 2 CPUs)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mp.set_start_method("spawn", force=True)  # TorchRL's collectors need spawned workers
    if args.ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = run(quick=args.quick, with_ray=args.ray)
    for name, value in results.items():
        unit = "episodes/s" if name.startswith("feedback") else "ms"
        print(f"{name:32s} {value:14,.1f} {unit}")
    print(f"feedback_episodes_per_s={results['feedback/dr']:.0f}")
    if "feedback/syllabus_queue_dr" in results:
        print(f"speedup_vs_syllabus_queue={results['feedback/dr'] / results['feedback/syllabus_queue_dr']:.1f}")
    for backend in ("process", "shared", "ray"):
        if f"push/{backend}/schedule" in results:
            print(f"push_ms_{backend}={results[f'push/{backend}/schedule']:.2f}")


if __name__ == "__main__":
    main()
