"""LevelCurriculum's options (per-level thresholds, ``ema_init``, ``compare``) and its numerics
under hostile feedback (NaN, ±inf, huge finite values, successes outside [0, 1])."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from currlearn import LevelCurriculum
from currlearn.feedback import episode_feedback
from currlearn.testing import get_default_devices

DEVICES = get_default_devices()
LEVELS = {"speed": [4.0, 6.0, 8.0, 10.0]}
NAN, INF = float("nan"), float("inf")


def fb(tasks, returns, dtype=None, **kwargs):
    """Feedback for ``tasks`` with the given returns, on the tasks' device."""
    tasks = torch.as_tensor(tasks)
    returns = torch.as_tensor(returns, dtype=dtype or torch.get_default_dtype(), device=tasks.device)
    kwargs = {k: torch.as_tensor(v, device=tasks.device) for k, v in kwargs.items()}
    if "success" in kwargs:
        kwargs["success"] = kwargs["success"].to(returns.dtype)
    return episode_feedback(tasks, returns, **kwargs)


def assert_sane(cur: LevelCurriculum) -> None:
    """Finite state, levels in range, non-negative counts."""
    for key, value in cur.state.items():
        if value.is_floating_point():
            assert bool(torch.isfinite(value).all()), f"state[{key!r}] = {value}"
    assert bool(((cur.level >= 0) & (cur.level < cur.num_levels)).all()), cur.level
    assert bool((cur.state["count"] >= 0).all())
    for key, value in cur.metrics().items():
        assert not math.isinf(value), f"{key} = {value}"


def skipped(cur: LevelCurriculum) -> int:
    return int(cur.counters["skipped_nonfinite"])


# ---------------------------------------------------------------- per-level thresholds
def test_per_level_thresholds_promote_at_each_rung():
    cur = LevelCurriculum(LEVELS, threshold=[50, 100, 150], min_episodes=1, smoothing=1.0)
    assert cur.threshold == [50.0, 100.0, 150.0]
    levels = []
    for value in (60.0, 60.0, 120.0, 140.0, 160.0, 1000.0):
        cur.update(fb(cur.sample(1), [value]))
        levels.append(int(cur.level[0]))
    assert levels == [1, 1, 2, 2, 3, 3]
    assert cur.metrics()["curriculum/promotions"] == 3


def test_per_level_demote_thresholds():
    cur = LevelCurriculum(
        LEVELS, threshold=[50, 100, 150], demote_threshold=[10, 60, 110], min_episodes=1, smoothing=1.0, start_level=3
    )
    levels = []
    for value in (120.0, 100.0, 70.0, 50.0, 20.0, 5.0, 5.0):
        cur.update(fb(cur.sample(1), [value]))
        levels.append(int(cur.level[0]))
    # level 3 demotes below 110, level 2 below 60, level 1 below 10, level 0 never
    assert levels == [3, 2, 2, 1, 1, 0, 0]
    assert cur.metrics()["curriculum/demotions"] == 3


def test_scalar_and_list_thresholds_mix():
    cur = LevelCurriculum(LEVELS, threshold=[50, 100, 150], demote_threshold=20, min_episodes=1, smoothing=1.0)
    assert cur.demote_threshold == 20.0
    cur.update(fb([0], [60.0]))
    cur.update(fb([1], [10.0]))
    assert cur.level.tolist() == [0]


