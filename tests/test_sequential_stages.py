"""SequentialCurriculum stop conditions: predicates with values, separate reward windows, an
injectable clock that starts with each stage, non-finite and extreme returns, checkpoints.

Statistics are compared with numbers computed by hand (and by :mod:`statistics`, which is exact
on floats); clocks are fakes, so nothing sleeps and no test reads the wall clock.
"""

from __future__ import annotations

import copy
import math
import statistics
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import currlearn.curricula.sequential as sequential_module
from currlearn.configs import SequentialCurriculumConfig, StageConfig
from currlearn.curricula import SequentialCurriculum, Stage, register_predicate
from currlearn.feedback import episode_feedback
from currlearn.tasks import ladder_stages
from currlearn.testing import assert_state_dicts_equal, get_default_devices

DEVICES = get_default_devices()


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.t


@pytest.fixture(autouse=True)
def _no_real_clock(monkeypatch):
    """Any read of the real clock fails the test: every curriculum here gets a FakeClock."""

    def real_clock():
        raise AssertionError("the real clock was read")

    monkeypatch.setattr(sequential_module, "time", SimpleNamespace(monotonic=real_clock))


def fb(tasks, returns, dtype=torch.float32, **kwargs):
    tasks = torch.as_tensor(tasks)
    returns = torch.as_tensor(returns, dtype=dtype, device=tasks.device)
    kwargs = {k: torch.as_tensor(v, device=tasks.device) for k, v in kwargs.items()}
    return episode_feedback(tasks, returns, **kwargs)


def on_stage(n: int, stage: int = 0, device=None) -> torch.Tensor:
    return torch.full((n,), stage, dtype=torch.int64, device=device)


def two_stages(stage0: dict, last: dict | None = None, **kwargs) -> SequentialCurriculum:
    kwargs.setdefault("clock", FakeClock())
    return SequentialCurriculum([{"params": {"m": 0.0}, **stage0}, {"params": {"m": 1.0}, **(last or {})}], **kwargs)


# ---------------------------------------------------------------- predicates with values
CALLS: list = []


def _at_least_episodes(value, stats):
    CALLS.append((value, dict(stats)))
    return stats["episodes"] >= value


def _curriculum_iteration_at_least_two(cur, stats):
    CALLS.append((cur, dict(stats)))
    return cur.iteration >= 2


register_predicate("test_seq_at_least_episodes", _at_least_episodes)
register_predicate("test_seq_iteration_two", _curriculum_iteration_at_least_two)


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


STATS_KEYS = {"episodes", "steps", "avg_reward", "reward_std", "evaluation_score", "wall_time"}


def test_predicate_with_a_value_is_called_with_value_and_stats():
    cur = two_stages({"predicates": {"test_seq_at_least_episodes": 4}})
    cur.update(fb(on_stage(3), [0.0] * 3))
    assert CALLS == []  # predicates run in step(), not in update()
    cur.step()
    assert int(cur.stage) == 0
    value, stats = CALLS[-1]
    assert value == 4 and set(stats) == STATS_KEYS and stats["episodes"] == 3.0
    cur.update(fb(on_stage(1), [0.0]))
    cur.step()
    assert int(cur.stage) == 1
    assert CALLS[-1][0] == 4 and CALLS[-1][1]["episodes"] == 4.0


def test_predicate_value_of_any_type_reaches_the_predicate_unchanged():
    seen = []
    value = {"episodes": 2, "note": [1, 2]}

    def by_mapping(v, stats):
        seen.append(v)
        return stats["episodes"] >= v["episodes"]

    cur = SequentialCurriculum(
        [Stage(params={"m": 0.0}, predicates={by_mapping: value}), Stage(params={"m": 1.0})], clock=FakeClock()
    )
    cur.update(fb(on_stage(2), [0.0, 0.0]))
    cur.step()
    assert int(cur.stage) == 1
    assert seen == [value]


