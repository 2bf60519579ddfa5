"""The app's side jobs as TorchRL trainer hooks, registered after the PPO and curriculum ops.

One iteration of TorchRL's ``Trainer`` runs, among others, ``batch_process`` (on the fresh
batch) and ``post_steps`` (after the optimisation steps, once the curriculum has stepped). The
app adds:

- :class:`EpisodeStats` (``batch_process``): return, success and length of the episodes that
  finished in the batch, also logged through the trainer's logger (``post_steps_log``);
- :class:`MetricsCSV` (``post_steps``): one row per iteration into ``metrics.csv``, with the
  curriculum's metrics, the mean of the parameters the envs play and, every ``eval.every``
  iterations, the evaluation on the target task;
- :class:`Checkpointer` (``post_steps``): the checkpoint every ``every`` iterations and at the
  end of the budget;
- :class:`ProgressBar` (``post_steps``): tqdm on stderr;
- :class:`StopOnSignal` (``post_steps``): the first Ctrl-C or SIGTERM stops training at the
  end of the iteration (with a checkpoint), a second one at once.
"""

from __future__ import annotations

import csv
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torchrl.trainers import TrainerHookBase

__all__ = ["Checkpointer", "EpisodeStats", "LevelSnapshots", "MetricsCSV", "ProgressBar", "StopOnSignal"]


def _mean(x: Any) -> float:
    return float(x.float().mean()) if x.numel() else float("nan")


class _Hook(TrainerHookBase):
    """A hook registered as one op at the trainer stage ``stage``; no state of its own unless
    it overrides ``state_dict`` (the app's checkpoint stores what it needs).
    """

    stage = "post_steps"

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def register(self, trainer: Any, name: str | None = None) -> None:
        """Register this hook as an op of ``trainer``'s ``stage``, after the ops already there."""
        trainer.register_op(self.stage, self)


class EpisodeStats(_Hook):
    """``batch_process``: the mean return, success and length of the batch's finished episodes."""

    stage = "batch_process"

    def __init__(self) -> None:
        from currlearn.feedback import EpisodeTracker

        # any per-step key serves as the task key: tasks are not needed here
        self.tracker = EpisodeTracker(task_key=("next", "done"))
        self.last: dict[str, float] = {}

    def __call__(self, batch: Any) -> Any:  # noqa: D102
        fb = self.tracker(batch)
        self.last = {
            "episodes": fb.batch_size[0],
            "return": _mean(fb["return"]),
            "success": _mean(fb["success"]),
            "episode_length": _mean(fb["length"]),
        }
        return batch

    def log(self, batch: Any = None) -> dict[str, float]:
        """``post_steps_log`` op: the iteration's episode statistics for the trainer's logger
        (``train/return``, ``train/success``, ``train/episode_length``, ``train/episodes``;
        the undefined ones, such as the success of an env without a success flag, left out).
        """
        return {f"train/{k}": float(v) for k, v in self.last.items() if math.isfinite(v)}

    def register(self, trainer: Any, name: str | None = None) -> None:  # noqa: D102
        trainer.register_op("batch_process", self)
        trainer.register_op("post_steps_log", self.log)


