"""The numeric contract of every curriculum class (``currlearn.testing``): any mix of finite
values (±1e30, ±3e38), NaN and ±inf in the return, success, metric and scores of the feedback
never makes the state, the weights or the samples non-finite or leaves the task space."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

import currlearn as cl
from currlearn.envs.maze import MazeEditor, MazeGenerator
from currlearn.testing import check_numeric_contract, numeric_contract_test


def _discrete(n: int = 5) -> cl.DiscreteSpace:
    return cl.DiscreteSpace(num_tasks=n)


def _box() -> cl.BoxSpace:
    return cl.BoxSpace({"a": -1.0, "b": 0.0}, {"a": 1.0, "b": 2.0})


def _pool(cur):
    for v in range(cur.capacity - 1):
        cur.add(TensorDict({"w": torch.full((2,), float(v))}, []))
    cur.add_bot()
    return cur


FACTORIES = {
    "self_play": lambda: _pool(cl.SelfPlay(capacity=4, seed=0)),
    "pfsp_hard": lambda: _pool(cl.PrioritizedFictitiousSelfPlay(capacity=4, mix_latest=0.2, seed=0)),
    "pfsp_variance": lambda: _pool(cl.PrioritizedFictitiousSelfPlay(capacity=4, weighting="variance", seed=0)),
    "domain_randomization": lambda: cl.DomainRandomization(_discrete(), seed=0),
    "level_return": lambda: cl.LevelCurriculum({"g": [0.0, 1.0, 2.0]}, threshold=0.5, min_episodes=2, seed=0),
    "level_success_per_env": lambda: cl.LevelCurriculum(
        {"g": [0.0, 1.0, 2.0]},
        threshold=0.5,
        metric="success",
        min_episodes=2,
        per_env=True,
        num_envs=4,
        demote_threshold=0.2,
        seed=0,
    ),
    "scheduled": lambda: cl.ScheduledCurriculum({"g": cl.LinearSchedule(0.0, 1.0, total=3)}, seed=0),
    "sequential": lambda: cl.SequentialCurriculum(
        [{"params": {"g": 0.0}, "min_avg_reward": 0.5, "reward_window": 2}, {"params": {"g": 1.0}}], seed=0
    ),
    "composite": lambda: cl.CompositeCurriculum(
        [
            cl.LevelCurriculum({"g": [0.0, 1.0, 2.0]}, threshold=0.5, min_episodes=2),
            cl.DomainRandomization(cl.BoxSpace({"h": 0.0}, {"h": 1.0})),
        ],
        seed=0,
    ),
    "plr_rank": lambda: cl.PrioritizedLevelReplay(_discrete(), temperature=0.1, seed=0),
    "plr_power": lambda: cl.PrioritizedLevelReplay(_discrete(), prioritization="power", temperature=0.1, seed=0),
    "plr_robust_max_mc": lambda: cl.PrioritizedLevelReplay(
        _discrete(), score_function="max_mc", robust=True, num_envs=4, seed=0
    ),
    "learning_progress": lambda: cl.LearningProgressCurriculum(_discrete(), seed=0),
    "learning_progress_return": lambda: cl.LearningProgressCurriculum(_discrete(), metric="return", seed=0),
    "learnability": lambda: cl.LearnabilityCurriculum(_discrete(), topk=2, seed=0),
    "learnability_prop": lambda: cl.LearnabilityCurriculum(_discrete(), sampling="proportional", seed=0),
    "easy_first": lambda: cl.EasyFirstCurriculum(_discrete(), num_bins=2, anneal_iterations=3, seed=0),
    "competence": lambda: cl.CompetenceCurriculum(_discrete(), num_bins=2, anneal_iterations=3, seed=0),
    "alp_gmm": lambda: cl.ALPGMMCurriculum(_box(), fit_interval=4, max_components=2, history_capacity=32, seed=0),
    "adr": lambda: cl.ADRCurriculum(_box(), delta=0.1, buffer_size=2, seed=0),
    "level_replay": lambda: cl.LevelReplay(
        MazeGenerator(5, 5, max_walls=6), capacity=4, fresh=64, min_fill=0.25, seed=0
    ),
    "accel_max_mc": lambda: cl.ACCEL(
        MazeGenerator(5, 5, max_walls=0),
        MazeEditor(2),
        capacity=4,
        fresh=64,  # a draw of 64 new levels at once
        min_fill=0.25,
        score_function="max_mc",
        num_envs=4,
        seed=0,
    ),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_numeric_contract(name):
    numeric_contract_test(FACTORIES[name], max_examples=30)()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_the_probes_of_the_issue(name):
    """Fixed batches: the hostile values alone, then ordinary ones after them."""
    big = [1e30, -1e30, 3e38, -3e38, 3e38, -3e38, float("nan"), float("inf")]
    ordinary = [0.0, 1.0, 0.5, 1.0, 0.0, 1.0, 0.25, 0.75]
    hostile = {k: big for k in ("return", "success", "metric", "score", "value_mean")}
    normal = {k: ordinary for k in ("return", "success", "metric", "score", "value_mean")}
    check_numeric_contract(FACTORIES[name](), [hostile, hostile, *[normal] * 5], fresh=FACTORIES[name])


def test_the_contract_catches_a_broken_curriculum():
    """A curriculum that stores what it is fed fails the check."""

    class Naive(cl.DomainRandomization):
        def _update(self, feedback):
            self.state["last"] = (feedback["return"] * 10).sum()  # overflows float32

    with pytest.raises(AssertionError, match="state"):
        check_numeric_contract(
            Naive(_discrete(), seed=0),
            [{"return": [3e38], "success": [0.0], "metric": [0.0], "score": [0.0], "value_mean": [0.0]}],
        )


def test_the_contract_catches_state_left_out_of_the_checkpoint():
    """A curriculum whose decision depends on an attribute outside state_dict fails the round trip."""

    class Forgetful(cl.DomainRandomization):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.offset = 0

        def _update(self, feedback):
            self.offset = 1  # not in state_dict

        def _sample(self, num, env_ids):
            return (super()._sample(num, env_ids) + self.offset) % self.space.num_tasks

    batch = {k: [0.5] for k in ("return", "success", "metric", "score", "value_mean")}
    with pytest.raises(AssertionError, match="samples differently"):
        check_numeric_contract(Forgetful(_discrete(), seed=0), [batch], fresh=lambda: Forgetful(_discrete(), seed=0))
