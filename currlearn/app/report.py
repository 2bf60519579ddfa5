"""``currlearn-report <multirun dir>``: compare curricula across seeds.

Reads every job of a Hydra multirun (``metrics.csv``, ``summary.json``,
``.hydra/overrides.yaml``), groups jobs by their overrides without ``seed`` (e.g.
``curriculum=level``), and writes into the multirun dir:

- ``report.csv``: per group and frames, the mean / std / min / max over seeds of the return
  and success of the episodes finished in that iteration, with the mean episodes and wall time;
- ``report.md``: per group, the frames at which the seed-mean success first reaches the
  threshold, the final success and the success on the target task (``summary.json``);
- ``report_curves.png``: return and success against frames, mean with a min-max seed band.

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


def _figure(ncols: int, width: float, height: float) -> Any:
    """A figure with ``ncols`` axes, not registered with pyplot (no GUI, nothing to close)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


# --------------------------------------------------------------------------- one run
def plot_run(rows: Sequence[Mapping[str, Any]], run_dir: str | Path) -> list[Path]:
    """Write ``returns.png`` (return and success vs frames) and, with a curriculum,
    ``curriculum.png`` (level / stage and the mean task parameters vs frames).
    """
    from currlearn import plot

    run_dir = Path(run_dir)
    out = []
    fig, axes = _figure(2, 10, 3.5)
    for ax, key in zip(axes, ("return", "success"), strict=False):
        plot.learning_curves([{"label": "run", "rows": rows}], x="frames", y=key, ax=ax, ylabel=f"episode {key}")
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.savefig(run_dir / "returns.png", dpi=100)
    out.append(run_dir / "returns.png")
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    levels = [k for k in keys if k in ("curriculum/level_mean", "curriculum/stage")]
    params = [k for k in keys if k.startswith("task/")]
    if levels or params:
        n = int(bool(levels)) + int(bool(params))
        fig, axes = _figure(n, 5 * n, 3.5)
        if levels:
            plot.trajectory(rows, levels, x="frames", ax=axes.pop(0), ylabel="level")
        if params:
            plot.trajectory(rows, params, x="frames", ax=axes.pop(0), ylabel="mean task parameter")
        fig.savefig(run_dir / "curriculum.png", dpi=100)
        out.append(run_dir / "curriculum.png")
    return out


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


def write_report(multirun_dir: str | Path, threshold: float = 0.5) -> dict[str, Path]:
    """Write report.csv, report.md and report_curves.png into ``multirun_dir``.

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
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)

    groups = list(dict.fromkeys(r["group"] for r in runs))
    lines = [
        f"# currlearn report: {root}",
        "",
        f"Success threshold: {threshold}. Mean ± std over seeds; frames to threshold: first frames at "
        "which the seed-mean success of the iteration's episodes reaches it.",
        "",
        "| group | seeds | frames to threshold | final return | final success | target success | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        members = [r for r in runs if r["group"] == g]
        rows = [t for t in table if t["group"] == g]
        reach = next(
            (t["frames"] for t in rows if not math.isnan(t["success_mean"]) and t["success_mean"] >= threshold),
            None,
        )
        finals = [m["rows"][-1] for m in members]
        fr = _stats([_float(r.get("return")) for r in finals])
        fs = _stats([_float(r.get("success")) for r in finals])
        ts = _stats([_float(m["summary"].get("target_success")) for m in members])
        wt = _stats([_float(r.get("wall_time")) for r in finals])
        seeds = ",".join(sorted({m["seed"] for m in members}))
        lines.append(
            f"| {g} | {seeds} | {reach if reach is not None else 'not reached'} | {_fmt(fr[0], fr[1])} | "
            f"{_fmt(fs[0], fs[1])} | {_fmt(ts[0], ts[1])} | {_fmt(wt[0], wt[1], 1)} |"
        )
    md_path = root / "report.md"
    md_path.write_text("\n".join(lines) + "\n")

    from currlearn import plot

    fig, axes = _figure(2, 11, 4)
    for ax, key in zip(axes, ("return", "success"), strict=False):
        plot.learning_curves(
            [{"label": r["group"], "rows": r["rows"]} for r in runs], x="frames", y=key, ax=ax, band="minmax",
            ylabel=f"episode {key} (mean, min-max over seeds)",
        )  # fmt: skip
    if axes[0].get_legend() is not None:
        axes[0].get_legend().remove()
    png_path = root / "report_curves.png"
    fig.savefig(png_path, dpi=100)
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
