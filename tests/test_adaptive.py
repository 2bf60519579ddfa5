"""Tests of the adaptive curricula and of currlearn.functional."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from currlearn import functional as F
from currlearn.base import Curriculum
from currlearn.curricula import alp_gmm
from currlearn.curricula.adr import ADRCurriculum
from currlearn.curricula.alp_gmm import ALPGMMCurriculum, fit_gmm
from currlearn.curricula.difficulty import CompetenceCurriculum, EasyFirstCurriculum
from currlearn.curricula.learning_progress import LearnabilityCurriculum, LearningProgressCurriculum
from currlearn.curricula.plr import PrioritizedLevelReplay, StepScore
from currlearn.feedback import episode_feedback
from currlearn.spaces import BoxSpace, DiscreteSpace
from currlearn.testing import get_default_devices

DEVICES = get_default_devices()


def _fb(tasks, returns=None, **extra) -> TensorDict:
    tasks = torch.as_tensor(tasks)
    n = tasks.shape[0]
    returns = torch.zeros(n) if returns is None else torch.as_tensor(returns, dtype=torch.float32)
    extra = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in extra.items()}
    success = extra.pop("success", None)
    return episode_feedback(tasks, returns, success=success, **extra)


def _space(n: int = 6, device: torch.device | None = None) -> DiscreteSpace:
    return DiscreteSpace(num_tasks=n, device=device)


def _box() -> BoxSpace:
    return BoxSpace({"a": 0.0, "b": -1.0}, {"a": 1.0, "b": 1.0})


def _close(a, b, tol=1e-5) -> None:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert torch.allclose(a, b, atol=tol), f"{a} != {b}"


# ---------------------------------------------------------------------- functional
class TestFunctional:
    def test_rank_weights_by_hand(self):
        w = F.rank_weights(torch.tensor([0.2, 0.5, 0.1]), temperature=1.0)
        _close(w, [1 / 2, 1.0, 1 / 3])
        w = F.rank_weights(torch.tensor([0.2, 0.5, 0.1]), temperature=0.5, mask=torch.tensor([True, False, True]))
        _close(w, [1.0, 0.0, 1 / 4])

    def test_power_staleness_normalize_mix(self):
        _close(F.power_weights(torch.tensor([0.2, 0.5, -1.0]), 0.5), [0.04, 0.25, 0.0])
        assert F.staleness_weights(torch.tensor([0, 3, 2**62]), 5).tolist() == [5, 2, 0]
        _close(F.normalize(torch.zeros(4), torch.tensor([True, True, False, False])), [0.5, 0.5, 0, 0])
        _close(F.mix_staleness(torch.tensor([0.25, 0.75]), torch.tensor([1.0, 0.0]), 0.2), [0.4, 0.6])
        _close(F.mix_staleness(torch.tensor([0.25, 0.75]), torch.zeros(2), 0.2), [0.25, 0.75])

    def test_batch_ema_and_group(self):
        _close(
            F.batch_ema(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([2.0]), 0.5, torch.tensor([True])),
            [0.25],
        )
        ids, n, (s,) = F.group_by_task(
            torch.tensor([3, 1, 3, 1]),
            torch.tensor([1.0, 2.0, 3.0, math.nan]),
            valid=torch.tensor([True, True, True, False]),
        )
        assert ids.tolist() == [1, 3]
        assert n.tolist() == [1.0, 2.0]
        assert s.tolist() == [2.0, 4.0]

    def test_integer_cdf_sampling_is_exact(self):
        cdf = torch.tensor([1, 1, 4])  # weights 1, 0, 3
        u = (torch.arange(4, dtype=torch.float64) + 0.5) / 4
        assert F.sample_from_cdf(cdf, u).tolist() == [0, 2, 2, 2]

    def test_effective_length_keeps_the_distribution(self):
        cdf = F.rank_cdf(10_000, 0.1)
        k = F.effective_length(cdf)
        assert k < 100
        assert bool((cdf[k - 1 :] == cdf[-1]).all())

    @settings(max_examples=60, deadline=None)
    @given(st.integers(1, 40), st.lists(st.integers(0, 39), max_size=60), st.integers(0, 2**31))
    def test_update_sorted_order_matches_a_sort(self, n, changes, seed):
        g = torch.Generator().manual_seed(seed)
        keys = torch.randint(-3, 4, (n,), generator=g).float()
        keys[torch.rand(n, generator=g) < 0.3] = -math.inf
        order = torch.sort(keys, descending=True, stable=True).indices
        idx = torch.tensor([c % n for c in changes], dtype=torch.long)
        keys[idx] = torch.randint(-3, 4, (idx.numel(),), generator=g).float()
        out = F.update_sorted_order(order, keys, idx)
        assert sorted(out.tolist()) == list(range(n)), "not a permutation"
        s = keys[out]
        assert bool((s[:-1] >= s[1:]).all()), f"not sorted: {s.tolist()}"

    @settings(max_examples=80, deadline=None)
    @given(st.integers(1, 40), st.integers(1, 40), st.lists(st.integers(0, 39), max_size=60), st.integers(0, 2**31))
    def test_update_topk_matches_a_full_topk(self, n, k, changes, seed):
        k = min(k, n)
        g = torch.Generator().manual_seed(seed)
        keys = torch.randint(-3, 4, (n,), generator=g).float()
        keys[torch.rand(n, generator=g) < 0.3] = -math.inf
        top = keys.topk(k).indices
        old_kth = keys[top[-1]].clone()
        idx = torch.tensor([c % n for c in changes], dtype=torch.long)
        keys[idx] = torch.randint(-3, 4, (idx.numel(),), generator=g).float()
        out = F.update_topk(top, old_kth, keys, idx)
        assert out.unique().numel() == k, "ids repeat"
        # the same multiset of keys as a full search, in descending order
        assert keys[out].tolist() == keys.topk(k).values.tolist()

    @settings(max_examples=40, deadline=None)
    @given(st.integers(1, 30), st.data())
    def test_partition_promote(self, n, data):
        boundary = data.draw(st.integers(0, n))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
        position = F.inverse_permutation(order)
        back = order[boundary:].tolist()
        ids = data.draw(st.lists(st.sampled_from(back), unique=True)) if back else []
        F.partition_promote(order, position, torch.tensor(ids, dtype=torch.long), boundary)
        front = set(order[: boundary + len(ids)].tolist())
        assert set(ids) <= front
        assert bool((F.inverse_permutation(order) == position).all())


# ---------------------------------------------------------------------- PLR
class TestPrioritizedLevelReplay:
    def _make(self, n=3, **kw) -> PrioritizedLevelReplay:
        kw.setdefault("seed", 0)
        return PrioritizedLevelReplay(_space(n), **kw)

    @pytest.mark.parametrize("temperature", [1.0, 0.1])  # sorted-order and top-k paths
    def test_rank_with_staleness_by_hand(self, temperature):
        plr = self._make(temperature=temperature, staleness_coef=0.5)
        plr.update(_fb([0, 1, 2], score=[0.2, 0.5, 0.1]))
        plr.state["timestamp"].copy_(torch.tensor([0, 2, 3]))
        plr.state["episode_count"].fill_(4)
        h = torch.tensor([1 / 2, 1.0, 1 / 3]) ** (1 / temperature)
        expected = 0.5 * h / h.sum() + 0.5 * torch.tensor([4.0, 2.0, 1.0]) / 7
        _close(plr.weights(), expected)

    def test_power_by_hand(self):
        plr = self._make(prioritization="power", temperature=0.5, staleness_coef=0.0)
        plr.update(_fb([0, 1, 2], score=[0.2, 0.5, 0.0]))
        _close(plr.weights(), [0.04 / 0.29, 0.25 / 0.29, 0.0])

    def test_power_with_zero_scores_replays_uniformly_over_seen_levels(self):
        plr = self._make(prioritization="power", replay_schedule="fixed", replay_prob=0.8, staleness_coef=0.0)
        plr.update(_fb([0, 1], score=[0.0, -1.0]))  # weights max(S, 0)^(1/T) are all 0
        _close(plr.weights(), [0.4, 0.4, 0.2])

    def test_proportionate_replay_against_unseen(self):
        plr = self._make(n=4, staleness_coef=0.0)
        plr.update(_fb([0], score=[1.0]))
        # replay with p = 1/4 (level 0), new level with 3/4 uniform over the 3 unseen
        _close(plr.replay_probability(), 0.25)
        _close(plr.weights(), [0.25, 0.25, 0.25, 0.25])
        plr.update(_fb([1], score=[2.0]))
        # p = 1/2; ranks: level 1 first (1), level 0 (1/2) at temperature 0.1 -> 2^-10
        h = torch.tensor([2.0**-10, 1.0])
        expected = torch.cat([0.5 * h / h.sum(), torch.tensor([0.25, 0.25])])
        _close(plr.weights(), expected)

    def test_min_seen_fraction(self):
        plr = self._make(n=4, min_seen_fraction=0.5, staleness_coef=0.0)
        plr.update(_fb([0], score=[1.0]))
        _close(plr.replay_probability(), 0.0)  # 1/4 seen < 1/2
        plr.update(_fb([1], score=[1.0]))
        _close(plr.replay_probability(), 0.5)
        with pytest.raises(ValueError, match="min_seen_fraction must lie in"):
            self._make(min_seen_fraction=1.5)

    def test_fixed_schedule_and_robust(self):
        plr = self._make(n=2, replay_schedule="fixed", replay_prob=0.8, staleness_coef=0.0)
        _close(plr.replay_probability(), 0.0)
        plr.update(_fb([0], score=[1.0]))
        _close(plr.weights(), [0.8, 0.2])  # new level with 1 - replay_prob
        plr.update(_fb([1], score=[0.5]))
        _close(plr.replay_probability(), 1.0)  # all seen: always replay (reference code)
        rob = self._make(
            n=2, replay_schedule="fixed", replay_prob=0.8, staleness_coef=0.0, temperature=1.0, robust=True
        )
        rob.update(_fb([0, 1], score=[1.0, 0.5]))
        _close(rob.replay_probability(), 0.8)
        _close(rob.weights(), 0.8 * torch.tensor([2 / 3, 1 / 3]) + 0.2 * torch.tensor([0.5, 0.5]))

    def test_score_ema_and_batches(self):
        plr = self._make(smoothing=0.5)
        plr.update(_fb([0], score=[1.0]))  # first score initialises
        plr.update(_fb([0], score=[0.0]))
        _close(plr.state["score"][0], 0.5)
        plr.update(_fb([0, 0], score=[1.0, 0.0]))  # two episodes, mean 0.5: 0.25*0.5 + 0.75*0.5
        _close(plr.state["score"][0], 0.5)
        latest = self._make()
        latest.update(_fb([1, 1], score=[1.0, 3.0]))
        _close(latest.state["score"][1], 2.0)

    def test_max_mc(self):
        plr = self._make(score_function="max_mc")
        plr.update(_fb([0], [5.0], value_mean=[2.0]))
        _close(plr.state["score"][0], 3.0)
        plr.update(_fb([0], [1.0], value_mean=[4.0]))  # max return stays 5
        _close(plr.state["score"][0], 1.0)
        with pytest.raises(ValueError, match="value_mean"):
            plr.update(_fb([0], [1.0], score=[4.0]))

    def test_nan_scores_are_counted_and_skipped(self):
        plr = self._make()
        plr.update(_fb([0, 1], score=[math.nan, 0.5]))
        assert plr.metrics()["curriculum/skipped_nonfinite"] == 1
        assert not bool(plr.state["seen"][0])
        assert bool(plr.state["seen"][1])
        w = plr.weights()
        assert torch.isfinite(w).all()
        assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-5)

    def test_missing_score_key(self):
        with pytest.raises(ValueError, match="make_tracker"):
            self._make().update(_fb([0]))

    @pytest.mark.parametrize(
        ("prioritization", "temperature", "robust"), [("rank", 1.0, False), ("rank", 0.1, True), ("power", 0.5, False)]
    )
    def test_sampling_follows_weights(self, prioritization, temperature, robust):
        plr = PrioritizedLevelReplay(
            _space(8),
            prioritization=prioritization,
            temperature=temperature,
            staleness_coef=0.3,
            replay_schedule="fixed",
            robust=robust,
            seed=1,
        )
        plr.update(_fb([0, 1, 2, 3, 4], score=[0.1, 0.9, 0.4, 0.4, 0.0]))
        plr.sample(5)
        w = plr.weights()
        sd = plr.state_dict()
        counts = torch.zeros(8)
        for _ in range(50):
            plr.load_state_dict(sd, load_rng=False)  # same state, fresh randomness
            counts += torch.bincount(plr.sample(400), minlength=8)
        freq = counts / counts.sum()
        assert (freq - w).abs().max() < 0.01, f"sampled {freq.tolist()} vs weights {w.tolist()}"

    def test_per_env_replay_decision(self):
        plr = self._make(n=4, num_envs=3, replay_schedule="fixed", replay_prob=0.5, robust=True)
        assert plr.env_replay.tolist() == [True, True, True]
        plr.sample(env_ids=torch.tensor([0, 2]))
        assert plr.env_replay.tolist() == [False, True, False]  # nothing seen: all new
        assert plr.last_sample_is_replay.tolist() == [False, False]
        plr.update(_fb([0, 1, 2, 3], score=[1.0, 2.0, 3.0, 4.0]))
        plr.sample(env_ids=torch.arange(3))
        assert plr.env_replay.tolist() == plr.last_sample_is_replay.tolist()

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"score_function='td'.*l1_value_loss"):
            self._make(score_function="td")
        with pytest.raises(ValueError, match=r"prioritization='best'.*\['rank', 'power', 'softmax'"):
            self._make(prioritization="best")
        with pytest.raises(ValueError, match=r"replay_schedule='always'.*proportionate"):
            self._make(replay_schedule="always")
        for t in (0.0, -1.0):
            with pytest.raises(ValueError, match="temperature must be > 0"):
                self._make(temperature=t)
        with pytest.raises(ValueError, match="temperature must be a finite number"):
            self._make(temperature=math.inf)
        for rho in (-0.1, 1.5):
            with pytest.raises(ValueError, match="staleness_coef must lie in"):
                self._make(staleness_coef=rho)
        with pytest.raises(ValueError, match="replay_prob must lie in"):
            self._make(replay_prob=2.0)
        with pytest.raises(ValueError, match="smoothing must lie in"):
            self._make(smoothing=0.0)
        with pytest.raises(TypeError, match="needs a discrete task space"):
            PrioritizedLevelReplay(_box())
        with pytest.raises(ValueError, match="num_tasks >= 1"):
            PrioritizedLevelReplay(DiscreteSpace(num_tasks=0))


class TestStepScore:
    def _batch(self, **extra) -> TensorDict:
        data = {
            "advantage": torch.tensor([[[-1.0], [2.0], [0.5]]]),
            "state_value": torch.tensor([[[1.0], [2.0], [3.0]]]),
            "next": {
                "state_value": torch.tensor([[[2.0], [3.0], [9.0]]]),
                "reward": torch.tensor([[[1.0], [0.0], [1.0]]]),
                "terminated": torch.tensor([[[False], [False], [True]]]),
            },
            **extra,
        }
        return TensorDict(data, batch_size=[1, 3])

    def test_scores_by_hand(self):
        b = self._batch(
            action_log_prob=torch.tensor([[-1.0, -2.0, -0.5]]),
            logits=torch.log(torch.tensor([[[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05]]])),
        )
        _close(StepScore("l1_value_loss")(b), [[1.0, 2.0, 0.5]])
        _close(StepScore("positive_value_loss")(b), [[0.0, 2.0, 0.5]])
        _close(StepScore("max_mc")(b), [[1.0, 2.0, 3.0]])
        _close(StepScore("one_step_td_error", gamma=0.5)(b), [[1.0, 0.5, 2.0]])  # |1+1-1|, |0+1.5-2|, |1+0-3|
        _close(StepScore("least_confidence")(b), [[0.5, 2 / 3, 0.1]])
        _close(StepScore("min_margin")(b), [[0.8, 1.0, 0.15]])
        ent = StepScore("policy_entropy")(b)
        _close(ent[0, 1], 1.0)  # uniform: normalised entropy 1
        no_logits = b.exclude("logits")
        _close(StepScore("policy_entropy")(no_logits), [[1.0, 2.0, 0.5]])  # -log prob
        b["entropy"] = torch.full((1, 3), 0.7)
        _close(StepScore("policy_entropy", entropy_key="entropy")(b), [[0.7, 0.7, 0.7]])

    def test_raw_gae_from_value_target(self):
        b = self._batch(value_target=torch.tensor([[[3.0], [1.0], [3.0]]]))  # GAE = target - value = 2, -1, 0
        _close(StepScore("l1_value_loss")(b), [[2.0, 1.0, 0.0]])
        _close(StepScore("positive_value_loss")(b), [[2.0, 0.0, 0.0]])
        _close(StepScore("l1_value_loss", value_target_key=None)(b), [[1.0, 2.0, 0.5]])

    def test_min_margin_needs_logits(self):
        with pytest.raises(ValueError, match="discrete actions only"):
            StepScore("min_margin")(self._batch())
        with pytest.raises(ValueError, match="needs advantages"):
            StepScore("l1_value_loss")(TensorDict({}, [1, 3]))
        with pytest.raises(ValueError, match=r"score_function='x' is not one of"):
            StepScore("x")

    def test_tracker_end_to_end(self):
        plr = PrioritizedLevelReplay(_space(4), seed=0)
        tracker = plr.make_tracker()
        done = torch.tensor([[False, True, False, True]])
        batch = TensorDict(
            {
                "advantage": torch.tensor([[1.0, -3.0, 2.0, 2.0]]).unsqueeze(-1),
                "next": {
                    "task_id": torch.tensor([[2, 2, 3, 3]]),
                    "reward": torch.zeros(1, 4, 1),
                    "done": done.unsqueeze(-1),
                },
            },
            [1, 4],
        )
        plr.update(tracker(batch))
        _close(plr.state["score"][2:], [2.0, 2.0])  # mean |A| per episode


# ---------------------------------------------------------------------- learning progress / learnability
class TestLearningProgressCurriculum:
    def test_by_hand(self):
        cur = LearningProgressCurriculum(_space(3), fast_rate=0.5, slow_rate=0.5, reweight_theta=0.5, seed=0)
        cur.update(_fb([0, 1], success=[1.0, 0.0]))
        cur.update(_fb([0], success=[0.0]))
        _close(cur.state["p_fast"][0], 0.5)
        _close(cur.state["p_slow"][0], 0.75)
        _close(cur.learning_progress(), [0.25, 0.0, 0.0])
        s = torch.sigmoid(torch.tensor([1.0, -1.0, 0.0]))  # z-scores over played tasks; unplayed: 0
        _close(cur.weights(), s / s.sum())

    def test_reweighting_and_uniform_share(self):
        cur = LearningProgressCurriculum(_space(2), reweight_theta=0.1, uniform_share=0.5, seed=0)
        _close(cur._reweight(torch.tensor([0.5, 0.1, 0.0, 1.0])), [0.9, 0.5, 0.0, 1.0])
        _close(cur.weights(), [0.5, 0.5])

    def test_nan_and_bad_inputs(self):
        cur = LearningProgressCurriculum(_space(3), seed=0)
        cur.update(_fb([0, 1]))  # success unknown (NaN): skipped, counted
        assert cur.metrics()["curriculum/skipped_nonfinite"] == 2
        assert int(cur.state["count"].sum()) == 0
        with pytest.raises(ValueError, match=r"metric='reward' is not one of"):
            LearningProgressCurriculum(_space(), metric="reward")
        with pytest.raises(ValueError, match="fast_rate must lie in"):
            LearningProgressCurriculum(_space(), fast_rate=0.0)
        with pytest.raises(ValueError, match="reweight_theta must lie in"):
            LearningProgressCurriculum(_space(), reweight_theta=1.0)
        with pytest.raises(ValueError, match="uniform_share must lie in"):
            LearningProgressCurriculum(_space(), uniform_share=-0.5)


class TestLearnabilityCurriculum:
    def test_proportional_by_hand(self):
        cur = LearnabilityCurriculum(_space(3), sampling="proportional", learnable_prob=0.5, smoothing=1.0, seed=0)
        cur.update(_fb([0, 0, 1, 1, 1, 1, 2], success=[1, 0, 1, 0, 0, 0, 1]))
        learn = torch.tensor([0.25, 0.1875, 0.0])
        _close(cur.learnability(), learn)
        _close(cur.weights(), 0.5 * learn / learn.sum() + 0.5 / 3)

    def test_topk_and_nothing_learnable(self):
        cur = LearnabilityCurriculum(_space(4), topk=1, learnable_prob=1.0, smoothing=1.0, seed=0)
        _close(cur.weights(), [0.25] * 4)  # nothing learnable: uniform
        cur.update(_fb([0, 0, 1, 1, 1, 1], success=[1, 0, 1, 0, 0, 0]))
        _close(cur.weights(), [1.0, 0, 0, 0])
        assert set(cur.sample(50).tolist()) == {0}

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"sampling='greedy' is not one of \['topk', 'proportional'\]"):
            LearnabilityCurriculum(_space(), sampling="greedy")
        with pytest.raises(ValueError, match="topk must be an int >= 1"):
            LearnabilityCurriculum(_space(), topk=0)
        with pytest.raises(ValueError, match="learnable_prob must lie in"):
            LearnabilityCurriculum(_space(), learnable_prob=1.1)


# ---------------------------------------------------------------------- difficulty
class TestEasyFirstCurriculum:
    def test_bins_quantiles_and_ties(self):
        cur = EasyFirstCurriculum(_space(4), num_bins=2, smoothing=1.0, seed=0)
        cur.update(_fb([0, 1, 2, 3], [1.0, 1.0, 0.0, 0.0]))
        assert cur.bins().tolist() == [0, 0, 1, 1]
        cur.update(_fb([2], [1.0]))  # ties across the quantile boundary share the easier bin
        assert cur.bins().tolist() == [0, 0, 0, 1]

    def test_weights_by_hand_and_annealing(self):
        cur = EasyFirstCurriculum(_space(4), num_bins=2, temperature=1.0, anneal_iterations=2, smoothing=1.0, seed=0)
        cur.update(_fb([0, 1, 2, 3], [1.0, 0.0, 0.9, 0.1]))
        e = math.exp(-1)
        _close(cur.weights(), torch.tensor([1, e, 1, e]) / (2 + 2 * e))
        cur.step()
        e = math.exp(-0.5)
        _close(cur.weights(), torch.tensor([1, e, 1, e]) / (2 + 2 * e))
        cur.step()
        _close(cur.weights(), [0.25] * 4)

    def test_unplayed_items_count_as_easiest(self):
        cur = EasyFirstCurriculum(_space(4), num_bins=2, smoothing=1.0, seed=0)
        cur.update(_fb([0, 1], [5.0, 6.0]))
        assert cur.bins().tolist() == [1, 1, 0, 0]
        prior = EasyFirstCurriculum(_space(4), num_bins=2, smoothing=1.0, initial_value=0.0, seed=0)
        prior.update(_fb([0, 1], [5.0, 6.0]))
        assert prior.bins().tolist() == [0, 0, 1, 1]

    def test_sampling_follows_weights(self):
        cur = EasyFirstCurriculum(_space(10), num_bins=3, temperature=0.5, seed=0)
        cur.update(_fb(torch.arange(10), torch.arange(10.0)))
        w = cur.weights()
        freq = torch.bincount(cur.sample(100_000), minlength=10) / 100_000
        assert (freq - w).abs().max() < 0.01, f"sampled {freq.tolist()} vs weights {w.tolist()}"

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="num_bins must be an int >= 1, got 0"):
            EasyFirstCurriculum(_space(), num_bins=0)
        with pytest.raises(ValueError, match="temperature must be > 0"):
            EasyFirstCurriculum(_space(), temperature=0.0)
        with pytest.raises(ValueError, match="anneal_iterations must be an int >= 1"):
            EasyFirstCurriculum(_space(), anneal_iterations=0)
        with pytest.raises(ValueError, match=r"metric='loss' is not one of"):
            EasyFirstCurriculum(_space(), metric="loss")


class TestCompetenceCurriculum:
    def test_competence_by_hand(self):
        sq = CompetenceCurriculum(_space(), anneal_iterations=100, initial_competence=0.01)
        lin = CompetenceCurriculum(_space(), anneal_iterations=100, initial_competence=0.01, schedule="linear")
        _close(sq.competence(), 0.01)
        for _ in range(25):
            sq.step()
            lin.step()
        _close(sq.competence(), math.sqrt(0.25 * (1 - 1e-4) + 1e-4))
        _close(lin.competence(), 0.25 * 0.99 + 0.01)

    def test_bin_weights_by_hand(self):
        cur = CompetenceCurriculum(
            _space(4), num_bins=2, temperature=0.1, initial_competence=0.2, smoothing=1.0, seed=0
        )
        cur.update(_fb([0, 1, 2, 3], [4.0, 3.0, 2.0, 1.0]))
        w0, w1 = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(-3.0))
        _close(cur.weights(), torch.tensor([w0, w0, w1, w1]) / (2 * w0 + 2 * w1))

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"schedule='exp' is not one of \['sqrt', 'linear'\]"):
            CompetenceCurriculum(_space(), schedule="exp")
        with pytest.raises(ValueError, match="initial_competence must lie in"):
            CompetenceCurriculum(_space(), initial_competence=0.0)
        with pytest.raises(ValueError, match="num_bins must be an int >= 1"):
            CompetenceCurriculum(_space(), num_bins=-2)


# ---------------------------------------------------------------------- ALP-GMM
class TestALPGMMCurriculum:
    def test_alp_by_hand(self):
        box = BoxSpace({"x": 0.0}, {"x": 1.0})
        one = ALPGMMCurriculum(box, fit_interval=100, fit_window=2, max_components=2, history_capacity=10, seed=0)
        one.update(_fb(torch.tensor([[0.0], [1.0], [0.9]]), [0.0, 1.0, 0.2]))
        _close(one.state["alp"][:3], [0.0, 1.0, 0.8])  # |r - r(nearest earlier task)|
        seq = ALPGMMCurriculum(box, fit_interval=100, fit_window=2, max_components=2, history_capacity=10, seed=0)
        for x, r in [(0.0, 0.0), (1.0, 1.0), (0.9, 0.2)]:
            seq.update(_fb(torch.tensor([[x]]), [r]))
        _close(seq.state["alp"][:3], [0.0, 1.0, 0.8])

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dim", [1, 2, 3])
    @pytest.mark.parametrize("small_blocks", [False, True])
    def test_nearest_matches_brute_force(self, device, dim, small_blocks, monkeypatch):
        if small_blocks:  # many blocks and chunks, with chunk edges inside blocks
            monkeypatch.setattr(alp_gmm, "_NN_BLOCK", 8)
            monkeypatch.setattr(alp_gmm, "_NN_CHUNK_CPU", 7 * 8 * 20)
            monkeypatch.setattr(alp_gmm, "_NN_CHUNK_DEVICE", 7 * 8 * 20)
        g = torch.Generator().manual_seed(dim)
        box = BoxSpace({f"p{i}": -1.0 for i in range(dim)}, {f"p{i}": 3.0 for i in range(dim)}, device=device)
        for capacity, filled, m in [(100, 37, 45), (100, 0, 30), (40, 95, 35)]:  # partly filled, empty, wrapped
            cur = ALPGMMCurriculum(
                box, fit_interval=10_000, fit_window=2, max_components=2, history_capacity=capacity, seed=0
            )
            returns = torch.randperm(filled + m, generator=g).float()  # distinct: the return names the neighbour
            if filled:
                cur.update(_fb(torch.rand(filled, dim, generator=g) * 4 - 1, returns[:filled]))
            tasks = torch.rand(m, dim, generator=g) * 4 - 1
            tasks[5] = tasks[2]  # an exact duplicate inside the batch
            x, r = cur._normalise(tasks.to(device)), returns[filled:].to(device)
            got, has_old = cur._nearest_returns(x, r)
            # Reference: cdist + argmin over the filled history and the earlier rows of the batch.
            size = int(cur.state["size"])
            cand = torch.cat([cur.state["tasks"][:size], x]).double()
            dist = torch.cdist(x.double(), cand, compute_mode="donot_use_mm_for_euclid_dist")
            later = torch.arange(size + m, device=device) >= size + torch.arange(m, device=device).unsqueeze(1)
            best, idx = dist.masked_fill(later, math.inf).min(1)
            expected = torch.cat([cur.state["returns"][:size], r])[idx]
            assert torch.equal(has_old, torch.isfinite(best))
            assert torch.equal(got[has_old], expected[has_old]), f"capacity={capacity} filled={filled}"
            assert float(got[5]) == float(r[2])  # an exact duplicate is the nearest earlier task
            # A curriculum restored from the state dict searches the same history.
            fresh = ALPGMMCurriculum(
                box, fit_interval=10_000, fit_window=2, max_components=2, history_capacity=capacity, seed=0
            )
            fresh.load_state_dict(cur.state_dict())
            assert torch.equal(fresh._nearest_returns(x, r)[0], got)

    def test_nearest_ties_prefer_history(self):
        box = BoxSpace({"x": 0.0}, {"x": 1.0})
        cur = ALPGMMCurriculum(box, fit_interval=100, fit_window=2, max_components=2, history_capacity=10, seed=0)
        cur.update(_fb(torch.tensor([[0.5]]), [1.0]))
        cur.update(_fb(torch.tensor([[0.5], [0.5], [0.25]]), [2.0, 4.0, 8.0]))
        _close(cur.state["alp"][:4], [0.0, 1.0, 3.0, 7.0])  # ties at distance 0: the history task (return 1)

    def test_ring_buffer_wraps(self):
        cur = ALPGMMCurriculum(
            BoxSpace({"x": 0.0}, {"x": 1.0}),
            fit_interval=100,
            fit_window=2,
            max_components=2,
            history_capacity=5,
            seed=0,
        )
        cur.update(_fb(torch.linspace(0, 1, 7).unsqueeze(-1), torch.arange(7.0)))
        assert int(cur.state["size"]) == 5
        assert int(cur.state["cursor"]) == 0
        assert sorted(cur.state["returns"].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]

    def test_fit_concentrates_on_progress(self):
        box = BoxSpace({"x": 0.0}, {"x": 1.0})
        cur = ALPGMMCurriculum(box, random_share=0.0, fit_interval=200, max_components=3, seed=0)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(200, 1, generator=g)
        ret = torch.where(
            x[:, 0] > 0.7, torch.rand(200, generator=g) * 10, torch.zeros(200)
        )  # progress only at x > 0.7
        cur.update(_fb(x, ret))
        assert bool(cur.state["fitted"])
        t = cur.sample(2000)
        assert ((t >= 0) & (t <= 1)).all()
        assert float((t > 0.6).float().mean()) > 0.7, f"mean task {float(t.mean()):.3f}: the GMM should favour x > 0.7"

    def test_random_share_one_is_uniform(self):
        cur = ALPGMMCurriculum(_box(), random_share=1.0, fit_interval=20, max_components=2, seed=0)
        cur.update(_fb(cur.sample(20), torch.rand(20)))
        t = cur.sample(20_000)
        _close(t.mean(0), [0.5, 0.0], tol=0.02)

    def test_fit_gmm_picks_two_clusters(self):
        g = torch.Generator().manual_seed(0)
        x = torch.cat([torch.randn(150, 2, generator=g) * 0.1, torch.randn(150, 2, generator=g) * 0.1 + 3]).double()
        fit = fit_gmm(x, [1, 2, 3], 3, generator=g)
        assert int(fit["aic"].argmin()) >= 1
        assert torch.isfinite(fit["log_likelihood"]).all()

    def test_bad_inputs(self):
        with pytest.raises(TypeError, match="needs a BoxSpace"):
            ALPGMMCurriculum(_space())
        with pytest.raises(ValueError, match="random_share must lie in"):
            ALPGMMCurriculum(_box(), random_share=1.5)
        with pytest.raises(ValueError, match="fit_window=30 must be <= history_capacity=10"):
            ALPGMMCurriculum(_box(), fit_window=30, history_capacity=10)
        with pytest.raises(ValueError, match="fit_window=3 must be >= max_components=10"):
            ALPGMMCurriculum(_box(), fit_window=3)
        with pytest.raises(ValueError, match=r"metric='x' is not one of"):
            ALPGMMCurriculum(_box(), metric="x")


# ---------------------------------------------------------------------- ADR
class TestADRCurriculum:
    def _make(self, **kw) -> ADRCurriculum:
        kw.setdefault("seed", 0)
        return ADRCurriculum(BoxSpace({"m": 0.0, "l": 0.0}, {"m": 1.0, "l": 1.0}), initial={"m": 0.5, "l": 0.5}, **kw)

    def test_widen_narrow_by_hand(self):
        adr = self._make(delta=0.1, buffer_size=2)
        adr.update(_fb(torch.tensor([[0.5, 0.5], [0.5, 0.5]]), success=[1.0, 1.0]))
        _close(adr.low, [0.4, 0.4])
        _close(adr.high, [0.6, 0.6])
        # m at its high boundary, l inside: only (m, high) collects; poor -> narrow it.
        adr.update(_fb(torch.tensor([[0.6, 0.45], [0.6, 0.5]]), success=[0.0, 0.0]))
        _close(adr.high, [0.5, 0.6])
        _close(adr.low, [0.4, 0.4])
        # in-between performance: no move, buffer cleared
        adr.update(_fb(torch.tensor([[0.4, 0.45], [0.4, 0.5]]), success=[1.0, 0.0]))
        _close(adr.low, [0.4, 0.4])
        assert int(adr.state["counts"].sum()) == 0

    def test_per_parameter_steps(self):
        adr = self._make(delta=0.1, deltas={"l": 0.2}, buffer_size=1)
        adr.update(_fb(torch.tensor([[0.5, 0.5]]), success=[1.0]))
        _close(adr.high, [0.6, 0.7])

    def test_box_limits_and_no_inversion(self):
        adr = self._make(delta=1.0, buffer_size=1)
        adr.update(_fb(torch.tensor([[0.5, 0.5]]), success=[1.0]))
        _close(adr.low, [0.0, 0.0])
        _close(adr.high, [1.0, 1.0])
        adr.update(_fb(torch.tensor([[0.0, 0.3], [1.0, 0.3]]), success=[0.0, 0.0]))
        assert bool((adr.low <= adr.high).all()), (adr.low, adr.high)

    def test_sampling_in_range_and_boundaries(self):
        adr = self._make(delta=0.2, buffer_size=1, boundary_prob=1.0)
        adr.update(_fb(torch.tensor([[0.5, 0.5]]), success=[1.0]))
        t = adr.sample(1000)
        assert bool(((t >= adr.low) & (t <= adr.high)).all())
        at_boundary = ((t == adr.low) | (t == adr.high)).any(-1)
        assert bool(at_boundary.all())
        free = self._make(delta=0.2, buffer_size=1, boundary_prob=0.0)
        free.update(_fb(torch.tensor([[0.5, 0.5]]), success=[1.0]))
        assert not bool(((free.sample(1000) == free.low) | (free.sample(1000) == free.high)).all(-1).any())

    def test_nan_counted(self):
        adr = self._make(buffer_size=1)
        adr.update(_fb(torch.tensor([[0.5, 0.5]])))  # success NaN
        assert adr.metrics()["curriculum/skipped_nonfinite"] == 1
        _close(adr.low, [0.5, 0.5])

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"low_threshold=0\.9 must be < high_threshold=0\.8"):
            self._make(low_threshold=0.9)
        with pytest.raises(ValueError, match=r"delta must be > 0, got 0\.0"):
            self._make(delta=0.0)
        with pytest.raises(ValueError, match=r"deltas\['m'\] must be > 0"):
            self._make(deltas={"m": -1.0})
        with pytest.raises(ValueError, match="deltas has unknown parameter"):
            self._make(deltas={"x": 1.0})
        with pytest.raises(ValueError, match=r"initial\['m'\]=2.0 is outside the box"):
            ADRCurriculum(BoxSpace({"m": 0.0}, {"m": 1.0}), initial={"m": 2.0})
        with pytest.raises(ValueError, match="unknown parameter"):
            ADRCurriculum(BoxSpace({"m": 0.0}, {"m": 1.0}), initial={"mass": 0.5})
        with pytest.raises(ValueError, match="boundary_prob must lie in"):
            self._make(boundary_prob=2.0)
        with pytest.raises(TypeError, match="needs a BoxSpace"):
            ADRCurriculum(_space())


# ---------------------------------------------------------------------- shared contract
DISCRETE_FACTORIES: dict[str, Callable[..., Curriculum]] = {
    "plr_rank": lambda n, d=None: PrioritizedLevelReplay(_space(n, d), temperature=0.1, seed=3),
    "plr_sorted": lambda n, d=None: PrioritizedLevelReplay(_space(n, d), temperature=1.0, seed=3),
    "plr_power_robust": lambda n, d=None: PrioritizedLevelReplay(
        _space(n, d), prioritization="power", robust=True, replay_schedule="fixed", num_envs=4, seed=3
    ),
    "learning_progress": lambda n, d=None: LearningProgressCurriculum(_space(n, d), uniform_share=0.1, seed=3),
    "learnability": lambda n, d=None: LearnabilityCurriculum(_space(n, d), topk=3, seed=3),
    "learnability_prop": lambda n, d=None: LearnabilityCurriculum(_space(n, d), sampling="proportional", seed=3),
    "easy_first": lambda n, d=None: EasyFirstCurriculum(_space(n, d), num_bins=3, anneal_iterations=5, seed=3),
    "competence": lambda n, d=None: CompetenceCurriculum(_space(n, d), num_bins=3, anneal_iterations=5, seed=3),
}


def _box_of(n: int, device: torch.device | None = None) -> BoxSpace:
    dims = 2 + n % 2  # 6 -> 2 parameters, 7 -> 3: a mismatched checkpoint
    return BoxSpace({f"p{i}": -1.0 for i in range(dims)}, {f"p{i}": 1.0 for i in range(dims)}, device=device)


BOX_FACTORIES: dict[str, Callable[..., Curriculum]] = {
    "alp_gmm": lambda n, d=None: ALPGMMCurriculum(
        _box_of(n, d), fit_interval=10, max_components=3, history_capacity=64, seed=3
    ),
    "adr": lambda n, d=None: ADRCurriculum(_box_of(n, d), delta=0.1, buffer_size=2, seed=3),
}
ALL_FACTORIES = {**DISCRETE_FACTORIES, **BOX_FACTORIES}


def _feed(cur: Curriculum, rounds: int = 3, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(rounds):
        tasks = cur.sample(12)
        k = tasks.shape[0]
        score = torch.rand(k, generator=g)
        cur.update(
            episode_feedback(
                tasks,
                torch.rand(k, generator=g),
                success=(torch.rand(k, generator=g) < 0.5).float(),
                score=score,
                value_mean=score,
            )
        )
        cur.step(k)


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
class TestCheckpointContract:
    @pytest.mark.parametrize("device", DEVICES)
    def test_round_trip(self, name, device):
        cur = ALL_FACTORIES[name](6, device)
        _feed(cur)
        sd = cur.state_dict()
        expected = cur.sample(16)
        assert expected.device == device
        fresh = ALL_FACTORIES[name](6, device)
        fresh.load_state_dict(sd)
        assert torch.equal(fresh.sample(16), expected)
        cur.load_state_dict(sd)
        assert torch.equal(cur.sample(16), expected)

    def test_no_aliasing(self, name):
        cur = ALL_FACTORIES[name](6)
        _feed(cur)
        sd = cur.state_dict()
        fresh = ALL_FACTORIES[name](6)
        fresh.load_state_dict(sd)
        before = {k: v.clone() for k, v in fresh.state_dict()["state"].items()}
        for v in sd["state"].values():
            v.zero_() if v.dtype != torch.bool else v.fill_(False)
        _feed(cur, rounds=1, seed=1)
        after = fresh.state_dict()["state"]
        assert all(torch.equal(before[k], after[k]) for k in before)

    def test_mismatched_checkpoint_raises_and_changes_nothing(self, name):
        cur = ALL_FACTORIES[name](6)
        _feed(cur)
        other = ALL_FACTORIES[name](7)
        before = cur.state_dict()
        with pytest.raises(ValueError, match="state_dict"):
            cur.load_state_dict(other.state_dict())
        after = cur.state_dict()
        assert all(torch.equal(before["state"][k], after["state"][k]) for k in before["state"])
        assert torch.equal(before["rng"], after["rng"])


def _is_distribution(w: torch.Tensor) -> bool:
    return bool(torch.isfinite(w).all() and (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-4)


score_streams = st.lists(
    st.lists(
        st.tuples(st.integers(0, 7), st.one_of(st.floats(-10, 10), st.just(math.nan), st.just(math.inf))),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=5,
)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(DISCRETE_FACTORIES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=score_streams)
def test_probabilities_stay_a_distribution(name, device, stream):
    cur = DISCRETE_FACTORIES[name](8, device)
    for batch in stream:
        tasks = torch.tensor([t for t, _ in batch])
        v = torch.tensor([s for _, s in batch], dtype=torch.float32)
        success = torch.where(torch.isfinite(v), (v > 0).float(), v)
        cur.update(
            episode_feedback(tasks, torch.where(torch.isfinite(v), v, 0.0), success=success, score=v, value_mean=v)
        )
        cur.step(1)
        w = cur.weights()
        assert _is_distribution(w), f"weights {w.tolist()} after {batch}"
        assert w.device == cur.device
        t = cur.sample(32)
        assert bool(((t >= 0) & (t < 8)).all())


@pytest.mark.parametrize("name", sorted(BOX_FACTORIES))
@settings(max_examples=15, deadline=None)
@given(
    returns=st.lists(
        st.lists(st.one_of(st.floats(-100, 100), st.just(math.nan)), min_size=1, max_size=15), min_size=1, max_size=4
    )
)
def test_continuous_tasks_stay_in_the_box(name, returns):
    cur = BOX_FACTORIES[name](6)
    box = cur.space
    for batch in returns:
        tasks = cur.sample(len(batch))
        v = torch.tensor(batch, dtype=torch.float32)
        success = torch.where(torch.isfinite(v), (v > 0).float(), v)
        cur.update(episode_feedback(tasks, torch.where(torch.isfinite(v), v, math.nan), success=success))
        t = cur.sample(64)
        assert bool(torch.isfinite(t).all())
        assert bool(((t >= box.low) & (t <= box.high)).all()), t


def test_plr_scores_a_real_ppo_loop():
    """Robust PLR in TorchRL's PPO Trainer: scores come from the GAE of the collected batch."""
    from torchrl.envs import Compose, TransformedEnv
    from torchrl.objectives.value import GAE
    from torchrl.trainers import ValueEstimatorHook

    from currlearn.envs.point_mass import PointMassGateEnv
    from currlearn.integrations.replay import ReplayDecisionTransform
    from currlearn.integrations.torchrl import CurriculumHook, CurriculumTransform
    from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer

    torch.manual_seed(0)
    plr = PrioritizedLevelReplay(
        DiscreteSpace({"gate_width": [0.5, 1.0, 2.0, 4.0, 8.0]}),
        robust=True,
        replay_schedule="fixed",
        num_envs=8,
        seed=0,
    )
    transform = CurriculumTransform(plr)
    env = TransformedEnv(PointMassGateEnv(8, max_steps=16, seed=0), Compose(transform, ReplayDecisionTransform(plr)))
    settings = PPOSettings(frames_per_batch=256, total_frames=768, num_epochs=1, minibatch_size=128, hidden=16)
    trainer, _ = make_ppo_trainer(env, None, settings)
    try:
        # TorchRL's ValueEstimatorHook runs at "pre_epoch", after "batch_process" where the
        # curriculum reads the batch: compute the GAE at batch time too, before the curriculum.
        gae = GAE(gamma=settings.gamma, lmbda=settings.lmbda, value_network=trainer.loss_module.critic_network)
        trainer.register_op("batch_process", ValueEstimatorHook(gae))
        CurriculumHook(plr, transform=transform, tracker=plr.make_tracker()).register(trainer)
        trainer.train()
    finally:
        trainer.shutdown()
    assert int(plr.state["num_seen"]) == 5
    seen_scores = plr.state["score"][plr.state["seen"]]
    assert bool(torch.isfinite(seen_scores).all())
    assert bool((seen_scores >= 0).all())
    assert plr.metrics()["curriculum/skipped_nonfinite"] == 0
    assert _is_distribution(plr.weights())