def test_list_form_is_still_called_with_the_curriculum():
    cur = two_stages({"predicates": ["test_seq_iteration_two"]})
    cur.step()
    assert int(cur.stage) == 0 and CALLS[-1][0] is cur
    cur.step()
    assert int(cur.stage) == 1


def test_a_list_mixes_both_forms():
    cur = two_stages({"predicates": ["test_seq_iteration_two", {"test_seq_at_least_episodes": 5}], "mode": "all"})
    cur.update(fb(on_stage(5), [0.0] * 5))
    cur.step()
    assert int(cur.stage) == 0  # 5 episodes, but iteration 1 < 2
    assert CALLS[0][0] is cur and CALLS[1][0] == 5
    cur.step()
    assert int(cur.stage) == 1


def test_predicates_from_yaml_keep_their_values(monkeypatch):
    monkeypatch.setattr(sequential_module, "time", SimpleNamespace(monotonic=FakeClock()))  # the preset's clock
    node = OmegaConf.create(
        {
            "_target_": "currlearn.SequentialCurriculum",
            "stages": {
                "_target_": "currlearn.tasks.ladder_stages",
                "ladder": {"m": [0.0, 1.0]},
                "until": {"predicates": {"test_seq_at_least_episodes": 2}, "avg_reward_window": 3},
            },
            "seed": None,
            "device": None,
            "clock": None,
        }
    )
    cur = instantiate(node)
    cur.update(fb(on_stage(1), [0.0]))
    cur.step()
    assert int(cur.stage) == 0 and CALLS[-1][0] == 2
    cur.update(fb(on_stage(1), [0.0]))
    cur.step()
    assert int(cur.stage) == 1
    assert cur.stages[0].avg_window == 3


def test_conditions_name_the_predicates_and_their_values():
    stage = Stage(params={"m": 0.0}, predicates=["test_seq_iteration_two", {"test_seq_at_least_episodes": 4}])
    assert stage.conditions() == ["predicate:test_seq_iteration_two", "predicate:test_seq_at_least_episodes=4"]
    assert Stage(params={"m": 0.0}, predicates={_at_least_episodes: 2}).conditions() == [
        "predicate:_at_least_episodes=2"
    ]


@pytest.mark.parametrize(
    ("predicates", "error", "match"),
    [
        (
            "test_seq_iteration_two",
            TypeError,
            r"stages\[0\]\.predicates must be a list of predicate names or callables",
        ),
        (3, TypeError, r"stages\[0\]\.predicates must be a list .* or a mapping of names or callables to values"),
        (
            [{"test_seq_at_least_episodes": 1, "test_seq_iteration_two": 2}],
            TypeError,
            r"stages\[0\]\.predicates\[0\] is a mapping of 2 entries",
        ),
        (
            {"no_such_predicate": 1},
            ValueError,
            r"stages\[0\]\.predicates names 'no_such_predicate', which is not registered",
        ),
        ({3: 1}, TypeError, r"stages\[0\]\.predicates must hold names or callables, got 3"),
        ([None], TypeError, r"stages\[0\]\.predicates must hold names or callables, got None"),
        (
            {(lambda stats: True): 1},
            TypeError,
            r"predicate '<lambda>' is called as predicate\(value, stats\), but its signature is \(stats\)",
        ),
        (
            [lambda a, b, c: True],
            TypeError,
            r"predicate '<lambda>' is called as predicate\(curriculum, stats\), but its signature is \(a, b, c\)",
        ),
    ],
)
def test_unknown_predicate_forms_are_refused(predicates, error, match):
    with pytest.raises(error, match=match):
        two_stages({"predicates": predicates})


