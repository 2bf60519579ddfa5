"""Plots of curriculum runs (matplotlib, the ``plots`` extra). Import it explicitly:
``from currlearn import plot``; ``import currlearn`` does not load matplotlib.

Every function draws into ``ax`` and returns the Axes (``ax.figure`` is the Figure). Without
``ax`` it makes a new figure: a pyplot figure when ``matplotlib.pyplot`` is imported (so a
notebook shows it inline), else a bare ``Figure`` that needs no closing (save it with
``ax.figure.savefig(path)``). Nothing here picks a backend; scripts without a display can
use the Agg backend (``MPLBACKEND=Agg``, as ``currlearn-train`` and ``currlearn-report`` do).

- :func:`learning_curves`: a metric against frames / episodes / wall time, one line per
  label with seed bands (mean, ± std and min-max over the runs of the label).
- :func:`task_heatmap`: the task distribution over iterations.
- :func:`trajectory`: levels, stages or parameter values over frames.
- :func:`per_task_success`: one bar per task.
- :func:`level_grid`: images of levels (a level buffer's), one row per moment of training.

Runs, series and tables can be given as: a mapping of column name -> sequence/tensor/array
(``{"frames": [...], "success": [...]}``), a list of row dicts (``metrics.csv`` rows), a
pandas DataFrame, or a :class:`~currlearn.stats.LearningStats`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from currlearn.stats import LearningStats, interp

__all__ = ["learning_curves", "level_grid", "per_task_success", "task_heatmap", "trajectory"]

LEVEL_KEYS = ("curriculum/level_mean", "curriculum/level", "curriculum/stage")


def _axes(ax: Any, figsize: tuple[float, float] = (6.0, 4.0)) -> Any:
    if ax is not None:
        return ax
    if "matplotlib.pyplot" in sys.modules:  # a pyplot session (a notebook): show it there
        fig = sys.modules["matplotlib.pyplot"].figure(figsize=figsize, layout="constrained")
    else:  # a Figure pyplot does not know: no GUI, nothing to close
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _tensor(values: Any) -> Tensor:
    if isinstance(values, Tensor):
        return values.detach().to("cpu", torch.float64).reshape(-1)
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(math.nan)  # empty CSV cells
    return torch.tensor(out, dtype=torch.float64)


def _columns(data: Any) -> dict[str, Any]:
    """A run / table as ``{column: values}``."""
    if isinstance(data, LearningStats):
        cols: dict[str, Any] = {
            k: data.column(k) for k in ("returns", "lengths", "success", "steps", "episodes", "wall_time", "cpu_time")
        }
        cols.update({"return": cols["returns"], "length": cols["lengths"], "frames": cols["steps"]})
        return cols
    if hasattr(data, "columns") and hasattr(data, "to_dict"):  # a DataFrame
        return {str(c): data[c] for c in data.columns}
    if isinstance(data, Mapping):
        if "rows" in data:
            return _columns(data["rows"])
        if "stats" in data:
            return _columns(data["stats"])
        return dict(data)
    if isinstance(data, Sequence) and data and isinstance(data[0], Mapping):
        keys: list[str] = []
        for r in data:
            keys.extend(k for k in r if k not in keys)
        return {k: [r.get(k) for r in data] for k in keys}
    raise TypeError(
        f"expected a mapping of columns, a list of row dicts, a DataFrame or a LearningStats, got {type(data).__name__}."
    )


def _column(cols: Mapping[str, Any], key: str, what: str) -> Tensor:
    if key not in cols:
        raise KeyError(f"{what} has no column {key!r}; it has {sorted(cols)[:20]}.")
    return _tensor(cols[key])


def _label(run: Any, i: int) -> str:
    if isinstance(run, LearningStats):
        return run.label if run.label is not None else f"run {i}"
    if isinstance(run, Mapping):
        for k in ("label", "group"):
            if k in run:
                return str(run[k])
    return f"run {i}"


def _xy(run: Any, x: str, y: str, what: str) -> tuple[Tensor, Tensor] | None:
    cols = _columns(run)
    xs, ys = _column(cols, x, what), _column(cols, y, what)
    if xs.numel() != ys.numel():
        raise ValueError(f"{what}: {x!r} has {xs.numel()} values but {y!r} has {ys.numel()}.")
    keep = ~(torch.isnan(xs) | torch.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    if xs.numel() == 0:
        return None
    order = torch.argsort(xs, stable=True)
    xs, ys = xs[order], ys[order]
    ux, inv = torch.unique_consecutive(xs, return_inverse=True)  # mean over repeated x
    if ux.numel() < xs.numel():
        n = torch.zeros_like(ux).index_add_(0, inv, torch.ones_like(ys))
        ys = torch.zeros_like(ux).index_add_(0, inv, ys) / n
        xs = ux
    return xs, ys


def learning_curves(
    runs: Any,
    x: str = "frames",
    y: str = "success",
    ax: Any = None,
    *,
    band: str = "both",
    num_points: int = 200,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
) -> Any:
    """One curve per label: the mean over its runs, with bands over the seeds.

    Args:
        runs: a sequence of runs (each a mapping with ``"label"`` (or ``"group"``) and its
            columns, or ``"rows"`` / ``"stats"``; or a :class:`LearningStats`, labelled by its
            ``label``), or a mapping ``label -> sequence of runs``.
        x (str): the x column (``"frames"``, ``"episodes"``, ``"wall_time"``, ...).
        y (str): the y column (``"success"``, ``"return"``, ...).
        ax: a matplotlib Axes; default: a new figure.
        band (str): ``"std"`` (mean ± std), ``"minmax"``, ``"both"`` (default) or ``"none"``.
            Labels with one run get no band.
        num_points (int): grid size when the runs of a label have different x values (they
            are interpolated onto the range all of them cover).

    Returns:
        The Axes. Its lines are the means, in label order (``ax.get_lines()``); each band is
        one ``PolyCollection`` in ``ax.collections``. Runs without a finite point are skipped
        (a label with none gets no line).
    """
    if band not in ("std", "minmax", "both", "none"):
        raise ValueError(f"band={band!r} is invalid: choose std, minmax, both or none.")
    groups: dict[str, list[Any]] = {}
    if isinstance(runs, Mapping) and not any(k in runs for k in ("label", "group", "rows", "stats")):
        for label, members in runs.items():
            groups[str(label)] = (
                list(members) if isinstance(members, Sequence) and not isinstance(members, Mapping) else [members]
            )
    else:
        if isinstance(runs, (Mapping, LearningStats)):
            runs = [runs]
        for i, run in enumerate(runs):
            groups.setdefault(_label(run, i), []).append(run)
    if not groups:
        raise ValueError("learning_curves needs at least one run, got none.")
    ax = _axes(ax)
    for label, members in groups.items():
        series = [s for j, m in enumerate(members) if (s := _xy(m, x, y, f"run {j} of {label!r}")) is not None]
        if not series:  # no finite point (e.g. no success reported): nothing to draw
            continue
        same = all(s[0].numel() == series[0][0].numel() and torch.equal(s[0], series[0][0]) for s in series)
        if same:
            grid = series[0][0]
            values = torch.stack([s[1] for s in series])
        else:
            lo = max(float(s[0][0]) for s in series)
            hi = min(float(s[0][-1]) for s in series)
            if lo > hi:
                raise ValueError(f"the runs of {label!r} do not overlap on {x!r} ({lo} > {hi}).")
            grid = torch.linspace(lo, hi, num_points, dtype=torch.float64)
            values = torch.stack([interp(grid, s[0], s[1]) for s in series])
        mean = values.mean(0)
        (line,) = ax.plot(
            grid.numpy(), mean.numpy(), label=f"{label} (n={len(series)})" if len(series) > 1 else label,
            marker="o" if grid.numel() == 1 else None,  # a single point is no line
        )  # fmt: skip
        if len(series) > 1 and band in ("minmax", "both"):
            ax.fill_between(
                grid.numpy(), values.min(0).values.numpy(), values.max(0).values.numpy(),
                color=line.get_color(), alpha=0.12, linewidth=0,
            )  # fmt: skip
        if len(series) > 1 and band in ("std", "both"):
            std = values.std(0, correction=0)
            ax.fill_between(
                grid.numpy(),
                (mean - std).numpy(),
                (mean + std).numpy(),
                color=line.get_color(),
                alpha=0.25,
                linewidth=0,
            )
    ax.set_xlabel(xlabel if xlabel is not None else x)
    bands = {"std": "mean ± std", "minmax": "mean, min-max", "both": "mean ± std, min-max", "none": "mean"}[band]
    ax.set_ylabel(ylabel if ylabel is not None else f"{y} ({bands} over seeds)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize=8)
    return ax


def task_heatmap(
    distributions: Any,
    ax: Any = None,
    *,
    iterations: Sequence[float] | Tensor | None = None,
    task_labels: Sequence[str] | None = None,
    xlabel: str = "iteration",
    cmap: str = "viridis",
    colorbar: bool = True,
) -> Any:
    """The task distribution over iterations: tasks on the y axis, iterations on the x axis.

    Args:
        distributions: ``[iterations, num_tasks]`` (a tensor, an array or a list of rows),
            e.g. ``curriculum.weights()`` stacked once per iteration.
        iterations (optional): x value of each row (e.g. frames); default ``0..n-1``.
        task_labels (optional): one name per task for the y ticks.

    Returns:
        The Axes; the image is ``ax.images[0]`` (its array is ``distributions.T``).
    """
    d = (
        distributions
        if isinstance(distributions, Tensor)
        else torch.as_tensor(
            [list(map(float, r)) for r in distributions] if isinstance(distributions, (list, tuple)) else distributions
        )
    )
    d = d.detach().to("cpu", torch.float64)
    if d.dim() != 2 or d.numel() == 0:
        raise ValueError(f"distributions must have shape [iterations, num_tasks], got {list(d.shape)}.")
    n_it, n_tasks = d.shape
    its = _tensor(iterations) if iterations is not None else torch.arange(n_it, dtype=torch.float64)
    if its.numel() != n_it:
        raise ValueError(f"iterations has {its.numel()} values for {n_it} rows of distributions.")
    if task_labels is not None and len(task_labels) != n_tasks:
        raise ValueError(f"task_labels has {len(task_labels)} names for {n_tasks} tasks.")
    ax = _axes(ax, (7.0, 3.5))
    step = float(its[1] - its[0]) if n_it > 1 else 1.0
    extent = (float(its[0]) - step / 2, float(its[-1]) + step / 2, -0.5, n_tasks - 0.5)
    im = ax.imshow(
        d.T.numpy(), aspect="auto", origin="lower", interpolation="nearest", cmap=cmap, extent=extent, vmin=0.0
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("task")
    if task_labels is not None:
        ax.set_yticks(range(n_tasks), list(task_labels))
    elif n_tasks <= 20:
        ax.set_yticks(range(n_tasks))
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="probability")
    return ax


def trajectory(
    data: Any,
    keys: Sequence[str] | None = None,
    x: str = "frames",
    ax: Any = None,
    *,
    xlabel: str | None = None,
    ylabel: str | None = None,
    step: bool | None = None,
) -> Any:
    """Levels, stages or parameter values over training.

    Args:
        data: a table (columns or rows; see the module doc), e.g. ``metrics.csv`` rows.
        keys (optional): the columns to draw; default: the level / stage columns
            (``curriculum/level_mean``, ``curriculum/stage``) if any, else every
            ``curriculum/param/*`` and ``task/*`` parameter column, else the level statistics
            of a level buffer (``curriculum/buffer_*`` but its occupancy and scores).
        x (str): the x column.
        step (bool, optional): draw steps (default: for level / stage columns).

    Returns:
        The Axes, one line per key (labelled by the key's last part).
    """
    cols = _columns(data)
    if keys is None:
        keys = [k for k in cols if k in LEVEL_KEYS]
        if not keys:
            keys = [k for k in cols if k.startswith(("curriculum/param/", "task/")) and k.count("/") <= 2]
            keys = [k for k in keys if not k.startswith("task/") or k.count("/") == 1]
        if not keys:
            skip = ("curriculum/buffer_occupancy", "curriculum/buffer_score")
            keys = [k for k in cols if k.startswith("curriculum/buffer_") and not k.startswith(skip)]
        if not keys:
            raise ValueError(f"no level, stage or parameter column to draw; pass keys= (columns: {sorted(cols)[:20]}).")
    xs = _column(cols, x, "data")
    ax = _axes(ax)
    for k in keys:
        ys = _column(cols, k, "data")
        label = k.split("/")[-1]
        if step if step is not None else k in LEVEL_KEYS:
            ax.step(xs.numpy(), ys.numpy(), where="post", label=label)
        else:
            ax.plot(xs.numpy(), ys.numpy(), label=label)
    ax.set_xlabel(xlabel if xlabel is not None else x)
    if ylabel is None:
        ylabel = "level" if all(k in LEVEL_KEYS for k in keys) else "value"
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def per_task_success(
    values: Any,
    ax: Any = None,
    *,
    labels: Sequence[str] | None = None,
    ylabel: str = "success rate",
    counts: Any = None,
) -> Any:
    """One bar per task (success rate, or any per-task value).

    Args:
        values: ``[num_tasks]`` (tensor / sequence), a mapping ``task name -> value``, or a
            :class:`~currlearn.stats.TaskStats` (its success rates, with episode counts).
        labels (optional): task names for the x ticks.
        ylabel (str): the y label; with "success" in it, the y axis spans [0, 1].
        counts (optional): episodes per task, written above the bars.

    Returns:
        The Axes, one ``Rectangle`` patch per task (``ax.patches``); NaN values (tasks never
        played) get a zero-height bar and "n/a".
    """
    from currlearn.stats import TaskStats

    if isinstance(values, TaskStats):
        counts = values.episodes() if counts is None else counts
        values = values.success_rate()
    if isinstance(values, Mapping):
        labels = [str(k) for k in values] if labels is None else labels
        values = list(values.values())
    v = _tensor(values)
    if v.numel() == 0:
        raise ValueError("per_task_success needs at least one value.")
    if labels is not None and len(labels) != v.numel():
        raise ValueError(f"labels has {len(labels)} names for {v.numel()} tasks.")
    ax = _axes(ax)
    pos = list(range(v.numel()))
    heights = torch.nan_to_num(v, nan=0.0).numpy()
    bars = ax.bar(pos, heights, color="tab:blue")
    n = _tensor(counts) if counts is not None else None
    for i, bar in enumerate(bars):
        text = "n/a" if math.isnan(float(v[i])) else (f"n={float(n[i]):.0f}" if n is not None else None)
        if text:
            ax.annotate(
                text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7
            )
    ax.set_xticks(pos, list(labels) if labels is not None else [str(i) for i in pos])
    ax.set_xlabel("task")
    ax.set_ylabel(ylabel)
    if "success" in ylabel:
        ax.set_ylim(0.0, 1.05)
    ax.grid(alpha=0.3, axis="y")
    return ax


def level_grid(
    images: Sequence[Tensor],
    row_labels: Sequence[str] | None = None,
    *,
    ax: Any = None,
    pad: int = 1,
    title: str | None = None,
) -> Any:
    """Rows of level images in one picture: row ``i`` shows ``images[i]``, shape
    ``[n_i, H, W, 3]`` (uint8 or floats in [0, 1]; rows may hold different numbers of levels).

    Args:
        images (sequence of Tensor): one batch of images per row, all of the same ``H, W``.
        row_labels (sequence of str, optional): a label per row (e.g. ``"iteration 40"``).
        ax: the Axes to draw into (default: a new figure sized to the grid).
        pad (int): white pixels between the levels.
        title (str, optional): the Axes' title.

    Raises:
        ValueError: no rows, images of different sizes, or a wrong number of labels.
    """
    rows = [img.detach().cpu() for img in images]
    if not rows or any(r.dim() != 4 or r.shape[-1] != 3 for r in rows):
        raise ValueError(
            f"images must be one or more tensors [n, H, W, 3], got shapes {[tuple(r.shape) for r in rows]}."
        )
    h, w = rows[0].shape[1:3]
    if any(tuple(r.shape[1:3]) != (h, w) for r in rows):
        raise ValueError(f"all level images must be {h} x {w}, got {[tuple(r.shape[1:3]) for r in rows]}.")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"row_labels has {len(row_labels)} labels for {len(rows)} rows.")
    cols = max(r.shape[0] for r in rows)
    canvas = torch.ones(len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3)
    for i, r in enumerate(rows):
        r = r.float() / 255.0 if not r.is_floating_point() else r.float()
        for j in range(r.shape[0]):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = r[j]
    ax = _axes(ax, figsize=(max(3.0, 0.11 * canvas.shape[1]), max(1.5, 0.11 * canvas.shape[0] + 0.6)))
    ax.imshow(canvas.numpy(), interpolation="nearest")
    ax.set_xticks([])
    if row_labels is not None:
        ax.set_yticks([pad + i * (h + pad) + h / 2 for i in range(len(rows))], list(row_labels), fontsize=8)
    else:
        ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax
