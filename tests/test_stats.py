"""currlearn.stats (TaskStats, LearningStats, LearningStatsAggregator) against numpy, and the
curriculum metrics through TorchRL's CSV / TensorBoard loggers and Lightning's logger."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from currlearn import DiscreteSpace, LearningProgressCurriculum, LevelCurriculum, LinearSchedule, ScheduledCurriculum
from currlearn.feedback import episode_feedback
from currlearn.stats import LearningStats, LearningStatsAggregator, TaskStats, interp

GATES = {"gate_width": [8.0, 4.0, 2.0, 1.0, 0.5], "gate_position": [0.0, 1.0, 2.0, 2.5, 2.5]}


def _feedback(rng: np.random.Generator, n: int, num_tasks: int = 5, nan_success: float = 0.0):
    task = rng.integers(0, num_tasks, n)
    ret = rng.normal(size=n)
    succ = (rng.random(n) < 0.5).astype(float)
    succ[rng.random(n) < nan_success] = np.nan
    length = rng.integers(1, 50, n)
    fb = episode_feedback(
        torch.as_tensor(task), torch.as_tensor(ret), length=torch.as_tensor(length), success=torch.as_tensor(succ)
    )
    return fb, task, ret, succ, length


# --------------------------------------------------------------------------- TaskStats
class TestTaskStats:
    def test_against_numpy(self):
        rng = np.random.default_rng(0)
        ts = TaskStats(5)
        tasks, rets, succs = [], [], []
        for _ in range(4):
            fb, task, ret, succ, _ = _feedback(rng, 37, nan_success=0.2)
            ret[3] = np.inf  # a non-finite return is skipped
            fb["return"][3] = math.inf
            ts.update(fb)
            tasks.append(task), rets.append(ret), succs.append(succ)
        task, ret, succ = np.concatenate(tasks), np.concatenate(rets), np.concatenate(succs)
        ok = np.isfinite(ret)
        for i in range(5):
            sel = (task == i) & ok
            assert ts.episodes()[i] == sel.sum()
            assert ts.mean_return()[i].item() == pytest.approx(ret[sel].mean(), abs=1e-6)
            s = succ[sel]
            assert ts.success_rate()[i].item() == pytest.approx(s[~np.isnan(s)].mean(), abs=1e-6)

    def test_decay_and_unplayed(self):
        ts = TaskStats(3, decay=0.5)
        ts.update(episode_feedback(torch.tensor([0]), torch.tensor([4.0])))
        ts.update(episode_feedback(torch.tensor([0]), torch.tensor([1.0])))
        # weights 0.5 and 1: (0.5 * 4 + 1) / 1.5
        assert ts.mean_return()[0].item() == pytest.approx(2.0)
        assert torch.isnan(ts.mean_return()[1]) and torch.isnan(ts.success_rate()[0])  # no success reported
        m = ts.metrics()
        assert set(m) == {f"task/{i}/{k}" for i in range(3) for k in ("return", "success", "episodes")}

    def test_bad_input(self):
        with pytest.raises(ValueError, match="num_tasks must be an int >= 1"):
            TaskStats(0)
        with pytest.raises(ValueError, match=r"decay must be a number in \(0, 1\]"):
            TaskStats(3, decay=0.0)
        with pytest.raises(ValueError, match=r"ids outside \[0, 3\)"):
            TaskStats(3).update(episode_feedback(torch.tensor([3]), torch.tensor([1.0])))
        assert TaskStats(33).metrics() == {}  # too many tasks to report one by one


class TestCurriculumMetrics:
    def test_small_discrete_space_reports_per_task(self):
        cur = LevelCurriculum(GATES, threshold=0.5, metric="success", min_episodes=100, seed=0)
        cur.update(episode_feedback(torch.tensor([0, 0, 0]), torch.tensor([1.0, 2.0, 3.0]),
                                    success=torch.tensor([1.0, 0.0, 1.0])))  # fmt: skip
        m = cur.metrics()
        assert m["curriculum/task/0/return"] == pytest.approx(2.0)
        assert m["curriculum/task/0/success"] == pytest.approx(2 / 3)
        assert m["curriculum/task/0/episodes"] == 3
        assert math.isnan(m["curriculum/task/4/return"])
        assert m["curriculum/param/gate_width"] == 8.0 and m["curriculum/level_mean"] == 0

    def test_distribution_metrics_and_large_spaces(self):
        cur = LearningProgressCurriculum(DiscreteSpace(num_tasks=40), seed=0)
        m = cur.metrics()
        assert m["curriculum/entropy"] == pytest.approx(math.log(40))
        assert m["curriculum/support"] == 40
        assert m["curriculum/top10_mass"] == pytest.approx(0.25)
        assert not any(k.startswith("curriculum/task/") for k in m)  # > 32 tasks: not one by one
        box = ScheduledCurriculum({"gate_width": LinearSchedule(8.0, 1.0, total=10)}, seed=0)
        assert box.task_stats is None and "curriculum/param/gate_width" in box.metrics()


# --------------------------------------------------------------------------- loggers
def _tiny_trainer(logger, curriculum):
    from torchrl.envs import TransformedEnv

    from currlearn.envs import PointMassGateEnv
    from currlearn.integrations.torchrl import CurriculumTransform
    from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer

    env = TransformedEnv(PointMassGateEnv(4, max_steps=5, seed=0), CurriculumTransform(curriculum))
    settings = PPOSettings(frames_per_batch=40, total_frames=80, num_epochs=1, minibatch_size=40, hidden=8)
    trainer, _ = make_ppo_trainer(env, curriculum, settings, logger=logger, log_interval=0)
    return trainer


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_metrics_through_torchrl_csv_logger(tmp_path: Path):
    from torchrl.record.loggers import CSVLogger

    cur = LearningProgressCurriculum(DiscreteSpace(GATES), seed=0)
    _tiny_trainer(CSVLogger("run", log_dir=str(tmp_path)), cur).train()
    scalars = tmp_path / "run" / "scalars"
    final = cur.metrics()
    for key in ("entropy", "top10_mass", "support", "task/0/return", "task/4/success", "task/2/episodes", "iteration"):
        path = scalars / "curriculum" / f"{key}.csv"
        assert path.is_file(), sorted(str(p.relative_to(scalars)) for p in scalars.rglob("*.csv"))
        frames, value = path.read_text().strip().splitlines()[-1].split(",")
        assert float(frames) == 80
        expected = final[f"curriculum/{key}"]
        assert math.isnan(float(value)) if math.isnan(expected) else float(value) == pytest.approx(expected, rel=1e-5)
    assert final["curriculum/task/0/episodes"] + final["curriculum/task/4/episodes"] <= 16


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
def test_metrics_through_torchrl_tensorboard_logger(tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torchrl.record.loggers import TensorboardLogger

    cur = LearningProgressCurriculum(DiscreteSpace(GATES), seed=0)
    logger = TensorboardLogger("run", log_dir=str(tmp_path))
    _tiny_trainer(logger, cur).train()
    logger.experiment.flush()
    events = EventAccumulator(str(Path(logger.log_dir))).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"curriculum/entropy", "curriculum/support", "curriculum/top10_mass", "curriculum/task/3/success"} <= tags
    assert events.Scalars("curriculum/support")[-1].value == 5.0


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")
def test_metrics_through_lightning_logger(tmp_path: Path):
    import csv

    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger
    from torchrl.envs import TransformedEnv

    from currlearn.envs import PointMassGateEnv
    from currlearn.integrations.lightning import CurriculumCallback
    from currlearn.integrations.torchrl import CurriculumTransform
    from currlearn.integrations.lightning_ppo import PPOLightningModule
    from currlearn.integrations.ppo import PPOSettings

    cur = LevelCurriculum(GATES, threshold=0.5, metric="success", seed=0)
    env = TransformedEnv(PointMassGateEnv(4, max_steps=5, seed=0), CurriculumTransform(cur))
    module = PPOLightningModule(
        env, PPOSettings(frames_per_batch=40, total_frames=80, num_epochs=1, minibatch_size=40, hidden=8)
    )
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, callbacks=[CurriculumCallback(cur)], logger=CSVLogger(tmp_path, name="run"),
        log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module)
    with (Path(trainer.logger.log_dir) / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"curriculum/level_mean", "curriculum/param/gate_width", "curriculum/task/0/episodes"} <= set(rows[0])
    assert float(rows[-1]["curriculum/task/0/episodes"]) == cur.metrics()["curriculum/task/0/episodes"] == 16


# --------------------------------------------------------------------------- LearningStats
def _filled(seed: int, batches: int = 5, evals: int = 2) -> LearningStats:
    rng = np.random.default_rng(seed)
    ticks = iter(range(10**6))  # a clock of its own: the same times on a loaded machine

    def clock() -> float:
        return 0.01 * next(ticks)

    s = LearningStats(label="level", seed=seed, meta={"curriculum": "level"}, clock=clock, cpu_clock=clock)
    for b in range(batches):
        fb, *_ = _feedback(rng, int(rng.integers(1, 8)), nan_success=0.3)
        s.append(fb, steps=None if b % 2 else 100 * (b + 1))
    for e in range(evals):
        s.add_evaluation(torch.tensor([0.5, 1.0]) if e else 0.25)
        s.append(episode_feedback(torch.tensor([0]), torch.tensor([0.0])))
    return s


class TestLearningStats:
    def test_append_columns(self):
        rng = np.random.default_rng(1)
        s = LearningStats()
        fb1, _, ret1, succ1, len1 = _feedback(rng, 4)
        fb2, _, ret2, succ2, len2 = _feedback(rng, 3)
        s.append(fb1)
        s.append(fb2, steps=1000)
        for _ in range(10):  # grows past the initial capacity
            s.append(fb1)
        assert len(s) == 4 + 3 + 40
        np.testing.assert_allclose(s.returns[:7].numpy(), np.concatenate([ret1, ret2]))
        np.testing.assert_allclose(s.lengths[:7].numpy(), np.concatenate([len1, len2]))
        np.testing.assert_array_equal(s.success[:7].numpy(), np.concatenate([succ1, succ2]))
        np.testing.assert_allclose(s.steps[:4].numpy(), np.cumsum(len1))
        np.testing.assert_allclose(s.steps[4:7].numpy(), [1000] * 3)
        np.testing.assert_allclose(s.steps[7:11].numpy(), 1000 + np.cumsum(len1))
        assert torch.all(s.wall_time.diff() >= 0) and torch.all(s.cpu_time >= 0)
        np.testing.assert_array_equal(s.episodes.numpy(), np.arange(1, len(s) + 1))

    def test_evaluations(self):
        s = _filled(0)
        np.testing.assert_allclose(s.eval_scores.numpy(), [0.25, 0.75])
        assert s.eval_episodes.tolist() == [len(s) - 2, len(s) - 1]
        assert s.eval_steps[0] == s.steps[-3]

    def test_json_round_trip(self, tmp_path: Path):
        s = _filled(3)
        path = s.save(tmp_path / "stats.json")
        back = LearningStats.load(path)
        assert back == s
        assert (back.label, back.seed, back.meta) == ("level", 3, {"curriculum": "level"})
        torch.testing.assert_close(back.success, s.success, equal_nan=True)
        torch.testing.assert_close(back.wall_time, s.wall_time)
        assert json.loads(path.read_text())["episodes"]["success"].count(None) == int(torch.isnan(s.success).sum())
        back.append(episode_feedback(torch.tensor([0]), torch.tensor([1.0])))  # a loaded run continues
        assert len(back) == len(s) + 1 and back.steps[-1] == s.steps[-1] + 1

    @pytest.mark.parametrize(
        ("mutate", "match"),
        [
            (lambda p: p.write_text(p.read_text()[:-20]), r"stats\.json is not valid JSON"),
            (lambda p: p.write_text("[1, 2]"), r"stats\.json is not a currlearn.LearningStats file"),
            (lambda p: _edit(p, lambda d: d.update(format="other")), r"format: 'other'"),
            (lambda p: _edit(p, lambda d: d.update(version=99)), r"version 99"),
            (lambda p: _edit(p, lambda d: d["episodes"]["returns"].pop()), r"mismatched lengths"),
            (lambda p: _edit(p, lambda d: d["evaluations"].pop("eval_scores")), r"lacks column\(s\) \['eval_scores'\]"),
            (
                lambda p: _edit(p, lambda d: d["episodes"]["lengths"].__setitem__(0, "x")),
                r"episodes\.lengths holds non-numbers",
            ),
        ],
    )
    def test_load_bad_file(self, tmp_path: Path, mutate, match):
        path = _filled(0).save(tmp_path / "stats.json")
        mutate(path)
        with pytest.raises(ValueError, match=match):
            LearningStats.load(path)

    def test_bad_append(self):
        with pytest.raises(TypeError, match="feedback must be a TensorDict"):
            LearningStats().append({"return": torch.ones(2)})


def _edit(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


# --------------------------------------------------------------------------- aggregation
def test_interp_matches_numpy():
    rng = np.random.default_rng(0)
    xp = np.sort(rng.random(20)) * 10
    fp = rng.normal(size=20)
    x = np.linspace(-1, 11, 57)
    np.testing.assert_allclose(
        interp(torch.tensor(x), torch.tensor(xp), torch.tensor(fp)).numpy(), np.interp(x, xp, fp)
    )


def _np_series(s: LearningStats, x: str, y: str, window: int = 1):
    xs = {"steps": s.steps, "episodes": s.episodes, "wall_time": s.wall_time}[x].numpy()
    ys = {"return": s.returns, "success": s.success}[y].numpy()
    keep = ~np.isnan(ys)
    xs, ys = xs[keep], ys[keep]
    if window > 1:
        ys = np.array([ys[max(0, i - window + 1) : i + 1].mean() for i in range(len(ys))])
    ux = np.unique(xs)
    return ux, np.array([ys[xs == u].mean() for u in ux])


@pytest.mark.parametrize("x", ["steps", "episodes", "wall_time"])
@pytest.mark.parametrize(("y", "window"), [("return", 1), ("success", 1), ("return", 3)])
def test_aggregator_matches_numpy(x, y, window):
    runs = [_filled(seed, batches=6) for seed in range(3)]
    agg = LearningStatsAggregator(runs)
    out = agg.aggregate(x=x, y=y, num_points=25, window=window)
    series = [_np_series(r, x, y, window) for r in runs]
    lo, hi = max(s[0][0] for s in series), min(s[0][-1] for s in series)
    grid = np.linspace(lo, hi, 25)
    values = np.stack([np.interp(grid, sx, sy) for sx, sy in series])
    np.testing.assert_allclose(out["x"].numpy(), grid)
    np.testing.assert_allclose(out["values"].numpy(), values, atol=1e-12)
    np.testing.assert_allclose(out["mean"].numpy(), values.mean(0), atol=1e-12)
    np.testing.assert_allclose(out["std"].numpy(), values.std(0), atol=1e-12)
    np.testing.assert_allclose(out["min"].numpy(), values.min(0))
    np.testing.assert_allclose(out["max"].numpy(), values.max(0))


def test_aggregator_eval_scores_and_errors():
    runs = [_filled(0), _filled(1)]
    out = LearningStatsAggregator(runs).aggregate(x="episodes", y="eval_scores", grid=[0.0, 1e6])
    np.testing.assert_allclose(out["mean"].numpy(), [0.25, 0.75])
    with pytest.raises(ValueError, match="has no runs"):
        LearningStatsAggregator().aggregate()
    with pytest.raises(ValueError, match="x='time' is unknown"):
        LearningStatsAggregator(runs).aggregate(x="time")
    with pytest.raises(ValueError, match=r"run 0 \('a', seed None\) has no 'return' values"):
        LearningStatsAggregator([LearningStats(label="a")]).aggregate()
    with pytest.raises(KeyError, match="no column 'foo'"):
        LearningStatsAggregator(runs).aggregate(y="foo")
    with pytest.raises(TypeError, match="run must be a LearningStats"):
        LearningStatsAggregator([{}])