# ---------------------------------------------------------------- separate windows
def test_each_condition_has_its_own_window():
    # avg over the last 2, std over the last 4 returns
    cur = two_stages({"min_avg_reward": 10.0, "avg_reward_window": 2, "reward_std_window": 4})
    cur.update(fb(on_stage(2), [0.0, 4.0]))
    stats = cur.stage_stats()
    assert float(stats["avg_reward"]) == 2.0  # (0 + 4) / 2
    assert math.isnan(float(stats["reward_std"]))  # 2 < 4 returns
    cur.update(fb(on_stage(2), [6.0, 2.0]))
    stats = cur.stage_stats()
    assert float(stats["avg_reward"]) == 4.0  # (6 + 2) / 2
    # [0, 4, 6, 2]: mean 3, squared deviations 9 + 1 + 9 + 1 = 20, sample variance 20 / 3
    assert float(stats["reward_std"]) == math.sqrt(20 / 3)
    assert int(cur.stage) == 0
    cur.update(fb(on_stage(2), [10.0, 10.0]))
    assert int(cur.stage) == 1


def test_std_window_decides_max_reward_std():
    cur = two_stages({"max_reward_std": 0.5, "avg_reward_window": 1, "reward_std_window": 3})
    for v, expected in [(5.0, 0), (5.0, 0), (0.0, 0), (5.0, 0), (5.0, 0), (5.0, 1)]:
        cur.update(fb(on_stage(1), [v]))
        assert int(cur.stage) == expected


def test_reward_window_is_the_default_of_both_windows():
    stage = Stage(params={"m": 0.0}, reward_window=7)
    assert (stage.avg_window, stage.std_window) == (7, 7)
    stage = Stage(params={"m": 0.0}, reward_window=7, reward_std_window=3)
    assert (stage.avg_window, stage.std_window) == (7, 3)
    cur = two_stages({"min_avg_reward": 1.0, "reward_window": 3})
    cur.update(fb(on_stage(2), [1.0, 1.0]))
    assert int(cur.stage) == 0
    cur.update(fb(on_stage(1), [1.0]))
    assert int(cur.stage) == 1


def test_ring_buffer_holds_the_largest_window_of_any_stage():
    cur = two_stages({"max_episodes": 1, "avg_reward_window": 3, "reward_std_window": 9}, {"reward_window": 5})
    assert cur.state["returns"].shape == (9,)
    assert cur.state["returns"].dtype == torch.float64


def test_std_is_the_sample_std_ddof_1():
    # Hand-computed: [2, 4, 4, 4, 5, 5, 7, 9] has mean 5 and squared deviations summing to 32:
    # population std sqrt(32 / 8) = 2, sample std sqrt(32 / 7) = 2.1380899...
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    assert statistics.pstdev(values) == 2.0 and statistics.stdev(values) == math.sqrt(32 / 7)
    cur = two_stages({"max_reward_std": 2.1, "reward_window": 8})
    cur.update(fb(on_stage(8), values))
    assert float(cur.stage_stats()["reward_std"]) == math.sqrt(32 / 7)
    assert float(cur.stage_stats()["avg_reward"]) == 5.0
    assert int(cur.stage) == 0  # 2.138 > 2.1 (the population std, 2.0, would have ended the stage)


def test_std_of_a_one_return_window_is_undefined():
    with pytest.raises(ValueError, match=r"stages\[0\]\.max_reward_std needs a window of at least 2 returns"):
        two_stages({"max_reward_std": 1.0, "reward_std_window": 1})
    with pytest.raises(ValueError, match=r"its window \(reward_window\) is 1"):
        two_stages({"max_reward_std": 1.0, "reward_window": 1})
    cur = two_stages({"min_avg_reward": 5.0, "reward_window": 1})  # a mean of one return is fine
    cur.update(fb(on_stage(1), [3.0]))
    stats = cur.stage_stats()
    assert float(stats["avg_reward"]) == 3.0 and math.isnan(float(stats["reward_std"]))


@pytest.mark.parametrize("key", ["avg_reward_window", "reward_std_window"])
@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_windows(key, bad):
    with pytest.raises(ValueError, match=rf"stages\[0\]\.{key} must be an int >= 1, got {bad!r}"):
        two_stages({"max_episodes": 1, key: bad})


# ---------------------------------------------------------------- clock
def test_injected_clock_drives_max_wall_time():
    clock = FakeClock(100.0)
    cur = two_stages({"max_wall_time": 10.0}, clock=clock)
    cur.sample(1)  # the first stage starts with its first episodes
    clock.t = 104.0
    cur.step()
    assert int(cur.stage) == 0 and float(cur.stage_stats()["wall_time"]) == 4.0
    clock.t = 110.0
    cur.update(fb(on_stage(1), [0.0]))  # wall time is checked in step()
    assert int(cur.stage) == 0
    cur.step()
    assert int(cur.stage) == 1
    assert float(cur.stage_stats()["wall_time"]) == 0.0
    clock.t = 113.5
    assert float(cur.stage_stats()["wall_time"]) == 3.5


def test_a_stage_clock_starts_when_the_stage_starts():
    clock = FakeClock(0.0)
    cur = SequentialCurriculum(
        [
            {"params": {"m": 0.0}, "max_episodes": 1},
            {"params": {"m": 1.0}, "max_wall_time": 5.0},
            {"params": {"m": 2.0}},
        ],
        clock=clock,
    )
    clock.t = 50.0  # 50 s in the first stage, which has no time limit
    cur.update(fb(on_stage(1), [0.0]))
    assert int(cur.stage) == 1
    clock.t = 54.0
    cur.step()
    assert int(cur.stage) == 1  # 4 s in the second stage, not 54
    assert float(cur.stage_stats()["wall_time"]) == 4.0
    clock.t = 55.0
    cur.step()
    assert int(cur.stage) == 2


def test_a_clock_going_back_adds_no_time():
    clock = FakeClock(10.0)
    cur = two_stages({"max_wall_time": 5.0}, clock=clock)
    cur.sample(1)
    clock.t = 13.0
    cur.step()
    clock.t = 1.0  # e.g. a replayed clock that restarted
    cur.step()
    assert float(cur.stage_stats()["wall_time"]) == 3.0
    clock.t = 2.5
    cur.step()
    assert float(cur.stage_stats()["wall_time"]) == 4.5 and int(cur.stage) == 0
    clock.t = 3.0
    cur.step()
    assert int(cur.stage) == 1


def test_bad_clocks():
    with pytest.raises(TypeError, match="clock must be a callable returning seconds, got 3"):
        two_stages({"max_episodes": 1}, clock=3)
    with pytest.raises(ValueError, match="clock must return finite seconds"):
        two_stages({"max_episodes": 1}, clock=lambda: float("nan")).sample(1)
    with pytest.raises(ValueError, match="clock must return finite seconds"):
        two_stages({"max_episodes": 1}, clock=lambda: "now").step()


def test_default_clock_is_time_monotonic(monkeypatch):
    clock = FakeClock(7.0)
    monkeypatch.setattr(sequential_module, "time", SimpleNamespace(monotonic=clock))
    cur = SequentialCurriculum([{"params": {"m": 0.0}, "max_wall_time": 1.0}, {"params": {"m": 1.0}}])
    cur.sample(1)
    clock.t = 8.0
    cur.step()
    assert int(cur.stage) == 1 and clock.reads >= 2


def test_building_the_run_is_no_time_in_the_first_stage():
    """The first stage's clock starts at its first sample (the envs' first reset), not when the
    curriculum is built: the setup before training does not count against max_wall_time."""
    clock = FakeClock(0.0)
    cur = two_stages({"max_wall_time": 10.0}, clock=clock)
    clock.t = 300.0  # building envs, the trainer, compiling...
    cur.sample(4)
    clock.t = 306.0
    cur.step()
    assert int(cur.stage) == 0 and float(cur.stage_stats()["wall_time"]) == 6.0
    clock.t = 310.0
    cur.step()
    assert int(cur.stage) == 1


