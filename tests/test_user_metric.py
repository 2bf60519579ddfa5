"""User metrics as a curriculum's ``metric=``: callables, registered names, Hydra, checkpoints."""

from __future__ import annotations

import io
import runpy
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensordict import TensorDict
from torchrl.envs import TransformedEnv

from currlearn.base import Curriculum, register_metric
from currlearn.configs import LevelCurriculumConfig
from currlearn.curricula import (
    ADRCurriculum,
    ALPGMMCurriculum,
    CompetenceCurriculum,
    CompositeCurriculum,
    EasyFirstCurriculum,
    LearnabilityCurriculum,
    LearningProgressCurriculum,
    LevelCurriculum,
)
from currlearn.envs import PointMassGateEnv
from currlearn.feedback import EpisodeTracker, episode_feedback
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.metrics import StepMetric, metric_names, unregister_metric
from currlearn.spaces import BoxSpace, DiscreteSpace

LEVELS = {"gate_width": [8.0, 4.0, 1.0]}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_curriculum.py"


def reached_x_beyond_one(batch):
    """Per step: the mass is right of x = 1 (the policy below gets there in 3 or 4 steps)."""
    return batch["next", "position"][..., 0] > 1


def _rollout(cur: Curriculum, steps: int = 25) -> TensorDict:
    """A real ``[4, steps]`` batch: every env pushes right, away from the goal, for 10-step episodes.

    Episodes end truncated with a negative return (the mass moves away from the goal) and
    no success, so ``"return"`` and ``"success"`` never reach a threshold of 0.5.
    """
    env = TransformedEnv(PointMassGateEnv(num_envs=4, max_steps=10, seed=0), CurriculumTransform(cur))

    def push_right(td):
        td["action"] = torch.tensor([1.0, 0.0]).expand(*td.batch_size, 2).clone()
        return td

    return env.rollout(steps, policy=push_right, break_when_any_done=False)


def _level(**kwargs) -> LevelCurriculum:
    kwargs.setdefault("threshold", 0.5)
    return LevelCurriculum(LEVELS, min_episodes=4, seed=0, **kwargs)


def _feed(cur: Curriculum, steps: int = 25) -> TensorDict:
    fb = cur.make_tracker()(_rollout(cur, steps))
    cur.update(fb)
    return fb


@pytest.fixture
def registered():
    """Registers ``reached_x`` for one test."""
    register_metric("reached_x", reached_x_beyond_one, reduction="max")
    yield "reached_x"
    unregister_metric("reached_x")


# ---------------------------------------------------------------- learning from a user metric
class TestPromotion:
    @pytest.mark.parametrize("builtin", ["return", "success"])
    def test_builtin_metrics_do_not_promote(self, builtin):
        cur = _level(metric=builtin)
        fb = _feed(cur)
        assert fb.batch_size == (8,)  # two finished 10-step episodes per env
        assert float(fb["return"].max()) < 0 and float(fb["success"].max()) == 0
        assert cur.level.tolist() == [0]

    def test_callable_metric_promotes(self):
        cur = _level(metric=reached_x_beyond_one)
        assert cur.metric is reached_x_beyond_one and cur.metric_key == "metric"
        assert cur.make_tracker().step_metric is cur.step_metric
        fb = _feed(cur)
        # x passes 1 at the third or fourth step (start noise) and stays there.
        assert fb.batch_size == (8,) and set(fb["metric"].tolist()) <= {7.0, 8.0}
        assert cur.level.tolist() == [1]

    def test_registered_name_promotes(self, registered):
        cur = _level(metric=registered)
        assert cur.metric == "reached_x" and cur.step_metric.reduction == "max"
        fb = _feed(cur)
        assert fb["metric"].tolist() == [1.0] * 8  # "max": the episode reached x > 1
        assert cur.level.tolist() == [1]

    def test_step_metric_reduction(self):
        cur = _level(metric=StepMetric(reached_x_beyond_one, reduction="mean"), threshold=0.85)
        fb = _feed(cur)
        assert bool(((fb["metric"] - 0.75).abs() < 0.051).all())  # 7 or 8 of 10 steps
        assert cur.level.tolist() == [0]  # < 0.85: the mean, not the sum (7 or 8), was used

    def test_hydra_partial_target(self):
        cfg = OmegaConf.merge(
            OmegaConf.structured(LevelCurriculumConfig),
            {
                "levels": LEVELS,
                "threshold": 0.5,
                "min_episodes": 4,
                "seed": 0,
                "metric": {"_target_": f"{__name__}.reached_x_beyond_one", "_partial_": True},
            },
        )
        cur = instantiate(cfg, _convert_="all")
        assert isinstance(cur, LevelCurriculum)
        assert cur.step_metric.name == "reached_x_beyond_one"
        _feed(cur)
        assert cur.level.tolist() == [1]

    def test_hydra_step_metric_target(self):
        cfg = {
            "_target_": "currlearn.curricula.LevelCurriculum",
            "levels": LEVELS,
            "threshold": 0.5,
            "min_episodes": 4,
            "metric": {
                "_target_": "currlearn.metrics.StepMetric",
                "fn": {"_target_": f"{__name__}.reached_x_beyond_one", "_partial_": True},
                "reduction": "last",
            },
        }
        cur = instantiate(OmegaConf.create(cfg), _convert_="all")
        assert cur.step_metric.reduction == "last"
        assert _feed(cur)["metric"].tolist() == [1.0] * 8

    def test_hydra_registered_name(self, registered):
        cfg = OmegaConf.structured(
            LevelCurriculumConfig(levels=LEVELS, threshold=0.5, min_episodes=4, metric=registered)
        )
        cur = instantiate(cfg, _convert_="all")
        _feed(cur)
        assert cur.level.tolist() == [1]

    def test_hand_built_tracker_still_works(self):
        cur = _level(metric="metric")
        assert cur.step_metric is None and cur.make_tracker().step_metric is None
        cur.update(EpisodeTracker(step_metric=reached_x_beyond_one)(_rollout(cur)))
        assert cur.level.tolist() == [1]

    def test_tracker_without_the_metric_raises(self):
        cur = _level(metric=reached_x_beyond_one)
        fb = EpisodeTracker()(_rollout(cur))
        with pytest.raises(
            ValueError, match=r"metric='reached_x_beyond_one' is a user metric .* curriculum.make_tracker\(\)"
        ):
            cur.update(fb)
        assert cur.metrics()["curriculum/episodes"] == 0

    def test_non_finite_values_are_skipped_and_counted(self):
        def nan_on_env0(batch):
            value = reached_x_beyond_one(batch).float()
            value[0, 3] = float("nan")  # poisons env 0's first episode only
            return value

        cur = _level(metric=nan_on_env0)
        fb = _feed(cur)
        assert int(torch.isnan(fb["metric"]).sum()) == 1
        m = cur.metrics()
        assert m["curriculum/skipped_nonfinite"] == 1
        assert m["curriculum/episodes"] == 7
        assert cur.level.tolist() == [1]