class MetricsCSV(_Hook):
    """``post_steps``: a row per iteration, rewritten atomically into ``path``.

    Args:
        path (Path): the CSV file.
        stats (EpisodeStats): the batch's episode statistics.
        curriculum (Curriculum): its ``metrics()`` go into the row.
        transform (CurriculumTransform, optional): the mean of the parameters the envs play go
            into the row as ``task/<name>``.
        frames (callable): the frames collected so far (``trainer.collected_frames``).
        extras (sequence of callables): each maps the iteration to more columns of its row
            (the periodic evaluation's ``eval/*``).
    """

    def __init__(
        self,
        path: Path,
        stats: EpisodeStats,
        curriculum: Any,
        transform: Any,
        frames: Callable[[], int],
        extras: Sequence[Callable[[int], Mapping[str, Any]]] = (),
    ) -> None:
        self.path = path
        self.extras = list(extras)
        self.stats = stats
        self.curriculum = curriculum
        self.transform = transform
        self.frames = frames
        self.rows: list[dict[str, Any]] = []
        self.iteration = 0
        self.wall_time = 0.0
        self._t0 = time.perf_counter()

    def __call__(self) -> None:  # noqa: D102
        self.iteration += 1
        self.wall_time = time.perf_counter() - self._t0
        row: dict[str, Any] = {
            "iteration": self.iteration,
            "frames": int(self.frames()),
            "wall_time": round(self.wall_time, 4),
            "episodes": self.stats.last.get("episodes", 0),
            **{k: self.stats.last.get(k, float("nan")) for k in ("return", "success", "episode_length")},
        }
        for k, v in self.curriculum.metrics().items():
            row[k if k.startswith("curriculum/") else f"curriculum/{k}"] = v
        tasks = getattr(self.transform, "tasks", None)
        from currlearn.levels import LevelSpace

        if tasks is not None and not isinstance(self.curriculum.space, LevelSpace):  # (levels are no scalars)
            params = self.curriculum.params(tasks.reshape(-1, *self.curriculum.space.task_shape))
            row.update({f"task/{k}": _mean(v) for k, v in params.items()})
        for extra in self.extras:
            row.update(extra(self.iteration))
        self.rows.append(row)
        _write_csv(self.path, self.rows)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {"iteration": self.iteration, "wall_time": self.wall_time, "rows": list(self.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        self.iteration = state_dict["iteration"]
        self.wall_time = state_dict["wall_time"]
        self.rows = list(state_dict.get("rows", []))
        self._t0 = time.perf_counter() - self.wall_time


class Checkpointer(_Hook):
    """``post_steps``: :meth:`save` every ``every`` iterations (0: never) and once the budget is spent.

    Args:
        path (Path): the checkpoint file.
        payload (callable): builds what is saved.
        metrics (MetricsCSV): its iteration counter.
        every (int): iterations between checkpoints.
        done (callable): whether the budget is spent (the last checkpoint is written here:
            ``trainer.train()`` shuts the collector down afterwards).
    """

    def __init__(
        self,
        path: Path,
        payload: Callable[[], dict[str, Any]],
        metrics: MetricsCSV,
        every: int,
        done: Callable[[], bool],
    ) -> None:
        self.path = path
        self.payload = payload
        self.metrics = metrics
        self.every = every
        self.done = done
        self.saved_at: int | None = None

    def save(self) -> None:
        """Write the checkpoint now (atomically), unless this iteration's is written already."""
        from currlearn.app.checkpoint import save_checkpoint

        from currlearn.app.errors import WriteFailed

        if self.saved_at != self.metrics.iteration:
            try:
                save_checkpoint(self.path, self.payload())
            except OSError as e:
                raise WriteFailed.wrap(e, self.path) from e
            self.saved_at = self.metrics.iteration

    def __call__(self) -> None:  # noqa: D102
        if self.done() or (self.every and self.metrics.iteration % self.every == 0):
            self.save()


class ProgressBar(_Hook):
    """``post_steps``: a tqdm bar over frames on stderr, with return, success and the level."""

    def __init__(self, total: int, initial: int, metrics: MetricsCSV, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.metrics = metrics
        self.bar = tqdm(
            total=total, initial=initial, unit="frame", disable=not enabled, dynamic_ncols=True, file=sys.stderr
        )

    def __call__(self) -> None:  # noqa: D102
        if not self.metrics.rows:
            return
        row = self.metrics.rows[-1]
        self.bar.update(row["frames"] - self.bar.n)
        post = {"ret": f"{row['return']:.2f}", "succ": f"{row['success']:.2f}"}
        for key, label in (("curriculum/level_mean", "level"), ("curriculum/stage", "stage")):
            if key in row:
                post[label] = f"{row[key]:.0f}"
        post.update({k[5:]: f"{v:.2f}" for k, v in row.items() if k.startswith("task/")})
        self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:  # noqa: D102
        self.bar.close()


class StopOnSignal(_Hook):
    """Ctrl-C (SIGINT) or SIGTERM (what schedulers such as Slurm send): the first one stops
    training at the end of the current iteration; a second one interrupts at once
    (:class:`~currlearn.app.errors.Interrupted`, a ``KeyboardInterrupt``).

    At the end of the iteration (``post_steps``, after the iteration's row) the op calls
    ``on_stop`` (the app saves its checkpoint there) and asks the trainer to stop
    (``Trainer.request_stop``), which then shuts its collector down as after a full run. An
    interrupt in the middle of an optimisation step could leave TorchRL's loss half-way through
    a parameter swap: stopping at an iteration boundary keeps the checkpoint consistent. Use it
    as a context manager around ``trainer.train()``; outside the main thread (where signal
    handlers cannot be set) the handlers are not installed.

    Args:
        trainer: the TorchRL trainer to stop.
        on_stop (callable, optional): called at the iteration's end once a stop is requested.
        message (str): printed on stderr at the first signal.

    Attributes:
        signum (int or None): the first signal received.
        stopped (bool): whether training was stopped at an iteration's end.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, trainer: Any, on_stop: Callable[[], None] | None = None, message: str = "") -> None:
        self.trainer = trainer
        self.on_stop = on_stop
        self.message = message
        self.signum: int | None = None
        self.stopped = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal asked training to stop."""
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        from currlearn.app.errors import Interrupted

        if self.requested:
            raise Interrupted(signum)
        self.signum = signum
        if self.message:
            print(self.message, file=sys.stderr)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}

    def __call__(self) -> None:  # noqa: D102
        if self.requested and not self.stopped:
            self.stopped = True
            if self.on_stop is not None:
                self.on_stop()
            self.trainer.request_stop(signal.Signals(self.signum).name)


class LevelSnapshots(_Hook):
    """``post_steps``: every ``every`` iterations, images of the ``count`` highest-scoring levels
    of a level buffer (:class:`~currlearn.curricula.LevelReplay`), saved as
    ``directory/<iteration>.pt`` (``{"iteration", "images": uint8 [n, H, W, 3], "scores"}``):
    files on disk, so a resumed run keeps the earlier ones; ``levels.png`` draws them.

    Args:
        directory (Path): where the snapshots go (made at the first one).
        curriculum (LevelReplay): the buffer.
        render (callable): ``levels -> images [n, H, W, 3]`` (e.g. ``MazeGenerator.render``).
        metrics (MetricsCSV): whose ``iteration`` counts the iterations.
        every (int): iterations between snapshots, >= 1.
        count (int): levels per snapshot.
    """

    def __init__(
        self,
        directory: Path,
        curriculum: Any,
        render: Callable[[Any], Any],
        metrics: MetricsCSV,
        every: int,
        count: int = 8,
    ) -> None:
        self.directory = directory
        self.curriculum = curriculum
        self.render = render
        self.metrics = metrics
        self.every = max(1, every)
        self.count = count

    def save(self) -> None:
        """Write the snapshot of the current iteration (none while the buffer is empty)."""
        import torch

        from currlearn.app.checkpoint import atomic_path
        from currlearn.app.errors import WriteFailed

        slots, levels, scores = self.curriculum.buffer_levels()
        if slots.numel() == 0:
            return
        best = torch.sort(scores.double(), descending=True, stable=True).indices[: self.count]
        snapshot = {
            "iteration": self.metrics.iteration,
            "images": self.render(levels[best]).to("cpu", torch.uint8),
            "scores": scores[best].cpu(),
        }
        path = self.directory / f"{self.metrics.iteration}.pt"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save(snapshot, tmp)
        except OSError as e:
            raise WriteFailed.wrap(e, path) from e

    def __call__(self) -> None:  # noqa: D102
        if self.metrics.iteration % self.every == 0:
            self.save()


def _write_csv(path: Path, rows: list[Mapping[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    from currlearn.app.checkpoint import atomic_path
    from currlearn.app.errors import WriteFailed

    try:
        with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    except OSError as e:
        raise WriteFailed.wrap(e, path) from e