# ---------------------------------------------------------------- non-finite and extreme returns
def test_nonfinite_returns_stay_out_of_the_windows_and_are_counted():
    cur = two_stages({"min_avg_reward": 100.0, "reward_window": 2})
    cur.update(fb(on_stage(5), [1.0, float("nan"), float("inf"), float("-inf"), 2.0], length=[1, 10, 10, 10, 1]))
    stats = cur.stage_stats()
    assert int(stats["episodes"]) == 2 and int(stats["steps"]) == 2
    # (the std to the last bit of torch's sqrt, which need not round as math.sqrt does)
    assert float(stats["avg_reward"]) == 1.5 and float(stats["reward_std"]) == pytest.approx(math.sqrt(0.5), rel=1e-15)
    assert int(cur.counters["skipped_nonfinite"]) == 3
    assert torch.isfinite(cur.state["returns"]).all()


def test_update_guards_the_windows_itself():
    # _update is also reached by callers that skip Curriculum.update's filter.
    cur = two_stages({"min_avg_reward": 100.0, "reward_window": 2})
    cur._update(fb(on_stage(3), [float("nan"), 3.0, float("inf")]))
    assert int(cur.stage_stats()["episodes"]) == 1
    assert int(cur.counters["skipped_nonfinite"]) == 2
    assert torch.isfinite(cur.state["returns"]).all()


