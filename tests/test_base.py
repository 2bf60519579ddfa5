"""Tests of currlearn.base: the Curriculum template methods and DiscreteCurriculum."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from currlearn.base import (
    Curriculum,
    DiscreteCurriculum,
    check_positive_int,
    check_probability,
    sample_from_weights,
)
from currlearn.feedback import episode_feedback
from currlearn.spaces import BoxSpace, DiscreteSpace
from currlearn.testing import assert_state_dicts_equal, get_default_devices


class _Recorder(Curriculum):
    """A minimal curriculum: uniform tasks, a per-env counter, and a record of its feedback."""

    def __init__(self, space, **kwargs):
        super().__init__(space, **kwargs)
        self.seen = []
        self.state = TensorDict({"hits": torch.zeros(self.num_envs or 1, dtype=torch.int64)}, device=self.device)

    def _sample(self, num, env_ids):
        return self.space.sample_uniform(num, self.generator)

    def _update(self, feedback):
        self.seen.append(feedback.clone())
        self.state["hits"] += feedback.numel()


class _Weighted(DiscreteCurriculum):
    """A DiscreteCurriculum whose unnormalised weights are a state tensor."""

    def __init__(self, space, raw, **kwargs):
        super().__init__(space, **kwargs)
        self.state = TensorDict(
            {"raw": torch.as_tensor(raw, dtype=torch.get_default_dtype(), device=self.device)}, device=self.device
        )

    def _compute_weights(self):
        return self.state["raw"]


class TestCurriculum:
    @staticmethod
    def _make_curriculum(num_tasks=5, seed=0, **kwargs) -> _Recorder:
        return _Recorder(DiscreteSpace(num_tasks=num_tasks), seed=seed, **kwargs)

    def test_construction_errors(self):
        with pytest.raises(TypeError, match=r"space must be a TaskSpace .* got dict"):
            _Recorder({"g": [1.0]})
        with pytest.raises(ValueError, match="num_envs must be an int >= 1, got 0"):
            self._make_curriculum(num_envs=0)
        with pytest.raises(TypeError, match="seed must be an int or None, got '1'"):
            self._make_curriculum(seed="1")

    def test_sample_errors(self):
        cur = self._make_curriculum()
        with pytest.raises(ValueError, match="sample needs num or env_ids, got neither"):
            cur.sample()
        with pytest.raises(ValueError, match=r"num=3 does not match len\(env_ids\)=2"):
            cur.sample(3, env_ids=torch.tensor([0, 1]))
        with pytest.raises(ValueError, match="num must be an int >= 0, got -1"):
            cur.sample(-1)
        assert cur.sample(0).shape == (0,)

    def test_seed_reproducible(self):
        a, b, c = self._make_curriculum(seed=7), self._make_curriculum(seed=7), self._make_curriculum(seed=8)
        sa, sb, sc = a.sample(64), b.sample(64), c.sample(64)
        assert torch.equal(sa, sb)
        assert not torch.equal(sa, sc)

    def test_seed_none_draws_from_global_generator(self):
        torch.manual_seed(123)
        a = self._make_curriculum(seed=None)
        torch.manual_seed(123)
        b = self._make_curriculum(seed=None)
        assert torch.equal(a.sample(64), b.sample(64))

    def test_counters(self):
        cur = self._make_curriculum(num_envs=3)
        cur.sample(4)
        cur.sample(env_ids=torch.tensor([0, 2]))
        cur.step(frames=100)
        cur.step(frames=torch.tensor(28))
        fb = episode_feedback(
            torch.tensor([0, 1, 2, 3, 4]),
            torch.tensor([1.0, float("nan"), 2.0, float("inf"), 0.0]),
            metric=torch.tensor([0.0, 0.0, float("nan"), 1.0, 1.0]),
        )
        cur.update(fb)
        m = cur.metrics()
        assert m["curriculum/samples"] == 6
        assert m["curriculum/iteration"] == 2
        assert cur.iteration == 2
        assert m["curriculum/frames"] == 128
        assert m["curriculum/skipped_nonfinite"] == 3  # NaN return, inf return, NaN metric
        assert m["curriculum/episodes"] == 2
        # Only the valid episodes (ids 0 and 4) reach _update.
        assert cur.seen[-1]["task"].tolist() == [0, 4]

    def test_update_fills_unknown_success(self):
        cur = self._make_curriculum()
        fb = TensorDict({"task": torch.tensor([1, 2]), "return": torch.tensor([1.0, 2.0])}, batch_size=[2])
        cur.update(fb)
        assert torch.isnan(cur.seen[-1]["success"]).all()
        assert "success" not in fb.keys()  # the caller's feedback is not modified

    def test_update_errors_change_nothing(self):
        cur = self._make_curriculum(num_envs=2)
        cur.update(episode_feedback(torch.tensor([0]), torch.tensor([1.0]), env_id=torch.tensor([1])))
        before = copy.deepcopy(cur.state_dict())
        with pytest.raises(TypeError, match="feedback must be a TensorDict with batch size"):
            cur.update({"task": torch.tensor([0]), "return": torch.tensor([1.0])})
        with pytest.raises(TypeError, match="feedback must be a TensorDict with batch size"):
            cur.update(TensorDict({"task": torch.zeros(1, 2, dtype=torch.int64)}, batch_size=[1, 2]))
        with pytest.raises(ValueError, match=r"feedback lacks key\(s\) \['return'\]; it has \['task'\]"):
            cur.update(TensorDict({"task": torch.tensor([0])}, batch_size=[1]))
        with pytest.raises(ValueError, match=r"feedback\['task'\] has task ids \[5\] outside \[0, 5\)"):
            cur.update(episode_feedback(torch.tensor([1, 5]), torch.tensor([1.0, 1.0])))
        with pytest.raises(ValueError, match=r"feedback\['env_id'\] has ids outside \[0, 2\)"):
            cur.update(episode_feedback(torch.tensor([1, 1]), torch.tensor([1.0, 1.0]), env_id=torch.tensor([0, 2])))
        assert_state_dicts_equal(cur.state_dict(), before)
        assert len(cur.seen) == 1

    def test_env_id_error_lists_only_offending_ids(self):
        # BUG: base.py Curriculum.update lists env.unique() (every id in the batch, valid ones
        # included) after "has ids outside [0, n)", so the message claims that id 0 is out of
        # range. It should list only the ids that are < 0 or >= num_envs.
        cur = self._make_curriculum(num_envs=2)
        with pytest.raises(ValueError, match=r"feedback\['env_id'\] has ids outside \[0, 2\): \[-1, 2\]\."):
            cur.update(episode_feedback(torch.tensor([1, 1, 1]), torch.ones(3), env_id=torch.tensor([0, 2, -1])))

    def test_state_dict_layout(self):
        cur = self._make_curriculum(num_envs=2)
        sd = cur.state_dict()
        assert set(sd) == {"_version", "_type", "space", "num_envs", "counters", "state", "rng", "task_stats"}
        assert sd["_type"] == "_Recorder"
        assert sd["space"] == {"names": ["task_id"], "discrete": True, "num_tasks": 5}
        assert sd["num_envs"] == 2
        assert set(sd["counters"]) == {"iteration", "frames", "episodes", "skipped_nonfinite", "samples"}
        assert set(sd["state"]) == {"hits"}
        box = _Recorder(BoxSpace({"w": 0.0, "h": 0.0}, {"w": 1.0, "h": 2.0}))
        assert box.state_dict()["space"] == {"names": ["w", "h"], "discrete": False, "task_shape": [2]}

    def test_task_stats_are_checkpointed(self):
        src = self._make_curriculum(seed=1)
        src.update(episode_feedback(torch.tensor([0, 0, 3]), torch.tensor([1.0, 3.0, -2.0])))
        dst = self._make_curriculum(seed=2)
        dst.load_state_dict(src.state_dict())

        def per_task(cur):  # NaN (no episode yet) as None, so that equal reports compare equal
            return {k: None if v != v else v for k, v in cur.metrics().items() if k.startswith("curriculum/task/")}

        reported = per_task(src)
        assert reported["curriculum/task/0/return"] == 2.0 and reported["curriculum/task/0/episodes"] == 2.0
        assert per_task(dst) == reported

    def test_round_trip_and_load_rng_false(self):
        src = self._make_curriculum(seed=1, num_envs=2)
        src.sample(10)
        src.step(5)
        src.update(episode_feedback(torch.tensor([0, 1]), torch.tensor([1.0, 1.0])))
        sd = src.state_dict()
        expected = src.sample(32)

        dst = self._make_curriculum(seed=2, num_envs=2)
        twin = self._make_curriculum(seed=2, num_envs=2)  # the stream dst would have without loading
        assert not torch.equal(dst.sample(32), expected)
        twin.sample(32)
        dst.load_state_dict(sd, load_rng=False)
        assert dst.state["hits"].tolist() == [2, 2]
        assert dst.iteration == 1
        assert torch.equal(dst.sample(32), twin.sample(32))  # own stream kept
        dst.load_state_dict(sd)
        assert torch.equal(dst.sample(32), expected)

    def test_load_errors_change_nothing(self):
        cur = self._make_curriculum(num_envs=2)
        cur.sample(3)
        cur.update(episode_feedback(torch.tensor([0]), torch.tensor([1.0])))
        before = copy.deepcopy(cur.state_dict())
        good = self._make_curriculum(seed=9, num_envs=2).state_dict()

        with pytest.raises(ValueError, match=r"not a currlearn curriculum state \(no '_type' key\)"):
            cur.load_state_dict({"state": {}})
        with pytest.raises(ValueError, match=r"not a currlearn curriculum state \(no '_type' key\); got keys list"):
            cur.load_state_dict([])
        newer = {**good, "_version": 99}
        with pytest.raises(ValueError, match="_version=99, newer than this currlearn's 1"):
            cur.load_state_dict(newer)
        other_keys = {**good, "state": {"hits": torch.zeros(2, dtype=torch.int64), "extra": torch.zeros(1)}}
        with pytest.raises(
            ValueError, match=r"state keys \['extra', 'hits'\] differ from this curriculum's \['hits'\]"
        ):
            cur.load_state_dict(other_keys)
        wrong_shape = {**good, "state": {"hits": torch.zeros(3, dtype=torch.int64)}}
        with pytest.raises(ValueError, match=r"state_dict\['state'\]\['hits'\] has shape \[3\], expected \[2\]"):
            cur.load_state_dict(wrong_shape)
        assert_state_dicts_equal(cur.state_dict(), before)

    @pytest.mark.parametrize("broken", ["no_rng", "counter_shape"])
    def test_malformed_checkpoint_raises_valueerror_and_changes_nothing(self, broken):
        # BUG: load_state_dict promises "Checks everything before changing anything", but
        # _check_state_dict checks neither sd["rng"] nor sd["counters"]: a checkpoint without
        # "rng" loads the state and counters, then fails with KeyError('rng'); a counter of the
        # wrong shape fails with a RuntimeError in copy_ after the state was loaded. Fix: in
        # _check_state_dict, require a "rng" uint8 tensor (when load_rng) and 0-d counters with
        # known names, raising ValueError, before anything is copied.
        cur = self._make_curriculum(num_envs=2)
        before = copy.deepcopy(cur.state_dict())
        src = self._make_curriculum(seed=4, num_envs=2)
        src.update(episode_feedback(torch.tensor([0, 1, 2]), torch.ones(3)))
        sd = src.state_dict()
        if broken == "no_rng":
            del sd["rng"]
        else:
            sd["counters"]["episodes"] = torch.zeros(3, dtype=torch.int64)
        with pytest.raises(ValueError, match="state_dict"):
            cur.load_state_dict(sd)
        assert_state_dicts_equal(cur.state_dict(), before)

    @pytest.mark.parametrize("device", get_default_devices())
    def test_to_device(self, device):
        cur = self._make_curriculum(num_envs=2)
        cur.sample(3)
        cur.to(device)
        assert cur.device == device
        assert cur.space.device == device
        assert cur.generator.device == device
        assert all(v.device == device for v in cur.counters.values())
        assert cur.state["hits"].device == device
        t = cur.sample(4)
        assert t.device == device
        cur.update(episode_feedback(t.cpu(), torch.ones(4)))
        assert cur.metrics()["curriculum/episodes"] == 4
        sd = cur.state_dict()
        expected = cur.sample(16)
        cur.load_state_dict(sd)
        assert torch.equal(cur.sample(16), expected)

    @pytest.mark.parametrize("device", get_default_devices())
    def test_to_same_device_keeps_stream(self, device):
        # BUG (CUDA only, found by reading): Curriculum.to compares torch.device("cuda") with
        # the space's device cuda:0, which are unequal, so .to("cuda") on a curriculum already
        # on cuda:0 re-seeds the generator and changes the random stream. Fix: resolve an
        # index-less CUDA device to torch.device("cuda", torch.cuda.current_device()) first.
        a, b = self._make_curriculum(seed=3, device=device), self._make_curriculum(seed=3, device=device)
        a.to(device)
        a.to(device.type)
        a.to(str(device))
        assert torch.equal(a.sample(16), b.sample(16))


class TestDiscreteCurriculum:
    def test_needs_discrete_space(self):
        with pytest.raises(TypeError, match="_Weighted needs a discrete task space"):
            _Weighted(BoxSpace({"w": 0.0}, {"w": 1.0}), [1.0])

    def test_weights_docstring(self):
        cur = _Weighted(DiscreteSpace(num_tasks=4), [1.0, 2.0, 3.0, 4.0], seed=0)
        torch.testing.assert_close(cur.weights(), torch.tensor([0.1, 0.2, 0.3, 0.4]))

    @settings(max_examples=30, deadline=None)
    @given(
        raw=st.lists(st.floats(0.0, 100.0, allow_subnormal=False), min_size=1, max_size=12).filter(
            lambda w: sum(w) > 1e-3
        )
    )
    @pytest.mark.parametrize("device", get_default_devices())
    def test_weights_property(self, device, raw):
        cur = _Weighted(DiscreteSpace(num_tasks=len(raw)), raw, seed=0, device=device)
        w = cur.weights()
        assert w.shape == (len(raw),)
        assert w.device == device
        assert torch.isfinite(w).all()
        assert (w >= 0).all()
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-5)
        expected = [x / sum(raw) for x in raw]
        assert w.tolist() == pytest.approx(expected, abs=1e-6)

    @settings(max_examples=15, deadline=None)
    @given(
        raw=st.lists(st.one_of(st.just(0.0), st.floats(0.05, 10.0)), min_size=2, max_size=8).filter(
            lambda w: sum(w) > 0.1
        ),
        seed=st.integers(0, 2**31 - 1),
    )
    def test_sample_frequencies_follow_weights(self, raw, seed):
        num = 20_000
        cur = _Weighted(DiscreteSpace(num_tasks=len(raw)), raw, seed=seed)
        tasks = cur.sample(num)
        assert tasks.dtype == torch.int64 and tasks.shape == (num,)
        counts = torch.bincount(tasks, minlength=len(raw)).tolist()
        total = sum(raw)
        observed = [c / num for c in counts]
        for i, x in enumerate(raw):
            p = x / total
            if p == 0:
                assert counts[i] == 0, (
                    f"task {i} has weight 0 but was drawn {counts[i]} times; observed frequencies {observed}"
                )
                continue
            # 6 standard deviations of a binomial count, plus a small absolute slack.
            margin = 6 * math.sqrt(num * p * (1 - p)) + 5
            assert abs(counts[i] - num * p) <= margin, (
                f"task {i}: observed frequencies {observed}, expected {[r / total for r in raw]}"
            )

    def test_metrics_closed_form(self):
        raw = [0.0, 1.0, 1.0, 2.0] + [0.5] * 10
        cur = _Weighted(DiscreteSpace(num_tasks=len(raw)), raw)
        p = [x / sum(raw) for x in raw]
        m = cur.metrics()
        assert m["curriculum/entropy"] == pytest.approx(-sum(q * math.log(q) for q in p if q > 0), rel=1e-5)
        assert m["curriculum/support"] == 13
        assert m["curriculum/top10_mass"] == pytest.approx(sum(sorted(p, reverse=True)[:10]), rel=1e-5)

    @pytest.mark.parametrize("device", get_default_devices())
    def test_round_trip(self, device):
        cur = _Weighted(DiscreteSpace(num_tasks=6), [1.0] * 6, seed=0, device=device)
        cur.sample(10)
        cur.state["raw"].copy_(torch.tensor([0.0, 1.0, 0.0, 3.0, 0.0, 1.0]))
        sd = cur.state_dict()
        expected = cur.sample(50)
        other = _Weighted(DiscreteSpace(num_tasks=6), [1.0] * 6, seed=5, device=device)
        other.load_state_dict(sd)
        assert torch.equal(other.sample(50), expected)
        assert set(expected.tolist()) <= {1, 3, 5}


class TestSampleFromWeights:
    def test_zero_weights_never_drawn(self):
        gen = torch.Generator().manual_seed(0)
        w = torch.tensor([0.0, 0.0, 1.0, 0.0, 2.0, 0.0])
        idx = sample_from_weights(w, 10_000, gen)
        assert set(idx.tolist()) == {2, 4}

    def test_many_categories(self):
        # torch.multinomial is limited to 2**24 categories; searchsorted is not. A cheaper check:
        # a single non-zero category at the end of a long vector is always drawn.
        w = torch.zeros(100_000)
        w[-1] = 1.0
        idx = sample_from_weights(w, 100, torch.Generator().manual_seed(0))
        assert idx.tolist() == [99_999] * 100


class TestValidators:
    def test_check_positive_int(self):
        assert check_positive_int("k", 3) == 3
        assert check_positive_int("k", 0, minimum=0) == 0
        for bad in (0, -1, 1.0, True, "2"):
            with pytest.raises(ValueError, match="k must be an int >= 1, got"):
                check_positive_int("k", bad)

    def test_check_probability(self):
        assert check_probability("p", 1) == 1.0
        assert check_probability("p", 0.0) == 0.0
        with pytest.raises(ValueError, match=r"p must lie in \(0, 1\], got 0.0"):
            check_probability("p", 0.0, open_low=True)
        with pytest.raises(ValueError, match=r"p must lie in \[0, 1\], got 1.5"):
            check_probability("p", 1.5)
        with pytest.raises(ValueError, match=r"p must be a finite number in \[0, 1\], got nan"):
            check_probability("p", float("nan"))