@pytest.mark.parametrize("per_env", [False, True])
def test_a_repeated_list_is_the_scalar(per_env):
    kw = dict(min_episodes=2, smoothing=0.25, per_env=per_env, num_envs=3 if per_env else None, seed=0)
    scalar = LevelCurriculum(LEVELS, threshold=0.5, demote_threshold=0.25, **kw)
    listed = LevelCurriculum(LEVELS, threshold=[0.5] * 3, demote_threshold=(0.25, 0.25, 0.25), **kw)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        env_ids = torch.randint(0, 3, (5,), generator=gen)
        values = (torch.randint(0, 9, (5,), generator=gen) / 8).tolist()
        for cur in (scalar, listed):
            tasks = cur.sample(env_ids=env_ids) if per_env else cur.sample(5)
            cur.update(fb(tasks, values, env_id=env_ids))
        assert torch.equal(scalar.state["level"], listed.state["level"])
        assert torch.equal(scalar.state["ema"], listed.state["ema"])
    assert scalar.metrics()["curriculum/promotions"] > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(threshold=[50, 100]), r"threshold=\[50, 100\] has 2 values; a ladder of 4 levels needs .* 3 finite"),
        (dict(threshold=[50, 100, 150, 200]), r"threshold=\[50, 100, 150, 200\] has 4 values"),
        (dict(threshold=[50, INF, 150]), r"threshold\[1\] must be a finite number, got inf"),
        (dict(threshold=[50, NAN, 150]), r"threshold\[1\] must be a finite number, got nan"),
        (dict(threshold="high"), r"threshold must be a finite number or a list of num_levels - 1 = 3 .*'high'"),
        (dict(threshold=None), r"threshold must be a finite number or a list .* got None"),
        (dict(threshold=[0.2, 0.5, 1.5], metric="success"), r"threshold\[2\]=1.5 is out of range: .*\[0, 1\]"),
        (dict(threshold=-0.5, metric="success"), r"threshold=-0.5 is out of range: a success rate lies in \[0, 1\]"),
        (dict(threshold=0.5, demote_threshold=[0.1, 0.2]), r"demote_threshold=\[0.1, 0.2\] has 2 values"),
        (dict(threshold=0.5, demote_threshold=[0.1, -INF, 0.2]), r"demote_threshold\[1\] must be a finite number"),
        (
            dict(threshold=0.5, demote_threshold=[-0.1, 0.2, 0.3], metric="success"),
            r"demote_threshold\[0\]=-0.1 is out of range: a success rate lies in \[0, 1\]",
        ),
        (
            dict(threshold=[50, 100, 150], demote_threshold=[10, 100, 110]),
            r"rung 1 \(level 1 <-> 2\) has demote_threshold 100.0 >= threshold 100.0",
        ),
        (
            dict(threshold=[50, 100, 60], demote_threshold=[10, 90, 55]),
            r"level 2 demotes below 90.0 and promotes from 60.0, so it would move both ways at once",
        ),
        (dict(threshold=0.5, demote_threshold=0.5), r"demote_threshold=0.5 must be < threshold=0.5"),
        (dict(threshold=0.5, ema_init=NAN), r"ema_init must be a finite number, got nan"),
        (dict(threshold=0.5, ema_init=2.0, metric="success"), r"ema_init=2.0 is out of range: .*\[0, 1\]"),
        (dict(threshold=0.5, compare="lt"), r"compare='lt' is not one of \['ge', 'gt'\]"),
    ],
)
def test_option_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LevelCurriculum(LEVELS, **kwargs)


def test_a_single_level_takes_an_empty_list():
    cur = LevelCurriculum({"speed": [4.0]}, threshold=[], min_episodes=1)
    cur.update(fb([0], [1e9]))
    assert cur.level.tolist() == [0]
    with pytest.raises(ValueError, match=r"threshold=\[0.5\] has 1 values; a ladder of 1 levels"):
        LevelCurriculum({"speed": [4.0]}, threshold=[0.5])


# ---------------------------------------------------------------- ema_init and compare
def test_ema_init_blends_the_first_batch():
    cur = LevelCurriculum(LEVELS, threshold=0.9, ema_init=0.0, smoothing=0.5, min_episodes=100)
    assert float(cur.state["ema"][0]) == 0.0
    cur.update(fb([0], [1.0]))
    assert float(cur.state["ema"][0]) == 0.5
    cur.update(fb([0, 0], [1.0, 1.0]))  # two episodes: keep = 0.5^2
    assert float(cur.state["ema"][0]) == pytest.approx(0.25 * 0.5 + 0.75 * 1.0)
    default = LevelCurriculum(LEVELS, threshold=0.9, smoothing=0.5, min_episodes=100)
    default.update(fb([0], [1.0]))
    assert float(default.state["ema"][0]) == 1.0  # None: the first batch's mean


def test_a_huge_ema_init_is_saturated():
    cur = LevelCurriculum(LEVELS, threshold=0.5, ema_init=-1e300, smoothing=0.5, min_episodes=1)
    assert float(cur.state["ema"][0]) == -torch.finfo(torch.float32).max
    cur.update(fb([0], [1.0]))
    assert_sane(cur)


def test_ema_restarts_at_ema_init_on_every_level_change():
    cur = LevelCurriculum(LEVELS, threshold=0.5, demote_threshold=0.1, ema_init=0.25, smoothing=1.0, min_episodes=1)
    cur.update(fb([0], [1.0]))
    assert cur.level.tolist() == [1] and float(cur.state["ema"][0]) == 0.25 and int(cur.state["count"][0]) == 0
    cur.update(fb([1], [0.0]))
    assert cur.level.tolist() == [0] and float(cur.state["ema"][0]) == 0.25


def _lerax_first_advance(values, threshold, smoothing):
    """The episode at which a ladder whose running metric starts at 0 and advances when it
    exceeds ``threshold`` (Lerax's LevelCurriculum rule) leaves level 0; None if it does not."""
    running = 0.0
    for i, v in enumerate(values):
        running = (1 - smoothing) * running + smoothing * v
        if running > threshold:
            return i
    return None


@pytest.mark.parametrize(
    ("values", "threshold", "smoothing"),
    [
        ([1.0, 1.0, 1.0], 0.5, 0.5),  # 0.5 (== threshold: stays), 0.75 (exceeds)
        ([1.0, 0.0, 1.0, 1.0], 0.5, 0.5),
        ([0.5, 0.5, 0.5, 0.5, 0.5], 0.4375, 0.5),  # reaches 0.4375 exactly at the 3rd: the 4th exceeds
        ([1.0] * 20, 0.5, 0.0625),
        ([0.0] * 5, 0.0, 0.25),  # an EMA of 0 never exceeds 0
        ([2.0, 4.0, 8.0, 0.0, 8.0], 3.0, 0.25),
    ],
)
def test_lerax_settings_advance_when_lerax_would(values, threshold, smoothing):
    cur = LevelCurriculum(LEVELS, threshold=threshold, ema_init=0.0, compare="gt", smoothing=smoothing, min_episodes=1)
    first = None
    for i, v in enumerate(values):
        cur.update(fb(cur.sample(1), [v]))
        if first is None and int(cur.level[0]) == 1:
            first = i
    assert first == _lerax_first_advance(values, threshold, smoothing)


def test_compare_decides_ties():
    for compare, promoted in (("ge", True), ("gt", False)):
        cur = LevelCurriculum(LEVELS, threshold=0.5, compare=compare, min_episodes=1)
        cur.update(fb([0], [0.5]))
        assert cur.level.tolist() == [int(promoted)], compare
    for compare, demoted in (("ge", False), ("gt", True)):  # the mirror: < vs <=
        cur = LevelCurriculum(
            LEVELS, threshold=0.5, demote_threshold=0.25, compare=compare, min_episodes=1, start_level=2
        )
        cur.update(fb([2], [0.25]))
        assert cur.level.tolist() == [2 - int(demoted)], compare


# ---------------------------------------------------------------- numerics: metric="success"
def _success_cur(**kw):
    kw = {"threshold": 0.5, "metric": "success", "min_episodes": 1, "smoothing": 0.5, **kw}
    return LevelCurriculum(LEVELS, **kw)


def test_an_infinite_success_does_not_promote():
    cur = _success_cur()
    cur.update(fb([0], [0.0], success=[INF]))
    assert cur.level.tolist() == [0] and int(cur.state["count"][0]) == 0
    assert skipped(cur) == 1
    assert_sane(cur)


def test_inf_with_minus_inf_leaves_the_ema_finite():
    cur = _success_cur(min_episodes=3)
    cur.update(fb([0, 0], [0.0, 0.0], success=[INF, -INF]))
    assert_sane(cur)
    assert skipped(cur) == 2 and int(cur.state["count"][0]) == 0
    cur.update(fb([0, 0, 0], [0.0, 0.0, 0.0], success=[1.0, 1.0, 0.0]))  # ordinary episodes go on as usual
    assert cur.level.tolist() == [1]