MIXES = [
    [1e30, -1e30, 1e30, -1e30],
    [3e38, 3e38, 3e38, 3e38],
    [3e38, -3e38, 3e38, -3e38],
    [-3e38, float("nan"), -3e38, float("inf"), 1e30, float("-inf"), -1e30, 0.0],
    [3e38, 1e-30, -3e38, float("nan"), 1.0, 1e30],
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("values", MIXES)
def test_extreme_returns_keep_state_and_statistics_finite(values, dtype):
    cur = two_stages({"max_episodes": 1000, "reward_window": 3})
    cur.update(fb(on_stage(len(values)), values, dtype=dtype))
    for k, v in cur.state.items():
        if k != "evaluation_score":  # NaN until reported
            assert torch.isfinite(v).all(), k
    # The reference: the last 3 finite returns as float64 (what the curriculum saw), with exact
    # float arithmetic from `statistics`.
    seen = [float(x) for x in torch.tensor(values, dtype=dtype).tolist() if math.isfinite(x)][-3:]
    stats = cur.stage_stats()
    assert math.isfinite(float(stats["avg_reward"])) and math.isfinite(float(stats["reward_std"]))
    assert math.isclose(float(stats["avg_reward"]), statistics.fmean(seen), rel_tol=1e-12, abs_tol=1e-300)
    assert math.isclose(float(stats["reward_std"]), statistics.stdev(seen), rel_tol=1e-12)
    assert int(cur.counters["skipped_nonfinite"]) == sum(not math.isfinite(v) for v in values)


def test_float64_returns_near_the_largest_double_do_not_overflow():
    # The plain sum 1.7e308 + 1.7e308 + 1.6e308 overflows float64; the scaled one does not.
    values = [1.7e308, 1.7e308, 1.6e308]
    cur = two_stages({"min_avg_reward": 1.0, "max_reward_std": 0.0, "reward_window": 3, "mode": "all"})
    cur.update(fb(on_stage(3), values, dtype=torch.float64))
    stats = cur.stage_stats()
    # By hand: mean 5/3 * 1e308; deviations 1/30, 1/30, -1/15 (* 1e308), whose squares sum to
    # 1/150 * 1e616, so the sample std is sqrt(1/300) * 1e308.
    assert math.isclose(float(stats["avg_reward"]), 5 / 3 * 1e308, rel_tol=1e-14)
    assert math.isclose(float(stats["reward_std"]), math.sqrt(1 / 300) * 1e308, rel_tol=1e-14)
    assert int(cur.stage) == 0  # std ~5.8e306 > 0


def test_tiny_returns_keep_their_statistics():
    values = [5e-324, 1e-310, 3e-320]  # subnormal doubles
    cur = two_stages({"max_episodes": 10, "reward_window": 3})
    cur.update(fb(on_stage(3), values, dtype=torch.float64))
    stats = cur.stage_stats()
    assert math.isclose(float(stats["avg_reward"]), statistics.fmean(values), rel_tol=1e-9)
    assert math.isfinite(float(stats["reward_std"]))


def test_a_window_of_zeros_has_zero_mean_and_std():
    cur = two_stages({"max_reward_std": 0.0, "reward_window": 2})
    cur.update(fb(on_stage(2), [0.0, 0.0]))
    assert int(cur.stage) == 1


def test_step_limits_are_exact_beyond_float32():
    # 2**24 + 1 is not a float32: stored as float32 the limit would read 2**24 and end the stage early.
    cur = two_stages({"max_steps": 2**24 + 1})
    cur.update(fb(on_stage(1), [0.0], length=[2**24]))
    assert int(cur.stage) == 0
    cur.update(fb(on_stage(1), [0.0], length=[1]))
    assert int(cur.stage) == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_evaluation_scores_are_skipped_and_counted(bad):
    cur = two_stages({"min_evaluation_score": 0.9})
    cur.report_evaluation(0.5)
    cur.report_evaluation(bad)
    assert int(cur.stage) == 0  # +inf would otherwise pass any threshold
    assert float(cur.stage_stats()["evaluation_score"]) == 0.5
    assert int(cur.counters["skipped_nonfinite"]) == 1
    cur.report_evaluation(torch.tensor(1e300, dtype=torch.float64))  # finite in float64
    assert int(cur.stage) == 1


# ---------------------------------------------------------------- checkpoints
def _stages():
    return [
        {"params": {"m": 0.0}, "max_episodes": 2},
        {
            "params": {"m": 1.0},
            "min_avg_reward": 5.0,
            "avg_reward_window": 2,
            "reward_std_window": 3,
            "max_wall_time": 20.0,
            "predicates": {"test_seq_at_least_episodes": 50},
        },
        {"params": {"m": 2.0}},
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_round_trip_is_exact_and_stores_elapsed_time(device):
    clock_a = FakeClock(1000.0)
    a = SequentialCurriculum(_stages(), seed=0, device=device, clock=clock_a)
    a.update(fb(on_stage(2, device=device), [1.0, 2.0]))  # ends stage 0 at t=1000
    clock_a.t = 1007.0
    a.update(fb(on_stage(3, 1, device=device), [1.0, 3.0, float("nan")]))
    a.step()
    sd = a.state_dict()
    assert sd["state"]["wall_time"].item() == 7.0  # elapsed seconds in stage 1, not a clock reading
    assert sd["state"]["returns"].dtype == torch.float64

    clock_b = FakeClock(-3.0)  # another process, another clock origin
    b = SequentialCurriculum(_stages(), seed=1, device=device, clock=clock_b)
    b.load_state_dict(copy.deepcopy(sd))
    assert_state_dicts_equal(b.state_dict(), sd)
    clock_a.t += 4.0
    clock_b.t += 4.0
    for cur in (a, b):
        cur.update(fb(on_stage(1, 1, device=device), [4.0]))
        cur.step()
    assert_state_dicts_equal(b.state_dict(), a.state_dict())
    assert float(b.stage_stats()["wall_time"]) == 11.0 and int(b.stage) == 1
    clock_a.t += 9.0
    clock_b.t += 9.0
    a.step()
    b.step()
    assert int(a.stage) == int(b.stage) == 2  # 20 s in stage 1 on both
    assert_state_dicts_equal(b.state_dict(), a.state_dict())


def test_load_into_the_same_instance_restores_the_stage_clock():
    clock = FakeClock(0.0)
    cur = two_stages({"max_wall_time": 10.0}, clock=clock)
    cur.sample(1)
    clock.t = 6.0
    cur.step()
    sd = copy.deepcopy(cur.state_dict())
    clock.t = 9.0
    cur.step()
    cur.load_state_dict(sd)  # back to 6 s elapsed, counted from t=9
    clock.t = 12.0
    cur.step()
    assert float(cur.stage_stats()["wall_time"]) == 9.0 and int(cur.stage) == 0
    clock.t = 13.0
    cur.step()
    assert int(cur.stage) == 1


@pytest.mark.parametrize("score", [None, 0.25])
def test_checkpoints_of_earlier_versions_still_load(score):
    cur = two_stages({"min_avg_reward": 100.0, "reward_window": 3})
    cur.update(fb(on_stage(2), [1.5, 2.5]))
    if score is not None:
        cur.report_evaluation(score)
    sd = copy.deepcopy(cur.state_dict())
    # What earlier versions saved: float32 windows, NaN for "no score", no "evaluations" count.
    old = copy.deepcopy(sd)
    old["state"]["returns"] = old["state"]["returns"].float()
    old["state"]["evaluation_score"] = torch.tensor(float("nan") if score is None else score)
    del old["state"]["evaluations"]
    fresh = two_stages({"min_avg_reward": 100.0, "reward_window": 3})
    fresh.load_state_dict(old)
    assert fresh.state["returns"].dtype == torch.float64
    assert_state_dicts_equal(fresh.state_dict(), sd)
    old["state"]["returns"][2] = float("inf")  # a float64 return past float32's range, cast
    fresh.load_state_dict(old)
    assert fresh.state["returns"][2].item() == torch.finfo(torch.float32).max


def test_state_holds_no_nan_before_an_evaluation():
    cur = two_stages({"min_evaluation_score": 0.5})
    assert all(torch.isfinite(v).all() for v in cur.state.values() if v.is_floating_point())
    assert math.isnan(float(cur.stage_stats()["evaluation_score"]))
    cur.report_evaluation(0.0)  # a score of 0 is a score
    assert float(cur.stage_stats()["evaluation_score"]) == 0.0
    cur.report_evaluation(0.5)
    assert int(cur.stage) == 1 and math.isnan(float(cur.stage_stats()["evaluation_score"]))


# ---------------------------------------------------------------- configs
def test_structured_configs_build_the_new_arguments(monkeypatch):
    monkeypatch.setattr(sequential_module, "time", SimpleNamespace(monotonic=FakeClock()))  # clock=None
    stage0 = StageConfig(
        params={"m": 0.0},
        min_avg_reward=1.0,
        avg_reward_window=2,
        reward_std_window=5,
        predicates={"test_seq_at_least_episodes": 3},
    )
    cur = instantiate(SequentialCurriculumConfig(stages=[stage0, StageConfig(params={"m": 1.0})], clock=None))
    assert isinstance(cur, SequentialCurriculum)
    assert (cur.stages[0].avg_window, cur.stages[0].std_window) == (2, 5)
    assert cur.state["returns"].shape == (100,)  # the last stage's default window
    assert cur.stages[0].conditions() == ["min_avg_reward", "predicate:test_seq_at_least_episodes=3"]


def test_ladder_stages_pass_the_new_arguments():
    stages = ladder_stages(
        {"m": [0.0, 1.0]},
        until={"max_reward_std": 0.1, "reward_std_window": 4, "predicates": {"test_seq_at_least_episodes": 1}},
    )
    cur = SequentialCurriculum(stages, clock=FakeClock())
    assert cur.stages[0].std_window == 4 and cur.stages[1].predicates == []
    cur.update(fb(on_stage(1), [0.0]))
    cur.step()
    assert int(cur.stage) == 1 and CALLS[-1][0] == 1
