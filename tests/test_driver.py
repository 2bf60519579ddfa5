"""CurriculumDriver in hand-written loops: a TorchRL env or collector, no Trainer, no Lightning."""

from __future__ import annotations

import copy
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv

from currlearn import (
    DiscreteSpace,
    DomainRandomization,
    EpisodeTracker,
    LevelCurriculum,
    LinearSchedule,
    ScheduledCurriculum,
)
from currlearn.driver import CurriculumDriver
from currlearn.envs import PointMassGateEnv
from currlearn.integrations.torchrl import CurriculumTransform

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plain_loop.py"
# Straight north from the start passes a centred gate of width >= 4, never the target gate.
LADDER = {"gate_width": [8.0, 4.0, 0.5], "gate_position": [0.0, 0.0, 2.5]}
GATES = {"gate_width": [8.0, 4.0, 2.0, 1.0, 0.5], "gate_position": [0.0, 1.0, 2.0, 2.5, 2.5]}
NUM_ENVS, MAX_STEPS = 4, 5
FRAMES = NUM_ENVS * MAX_STEPS * 2  # with a standing policy every batch ends on episode boundaries


class _Constant(nn.Module):
    """A scripted policy: the same action everywhere."""

    def __init__(self, action: list[float]) -> None:
        super().__init__()
        self.register_buffer("action", torch.tensor(action))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.action.expand(*observation.shape[:-1], self.action.numel())


def _collector(env, action, frames_per_batch, batches):
    policy = TensorDictModule(_Constant(action), in_keys=["observation"], out_keys=["action"])
    return Collector(
        env,
        policy,
        frames_per_batch=frames_per_batch,
        total_frames=frames_per_batch * batches,
        auto_register_policy_transforms=False,
    )


def _length_ladder(seed: int) -> LevelCurriculum:
    # metric = episode length (always MAX_STEPS with a standing policy): promotions do not depend on the policy
    return LevelCurriculum(GATES, threshold=float(MAX_STEPS), metric="metric", min_episodes=12, seed=seed)


def _length_tracker() -> EpisodeTracker:
    return EpisodeTracker(step_metric=lambda batch: torch.ones(batch.shape))


def _assert_states_equal(actual: dict, expected: dict) -> None:
    for key in ("counters", "state"):
        assert actual[key].keys() == expected[key].keys()
        for name in expected[key]:
            torch.testing.assert_close(actual[key][name], expected[key][name], msg=f"{key}[{name!r}] differs")
    assert torch.equal(actual["rng"], expected["rng"]), "the generator state differs"


def test_level_curriculum_climbs_in_a_collector_loop():
    cur = LevelCurriculum(LADDER, threshold=0.6, metric="success", min_episodes=8, smoothing=1.0, seed=0)
    env = TransformedEnv(PointMassGateEnv(8, max_steps=20, seed=0), CurriculumTransform(cur))
    driver = CurriculumDriver(cur, env.transform)
    collector = _collector(env, [0.0, 1.0], frames_per_batch=160, batches=5)
    widths = []
    try:
        for batch in collector:
            # every transition plays the parameters of the task it is tagged with
            expected = cur.params(batch["next", "task_id"].reshape(-1))
            torch.testing.assert_close(batch["next", "params"].reshape(-1), expected)
            widths.append(batch["next", "params", "gate_width"].unique().tolist())
            metrics = driver.process(batch)
            assert metrics is not None
    finally:
        collector.shutdown()
    assert widths[0] == [8.0]
    assert widths[-1] == [0.5]  # promoted twice, then stuck at the target gate
    assert int(cur.level) == 2
    assert metrics["curriculum/promotions"] == 2
    assert driver.total_frames == 5 * 160


def test_schedule_reaches_the_next_rollout():
    cur = ScheduledCurriculum({"gate_width": LinearSchedule(8.0, 2.0, total=3)}, seed=0)
    env = TransformedEnv(PointMassGateEnv(3, max_steps=6, seed=0), CurriculumTransform(cur))
    driver = CurriculumDriver(cur, env.transform)
    assert driver.refresh_every_iteration  # a schedule changes mid-episode
    for it in range(4):
        batch = env.rollout(6, break_when_any_done=False)
        widths = batch["next", "params", "gate_width"]
        assert torch.allclose(widths, LinearSchedule(8.0, 2.0, total=3)(it)), (it, widths.unique())
        driver.process(batch)
    assert cur.iteration == 4
    assert driver.frames == 0
    assert driver.total_frames == 4 * 3 * 6


