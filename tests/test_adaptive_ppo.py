"""Every adaptive curriculum inside a real TorchRL PPO loop (``make_ppo_trainer``).

Three iterations of 512 frames on ``PointMassGateEnv(num_envs=8)`` wrapped with a
``CurriculumTransform``; after training, the curriculum's state must have moved *because of
the batches*: episodes counted per task, PLR scores from the GAE, ADR boundary buffers filled
and decided, ALP-GMM history and fits, difficulty EMAs set. The hook is the one
``make_ppo_trainer`` registers (its tracker is ``curriculum.make_tracker``; PLR reads PPO's
GAE at the first epoch's ``pre_epoch``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pytest
import torch
from torchrl.envs import Compose, TransformedEnv

from currlearn import (
    ADRCurriculum,
    ALPGMMCurriculum,
    BoxSpace,
    CompetenceCurriculum,
    DiscreteSpace,
    EasyFirstCurriculum,
    LearnabilityCurriculum,
    LearningProgressCurriculum,
    PrioritizedLevelReplay,
)
from currlearn.base import Curriculum
from currlearn.envs.point_mass import PointMassGateEnv
from currlearn.integrations.replay import ReplayDecisionTransform
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer

NUM_ENVS = 8
MAX_STEPS = 16  # 512 frames / 8 envs = 64 steps per env: 4 episodes per env per iteration
ITERATIONS = 3
SETTINGS = PPOSettings(frames_per_batch=512, minibatch_size=256, total_frames=1536, num_epochs=1, hidden=16)


def _grid() -> DiscreteSpace:
    """4 x 3 = 12 gates, widest first."""
    widths, positions = [8.0, 4.0, 2.0, 1.0], [0.0, 1.0, 2.5]
    return DiscreteSpace(
        {
            "gate_width": [w for w in widths for _ in positions],
            "gate_position": [p for _ in widths for p in positions],
        }
    )


def _box() -> BoxSpace:
    return BoxSpace({"gate_position": 0.0, "gate_width": 0.5}, {"gate_position": 2.5, "gate_width": 8.0})


def _run(curriculum: Curriculum, *, robust: bool = False) -> dict[str, float]:
    """Train 3 PPO iterations with ``curriculum``; returns what the batches carried."""
    torch.manual_seed(0)
    transform = CurriculumTransform(curriculum)
    t = Compose(transform, ReplayDecisionTransform(curriculum)) if robust else transform
    env = TransformedEnv(PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0), t)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        trainer, hook = make_ppo_trainer(env, curriculum, SETTINGS)
    seen = {"iterations": 0, "done": 0, "replay_flags": 0}

    def count(batch):
        seen["iterations"] += 1
        seen["done"] += int(batch.get(("next", "done")).sum())
        if robust:
            seen["replay_flags"] += int(batch.get(("next", "level_replay")).numel())
        return batch

    trainer.register_op("batch_process", count)
    try:
        trainer.train()
    finally:
        trainer.shutdown()
    assert hook is not None
    assert seen["iterations"] == ITERATIONS
    assert seen["done"] > 0, "no episode finished: nothing to learn from"
    m = curriculum.metrics()
    # every finished episode of every batch reached the curriculum, none skipped
    assert m["curriculum/episodes"] == seen["done"], (m["curriculum/episodes"], seen["done"])
    assert m["curriculum/skipped_nonfinite"] == 0
    assert m["curriculum/iteration"] == ITERATIONS
    w = curriculum.weights() if curriculum.space.is_discrete else None
    if w is not None:
        assert bool(torch.isfinite(w).all()) and bool((w >= 0).all())
        assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-5)
    return {**m, **seen}


def _check_plr(cur: PrioritizedLevelReplay, seen: dict) -> None:
    st = cur.state
    played = st["seen"]
    assert int(st["num_seen"]) == int(played.sum()) > 0
    scores = st["score"][played]
    assert bool(torch.isfinite(scores).all()), scores
    assert bool((scores > 0).any()), f"PLR scores of played levels stayed zero: {scores}"
    lowest = torch.finfo(st["score"].dtype).min
    assert bool((st["score"][~played] == lowest).all())  # unplayed levels keep no score (a finite sentinel)
    # the staleness clock counts sampled levels: one per env at the first reset, then one per episode
    assert int(st["episode_count"]) == seen["done"] + NUM_ENVS
    if cur.robust:
        assert seen["replay_flags"] > 0
        assert cur.env_replay.shape == (NUM_ENVS,)


def _check_counts(key: str) -> Callable:
    def check(cur: Curriculum, seen: dict) -> None:
        count = cur.state["count"]
        assert int(count.sum()) == seen["done"], (int(count.sum()), seen["done"])
        assert int((count > 0).sum()) > 1, "episodes on a single task only"
        played = count > 0
        if key == "value":  # difficulty EMA: played tasks get a finite value, the rest inf
            assert bool(torch.isfinite(cur.state["value"][played]).all())
            assert bool(torch.isinf(cur.state["value"][~played]).all())
        else:  # success EMAs: in [0, 1], untouched where nothing was played
            v = cur.state[key]
            assert bool(((v >= 0) & (v <= 1)).all())
            assert bool((v[~played] == 0).all())

    return check


def _check_alp_gmm(cur: ALPGMMCurriculum, seen: dict) -> None:
    st = cur.state
    assert int(st["size"]) == seen["done"]
    assert int(st["num_fits"]) >= 1, "no GMM refit although fit_interval episodes were played"
    assert bool(st["fitted"]) and int(st["components"]) >= 1
    assert bool(torch.isfinite(st["alp"][: int(st["size"])]).all())


def _check_adr(cur: ADRCurriculum, seen: dict) -> None:
    st = cur.state
    decided = int(st["widened"]) + int(st["narrowed"])
    in_buffers = int(st["counts"].sum())
    assert decided > 0 or in_buffers > 0, "no episode reached a boundary buffer"
    assert decided > 0, f"no boundary decision after {seen['done']} episodes (buffers {st['counts'].tolist()})"
    # the range stays inside the box and never inverts
    assert bool((cur.low >= cur.space.low).all() and (cur.high <= cur.space.high).all())
    assert bool((cur.low <= cur.high).all())


CASES: dict[str, tuple[Callable[[], Curriculum], Callable, bool]] = {
    "plr": (lambda: PrioritizedLevelReplay(_grid(), seed=0), _check_plr, False),
    "robust_plr": (
        lambda: PrioritizedLevelReplay(
            _grid(),
            score_function="positive_value_loss",
            robust=True,
            replay_schedule="fixed",
            num_envs=NUM_ENVS,
            seed=0,
        ),
        _check_plr,
        True,
    ),
    "learning_progress": (lambda: LearningProgressCurriculum(_grid(), seed=0), _check_counts("p_fast"), False),
    "learnability": (lambda: LearnabilityCurriculum(_grid(), topk=4, seed=0), _check_counts("success"), False),
    "easy_first": (
        lambda: EasyFirstCurriculum(_grid(), num_bins=3, anneal_iterations=10, seed=0),
        _check_counts("value"),
        False,
    ),
    "competence": (
        lambda: CompetenceCurriculum(_grid(), num_bins=3, anneal_iterations=10, seed=0),
        _check_counts("value"),
        False,
    ),
    "alp_gmm": (
        lambda: ALPGMMCurriculum(_box(), fit_interval=16, max_components=3, em_iterations=10, seed=0),
        _check_alp_gmm,
        False,
    ),
    "adr": (
        lambda: ADRCurriculum(
            _box(),
            initial={"gate_position": 0.0, "gate_width": 8.0},
            deltas={"gate_position": 0.25, "gate_width": 0.5},
            buffer_size=4,
            seed=0,
        ),
        _check_adr,
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_adaptive_curriculum_in_ppo_loop(name):
    make, check, robust = CASES[name]
    cur = make()
    before = {k: v.clone() for k, v in cur.state.items()}
    seen = _run(cur, robust=robust)
    changed = [k for k, v in cur.state.items() if not torch.equal(v, before[k])]
    assert changed, f"{name}: the PPO batches changed nothing in the curriculum's state"
    check(cur, seen)


def _robust_plr() -> PrioritizedLevelReplay:
    return PrioritizedLevelReplay(
        _grid(), score_function="positive_value_loss", robust=True, replay_schedule="fixed", num_envs=NUM_ENVS, seed=0
    )


def test_robust_plr_trains_on_replayed_levels_only():
    """PLR⊥ in make_ppo_trainer: the minibatches hold replayed transitions only, every one of
    them in every epoch; the episodes of new levels still reach the curriculum."""
    torch.manual_seed(0)
    cur = _robust_plr()
    env = TransformedEnv(
        PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0),
        Compose(CurriculumTransform(cur), ReplayDecisionTransform(cur)),
    )
    settings = PPOSettings(frames_per_batch=512, minibatch_size=128, total_frames=2048, num_epochs=2, hidden=16)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        trainer, _ = make_ppo_trainer(env, cur, settings)
    replayed, trained = [], []

    def on_batch(batch):
        replayed.append(int(batch["level_replay"].sum()))
        return batch

    def on_minibatch(sub):
        trained.append(sub["level_replay"].clone())
        return sub

    trainer.register_op("batch_process", on_batch)
    trainer.register_op("process_optim_batch", on_minibatch)
    try:
        trainer.train()
    finally:
        trainer.shutdown()
    assert replayed[0] == 0, "nothing is seen before the first batch: no replay"
    assert sum(replayed) > 0, "no level was replayed in four iterations"
    assert sum(replayed) < 4 * 512, "every transition was a replay: the mask was never tested"
    flags = torch.cat(trained)
    assert bool(flags.all()), "a transition of a new level reached the loss"
    assert flags.numel() == settings.num_epochs * sum(replayed)
    assert int(cur.counters["episodes"]) > 0


def test_robust_plr_needs_the_replay_decision():
    cur = _robust_plr()
    env = TransformedEnv(PointMassGateEnv(NUM_ENVS, max_steps=MAX_STEPS, seed=0), CurriculumTransform(cur))
    with pytest.raises(ValueError, match="robust PLR trains on replayed levels only: add a ReplayDecisionTransform"):
        make_ppo_trainer(env, cur, SETTINGS)
