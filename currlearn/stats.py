"""Learning statistics on tensors: per-task summaries, per-episode records, aggregation across runs.

- :class:`TaskStats`: per-task episode count, mean return and success rate, accumulated from
  feedback with one ``index_add_`` per update. Curricula on small discrete spaces
  (``num_tasks <= TaskStats.MAX_REPORTED``) keep one and report it in
  :meth:`~currlearn.base.Curriculum.metrics` as ``curriculum/task/<i>/return``,
  ``.../success`` and ``.../episodes``.
- :class:`LearningStats`: one row per finished episode (return, length, success, steps, wall and
  CPU time) plus evaluation scores, held in growable tensors, saved and loaded as JSON.
- :class:`LearningStatsAggregator`: mean / std / min / max across runs over env steps, episodes
  or wall time, each run interpolated onto a common grid.

Examples:
    >>> import torch
    >>> from currlearn.feedback import episode_feedback
    >>> stats = LearningStats()
    >>> stats.append(episode_feedback(torch.tensor([0, 1]), torch.tensor([1.0, 3.0]), length=torch.tensor([5, 5])))
    >>> stats.returns.tolist(), stats.steps.tolist()
    ([1.0, 3.0], [5.0, 10.0])
    >>> agg = LearningStatsAggregator([stats, stats])
    >>> agg.aggregate(x="episodes", y="return", num_points=3)["mean"].tolist()
    [1.0, 2.0, 3.0]
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor

__all__ = ["LearningStats", "LearningStatsAggregator", "TaskStats", "interp"]

FORMAT = "currlearn.LearningStats"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- helpers
def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """``numpy.interp`` on tensors: piecewise-linear values of ``(xp, fp)`` at ``x``.

    ``xp`` must be non-decreasing; outside ``[xp[0], xp[-1]]`` the end values are used.
    Repeated ``xp`` values take the last ``fp``. Computes in float64.

    Examples:
        >>> interp(torch.tensor([0.5, 2.0, 9.0]), torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.0, 10.0, 30.0])).tolist()
        [5.0, 20.0, 30.0]
    """
    if xp.numel() == 0:
        raise ValueError("interp needs at least one point, got an empty series.")
    xp = xp.to(torch.float64)
    fp = fp.to(torch.float64)
    x = x.to(torch.float64)
    if xp.numel() == 1:
        return fp.expand(x.shape).clone()
    # right side of each interval; searchsorted(right=True) takes the last of repeated xp
    hi = torch.searchsorted(xp, x, right=True).clamp(1, xp.numel() - 1)
    lo = hi - 1
    x0, x1, f0, f1 = xp[lo], xp[hi], fp[lo], fp[hi]
    span = x1 - x0
    w = torch.where(span > 0, (x - x0) / torch.where(span > 0, span, torch.ones_like(span)), torch.ones_like(span))
    out = f0 + w.clamp(0, 1) * (f1 - f0)
    out = torch.where(x <= xp[0], fp[0], out)
    return torch.where(x >= xp[-1], fp[-1], out)


def _rolling_mean(y: Tensor, window: int) -> Tensor:
    """Mean of the last ``window`` values at each index (fewer at the start); NaN-free input."""
    if window <= 1:
        return y
    c = torch.cat([y.new_zeros(1), torch.cumsum(y, 0)])
    idx = torch.arange(1, y.numel() + 1, device=y.device)
    start = (idx - window).clamp_min(0)
    return (c[idx] - c[start]) / (idx - start)


# --------------------------------------------------------------------------- per task
class TaskStats:
    """Per-task episode count, mean return and success rate, on tensors.

    Args:
        num_tasks (int): number of tasks of the discrete space.
        decay (float): weight of the past at each update, in ``(0, 1]``; 1 (default) keeps
            plain means since construction, smaller values follow recent episodes.
        device: device of the sums.

    Not part of a curriculum's checkpoint: the statistics start afresh in a resumed run.

    Examples:
        >>> import torch
        >>> from currlearn.feedback import episode_feedback
        >>> ts = TaskStats(3)
        >>> ts.update(episode_feedback(torch.tensor([0, 0, 2]), torch.tensor([1.0, 3.0, 5.0]),
        ...                            success=torch.tensor([1.0, 0.0, 1.0])))
        >>> ts.mean_return().tolist(), ts.success_rate().tolist()
        ([2.0, nan, 5.0], [0.5, nan, 1.0])
        >>> ts.metrics()["task/0/return"]
        2.0
    """

    MAX_REPORTED = 32
    """Largest number of tasks reported one by one in :meth:`metrics`."""

    def __init__(self, num_tasks: int, *, decay: float = 1.0, device: torch.device | str | None = None) -> None:
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be an int >= 1, got {num_tasks!r}.")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
            raise ValueError(f"decay must be a number in (0, 1], got {decay!r}.")
        self.num_tasks = num_tasks
        self.decay = float(decay)
        dtype = torch.float64  # sums of returns near float32's range stay finite
        # columns: episodes, return sum, success sum, episodes with a known success
        self.sums = torch.zeros(num_tasks, 4, dtype=dtype, device=device)

    @property
    def device(self) -> torch.device:
        """Device of the sums."""
        return self.sums.device

    def reset(self) -> None:
        """Forget all episodes."""
        self.sums.zero_()

    def update(self, feedback: TensorDictBase) -> None:
        """Add the episodes of ``feedback`` (keys ``task`` (ids), ``return``, optional ``success``).

        Episodes with a non-finite return or a success outside [0, 1] are ignored (as
        :meth:`Curriculum.update <currlearn.base.Curriculum.update>` skips them); a NaN success
        counts as unknown.
        """
        task = feedback["task"].to(self.device).reshape(-1).long()
        if task.numel() and (task.min() < 0 or task.max() >= self.num_tasks):
            raise ValueError(f"feedback['task'] has ids outside [0, {self.num_tasks}).")
        ret = feedback["return"].to(self.device, self.sums.dtype).reshape(-1)
        valid = torch.isfinite(ret)
        if "success" in feedback.keys():
            succ = feedback["success"].to(self.device, self.sums.dtype).reshape(-1)
        else:
            succ = torch.full_like(ret, float("nan"))
        unknown = torch.isnan(succ)
        valid &= unknown | ((succ >= 0) & (succ <= 1))
        known = valid & ~unknown
        rows = torch.stack(
            [valid.to(ret.dtype), torch.where(valid, ret, 0.0), torch.where(known, succ, 0.0), known.to(ret.dtype)], -1
        )
        if self.decay < 1.0:
            self.sums.mul_(self.decay)
        self.sums.index_add_(0, task, rows)

    def episodes(self) -> Tensor:
        """Episodes per task (decayed counts when ``decay < 1``), shape ``[num_tasks]``."""
        return self.sums[:, 0].clone()

    def mean_return(self) -> Tensor:
        """Mean return per task, NaN for tasks never played; shape ``[num_tasks]``."""
        n = self.sums[:, 0]
        return torch.where(n > 0, self.sums[:, 1] / n.clamp_min(1e-12), float("nan"))

    def success_rate(self) -> Tensor:
        """Success rate per task, NaN where no success was reported; shape ``[num_tasks]``."""
        n = self.sums[:, 3]
        return torch.where(n > 0, self.sums[:, 2] / n.clamp_min(1e-12), float("nan"))

    def metrics(self, prefix: str = "task/") -> dict[str, float]:
        """``{prefix}<i>/return``, ``/success`` and ``/episodes`` per task (host floats; one sync).

        Empty when ``num_tasks > MAX_REPORTED`` (too many series for a logger).
        """
        if self.num_tasks > self.MAX_REPORTED:
            return {}
        table = torch.stack([self.mean_return(), self.success_rate(), self.episodes()], -1).cpu().tolist()
        out = {}
        for i, (r, s, n) in enumerate(table):
            out[f"{prefix}{i}/return"] = r
            out[f"{prefix}{i}/success"] = s
            out[f"{prefix}{i}/episodes"] = n
        return out


# --------------------------------------------------------------------------- per episode
_COLUMNS = ("returns", "lengths", "success", "steps", "wall_time", "cpu_time")
_EVAL_COLUMNS = ("eval_steps", "eval_episodes", "eval_wall_time", "eval_scores")


class LearningStats:
    """Per-episode learning statistics of one run, in growable tensors.

    Each finished episode is one row of :attr:`returns`, :attr:`lengths`, :attr:`success`
    (NaN where unknown), :attr:`steps` (env steps of the run when the episode ended),
    :attr:`wall_time` and :attr:`cpu_time` (seconds since :meth:`start`, or construction).
    Evaluations are separate rows: :attr:`eval_scores` at :attr:`eval_steps`,
    :attr:`eval_episodes` and :attr:`eval_wall_time`.

    Args:
        label (str, optional): the run's group (e.g. the curriculum), for plots.
        seed (int, optional): the run's seed.
        meta (dict, optional): anything JSON-serialisable saved with the stats.
        clock (callable, optional): wall clock in seconds; default :func:`time.perf_counter`.
        cpu_clock (callable, optional): CPU clock in seconds; default :func:`time.process_time`.
            (Tests and replays pass clocks of their own.)
    """

    def __init__(
        self,
        label: str | None = None,
        seed: int | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.process_time,
    ):
        self.label = label
        self.seed = seed
        self.meta = dict(meta or {})
        self._clock, self._cpu_clock = clock, cpu_clock
        self._n = 0
        self._n_eval = 0
        self._data = {k: torch.zeros(16, dtype=torch.float64) for k in _COLUMNS}
        self._eval = {k: torch.zeros(4, dtype=torch.float64) for k in _EVAL_COLUMNS}
        self.start()

    def start(self) -> None:
        """Restart the wall and CPU clocks (times are measured from here)."""
        self._t0 = self._clock() - (float(self._data["wall_time"][self._n - 1]) if self._n else 0.0)
        self._c0 = self._cpu_clock() - (float(self._data["cpu_time"][self._n - 1]) if self._n else 0.0)

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"LearningStats(label={self.label!r}, seed={self.seed}, episodes={self._n}, evaluations={self._n_eval})"

    # ------------------------------------------------------------------ columns
    def _col(self, name: str) -> Tensor:
        return self._data[name][: self._n]

    returns = property(lambda self: self._col("returns"), doc="Episode returns, ``[episodes]`` float64.")
    lengths = property(lambda self: self._col("lengths"), doc="Episode lengths, ``[episodes]``.")
    success = property(lambda self: self._col("success"), doc="Episode success (1/0, NaN unknown).")
    steps = property(lambda self: self._col("steps"), doc="Env steps of the run at each episode's end.")
    wall_time = property(lambda self: self._col("wall_time"), doc="Wall seconds at each episode's end.")
    cpu_time = property(lambda self: self._col("cpu_time"), doc="Process CPU seconds at each episode's end.")
    eval_scores = property(lambda self: self._eval["eval_scores"][: self._n_eval], doc="Evaluation scores.")
    eval_steps = property(lambda self: self._eval["eval_steps"][: self._n_eval], doc="Env steps of each evaluation.")
    eval_episodes = property(
        lambda self: self._eval["eval_episodes"][: self._n_eval], doc="Episodes before each evaluation."
    )
    eval_wall_time = property(
        lambda self: self._eval["eval_wall_time"][: self._n_eval], doc="Wall seconds of each evaluation."
    )

    @property
    def episodes(self) -> Tensor:
        """Episode numbers ``1..len(self)`` (float64), the x axis "episodes"."""
        return torch.arange(1, self._n + 1, dtype=torch.float64)

    def column(self, name: str) -> Tensor:
        """A column by name: ``returns``/``return``, ``lengths``/``length``, ``success``,
        ``steps``/``frames``, ``episodes``, ``wall_time``, ``cpu_time``, or an ``eval_*`` column.
        """
        alias = {"return": "returns", "length": "lengths", "frames": "steps"}
        name = alias.get(name, name)
        if name == "episodes":
            return self.episodes
        if name in _COLUMNS or name in _EVAL_COLUMNS:
            return getattr(self, name)
        raise KeyError(
            f"LearningStats has no column {name!r}; columns: {', '.join((*_COLUMNS, 'episodes', *_EVAL_COLUMNS))}."
        )

    # ------------------------------------------------------------------ recording
    @staticmethod
    def _grow(store: dict[str, Tensor], need: int) -> None:
        cap = next(iter(store.values())).numel()
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for k, v in store.items():
            new = torch.zeros(cap, dtype=v.dtype)
            new[: v.numel()] = v
            store[k] = new

    def append(self, feedback: TensorDictBase, *, steps: int | float | None = None) -> None:
        """Record the episodes of ``feedback`` (keys ``return``, optional ``length``, ``success``).

        Args:
            feedback: batch size ``[n]`` (e.g. an :class:`~currlearn.feedback.EpisodeTracker`'s output).
            steps (optional): the run's env steps when these episodes ended (e.g. the collector's
                frame count). Default: the previous total plus the cumulative episode lengths.

        All episodes of one call get the same wall and CPU time (now).
        """
        if not isinstance(feedback, TensorDictBase) or feedback.batch_dims != 1:
            raise TypeError(f"feedback must be a TensorDict with batch size [n], got {type(feedback).__name__}.")
        if "return" not in feedback.keys():
            raise ValueError(f"feedback lacks key 'return'; it has {sorted(map(str, feedback.keys()))}.")
        ret = feedback["return"].detach().to("cpu", torch.float64).reshape(-1)
        n = ret.numel()
        wall = self._clock() - self._t0
        cpu = self._cpu_clock() - self._c0
        if n == 0:
            return
        length = (
            feedback["length"].detach().to("cpu", torch.float64).reshape(-1)
            if "length" in feedback.keys()
            else torch.ones(n, dtype=torch.float64)
        )
        succ = (
            feedback["success"].detach().to("cpu", torch.float64).reshape(-1)
            if "success" in feedback.keys()
            else torch.full((n,), float("nan"), dtype=torch.float64)
        )
        prev = float(self._data["steps"][self._n - 1]) if self._n else 0.0
        step_col = (
            torch.full((n,), float(steps), dtype=torch.float64) if steps is not None else prev + torch.cumsum(length, 0)
        )
        self._grow(self._data, self._n + n)
        sl = slice(self._n, self._n + n)
        for k, v in (
            ("returns", ret),
            ("lengths", length),
            ("success", succ),
            ("steps", step_col),
            ("wall_time", torch.full((n,), wall, dtype=torch.float64)),
            ("cpu_time", torch.full((n,), cpu, dtype=torch.float64)),
        ):
            self._data[k][sl] = v
        self._n += n

    def add_evaluation(self, score: float | Tensor, *, steps: int | float | None = None) -> None:
        """Record an evaluation score (e.g. success on the target task) now.

        Args:
            score: a number (a tensor is averaged).
            steps (optional): the run's env steps; default: those of the last episode (0 before any).
        """
        s = float(score.float().mean()) if isinstance(score, Tensor) else float(score)
        self._grow(self._eval, self._n_eval + 1)
        i = self._n_eval
        self._eval["eval_scores"][i] = s
        self._eval["eval_steps"][i] = float(steps) if steps is not None else (float(self.steps[-1]) if self._n else 0.0)
        self._eval["eval_episodes"][i] = float(self._n)
        self._eval["eval_wall_time"][i] = self._clock() - self._t0
        self._n_eval += 1

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN written as ``null``)."""

        def lst(t: Tensor) -> list[float | None]:
            return [None if math.isnan(v) else v for v in t.tolist()]

        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "label": self.label,
            "seed": self.seed,
            "meta": self.meta,
            "episodes": {k: lst(self._col(k)) for k in _COLUMNS},
            "evaluations": {k: lst(self._eval[k][: self._n_eval]) for k in _EVAL_COLUMNS},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "data") -> LearningStats:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming ``source`` for anything else."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{source} is not a {FORMAT} file (format: {got!r}).")
        if not isinstance(data.get("version"), int) or data["version"] > FORMAT_VERSION:
            raise ValueError(
                f"{source} has version {data.get('version')!r}; this currlearn reads version <= {FORMAT_VERSION}."
            )
        stats = cls(label=data.get("label"), seed=data.get("seed"), meta=data.get("meta") or {})
        for section, columns in (("episodes", _COLUMNS), ("evaluations", _EVAL_COLUMNS)):
            block = data.get(section)
            if not isinstance(block, dict):
                raise ValueError(f"{source}: missing section {section!r}.")
            missing = [c for c in columns if c not in block]
            if missing:
                raise ValueError(f"{source}: section {section!r} lacks column(s) {missing}.")
            lengths = {c: len(block[c]) if isinstance(block[c], list) else -1 for c in columns}
            if -1 in lengths.values() or len(set(lengths.values())) > 1:
                raise ValueError(f"{source}: the columns of {section!r} have mismatched lengths {lengths}.")
            n = next(iter(lengths.values()))
            store = stats._data if section == "episodes" else stats._eval
            stats._grow(store, max(n, 1))
            for c in columns:
                try:
                    values = [float("nan") if v is None else float(v) for v in block[c]]
                except (TypeError, ValueError):
                    raise ValueError(f"{source}: column {section}.{c} holds non-numbers.") from None
                store[c][:n] = torch.tensor(values, dtype=torch.float64)
            if section == "episodes":
                stats._n = n
            else:
                stats._n_eval = n
        stats.start()
        return stats

    def save(self, path: str | os.PathLike) -> Path:
        """Write the stats as JSON (atomically: a temporary file, then a rename). Returns the path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), allow_nan=False))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LearningStats:
        """Read stats written by :meth:`save`.

        Raises:
            ValueError: the file is not valid JSON, not a LearningStats file, or its columns
                are missing or of mismatched lengths; the message names the file.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from None
        return cls.from_dict(data, source=str(path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LearningStats):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- across runs
_X_AXES = {"steps": "steps", "frames": "steps", "episodes": "episodes", "wall_time": "wall_time"}


class LearningStatsAggregator:
    """Statistics across runs (seeds) of one kind.

    Args:
        runs (iterable of LearningStats, optional): the runs; more with :meth:`add`.
    """

    def __init__(self, runs: Iterable[LearningStats] = ()) -> None:
        self.runs: list[LearningStats] = []
        for r in runs:
            self.add(r)

    def add(self, run: LearningStats) -> None:
        """Add one run."""
        if not isinstance(run, LearningStats):
            raise TypeError(f"run must be a LearningStats, got {type(run).__name__}.")
        self.runs.append(run)

    def __len__(self) -> int:
        return len(self.runs)

    def aggregate(
        self,
        x: str = "steps",
        y: str = "return",
        *,
        num_points: int = 100,
        window: int = 1,
        grid: Tensor | Sequence[float] | None = None,
    ) -> dict[str, Tensor]:
        """Interpolate every run's ``y`` onto a common grid of ``x``, then mean/std/min/max.

        Args:
            x (str): ``"steps"`` (alias ``"frames"``), ``"episodes"`` or ``"wall_time"``.
            y (str): a per-episode column (``"return"``, ``"success"``, ``"length"``, ...), or
                ``"eval_scores"`` (then ``x`` picks the matching ``eval_*`` column).
            num_points (int): grid size.
            window (int): rolling mean over this many episodes before interpolating.
            grid (optional): explicit grid; default ``num_points`` points spanning the range
                every run covers (from the largest first x to the smallest last x).

        Returns:
            ``{"x", "mean", "std" (population, ddof=0), "min", "max", "values" [runs, points]}``.

        Raises:
            ValueError: no runs, an empty run, an unknown axis, or runs that do not overlap.
        """
        if not self.runs:
            raise ValueError("LearningStatsAggregator has no runs; add LearningStats first.")
        if x not in _X_AXES:
            raise ValueError(f"x={x!r} is unknown; choose from {sorted(_X_AXES)}.")
        series = []
        for i, run in enumerate(self.runs):
            if y.startswith("eval"):
                xs = run.column(
                    {"steps": "eval_steps", "episodes": "eval_episodes", "wall_time": "eval_wall_time"}[_X_AXES[x]]
                )
                ys = run.column("eval_scores")
            else:
                xs, ys = run.column(_X_AXES[x]), run.column(y)
            keep = ~torch.isnan(ys)
            xs, ys = xs[keep], ys[keep]
            if xs.numel() == 0:
                raise ValueError(f"run {i} ({run.label!r}, seed {run.seed}) has no {y!r} values to aggregate.")
            ys = _rolling_mean(ys, window)
            # episodes that ended at the same x (one batch at one frame count): their mean
            ux, inv = torch.unique_consecutive(xs, return_inverse=True)
            if ux.numel() < xs.numel():
                counts = torch.zeros_like(ux).index_add_(0, inv, torch.ones_like(ys))
                ys = torch.zeros_like(ux).index_add_(0, inv, ys) / counts
                xs = ux
            series.append((xs, ys))
        if grid is None:
            lo = max(float(s[0][0]) for s in series)
            hi = min(float(s[0][-1]) for s in series)
            if lo > hi:
                raise ValueError(f"the runs do not overlap on {x!r}: they start up to {lo} and end from {hi}.")
            g = torch.linspace(lo, hi, num_points, dtype=torch.float64)
        else:
            g = torch.as_tensor(grid, dtype=torch.float64)
        values = torch.stack([interp(g, xs, ys) for xs, ys in series])
        return {
            "x": g,
            "mean": values.mean(0),
            "std": values.std(0, correction=0),
            "min": values.min(0).values,
            "max": values.max(0).values,
            "values": values,
        }