def test_one_nan_success_among_valid_ones_is_skipped():
    cur = _success_cur(min_episodes=2)
    cur.update(fb([0, 0, 0], [0.0, 0.0, 0.0], success=[1.0, NAN, 1.0]))
    assert cur.level.tolist() == [1]
    assert skipped(cur) == 1
    assert int(cur.counters["episodes"]) == 3  # a finite return: counted as an episode, not learnt from


def test_successes_outside_the_unit_interval_are_skipped():
    cur = _success_cur(min_episodes=10)
    cur.update(fb([0] * 5, [0.0] * 5, success=[1.5, -0.5, 2.0, 1e30, 0.25]))
    assert float(cur.state["ema"][0]) == 0.25 and int(cur.state["count"][0]) == 1
    assert skipped(cur) == 4
    assert_sane(cur)


def test_nan_successes_only_warn_once_and_are_skipped():
    cur = _success_cur()
    with pytest.warns(UserWarning, match="every success in the feedback so far is NaN"):
        cur.update(fb([0, 0], [1.0, 1.0]))  # episode_feedback: success NaN (unknown)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cur.update(fb([0], [1.0]))  # once
    assert skipped(cur) == 3 and cur.level.tolist() == [0]
    assert_sane(cur)
    known = _success_cur(min_episodes=5)
    known.update(fb([0], [0.0], success=[0.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        known.update(fb([0], [0.0], success=[NAN]))  # a success flag was seen: no warning
    assert skipped(known) == 1


def test_feedback_without_a_success_entry_raises_and_changes_nothing():
    cur = _success_cur(min_episodes=5)
    cur.update(fb([0], [0.0], success=[1.0]))
    before = copy.deepcopy(cur.state_dict())
    bare = TensorDict({"task": torch.tensor([0]), "return": torch.tensor([1.0])}, batch_size=[1])
    with pytest.raises(ValueError, match="metric='success' but the feedback has no 'success' entry"):
        cur.update(bare)
    after = cur.state_dict()
    for key in ("state", "counters"):
        for k, v in before[key].items():
            assert torch.equal(v, after[key][k]), (key, k)
    LevelCurriculum(LEVELS, threshold=0.5).update(bare)  # metric="return" needs none


# ---------------------------------------------------------------- numerics: huge finite values
HUGE = [3e38, -3e38, 1e30, -1e30, 3.4028234e38]


@pytest.mark.parametrize("per_env", [False, True])
@pytest.mark.parametrize("ema_init", [None, 0.0])
def test_huge_returns_keep_the_state_finite(per_env, ema_init):
    cur = LevelCurriculum(
        LEVELS,
        threshold=1e38,
        demote_threshold=-1e38,
        ema_init=ema_init,
        smoothing=0.5,
        min_episodes=2,
        per_env=per_env,
        num_envs=2 if per_env else None,
    )
    batches = [[3e38, 3e38, 3e38, 3e38], [-3e38, 3e38, -3e38, 3e38], [3.4028234e38] * 4, [-3.4028234e38] * 4, HUGE[:4]]
    for values in batches:
        env_ids = torch.tensor([0, 1, 0, 1])
        tasks = cur.sample(env_ids=env_ids) if per_env else cur.sample(4)
        cur.update(fb(tasks, values, env_id=env_ids))
        assert_sane(cur)
    assert skipped(cur) == 0


def test_float64_returns_beyond_float32_saturate():
    cur = LevelCurriculum(LEVELS, threshold=1e37, min_episodes=2, smoothing=0.5)
    cur.update(fb([0], [1e300], dtype=torch.float64))
    assert float(cur.state["ema"][0]) == torch.finfo(torch.float32).max  # saturated, not inf
    cur.update(fb([0, 0], [1e300, -1e300], dtype=torch.float64))  # mean 0: ema = max / 4 > 1e37
    assert_sane(cur)
    assert cur.level.tolist() == [1]
    top = LevelCurriculum(LEVELS, threshold=1e37, min_episodes=100)
    top.update(fb([0, 0, 0], [1.7e308, 1.7e308, -1.7e308], dtype=torch.float64))  # the float64 sum overflows
    assert float(top.state["ema"][0]) == torch.finfo(torch.float32).max and top.level.tolist() == [0]


_HOSTILE = st.sampled_from([0.0, 1.0, 0.5, 0.25, -1.0, 2.0, 1e30, -1e30, 3e38, -3e38, NAN, INF, -INF])


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(st.tuples(_HOSTILE, _HOSTILE, st.integers(0, 2)), min_size=1, max_size=6), max_size=5),
    per_env=st.booleans(),
    metric=st.sampled_from(["success", "return"]),
    ema_init=st.sampled_from([None, 0.0]),
    compare=st.sampled_from(["ge", "gt"]),
)
def test_any_mix_keeps_the_state_sane(batches, per_env, metric, ema_init, compare):
    cur = LevelCurriculum(
        LEVELS,
        threshold=[0.5, 0.75, 0.9],
        demote_threshold=0.25,
        metric=metric,
        min_episodes=1,
        smoothing=0.5,
        ema_init=ema_init,
        compare=compare,
        per_env=per_env,
        num_envs=3 if per_env else None,
    )
    expected_skips = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # all-NaN successes warn once
        for batch in batches:
            returns, successes, envs = (list(col) for col in zip(*batch))
            if metric == "return":
                successes = [1.0] * len(returns)  # out of the way: only returns are hostile
            env_ids = torch.tensor(envs)
            tasks = cur.sample(env_ids=env_ids) if per_env else cur.sample(len(returns))
            cur.update(fb(tasks, returns, env_id=env_ids, success=successes))
            expected_skips += sum(
                not math.isfinite(r) or (metric == "success" and not 0.0 <= s <= 1.0)
                for r, s in zip(returns, successes)
            )
            assert_sane(cur)
    assert skipped(cur) == expected_skips


# ---------------------------------------------------------------- state and devices
@pytest.mark.parametrize("device", DEVICES)
def test_options_survive_a_checkpoint_and_a_move(device):
    def make(seed):
        return LevelCurriculum(
            LEVELS,
            threshold=[0.5, 0.75, 0.9],
            demote_threshold=[0.1, 0.2, 0.3],
            ema_init=0.0,
            compare="gt",
            min_episodes=2,
            smoothing=0.5,
            per_env=True,
            num_envs=3,
            seed=seed,
            device=device,
        )

    cur = make(0)
    for _ in range(3):
        env_ids = torch.arange(3, device=device)
        cur.update(fb(cur.sample(env_ids=env_ids), [1.0, 0.0, 0.8], env_id=env_ids))
    sd = cur.state_dict()
    assert set(sd["state"]) == {"level", "ema", "count", "promotions", "demotions"}  # no new state
    fresh = make(1)
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.level, cur.level) and torch.equal(fresh.state["ema"], cur.state["ema"])
    moved = make(0).to("cpu")
    moved.load_state_dict(sd)
    assert moved._promote_at.device == moved.device == moved.state["ema"].device
    env_ids = torch.arange(3, device=moved.device)
    moved.update(fb(moved.sample(env_ids=env_ids), [1.0, 1.0, 1.0], env_id=env_ids.to(moved.device)))
    assert_sane(moved)


def test_a_default_checkpoint_loads_into_a_curriculum_with_options():
    plain = LevelCurriculum(LEVELS, threshold=0.5, min_episodes=1)
    plain.update(fb([0], [1.0]))
    tuned = LevelCurriculum(LEVELS, threshold=[0.5, 0.6, 0.7], ema_init=0.0, compare="gt", min_episodes=1)
    tuned.load_state_dict(plain.state_dict())
    assert tuned.level.tolist() == [1]


def test_the_preset_takes_a_list_threshold_and_the_new_options():
    from hydra import compose, initialize_config_module

    from currlearn.app.build import build_curriculum
    from currlearn.app.settings import resolve

    with initialize_config_module("currlearn.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "curriculum=level",
                "task.threshold=[0.3,0.4,0.5,0.6]",
                "curriculum.ema_init=0.0",
                "curriculum.compare=gt",
            ],
        )
    cur = build_curriculum(resolve(cfg))
    assert cur.num_levels == 5
    assert cur.threshold == [0.3, 0.4, 0.5, 0.6]
    assert cur.ema_init == 0.0 and cur.compare == "gt"
