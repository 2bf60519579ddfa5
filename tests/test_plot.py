"""currlearn.plot: figures written to PNG, their contents checked (lines, bands, limits, labels)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from currlearn import plot  # noqa: E402
from currlearn.feedback import episode_feedback  # noqa: E402
from currlearn.stats import LearningStats, TaskStats  # noqa: E402


def _save(ax, path: Path) -> Path:
    ax.figure.savefig(path, dpi=60)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def _runs():
    frames = np.arange(1, 11) * 100.0
    runs = []
    for label, slope in (("level", 0.1), ("none", 0.05)):
        for seed in range(3):
            runs.append(
                {"label": label, "frames": frames, "success": np.clip(slope * np.arange(10) + 0.02 * seed, 0, 1)}
            )
    return frames, runs


def test_learning_curves_seed_bands(tmp_path: Path):
    frames, runs = _runs()
    ax = plot.learning_curves(runs, x="frames", y="success")
    assert isinstance(ax.figure, Figure)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["level (n=3)", "none (n=3)"]
    level = np.stack([r["success"] for r in runs[:3]])
    np.testing.assert_allclose(lines[0].get_xdata(), frames)
    np.testing.assert_allclose(lines[0].get_ydata(), level.mean(0))
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4  # per label: min-max and ± std
    # the min-max band of "level" spans exactly the seeds' min and max
    verts = bands[0].get_paths()[0].vertices
    assert verts[:, 1].min() == pytest.approx(level.min()) and verts[:, 1].max() == pytest.approx(level.max())
    std_verts = bands[1].get_paths()[0].vertices
    assert std_verts[:, 1].max() == pytest.approx((level.mean(0) + level.std(0)).max())
    assert ax.get_xlabel() == "frames" and ax.get_ylabel().startswith("success (mean ± std, min-max")
    ax.relim()
    assert ax.dataLim.x0 == frames[0] and ax.dataLim.x1 == frames[-1]
    assert ax.dataLim.y0 == pytest.approx(0.0) and ax.dataLim.y1 == pytest.approx(level.max())
    _save(ax, tmp_path / "curves.png")


def test_learning_curves_interpolates_and_accepts_stats_and_rows(tmp_path: Path):
    a, b = LearningStats(label="lp"), LearningStats(label="lp")
    for s, n in ((a, 4), (b, 6)):
        for i in range(n):
            s.append(episode_feedback(torch.tensor([0]), torch.tensor([float(i)]), length=torch.tensor([10])))
    ax = plot.learning_curves([a, b], x="frames", y="return", band="minmax", num_points=7)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), np.linspace(10, 40, 7))  # the range both cover
    np.testing.assert_allclose(line.get_ydata(), np.linspace(0, 3, 7))
    assert len(ax.collections) == 1
    rows = [{"frames": "100", "success": ""}, {"frames": "200", "success": "0.5"}]  # csv rows
    ax = plot.learning_curves({"csv": [{"rows": rows}]}, band="none")
    np.testing.assert_allclose(ax.get_lines()[0].get_xydata(), [[200, 0.5]])
    _save(ax, tmp_path / "rows.png")
    with pytest.raises(KeyError, match="no column 'wall'"):
        plot.learning_curves([a], x="wall")
    with pytest.raises(ValueError, match="band='x' is invalid"):
        plot.learning_curves([a], band="x")


def test_task_heatmap(tmp_path: Path):
    d = torch.softmax(torch.randn(12, 5, generator=torch.Generator().manual_seed(0)), -1)
    ax = plot.task_heatmap(
        d, iterations=np.arange(12) * 1000, task_labels=[f"gate {i}" for i in range(5)], xlabel="frames"
    )
    (im,) = ax.images
    np.testing.assert_allclose(np.asarray(im.get_array()), d.T.numpy())
    assert im.get_extent() == [-500, 11500, -0.5, 4.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"gate {i}" for i in range(5)]
    assert ax.get_xlabel() == "frames" and ax.get_ylabel() == "task"
    assert len(ax.figure.axes) == 2  # and a colour bar
    _save(ax, tmp_path / "heatmap.png")
    with pytest.raises(ValueError, match=r"shape \[iterations, num_tasks\], got \[5\]"):
        plot.task_heatmap(torch.ones(5))
    with pytest.raises(ValueError, match="iterations has 2 values for 12 rows"):
        plot.task_heatmap(d, iterations=[0, 1])


def test_trajectory(tmp_path: Path):
    rows = [
        {"frames": f, "curriculum/level_mean": lv, "task/gate_width": w, "task/gate_position": p}
        for f, lv, w, p in ((100, 0, 8.0, 0.0), (200, 1, 4.0, 1.0), (300, 1, 4.0, 1.0), (400, 3, 1.0, 2.5))
    ]
    ax = plot.trajectory(rows)
    (line,) = ax.get_lines()
    assert line.get_label() == "level_mean" and line.get_drawstyle() == "steps-post"
    np.testing.assert_allclose(line.get_xydata(), [[100, 0], [200, 1], [300, 1], [400, 3]])
    assert ax.get_ylabel() == "level"
    ax = plot.trajectory({k: [r[k] for r in rows] for k in rows[0]}, keys=["task/gate_width", "task/gate_position"])
    assert [ln.get_label() for ln in ax.get_lines()] == ["gate_width", "gate_position"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [8, 4, 4, 1])
    _save(ax, tmp_path / "trajectory.png")
    with pytest.raises(ValueError, match="no level, stage or parameter column"):
        plot.trajectory({"frames": [1], "return": [0.0]})


def test_per_task_success(tmp_path: Path):
    ts = TaskStats(4)
    ts.update(episode_feedback(torch.tensor([0, 0, 1, 3]), torch.ones(4), success=torch.tensor([1.0, 0.0, 1.0, 0.0])))
    ax = plot.per_task_success(ts, labels=["a", "b", "c", "d"])
    heights = [p.get_height() for p in ax.patches]
    assert heights == [0.5, 1.0, 0.0, 0.0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["n=2", "n=1", "n/a", "n=1"]
    assert ax.get_ylim() == (0.0, 1.05) and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    _save(ax, tmp_path / "per_task.png")
    ax = plot.per_task_success({"easy": 0.9, "hard": math.nan})
    assert [p.get_height() for p in ax.patches] == [0.9, 0.0]


def test_plot_into_given_axes_and_no_pyplot_state():
    fig = Figure()
    axes = fig.subplots(1, 2)
    frames, runs = _runs()
    assert plot.learning_curves(runs, ax=axes[0]) is axes[0]
    assert plot.per_task_success([0.1, 0.2], ax=axes[1]) is axes[1]
    code = (
        "import currlearn.plot, sys; currlearn.plot.per_task_success([0.5]); print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"  # a script without pyplot never touches a GUI backend
