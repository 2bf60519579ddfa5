"""Tests of currlearn.feedback against a plain-Python, step-by-step reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from currlearn.feedback import EpisodeTracker, episode_feedback
from currlearn.metrics import StepMetric
from currlearn.testing import get_default_devices


# ---------------------------------------------------------------- reference
class RefTracker:
    """Step-by-step reference: one running record per env, emitted at its done step."""

    def __init__(self, num_envs: int) -> None:
        self.open = [self._fresh() for _ in range(num_envs)]

    @staticmethod
    def _fresh() -> dict:
        return {"ret": 0.0, "len": 0, "succ": False, "metric": 0.0, "metric_max": -float("inf"), "score": 0.0}

    def __call__(self, steps: list[list[dict]]) -> list[dict]:
        """``steps[env][t]`` holds the plain values of one transition; rows are in env order."""
        out = []
        for e, row in enumerate(steps):
            for s in row:
                ep = self.open[e]
                ep["ret"] += s["reward"]
                ep["len"] += 1
                ep["succ"] = ep["succ"] or s["success"]
                ep["metric"] += s["metric"]
                ep["metric_max"] = max(ep["metric_max"], s["metric"])
                ep["score"] += s["score"]
                if s["done"]:
                    out.append(
                        {
                            "task": s["task"],
                            "return": ep["ret"],
                            "length": ep["len"],
                            "success": 1.0 if ep["succ"] else 0.0,
                            "env_id": e,
                            "metric": ep["metric"],
                            "metric_sum": ep["metric"],
                            "metric_mean": ep["metric"] / ep["len"],
                            "metric_max": ep["metric_max"],
                            "metric_last": s["metric"],
                            "score": ep["score"] / ep["len"],
                        }
                    )
                    self.open[e] = self._fresh()
        return out


def _make_batch(steps: list[list[dict]], device: torch.device, with_success: bool = True) -> TensorDict:
    def col(key, dtype):
        return torch.tensor([[s[key] for s in row] for row in steps], dtype=dtype, device=device)

    num_envs, horizon = len(steps), len(steps[0])
    task = col("task", torch.int64)
    nxt = {
        "reward": col("reward", torch.float32).unsqueeze(-1),
        "done": col("done", torch.bool).unsqueeze(-1),
        "task_id": task,
    }
    if with_success:
        nxt["success"] = col("success", torch.bool).unsqueeze(-1)
    # The root task_id is the task after an auto-reset; the finished episode's task is in "next".
    return TensorDict(
        {
            "task_id": task + 100,
            "metric_src": col("metric", torch.float32),
            "score": col("score", torch.float32),
            "next": nxt,
        },
        batch_size=[num_envs, horizon],
        device=device,
    )


def _make_tracker() -> EpisodeTracker:
    return EpisodeTracker(
        step_metric=lambda b: b["metric_src"],
        mean_keys={"score": "score", "neg_score": lambda b: -b["score"]},
    )


def _assert_matches(fb: TensorDict, ref: list[dict], device: torch.device, with_success: bool = True) -> None:
    assert fb.batch_size == (len(ref),), f"got {fb.batch_size[0]} episodes, reference has {len(ref)}"
    assert fb.device == device
    assert fb["task"].tolist() == [r["task"] for r in ref]
    assert fb["env_id"].tolist() == [r["env_id"] for r in ref]
    assert fb["length"].dtype == torch.int64
    assert fb["length"].tolist() == [r["length"] for r in ref]
    # Rewards and metrics are small integers: float32 sums are exact.
    assert fb["return"].tolist() == [r["return"] for r in ref]
    assert fb["metric"].tolist() == [r["metric"] for r in ref]
    if with_success:
        assert fb["success"].tolist() == [r["success"] for r in ref]
    else:
        assert torch.isnan(fb["success"]).all()
    assert fb["score"].tolist() == pytest.approx([r["score"] for r in ref], rel=1e-6, abs=1e-6)
    assert fb["neg_score"].tolist() == pytest.approx([-r["score"] for r in ref], rel=1e-6, abs=1e-6)


_step = st.fixed_dictionaries(
    {
        "done": st.booleans(),
        "reward": st.integers(-5, 5).map(float),
        "success": st.booleans(),
        "task": st.integers(0, 9),
        "metric": st.integers(-3, 3).map(float),
        "score": st.integers(-4, 4).map(float),
    }
)


@st.composite
def _batches(draw):
    num_envs = draw(st.integers(1, 4))
    horizon = draw(st.integers(1, 6))
    num_batches = draw(st.integers(2, 4))
    row = st.lists(_step, min_size=horizon, max_size=horizon)
    return [draw(st.lists(row, min_size=num_envs, max_size=num_envs)) for _ in range(num_batches)]


class TestEpisodeTracker:
    @settings(max_examples=40, deadline=None)
    @given(batches=_batches())
    @pytest.mark.parametrize("device", get_default_devices())
    def test_matches_reference(self, device, batches):
        tracker, ref = _make_tracker(), RefTracker(len(batches[0]))
        for steps in batches:
            _assert_matches(tracker(_make_batch(steps, device)), ref(steps), device)

    @settings(max_examples=15, deadline=None)
    @given(batches=_batches())
    def test_matches_reference_without_success(self, batches):
        device = torch.device("cpu")
        tracker, ref = _make_tracker(), RefTracker(len(batches[0]))
        for steps in batches:
            _assert_matches(
                tracker(_make_batch(steps, device, with_success=False)), ref(steps), device, with_success=False
            )

    @settings(max_examples=15, deadline=None)
    @given(batches=_batches())
    def test_time_only_batches(self, batches):
        device = torch.device("cpu")
        tracker, ref = _make_tracker(), RefTracker(1)
        for steps in batches:
            batch = _make_batch(steps[:1], device)[0]  # batch size [time]
            assert batch.batch_dims == 1
            _assert_matches(tracker(batch), ref(steps[:1]), device)

    @settings(max_examples=25, deadline=None)
    @given(batches=_batches())
    @pytest.mark.parametrize("reduction", ["sum", "mean", "max", "last"])
    def test_metric_reductions_match_reference(self, reduction, batches):
        device = torch.device("cpu")
        tracker = EpisodeTracker(step_metric=lambda b: b["metric_src"], metric_reduction=reduction)
        ref = RefTracker(len(batches[0]))
        for steps in batches:
            fb, expected = tracker(_make_batch(steps, device)), ref(steps)
            assert fb["metric"].tolist() == pytest.approx([r[f"metric_{reduction}"] for r in expected])

    def test_step_metric_reduction_comes_from_step_metric(self):
        steps = [
            [
                {"done": t == 2, "reward": 0.0, "success": False, "task": 0, "metric": float(t), "score": 0.0}
                for t in range(3)
            ]
        ]
        batch = _make_batch(steps, torch.device("cpu"))
        fn = StepMetric(lambda b: b["metric_src"], reduction="max")
        assert EpisodeTracker(step_metric=fn).metric_reduction == "max"
        assert EpisodeTracker(step_metric=fn)(batch)["metric"].tolist() == [2.0]
        assert EpisodeTracker(step_metric=fn.fn)(batch)["metric"].tolist() == [3.0]  # plain callable: sum
        with pytest.raises(
            ValueError,
            match=r"metric_reduction='sum' contradicts step_metric=StepMetric\('<lambda>', reduction='max'\)",
        ):
            EpisodeTracker(step_metric=fn, metric_reduction="sum")
        with pytest.raises(
            ValueError, match=r"metric_reduction='median' is not one of \['sum', 'mean', 'max', 'last'\]"
        ):
            EpisodeTracker(step_metric=fn.fn, metric_reduction="median")
        with pytest.raises(TypeError, match="step_metric must be None or a callable"):
            EpisodeTracker(step_metric="metric_src")

    def test_max_reduction_carries_across_batches_and_reset(self):
        def mk(values, done):
            return [
                [
                    {"done": d, "reward": 0.0, "success": False, "task": 0, "metric": v, "score": 0.0}
                    for v, d in zip(values, done)
                ]
            ]

        device = torch.device("cpu")
        tracker = EpisodeTracker(step_metric=lambda b: b["metric_src"], metric_reduction="max")
        assert tracker(_make_batch(mk([1.0, 5.0], [False, False]), device)).batch_size == (0,)
        assert tracker(_make_batch(mk([2.0, 3.0], [True, False]), device))["metric"].tolist() == [5.0]
        tracker.reset()  # forgets the open episode whose max is 3
        assert tracker(_make_batch(mk([-1.0, -2.0], [False, True]), device))["metric"].tolist() == [-1.0]

    def test_callable_output_is_checked(self):
        steps = [[{"done": True, "reward": 1.0, "success": False, "task": 0, "metric": 0.0, "score": 0.0}] * 3] * 2
        batch = _make_batch(steps, torch.device("cpu"))
        with pytest.raises(ValueError, match=r"step_metric returned shape \[6\]; .* shape \[2, 3\] .* or \[2, 3, 1\]"):
            EpisodeTracker(step_metric=lambda b: b["metric_src"].reshape(-1))(batch)
        with pytest.raises(ValueError, match=r"step_metric returned shape \[3, 2\]"):
            EpisodeTracker(step_metric=lambda b: b["metric_src"].T)(batch)
        with pytest.raises(TypeError, match=r"step_metric must return a Tensor of shape \[2, 3\], got float"):
            EpisodeTracker(step_metric=lambda b: 1.0)(batch)
        with pytest.raises(ValueError, match=r"mean_keys\['s'\] returned shape \[2\]"):
            EpisodeTracker(mean_keys={"s": lambda b: b["score"][:, 0]})(batch)
        # A trailing singleton dim and bool values are fine.
        fb = EpisodeTracker(step_metric=lambda b: b["next", "reward"] > 0)(batch)
        assert fb["metric"].tolist() == [1.0] * 6

    def test_episode_across_three_batches(self):
        # env 0: one episode of 2 + 3 + 1 steps; env 1: done at every step.
        def mk(done0, r0):
            return [
                [
                    {"done": d, "reward": r, "success": False, "task": 4, "metric": 0.0, "score": 1.0}
                    for d, r in zip(done0, r0)
                ],
                [
                    {"done": True, "reward": 1.0, "success": t == 0, "task": 1, "metric": 1.0, "score": 2.0}
                    for t in range(len(done0))
                ],
            ]

        device = torch.device("cpu")
        tracker = _make_tracker()
        fb1 = tracker(_make_batch(mk([False, False], [1.0, 2.0]), device))
        assert fb1["env_id"].tolist() == [1, 1]
        fb2 = tracker(_make_batch(mk([False, False, False], [3.0, 4.0, 5.0]), device))
        assert fb2["env_id"].tolist() == [1, 1, 1]
        fb3 = tracker(_make_batch(mk([True], [6.0]), device))
        assert fb3["env_id"].tolist() == [0, 1]
        assert fb3["return"].tolist() == [21.0, 1.0]
        assert fb3["length"].tolist() == [6, 1]
        assert fb3["task"].tolist() == [4, 1]

    def test_extra_env_dims_are_flattened(self):
        steps = [
            [
                {"done": t == e % 3, "reward": float(e), "success": False, "task": e, "metric": 0.0, "score": 0.0}
                for t in range(3)
            ]
            for e in range(6)
        ]
        batch = _make_batch(steps, torch.device("cpu")).reshape(2, 3, 3)
        fb = _make_tracker()(batch)
        assert fb["env_id"].tolist() == list(range(6))
        assert fb["length"].tolist() == [e % 3 + 1 for e in range(6)]

    def test_wrong_env_count_raises_and_keeps_carry(self):
        def mk(num_envs, done):
            return [
                [{"done": done, "reward": 1.0, "success": False, "task": 0, "metric": 0.0, "score": 0.0}] * 2
                for _ in range(num_envs)
            ]

        device = torch.device("cpu")
        tracker = _make_tracker()
        tracker(_make_batch(mk(2, False), device))
        with pytest.raises(
            ValueError, match=r"batch has 3 envs and 6 statistics, but the tracker carries \(2, 6\) .* call reset\(\)"
        ):
            tracker(_make_batch(mk(3, False), device))
        # The carry survived the failed call: the next 2-env batch closes 4-step episodes.
        fb = tracker(_make_batch(mk(2, True), device))
        assert fb["length"].tolist() == [3, 1, 3, 1]
        tracker.reset()
        fb = tracker(_make_batch(mk(3, True), device))
        assert fb["length"].tolist() == [1] * 6

    def test_missing_task_key_changes_nothing(self):
        # BUG: EpisodeTracker.__call__ assigns self._carry (the batch's open segments) BEFORE it
        # looks up task_key and raises KeyError, so a rejected batch is still added to the carry:
        # here the next episodes come out 6 steps long instead of 3. Fix: read (or check) the
        # task key next to the other per-step keys, before `self._carry = ...`.
        def mk(done):
            return [
                [{"done": d, "reward": 1.0, "success": False, "task": 2, "metric": 0.0, "score": 0.0} for d in done]
            ] * 2

        device = torch.device("cpu")
        tracker = _make_tracker()
        no_task = _make_batch(mk([False] * 3), device)
        del no_task["next", "task_id"]
        with pytest.raises(KeyError, match="task_key: the batch has no key"):
            tracker(no_task)
        fb = tracker(_make_batch(mk([False, False, True]), device))
        assert fb["length"].tolist() == [3, 3]
        assert fb["return"].tolist() == [3.0, 3.0]

    def test_missing_keys(self):
        steps = [[{"done": True, "reward": 1.0, "success": False, "task": 0, "metric": 0.0, "score": 0.0}]]
        batch = _make_batch(steps, torch.device("cpu"))
        with pytest.raises(KeyError, match="task_key: the batch has no key 'level'"):
            EpisodeTracker(task_key="level")(batch)
        with pytest.raises(KeyError, match=r"reward_key: the batch has no key .*next.*rew"):
            EpisodeTracker(reward_key=("next", "rew"))(batch)


class TestEpisodeFeedback:
    def test_defaults(self):
        fb = episode_feedback(torch.tensor([0, 1]), torch.tensor([1, 2]))
        assert fb.batch_size == (2,)
        assert fb["return"].dtype == torch.get_default_dtype()
        assert fb["return"].tolist() == [1.0, 2.0]
        assert fb["length"].tolist() == [1, 1]
        assert torch.isnan(fb["success"]).all()
        assert "env_id" not in fb.keys()

    def test_given_values(self):
        fb = episode_feedback(
            torch.tensor([3]),
            torch.tensor([0.5]),
            length=torch.tensor([7]),
            success=torch.tensor([True]),
            env_id=torch.tensor([2]),
            metric=torch.tensor([4.0]),
        )
        assert fb["success"].tolist() == [1.0]
        assert fb["env_id"].tolist() == [2]
        assert fb["length"].tolist() == [7]
        assert fb["metric"].tolist() == [4.0]
