"""``currlearn-report <multirun dir>``: compare curricula across seeds.

Reads every job of a Hydra multirun (``metrics.csv``, ``summary.json``,
``.hydra/overrides.yaml``), groups jobs by their overrides without ``seed`` (e.g.
``curriculum=level``), and writes into the multirun dir:

- ``report.csv``: per group and frames, the mean / std / min / max over seeds of the return
  and success of the episodes finished in that iteration, with the mean episodes and wall time,
  and per group the mean / std over seeds of each run's last target evaluation
  (``eval_success_last``, ``eval_success_last_std``; empty without evaluations);
- ``report.md``: per group, the frames at which the seed-mean success first reaches the
  threshold, the final success, the success on the target task (``summary.json``) and the
  last periodic evaluation on the target task; where runs have held-out evaluations
  (``task.heldout``) or a game's outcome (``target_outcome``), a second table with the success
  and outcome on the target and on each held-out set;
- ``report_curves.png``: return and success against frames, mean with a min-max seed band;
  the curriculum progress (the mean task parameters ``task/*`` against frames); and the
  periodic evaluations on the target task (``eval/success`` against frames), or, when no run
  has them, the final target success of each group as bars.

Also provides :func:`plot_run`, the single-run plots of ``currlearn-train``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["aggregate", "load_runs", "main", "plot_run", "write_report"]

PROG = "currlearn-report"
EVAL_SUCCESS = "eval/success"
EVAL_LABEL = "target (eval)"
MAX_PARAM_PANELS = 3


def _figure(ncols: int, width: float, height: float) -> Any:
    """A figure with ``ncols`` axes, not registered with pyplot (no GUI, nothing to close)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _float(v: Any) -> float:
    """``v`` as a float; NaN for what is no number (``""`` of an empty CSV cell, ``None``)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _finite_points(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    """The ``(frames, rows[key])`` pairs of the rows where both are finite, in row order.

    Args:
        rows (Sequence[Mapping[str, Any]]): ``metrics.csv`` rows (strings) or in-memory rows.
        key (str): the column, e.g. ``"eval/success"``; rows without it are skipped.
    """
    points = [(_float(r.get("frames")), _float(r.get(key))) for r in rows]
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def _last_finite(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    """The last finite value of column ``key`` in ``rows``; NaN when there is none.

    Args:
        rows (Sequence[Mapping[str, Any]]): ``metrics.csv`` rows.
        key (str): the column.
    """
    return next((v for r in reversed(rows) if math.isfinite(v := _float(r.get(key)))), float("nan"))


def _prefixed_columns(rows: Sequence[Mapping[str, Any]], prefix: str) -> list[str]:
    """The columns of ``rows`` named ``<prefix><name>`` (one level deep), in first-seen order.

    Args:
        rows (Sequence[Mapping[str, Any]]): table rows.
        prefix (str): e.g. ``"task/"``.
    """
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys and k.startswith(prefix) and k.count("/") == prefix.count("/"))
    return keys


def _colour(i: int) -> str:
    """The ``i``-th colour of matplotlib's colour cycle (``"C<i>"``), as a hex string."""
    from matplotlib.colors import to_hex

    return to_hex(f"C{i}")


def _suptitle(fig: Any, title: str | None) -> None:
    if title:
        fig.suptitle(title)