@pytest.mark.parametrize(
    "make",
    [
        lambda m: LearningProgressCurriculum(DiscreteSpace(LEVELS), metric=m),
        lambda m: LearnabilityCurriculum(DiscreteSpace(LEVELS), metric=m),
        lambda m: EasyFirstCurriculum(DiscreteSpace(LEVELS), metric=m),
        lambda m: CompetenceCurriculum(DiscreteSpace(LEVELS), metric=m),
        lambda m: ALPGMMCurriculum(BoxSpace({"w": 0.0}, {"w": 1.0}), metric=m, fit_interval=4, max_components=2),
        lambda m: ADRCurriculum(BoxSpace({"w": 0.0}, {"w": 1.0}), metric=m),
    ],
    ids=["learning_progress", "learnability", "easy_first", "competence", "alp_gmm", "adr"],
)
def test_every_metric_curriculum_takes_a_callable(make):
    cur = make(reached_x_beyond_one)
    assert cur.make_tracker().step_metric is cur.step_metric is not None
    task = cur.sample(4)
    with pytest.raises(ValueError, match="is a user metric but the feedback has no 'metric' entry"):
        cur.update(episode_feedback(task, torch.zeros(4)))
    cur.update(episode_feedback(task, torch.zeros(4), success=torch.zeros(4), metric=torch.ones(4)))
    assert cur.metrics()["curriculum/episodes"] == 4


def test_composite_tracks_its_part_metric():
    level = LevelCurriculum(LEVELS, threshold=0.5, metric=reached_x_beyond_one, min_episodes=4)
    other = LevelCurriculum({"gate_position": [0.0, 1.0]}, threshold=0.5)
    both = CompositeCurriculum([level, other])
    assert both.make_tracker().step_metric is level.step_metric
    with pytest.raises(
        ValueError,
        match=r"parts read different user metrics \(curricula\[0\] metric='reached_x_beyond_one', "
        r"curricula\[1\] metric='metric'\)",
    ):
        CompositeCurriculum([level, LevelCurriculum({"gate_position": [0.0, 1.0]}, threshold=0.5, metric="metric")])


