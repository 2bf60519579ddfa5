"""currlearn.app.report: the single-run figures and the multirun report, from hand-written run dirs.

The figures are checked through matplotlib (titles, lines and their data, bars), the tables
against values computed by hand.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.colors import to_rgba

from currlearn.app import report

FRAMES = [100, 200, 300, 400]
TITLE = "level on point_mass, seed 0"
# Per (curriculum, seed): training success, gate width, and the evaluations at frames 200 and 400.
RUNS = {
    ("level", 0): {"success": [0.0, 0.5, 0.5, 1.0], "width": [8.0, 6.0, 4.0, 2.0], "eval": [0.2, 0.6]},
    ("level", 1): {"success": [0.5, 0.5, 1.0, 1.0], "width": [8.0, 4.0, 4.0, 2.0], "eval": [0.4, 0.8]},
    ("none", 0): {"success": [0.0, 0.0, 0.5, 0.5], "width": [1.0] * 4, "eval": [0.0, 0.1]},
    ("none", 1): {"success": [0.0, 0.5, 0.5, 0.5], "width": [1.0] * 4, "eval": [0.2, 0.3]},
}
EVAL_AT = {200: 0, 400: 1}


def _rows(curriculum: str, seed: int, *, evals: bool = True, params: int = 2) -> list[dict]:
    """metrics.csv rows as the app writes them; the eval/* keys only on the evaluated iterations."""
    spec = RUNS[(curriculum, seed)]
    rows = []
    for i, frames in enumerate(FRAMES):
        row = {
            "iteration": i + 1,
            "frames": frames,
            "wall_time": 0.5 * (i + 1),
            "episodes": 4,
            "return": 10.0 * spec["success"][i],
            "success": spec["success"][i],
            "episode_length": 50,
        }
        if curriculum == "level":
            row["curriculum/level_mean"] = float(i)
        row["task/gate_width"] = spec["width"][i]
        for j in range(1, params):
            row[f"task/p{j}"] = float(j * i)
        if evals and frames in EVAL_AT:
            s = spec["eval"][EVAL_AT[frames]]
            row.update({"eval/success": s, "eval/return": 10.0 * s, "eval/episodes": 8})
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)  # missing cells: ""
        w.writeheader()
        w.writerows(rows)


def _sweep(root: Path, *, evals: bool = True, params: int = 2, target: dict | None = None) -> Path:
    """A multirun dir of 2 curricula x 2 seeds."""
    for k, (curriculum, seed) in enumerate(RUNS):
        job = root / str(k)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- curriculum={curriculum}\n- seed={seed}\n")
        _write_csv(job / "metrics.csv", _rows(curriculum, seed, evals=evals, params=params))
        ts = (target or {}).get((curriculum, seed), 0.5)
        summary = {"curriculum": curriculum, "env": "point_mass", "seed": seed, "target_success": ts}
        (job / "summary.json").write_text(json.dumps(summary))
    return root


def _line(ax, label: str):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def _titled(fig, prefix: str) -> list:
    return [ax for ax in fig.axes if ax.get_title().startswith(prefix)]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- one run
def test_run_figures_titles_and_eval_curve(tmp_path: Path):
    rows = _rows("level", 0)
    rows[0].update({"eval/success": math.nan, "eval/return": math.nan})  # NaN and missing: no evaluation
    figs = report._run_figures(rows, title=TITLE)
    assert list(figs) == ["returns.png", "curriculum.png"]
    assert all(fig.get_suptitle() == TITLE for fig in figs.values())
    ret_ax, success_ax = figs["returns.png"].axes
    line = _line(success_ax, "target (eval)")
    np.testing.assert_allclose(line.get_xydata(), [[200, 0.2], [400, 0.6]])
    assert line.get_marker() == "o" and line.get_linestyle() == "-"
    np.testing.assert_allclose(_line(success_ax, "training").get_ydata(), RUNS[("level", 0)]["success"])
    np.testing.assert_allclose(_line(ret_ax, "target (eval)").get_xydata(), [[200, 2.0], [400, 6.0]])
    assert _legend(success_ax) == ["training", "target (eval)"]

    paths = report.plot_run(rows, tmp_path, title=TITLE)
    assert paths == [tmp_path / "returns.png", tmp_path / "curriculum.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


@pytest.mark.parametrize("rows", ["old", "empty"])
def test_run_figures_without_evaluations(rows: str):
    data = _rows("level", 0, evals=False)
    if rows == "empty":  # eval columns, but no evaluation ran
        data = [{**r, "eval/success": math.nan, "eval/return": "", "eval/episodes": ""} for r in data]
    figs = report._run_figures(data)
    assert all(fig.get_suptitle() == "" for fig in figs.values())
    for ax in figs["returns.png"].axes:
        assert [ln.get_label() for ln in ax.get_lines()] == ["training"]
        assert ax.get_legend() is None


def test_run_figures_from_csv_rows(tmp_path: Path):
    """Rows read back from metrics.csv: the cells of the iterations without evaluation are ""."""
    _write_csv(tmp_path / "metrics.csv", _rows("none", 1))
    rows = _read(tmp_path / "metrics.csv")
    assert rows[0]["eval/success"] == ""
    success_ax = report._run_figures(rows)["returns.png"].axes[1]
    np.testing.assert_allclose(_line(success_ax, "target (eval)").get_xydata(), [[200, 0.2], [400, 0.3]])


# --------------------------------------------------------------------------- many runs
def test_report_with_evaluations(tmp_path: Path):
    root = _sweep(tmp_path / "sweep")
    paths = report.write_report(root)
    assert all(p.is_file() for p in paths.values())

    table = _read(root / "report.csv")
    assert {"return_mean", "success_mean", "episodes_mean", "wall_time_mean"} <= set(table[0])
    last = {r["group"]: (float(r["eval_success_last"]), float(r["eval_success_last_std"])) for r in table}
    assert last["curriculum=level"] == pytest.approx((0.7, 0.1))  # mean, std of 0.6 and 0.8
    assert last["curriculum=none"] == pytest.approx((0.2, 0.1))  # of 0.1 and 0.3
    md = (root / "report.md").read_text()
    assert "| curriculum=none | 0,1 |" in md and "| curriculum=level | 0,1 |" in md
    assert "| 0.70 ± 0.10 |" in md and "| 0.20 ± 0.10 |" in md

    fig = report._report_figure(report.load_runs(root), "sweep")
    assert fig.get_suptitle() == "sweep"
    assert len(fig.axes) == 5  # return, success, 2 parameters, evaluation
    progress = _titled(fig, "curriculum progress")
    assert [ax.get_ylabel().split()[0] for ax in progress] == ["gate_width", "p1"]
    labels = ["curriculum=level (n=2)", "curriculum=none (n=2)"]
    assert [ln.get_label() for ln in progress[0].get_lines()] == labels
    np.testing.assert_allclose(progress[0].get_lines()[0].get_xydata(), np.c_[FRAMES, [8.0, 5.0, 4.0, 2.0]])
    np.testing.assert_allclose(progress[0].get_lines()[1].get_ydata(), [1.0] * 4)
    (eval_ax,) = _titled(fig, "target evaluation")
    assert [ln.get_label() for ln in eval_ax.get_lines()] == labels
    np.testing.assert_allclose(eval_ax.get_lines()[0].get_xydata(), [[200, 0.3], [400, 0.7]])
    np.testing.assert_allclose(eval_ax.get_lines()[1].get_xydata(), [[200, 0.1], [400, 0.2]])
    assert not eval_ax.patches  # no bars
    success_ax = next(ax for ax in fig.axes if ax.get_ylabel().startswith("episode success"))
    for i in range(2):  # a group has one colour on every panel
        colours = {to_rgba(ax.get_lines()[i].get_color()) for ax in (success_ax, *progress, eval_ax)}
        assert colours == {to_rgba(f"C{i}")}


def test_report_without_evaluations_shows_target_bars(tmp_path: Path, capsys):
    target = {("level", 0): 0.5, ("level", 1): 0.7, ("none", 0): 0.2, ("none", 1): None}
    root = _sweep(tmp_path / "old", evals=False, params=4, target=target)
    report.main([str(root)])
    out = capsys.readouterr().out
    assert "| curriculum=none | 0,1 |" in out and "wrote " in out
    assert all((root / name).is_file() for name in ("report.csv", "report.md", "report_curves.png"))
    table = _read(root / "report.csv")
    assert {r["eval_success_last"] for r in table} == {""}
    row = next(line for line in (root / "report.md").read_text().splitlines() if "curriculum=level" in line)
    assert row.split(" | ")[5:7] == ["0.60 ± 0.10", "n/a"]  # target success, last eval success

    fig = report._report_figure(report.load_runs(root), "old")
    (progress,) = _titled(fig, "curriculum progress")  # 4 parameters: only the first
    assert progress.get_ylabel().startswith("gate_width")
    (bars_ax,) = _titled(fig, "target success")
    assert all(ln.get_label().startswith("_") for ln in bars_ax.get_lines())  # error bar caps, no curve
    assert [p.get_height() for p in bars_ax.patches] == pytest.approx([0.6, 0.2])
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == ["curriculum=level", "curriculum=none"]


def test_report_target_bars_without_any_target(tmp_path: Path):
    target = dict.fromkeys(RUNS)
    fig = report._report_figure(report.load_runs(_sweep(tmp_path, evals=False, target=target)))
    (bars_ax,) = _titled(fig, "target success")
    assert [p.get_height() for p in bars_ax.patches] == [0.0, 0.0]
    assert [t.get_text() for t in bars_ax.texts] == ["n/a", "n/a"]
    assert fig.get_suptitle() == ""


def test_shared_eval_frames():
    runs = [{"rows": _rows("level", 0)}, {"rows": _rows("level", 1)}, {"rows": _rows("level", 0, evals=False)}]
    runs[1]["rows"][3]["eval/success"] = ""  # seed 1 has no evaluation at 400 frames
    frames, values = report._shared_eval(runs)
    assert frames == [200.0]
    assert values == [[0.2], [0.4]]  # the run without evaluations is left out
    assert report._shared_eval(runs[2:]) == ([], [])


def test_report_tables_the_heldout_evaluations(tmp_path: Path):
    root = _sweep(tmp_path / "games")
    # per (curriculum, seed): target outcome, then the held-out sets' success and outcome
    heldout = {
        ("level", 0): (0.5, {"random": (0.8, 0.9), "perfect": (0.0, 0.2)}),
        ("level", 1): (0.7, {"random": (0.6, 0.7), "perfect": (0.0, 0.4)}),
        ("none", 0): (0.3, {"random": (0.5, 0.5), "perfect": (0.0, 0.0)}),
        ("none", 1): (0.3, {"random": (0.7, 0.9)}),  # a run without the perfect set
    }
    for k, key in enumerate(RUNS):
        path = root / str(k) / "summary.json"
        summary = json.loads(path.read_text())
        outcome, sets = heldout[key]
        summary["target_outcome"] = outcome
        summary["heldout"] = {n: {"success": s, "outcome": o, "return": 0.0} for n, (s, o) in sets.items()}
        summary["heldout_outcome"] = sum(o for _, o in sets.values()) / len(sets)
        path.write_text(json.dumps(summary))
    report.write_report(root)
    md = (root / "report.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| group | seeds | target success | target outcome"))
    assert header.split(" | ")[4:] == [
        "random success", "random outcome", "perfect success", "perfect outcome", "held-out outcome (mean) |",
    ]  # fmt: skip
    level = [line for line in md if line.startswith("| curriculum=level |")][1].split(" | ")
    none = [line for line in md if line.startswith("| curriculum=none |")][1].split(" | ")
    # level: target outcome 0.6 ± 0.1; random 0.70 ± 0.10, 0.80 ± 0.10; perfect 0, 0.30 ± 0.10;
    # mean of (0.55, 0.55)
    assert level[3:9] == ["0.60 ± 0.10", "0.70 ± 0.10", "0.80 ± 0.10", "0.00 ± 0.00", "0.30 ± 0.10", "0.55 ± 0.00 |"]
    # none: one seed has the perfect set (its value alone, std 0); held-out means 0.25 and 0.9
    assert none[5:9] == ["0.70 ± 0.20", "0.00 ± 0.00", "0.00 ± 0.00", "0.57 ± 0.33 |"]


def test_report_without_heldout_sets_has_one_table(tmp_path: Path):
    root = _sweep(tmp_path / "plain")
    report.write_report(root)
    assert "Final evaluations" not in (root / "report.md").read_text()