# --------------------------------------------------------------------------- one run
def _returns_figure(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> Any:
    """Return and success of the training episodes against frames, with the periodic target
    evaluations (``eval/return``, ``eval/success``) where the rows have finite ones.

    Args:
        rows (Sequence[Mapping[str, Any]]): the run's ``metrics.csv`` rows.
        title (str, optional): the figure's suptitle.

    Returns:
        The Figure: two Axes (return, success); an evaluation curve is the line labelled
        ``"target (eval)"``, and an Axes has a legend only when it has one.
    """
    from currlearn import plot

    fig, axes = _figure(2, 10, 3.8)
    for ax, key in zip(axes, ("return", "success"), strict=False):
        plot.learning_curves([{"label": "training", "rows": rows}], x="frames", y=key, ax=ax, ylabel=f"episode {key}")
        points = _finite_points(rows, f"eval/{key}")
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=4, label=EVAL_LABEL)
            ax.legend(fontsize=8)
        elif ax.get_legend() is not None:
            ax.get_legend().remove()
    _suptitle(fig, title)
    return fig


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _curriculum_figure(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> Any:
    """Level / stage and the mean task parameters against frames; None without such columns.

    Args:
        rows (Sequence[Mapping[str, Any]]): the run's ``metrics.csv`` rows.
        title (str, optional): the figure's suptitle.
    """
    from currlearn import plot

    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    levels = [k for k in keys if k in ("curriculum/level_mean", "curriculum/stage")]
    params = [k for k in keys if k.startswith("task/")]
    # a level buffer (LevelReplay, ACCEL): its levels' statistics and its scores
    scores = [k for k in keys if k.startswith("curriculum/buffer_score_")]
    stats = [k for k in keys if k.startswith("curriculum/buffer_") and k not in scores and "occupancy" not in k]
    panels = [
        (keys_, label)
        for keys_, label in (
            (levels, "level"),
            (params, "mean task parameter"),
            (stats, "mean over the buffer's levels"),
            (scores, "buffer score quantiles"),
        )
        if keys_
    ]
    if not panels:
        return None
    n = len(panels)
    fig, axes = _figure(n, 5 * n, 3.8)
    for keys_, label in panels:
        # rows before a buffer holds levels have no such values
        shown = [r for r in rows if all(_finite(r.get(k)) for k in keys_)]
        plot.trajectory(shown, keys_, x="frames", ax=axes.pop(0), ylabel=label)
    _suptitle(fig, title)
    return fig


def _run_figures(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> dict[str, Any]:
    """The single-run figures by file name: ``returns.png`` and, with a curriculum, ``curriculum.png``.

    Args:
        rows (Sequence[Mapping[str, Any]]): the run's ``metrics.csv`` rows.
        title (str, optional): the suptitle of every figure.
    """
    figs = {"returns.png": _returns_figure(rows, title)}
    curriculum = _curriculum_figure(rows, title)
    if curriculum is not None:
        figs["curriculum.png"] = curriculum
    return figs


def plot_run(rows: Sequence[Mapping[str, Any]], run_dir: str | Path, title: str | None = None) -> list[Path]:
    """Write ``returns.png`` (return and success vs frames, with the target evaluations when
    the rows have ``eval/*`` values), with a curriculum ``curriculum.png`` (level / stage
    and the mean task parameters vs frames, or a level buffer's statistics), and with level
    snapshots in ``run_dir/levels`` ``levels.png`` (the buffer's best levels over training).

    Args:
        rows (Sequence[Mapping[str, Any]]): the run's ``metrics.csv`` rows; ``eval/*`` cells
            are empty, NaN or missing on the iterations without an evaluation.
        run_dir (str | Path): where the PNGs go.
        title (str, optional): the suptitle of both figures, e.g. ``"level on point_mass, seed 0"``.

    Returns:
        The paths written.
    """
    run_dir = Path(run_dir)
    out = []
    figs = _run_figures(rows, title)
    levels = _levels_figure(run_dir / "levels", title)
    if levels is not None:
        figs["levels.png"] = levels
    for name, fig in figs.items():
        fig.savefig(run_dir / name, dpi=100)
        out.append(run_dir / name)
    return out


def _levels_figure(directory: Path, title: str | None = None) -> Any:
    """The level buffer's snapshots (``levels/<iteration>.pt``, written by the app for
    :class:`~currlearn.curricula.LevelReplay` runs), one row per snapshot; None without any."""
    paths = sorted(directory.glob("*.pt"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
    if not paths:
        return None
    import torch

    from currlearn import plot

    snaps = [torch.load(p, weights_only=True) for p in paths]
    labels = [f"iter {s['iteration']}" for s in snaps]
    ax = plot.level_grid([s["images"] for s in snaps], labels, title="the buffer's highest-scoring levels")
    if title:
        ax.figure.suptitle(title, fontsize=10)
    return ax.figure


# --------------------------------------------------------------------------- many runs
def _read_overrides(job: Path) -> list[str]:
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def load_runs(multirun_dir: str | Path) -> list[dict[str, Any]]:
    """Every job under ``multirun_dir`` with a ``metrics.csv``: its group label (overrides
    without ``seed``, or the curriculum name), seed, rows and summary.
    """
    root = Path(multirun_dir)
    runs = []
    for metrics in sorted(root.glob("**/metrics.csv")):
        job = metrics.parent
        with metrics.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            continue
        summary_path = job / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        overrides = _read_overrides(job)
        seed = next(
            (o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == "seed"),
            summary.get("seed", "?"),
        )
        rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("seed", "resume")]
        if not any(o.startswith("curriculum=") for o in rest):
            rest.insert(0, f"curriculum={summary.get('curriculum', 'level')}")
        runs.append(
            {
                "dir": str(job),
                "overrides": rest,
                "seed": str(seed),
                "rows": rows,
                "summary": summary,
            }
        )
    # group label: the overrides that differ between jobs (besides seed); the curriculum always
    common = set.intersection(*(set(r["overrides"]) for r in runs)) if runs else set()
    for r in runs:
        r["group"] = " ".join(o for o in r.pop("overrides") if o not in common or o.startswith("curriculum="))
    return runs


def _stats(values: list[float]) -> tuple[float, float, float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        nan = float("nan")
        return nan, nan, nan, nan
    std = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    return statistics.fmean(vals), std, min(vals), max(vals)


def aggregate(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (group, frames): statistics over the seeds that reached those frames."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["group"], []).append(r)
    out = []
    for group, members in groups.items():
        by_frames: dict[int, list[Mapping[str, Any]]] = {}
        for m in members:
            episodes = 0.0
            for row in m["rows"]:
                episodes += _float(row.get("episodes", 0))
                by_frames.setdefault(int(_float(row["frames"])), []).append({**row, "_episodes": episodes})
        for frames in sorted(by_frames):
            rows = by_frames[frames]
            rec: dict[str, Any] = {"group": group, "frames": frames, "seeds": len(rows)}
            for key in ("return", "success"):
                mean, std, lo, hi = _stats([_float(r.get(key)) for r in rows])
                rec.update({f"{key}_mean": mean, f"{key}_std": std, f"{key}_min": lo, f"{key}_max": hi})
            rec["episodes_mean"] = _stats([r["_episodes"] for r in rows])[0]
            rec["wall_time_mean"] = _stats([_float(r.get("wall_time")) for r in rows])[0]
            out.append(rec)
    return out


def _fmt(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _groups(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The runs by group label, groups in first-seen order."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["group"], []).append(r)
    return groups


def _eval_last(members: Sequence[Mapping[str, Any]]) -> tuple[float, float, float, float]:
    """Statistics over the seeds of each run's last finite ``eval/success`` (NaN when none has one).

    Args:
        members (Sequence[Mapping[str, Any]]): the runs of one group (:func:`load_runs`).
    """
    return _stats([_last_finite(m["rows"], EVAL_SUCCESS) for m in members])


def _write_table(path: Path, table: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]]) -> None:
    """Write :func:`aggregate`'s table with the group's last target evaluation on each row.

    Args:
        path (Path): the CSV file.
        table (Sequence[Mapping[str, Any]]): :func:`aggregate` of ``runs``.
        runs (Sequence[Mapping[str, Any]]): :func:`load_runs`.
    """
    last = {g: _eval_last(members) for g, members in _groups(runs).items()}
    rows = []
    for t in table:
        mean, std = last[t["group"]][:2]
        none = math.isnan(mean)
        rows.append({**t, "eval_success_last": "" if none else mean, "eval_success_last_std": "" if none else std})
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _markdown(
    root: Path, runs: Sequence[Mapping[str, Any]], table: Sequence[Mapping[str, Any]], threshold: float
) -> str:
    """``report.md``: one table row per group.

    Args:
        root (Path): the multirun directory.
        runs (Sequence[Mapping[str, Any]]): :func:`load_runs` of ``root``.
        table (Sequence[Mapping[str, Any]]): :func:`aggregate` of ``runs``.
        threshold (float): the success threshold of "frames to threshold".
    """
    lines = [
        f"# currlearn report: {root}",
        "",
        f"Success threshold: {threshold}. Mean ± std over seeds; frames to threshold: first frames at "
        "which the seed-mean success of the iteration's episodes reaches it; last eval success: each "
        "run's last periodic evaluation on the target task.",
        "",
        "| group | seeds | frames to threshold | final return | final success | target success "
        "| last eval success | wall time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g, members in _groups(runs).items():
        rows = [t for t in table if t["group"] == g]
        reach = next(
            (t["frames"] for t in rows if not math.isnan(t["success_mean"]) and t["success_mean"] >= threshold),
            None,
        )
        finals = [m["rows"][-1] for m in members]
        fr = _stats([_float(r.get("return")) for r in finals])
        fs = _stats([_float(r.get("success")) for r in finals])
        ts = _stats([_float(m["summary"].get("target_success")) for m in members])
        es = _eval_last(members)
        wt = _stats([_float(r.get("wall_time")) for r in finals])
        seeds = ",".join(sorted({m["seed"] for m in members}))
        lines.append(
            f"| {g} | {seeds} | {reach if reach is not None else 'not reached'} | {_fmt(fr[0], fr[1])} | "
            f"{_fmt(fs[0], fs[1])} | {_fmt(ts[0], ts[1])} | {_fmt(es[0], es[1])} | {_fmt(wt[0], wt[1], 1)} |"
        )
    lines.extend(_evaluation_markdown(runs))
    return "\n".join(lines) + "\n"


def _evaluation_columns(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """``(header, summary -> value)`` of the second table of ``report.md``: the target's and each
    held-out set's success and outcome, those that some run's ``summary.json`` has."""
    summaries = [r["summary"] for r in runs]
    names = list(dict.fromkeys(n for s in summaries for n in (s.get("heldout") or {})))
    cols: list[tuple[str, Any]] = [("target success", lambda s: s.get("target_success"))]
    if any("target_outcome" in s for s in summaries):
        cols.append(("target outcome", lambda s: s.get("target_outcome")))
    for name in names:
        for key in ("success", "outcome"):
            if any(key in ((s.get("heldout") or {}).get(name) or {}) for s in summaries):
                cols.append((f"{name} {key}", lambda s, n=name, k=key: ((s.get("heldout") or {}).get(n) or {}).get(k)))
    for key in ("success", "outcome"):
        if len(names) > 1 and any(f"heldout_{key}" in s for s in summaries):
            cols.append((f"held-out {key} (mean)", lambda s, k=key: s.get(f"heldout_{k}")))
    return cols if len(cols) > 1 else []


def _evaluation_markdown(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The lines of ``report.md``'s table of final evaluations (none without held-out sets or
    outcomes): per group, the mean ± std over seeds of each column of :func:`_evaluation_columns`."""
    cols = _evaluation_columns(runs)
    if not cols:
        return []
    lines = [
        "",
        "Final evaluations (summary.json), mean ± std over seeds: success (a win in a two-player game) and "
        "outcome (win 1, draw 0.5, loss 0) on the target tasks and on each held-out set (task.heldout).",
        "",
        "| group | seeds | " + " | ".join(h for h, _ in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for g, members in _groups(runs).items():
        cells = []
        for _, get in cols:
            mean, std = _stats([_float(get(m["summary"])) for m in members])[:2]
            cells.append(_fmt(mean, std))
        seeds = ",".join(sorted({m["seed"] for m in members}))
        lines.append(f"| {g} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def _group_curves(ax: Any, groups: Mapping[str, Sequence[Mapping[str, Any]]], key: str, ylabel: str) -> None:
    """Per group, the seed mean of column ``key`` against frames with a min-max band; group ``i``
    in colour ``C<i>`` on every panel, groups without the column left out.

    Args:
        ax: the matplotlib Axes.
        groups (Mapping[str, Sequence[Mapping[str, Any]]]): :func:`_groups`.
        key (str): the column.
        ylabel (str): the y label.
    """
    from currlearn import plot

    for i, (g, members) in enumerate(groups.items()):
        having = [m for m in members if any(key in r for r in m["rows"])]
        if having:
            ax.set_prop_cycle(color=[_colour(i)])
            plot.learning_curves(
                [{"label": g, "rows": m["rows"]} for m in having], x="frames", y=key, ax=ax, band="minmax",
                ylabel=ylabel,
            )  # fmt: skip


def _shared_eval(members: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[list[float]]]:
    """The frames at which every run of a group with evaluations has a finite ``eval/success``,
    and each such run's values there.

    Args:
        members (Sequence[Mapping[str, Any]]): the runs of one group.

    Returns:
        ``(frames, values)``, ``values[run][j]`` the value at ``frames[j]``; empty lists when
        no run has an evaluation or they share no frames.
    """
    series = [s for m in members if (s := dict(_finite_points(m["rows"], EVAL_SUCCESS)))]
    if not series:
        return [], []
    frames = sorted(set.intersection(*(set(s) for s in series)))
    return frames, [[s[f] for f in frames] for s in series]


def _eval_panel(ax: Any, groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> bool:
    """Per group, the seed mean of ``eval/success`` at the shared evaluation frames, with a
    min-max band.

    Args:
        ax: the matplotlib Axes.
        groups (Mapping[str, Sequence[Mapping[str, Any]]]): :func:`_groups`.

    Returns:
        Whether any group had a curve to draw.
    """
    drawn = False
    for i, (g, members) in enumerate(groups.items()):
        frames, values = _shared_eval(members)
        if not frames:
            continue
        columns = list(zip(*values, strict=True))
        mean = [statistics.fmean(c) for c in columns]
        label = f"{g} (n={len(values)})" if len(values) > 1 else g
        ax.plot(frames, mean, marker="o", markersize=4, color=_colour(i), label=label)
        if len(values) > 1:
            lo, hi = [min(c) for c in columns], [max(c) for c in columns]
            ax.fill_between(frames, lo, hi, color=_colour(i), alpha=0.12, linewidth=0)
        drawn = True
    if drawn:
        ax.set_xlabel("frames")
        ax.set_ylabel("target success (mean, min-max over seeds)")
        ax.set_title("target evaluation (eval/success)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return drawn


def _target_bars(ax: Any, groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Per group, the seed mean ± std of the final ``target_success`` (``summary.json``) as a bar;
    a group without one gets a zero-height bar and "n/a".

    Args:
        ax: the matplotlib Axes.
        groups (Mapping[str, Sequence[Mapping[str, Any]]]): :func:`_groups`.
    """
    stats = [_stats([_float(m["summary"].get("target_success")) for m in ms]) for ms in groups.values()]
    pos = list(range(len(stats)))
    heights = [0.0 if math.isnan(s[0]) else s[0] for s in stats]
    errors = [0.0 if math.isnan(s[1]) else s[1] for s in stats]
    bars = ax.bar(pos, heights, yerr=errors, capsize=3, color=[_colour(i) for i in pos])
    for bar, s in zip(bars, stats, strict=True):
        if math.isnan(s[0]):
            ax.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0.0), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(pos, list(groups), fontsize=8, rotation=15, ha="right")
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("target success (mean ± std over seeds)")
    ax.set_title("target success after training", fontsize=10)
    ax.grid(alpha=0.3, axis="y")


def _report_figure(runs: Sequence[Mapping[str, Any]], title: str | None = None) -> Any:
    """``report_curves.png``: training return and success (top), curriculum progress and target
    evaluation (bottom).

    The progress panels show, per group, the seed mean of a mean task parameter (``task/*``)
    against frames: one panel per parameter when there are at most three, else the first one;
    none without ``task/*`` columns. The evaluation panel shows :func:`_eval_panel`, or
    :func:`_target_bars` when no group has a periodic evaluation.

    Args:
        runs (Sequence[Mapping[str, Any]]): :func:`load_runs`.
        title (str, optional): the figure's suptitle.

    Returns:
        The Figure; its new panels are titled ``"curriculum progress"`` and ``"target ..."``.
    """
    from matplotlib.figure import Figure

    groups = _groups(runs)
    params = _prefixed_columns([r for run in runs for r in run["rows"][:1]], "task/")
    params = params if len(params) <= MAX_PARAM_PANELS else params[:1]
    bottom = len(params) + 1
    ncols = math.lcm(2, bottom)
    fig = Figure(figsize=(max(11.0, 3.6 * bottom), 8.0), layout="constrained")
    grid = fig.add_gridspec(2, ncols)
    top = [fig.add_subplot(grid[0, i * ncols // 2 : (i + 1) * ncols // 2]) for i in range(2)]
    width = ncols // bottom
    low = [fig.add_subplot(grid[1, i * width : (i + 1) * width]) for i in range(bottom)]
    for ax, key in zip(top, ("return", "success"), strict=True):
        _group_curves(ax, groups, key, f"episode {key} (mean, min-max over seeds)")
    for ax, key in zip(low, params, strict=False):
        _group_curves(ax, groups, key, f"{key.split('/', 1)[1]} (mean, min-max over seeds)")
        ax.set_title("curriculum progress", fontsize=10)
    for ax in [top[0], *low[:-1]]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not _eval_panel(low[-1], groups):
        _target_bars(low[-1], groups)
    _suptitle(fig, title)
    return fig


def write_report(multirun_dir: str | Path, threshold: float = 0.5) -> dict[str, Path]:
    """Write report.csv, report.md and report_curves.png into ``multirun_dir``.

    Args:
        multirun_dir (str | Path): a ``currlearn-train`` multirun directory.
        threshold (float): the success threshold of "frames to threshold".

    Returns:
        The paths written, by kind (``"csv"``, ``"md"``, ``"png"``).

    Raises:
        ValueError: no job with a metrics.csv under ``multirun_dir``.
    """
    root = Path(multirun_dir)
    runs = load_runs(root)
    if not runs:
        raise ValueError(
            f"{str(root)!r} holds no run with a metrics.csv (is it a currlearn-train multirun directory?)."
        )
    table = aggregate(runs)
    csv_path = root / "report.csv"
    _write_table(csv_path, table, runs)
    md_path = root / "report.md"
    md_path.write_text(_markdown(root, runs, table, threshold))
    png_path = root / "report_curves.png"
    _report_figure(runs, root.resolve().name).savefig(png_path, dpi=100)
    return {"csv": csv_path, "md": md_path, "png": png_path}


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``currlearn-report``."""
    parser = argparse.ArgumentParser(prog=PROG, description="Aggregate a currlearn-train multirun across seeds.")
    parser.add_argument("multirun_dir", help="a multirun directory (e.g. multirun/2025-01-01/12-00-00)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="success threshold for 'frames to threshold' (default 0.5)",
    )
    args = parser.parse_args(argv)
    if not Path(args.multirun_dir).is_dir():
        sys.exit(f"{PROG}: error: {args.multirun_dir!r} is not a directory.")
    if not 0.0 <= args.threshold <= 1.0:
        sys.exit(f"{PROG}: error: --threshold={args.threshold} is out of range: allowed range [0, 1].")
    try:
        paths = write_report(args.multirun_dir, args.threshold)
    except ValueError as e:
        sys.exit(f"{PROG}: error: {e}")
    print(Path(paths["md"]).read_text())
    print(f"wrote {paths['csv']}, {paths['md']}, {paths['png']}")


if __name__ == "__main__":
    main()