# ---------------------------------------------------------------- errors
class TestErrors:
    def test_unknown_name_lists_the_known_ones(self, registered):
        with pytest.raises(
            ValueError,
            match=r"metric='reched_x' is not one of \['return', 'success', 'metric', 'outcome'\] "
            r"nor the registered metrics \['reached_x'\]",
        ):
            _level(metric="reched_x")
        assert metric_names() == ("return", "success", "metric", "outcome", "reached_x")

    def test_unknown_name_without_registrations(self):
        with pytest.raises(
            ValueError, match=r"nor a registered metric \(none is\); register it with .*register_metric"
        ):
            LearningProgressCurriculum(DiscreteSpace(LEVELS), metric="reward")

    @pytest.mark.parametrize("bad", [3, None, ["return"]])
    def test_not_a_name_nor_callable(self, bad):
        with pytest.raises(
            TypeError,
            match=r"metric must be a name \(\['return', 'success', 'metric'.*\]\) "
            r"or a callable batch -> Tensor \[envs, time\], got",
        ):
            _level(metric=bad)

    def test_wrong_shape_names_the_expected_one(self):
        cur = _level(metric=lambda batch: batch["next", "position"][..., 0].sum(-1))  # per env, not per step
        with pytest.raises(
            ValueError, match=r"step_metric returned shape \[4\]; it must return one value per step, shape \[4, 25\]"
        ):
            _feed(cur)

    def test_register_metric_errors(self):
        with pytest.raises(ValueError, match=r"metric name 'return' is built in"):
            register_metric("return", reached_x_beyond_one)
        with pytest.raises(TypeError, match=r"metric name must be a non-empty string, got ''"):
            register_metric("", reached_x_beyond_one)
        with pytest.raises(TypeError, match=r"fn must be callable .* got int 1"):
            register_metric("one", 1)
        with pytest.raises(ValueError, match=r"reduction='min' is not one of \['sum', 'mean', 'max', 'last'\]"):
            register_metric("one", reached_x_beyond_one, reduction="min")
        assert "one" not in metric_names()
        with pytest.raises(ValueError, match=r"metric 'one' is not registered; registered: \[\]"):
            unregister_metric("one")

    def test_registering_again_replaces(self, registered):
        register_metric(registered, lambda batch: batch["next", "reward"], reduction="sum")
        assert _level(metric=registered).step_metric.reduction == "sum"


# ---------------------------------------------------------------- checkpoints
class TestStateDict:
    def test_callable_metric_round_trip(self):
        cur = _level(metric=reached_x_beyond_one)
        _feed(cur)
        sd = cur.state_dict()
        assert sd["metric"] is None  # the callable is not stored
        buf = io.BytesIO()
        torch.save(sd, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=True)  # plain data only: no pickled function
        fresh = _level(metric=reached_x_beyond_one)
        fresh.load_state_dict(loaded)
        assert fresh.level.tolist() == [1]
        assert torch.equal(fresh.state["ema"], cur.state["ema"])
        assert torch.equal(fresh.sample(8), cur.sample(8))
        assert fresh.step_metric.fn is reached_x_beyond_one  # the constructor's, not the checkpoint's

    def test_registered_name_is_stored_and_checked(self, registered):
        cur = _level(metric=registered)
        _feed(cur)
        sd = cur.state_dict()
        assert sd["metric"] == "reached_x"
        _level(metric=registered).load_state_dict(sd)
        with pytest.raises(
            ValueError, match=r"state_dict was learnt from metric='reached_x', this curriculum has metric='success'"
        ):
            _level(metric="success").load_state_dict(sd)
        _level(metric=reached_x_beyond_one).load_state_dict(sd)  # a callable: no name to compare

    def test_checkpoint_without_metric_key_loads(self):
        sd = _level().state_dict()
        del sd["metric"]  # a checkpoint from before metrics were recorded
        _level(metric="success").load_state_dict(sd)


# ---------------------------------------------------------------- the README example
def test_custom_curriculum_example_learns_from_its_metric(monkeypatch, capsys):
    updates, trackers = [], []
    original_update, original_call = Curriculum.update, EpisodeTracker.__call__

    def record_update(self, feedback):
        updates.append(feedback.clone())
        return original_update(self, feedback)

    def record_call(self, batch):
        trackers.append((self, batch.clone()))
        return original_call(self, batch)

    monkeypatch.setattr(Curriculum, "update", record_update)
    monkeypatch.setattr(EpisodeTracker, "__call__", record_call)
    ns = runpy.run_path(str(EXAMPLE), run_name="__main__")

    cur, metric = ns["curriculum"], ns["steps_past_wall"]
    assert type(cur).__name__ == "FewestPasses" and cur.step_metric.fn is metric
    assert len(updates) == 4  # one per 1024-frame batch
    fb = torch.cat([u.select("task", "metric", "return", "length") for u in updates])
    # _update learnt the user metric's per-episode values (not the return) for every episode ...
    expected = torch.zeros(3).index_add_(0, fb["task"], fb["metric"])
    torch.testing.assert_close(cur.state["past_wall"], expected)
    assert float(expected.sum()) > 0 and not torch.equal(fb["metric"], fb["return"])
    assert bool(((fb["metric"] >= 0) & (fb["metric"] <= fb["length"])).all())
    # ... and those values are the steps_past_wall steps of the finished episodes: every such
    # step of the collected batches, minus those of the episodes still open at the end.
    tracker = trackers[-1][0]
    total = sum(float(metric(batch).sum()) for _, batch in trackers)
    still_open = float(tracker._carry[:, -1].sum())
    assert float(fb["metric"].sum()) == pytest.approx(total - still_open)
    out = capsys.readouterr().out
    assert "steps past the wall per gate:" in out and "task distribution:" in out