def test_resume_from_state_dict_matches_an_uninterrupted_run():
    def run(seed, batches, state=None):
        cur = _length_ladder(seed)
        env = TransformedEnv(PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0), CurriculumTransform(cur))
        driver = CurriculumDriver(cur, env.transform, tracker=_length_tracker())
        collector = _collector(env, [0.0, 0.0], frames_per_batch=FRAMES, batches=batches)
        if state is not None:
            samples = int(cur.counters["samples"])
            driver.load_state_dict(state)
            torch.testing.assert_close(env.transform.tasks, state["tasks"])  # re-applied...
            assert int(cur.counters["samples"]) == int(state["curriculum"]["counters"]["samples"])  # ...not drawn
            assert samples != int(cur.counters["samples"])
        saved = []
        try:
            for batch in collector:
                driver.process(batch)
                saved.append(copy.deepcopy(driver.state_dict()))
        finally:
            collector.shutdown()
        return cur, env, saved

    cur_a, env_a, saved_a = run(seed=0, batches=6)
    assert int(cur_a.level) >= 2, "the test should see promotions"
    cur_b, env_b, _ = run(seed=123, batches=3, state=saved_a[2])  # another seed: only the state can agree
    _assert_states_equal(cur_b.state_dict(), cur_a.state_dict())
    torch.testing.assert_close(env_b.transform.tasks, env_a.transform.tasks)
    torch.testing.assert_close(cur_b.sample(8), cur_a.sample(8))


def test_pre_epoch_style_deferred_feedback():
    cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
    env = TransformedEnv(PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0), CurriculumTransform(cur))
    driver = CurriculumDriver(cur, env.transform)
    batch = env.rollout(MAX_STEPS, break_when_any_done=False)
    assert driver.observe(batch, defer=True) is batch
    assert driver.pending is batch
    assert int(cur.counters["episodes"]) == 0
    with pytest.raises(ValueError, match=r"feedback batch has shape \[20\], the observed one \[4, 5\]"):
        driver.feedback(batch.reshape(-1))
    assert int(cur.counters["episodes"]) == 0
    driver.feedback(batch.clone())  # e.g. with advantages written in
    assert driver.pending is None
    driver.step()  # nothing left to update
    assert int(cur.counters["episodes"]) == NUM_ENVS
    assert int(cur.counters["frames"]) == NUM_ENVS * MAX_STEPS


def test_on_decision_and_report_interval():
    cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
    calls = []
    driver = CurriculumDriver(cur, log_interval=25, on_decision=[lambda refresh: calls.append(refresh)])
    env = TransformedEnv(PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0), CurriculumTransform(cur))
    batch = env.rollout(MAX_STEPS, break_when_any_done=False)  # 20 frames
    reports = [driver.process(batch) is not None for _ in range(4)]
    assert reports == [False, True, False, True]  # 40 > 25 since 0, then 80 - 40 > 25
    assert calls == [False] * 4  # per-episode curriculum: no refresh
    driver.load_state_dict(driver.state_dict())
    assert calls == [False] * 4 + [True]  # a load pushes the restored state, to be re-drawn from
    assert driver.state_dict()["tasks"] is None  # no env side attached


class TestErrors:
    def test_constructor_arguments(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        with pytest.raises(TypeError, match="curriculum must be a currlearn Curriculum, got str"):
            CurriculumDriver("level")
        with pytest.raises(TypeError, match="tracker must be an EpisodeTracker or None, got object"):
            CurriculumDriver(cur, tracker=object())
        with pytest.raises(ValueError, match=r"log_interval must be an int >= 0.*-1"):
            CurriculumDriver(cur, log_interval=-1)
        with pytest.raises(TypeError, match=r"on_decision\[1\] must be callable, got int"):
            CurriculumDriver(cur, on_decision=[print, 3])
        with pytest.raises(TypeError, match=r"transform must have `tasks`.*got object without \['tasks', 'refresh'"):
            CurriculumDriver(cur, object())
        with pytest.raises(TypeError, match=r"batch must be a TensorDict .* got Tensor"):
            CurriculumDriver(cur).observe(torch.zeros(3))

    def test_state_from_elsewhere_changes_nothing(self):
        cur = DomainRandomization(DiscreteSpace(GATES), seed=0)
        env = TransformedEnv(PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0), CurriculumTransform(cur))
        env.reset()
        driver = CurriculumDriver(cur, env.transform)
        before, tasks = copy.deepcopy(cur.state_dict()), env.transform.tasks.clone()
        with pytest.raises(ValueError, match=r"not a curriculum driver's state \(no 'curriculum' key\); got \['x'\]"):
            driver.load_state_dict({"x": 1})
        with pytest.raises(ValueError, match="state_dict is from a LevelCurriculum"):
            driver.load_state_dict({"curriculum": _length_ladder(0).state_dict()})
        other = DomainRandomization(DiscreteSpace(GATES), seed=1)
        small = TransformedEnv(PointMassGateEnv(2), CurriculumTransform(other))
        small.reset()
        two = CurriculumDriver(other, small.transform)
        with pytest.raises(ValueError, match=r"tasks of shape \[2\], the envs now have \[4\]; resume with the same"):
            driver.load_state_dict(two.state_dict())
        _assert_states_equal(cur.state_dict(), before)
        torch.testing.assert_close(env.transform.tasks, tasks)


def test_plain_loop_example_climbs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "1920"])
    scope = runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert int(scope["cur"].level) == 2, capsys.readouterr().out
    assert scope["driver"].total_frames == 1920
    assert scope["batch"]["params", "gate_width"].unique().tolist() == [0.5]
    assert "level 2 after 1920 frames" in capsys.readouterr().out


def test_driver_module_imports_no_framework():
    code = (
        "import sys, currlearn.driver; print(sorted(m for m in ('torchrl', 'lightning', 'hydra') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
