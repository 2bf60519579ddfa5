"""PLR's score transforms (by hand), the one replay distribution that weights() and sample()
share, and the numerics of extreme scores."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from currlearn import functional as F
from currlearn.curricula.plr import PRIORITIZATIONS, PrioritizedLevelReplay, _match_key
from currlearn.feedback import episode_feedback
from currlearn.spaces import DiscreteSpace
from currlearn.testing import get_default_devices

DEVICES = get_default_devices()

F32_MAX = torch.finfo(torch.float32).max


def _fb(tasks, returns=None, **extra) -> TensorDict:
    tasks = torch.as_tensor(tasks)
    n = tasks.shape[0]
    returns = torch.zeros(n) if returns is None else torch.as_tensor(returns, dtype=torch.float32)
    extra = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in extra.items()}
    return episode_feedback(tasks, returns, **extra)


def _plr(n: int, device: torch.device | None = None, **kw) -> PrioritizedLevelReplay:
    kw.setdefault("seed", 0)
    kw.setdefault("staleness_coef", 0.0)
    return PrioritizedLevelReplay(DiscreteSpace(num_tasks=n, device=device), **kw)


def _scored(scores, n: int | None = None, device: torch.device | None = None, **kw) -> PrioritizedLevelReplay:
    """A PLR whose first ``len(scores)`` levels are scored; with all levels seen and no
    staleness, ``weights()`` is ``P_S``."""
    plr = _plr(len(scores) if n is None else n, device, **kw)
    plr.update(_fb(list(range(len(scores))), score=scores).to(plr.device))
    return plr


def _close(a, b, tol=1e-6) -> None:
    a, b = torch.as_tensor(a, dtype=torch.float64).cpu(), torch.as_tensor(b, dtype=torch.float64).cpu()
    assert a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=tol), f"{a.tolist()} != {b.tolist()}"


def _check_distribution(plr: PrioritizedLevelReplay, draws: int = 256) -> torch.Tensor:
    w = plr.weights()
    assert bool(torch.isfinite(w).all()) and bool((w >= 0).all()), w
    assert abs(float(w.sum()) - 1.0) < 1e-5, float(w.sum())
    tasks = plr.sample(draws)
    assert bool(((tasks >= 0) & (tasks < plr.space.num_tasks)).all())
    for key, value in plr.state.items(True, True):
        if value.is_floating_point():
            assert bool(torch.isfinite(value).all()), f"state[{key!r}] = {value}"
    return w


# ---------------------------------------------------------------------- the transforms, by hand
class TestTransformsByHand:
    def test_softmax(self):
        # exp(S / 0.5) with S = 0.5 ln k is k: weights 1:2:3:4
        beta = 0.5
        plr = _scored([beta * math.log(k) for k in (1, 2, 3, 4)], prioritization="softmax", temperature=beta)
        _close(plr.weights(), [0.1, 0.2, 0.3, 0.4])

    def test_softmax_subtracts_the_max(self):
        # exp(1000) overflows float64; exp(S - M): 1, e^-1, e^-1000
        plr = _scored([1000.0, 999.0, 0.0], prioritization="softmax", temperature=1.0)
        e = math.exp(-1.0)
        _close(plr.weights(), [1 / (1 + e), e / (1 + e), 0.0])

    def test_eps_greedy_ties_split(self):
        # (1 - 0.2) / 2 on the two best, 0.2 / 4 on every seen level
        plr = _scored([0.1, 0.4, 0.3, 0.4], prioritization="eps_greedy", eps=0.2)
        _close(plr.weights(), [0.05, 0.45, 0.05, 0.45])
        one = _scored([0.1, 0.4, 0.3, 0.2], prioritization="eps_greedy", eps=0.2)
        _close(one.weights(), [0.05, 0.85, 0.05, 0.05])

    def test_eps_greedy_greedy_among_seen_levels(self):
        # all seen scores negative: the greedy level is still a seen one (level 1 and 3 tie at -1);
        # fixed schedule: p = 0.5, the other half on the unseen level 4
        plr = _scored([-3.0, -1.0, -2.0, -1.0], n=5, prioritization="eps_greedy", eps=0.2, replay_schedule="fixed")
        _close(plr.weights(), [0.025, 0.225, 0.025, 0.225, 0.5])

    def test_eps_greedy_default_eps(self):
        plr = _scored([0.0, 1.0], prioritization="eps_greedy")
        assert plr.eps == 0.05
        _close(plr.weights(), [0.025, 0.975])

    def test_constant(self):
        plr = _scored([5.0, -1.0, 0.3], n=4, prioritization="constant", replay_schedule="fixed", replay_prob=0.8)
        _close(plr.weights(), [0.8 / 3, 0.8 / 3, 0.8 / 3, 0.2])

    def test_max(self):
        plr = _scored([0.1, 0.4, 0.3, 0.4], prioritization="max")
        _close(plr.weights(), [0.0, 0.5, 0.0, 0.5])
        plr.update(_fb([1], score=[0.0]))  # the tie is broken
        _close(plr.weights(), [0.0, 0.0, 0.0, 1.0])

    def test_match(self):
        # S (1 - S) = 0.25, 0.1875, 0, -2 -> 0 (clamped)
        scores = [0.5, 0.25, 1.0, 2.0]
        _close(_scored(scores, prioritization="match", temperature=1.0).weights(), [4 / 7, 3 / 7, 0.0, 0.0])
        # squared: 0.0625 and 0.03515625, of sum 0.09765625
        _close(_scored(scores, prioritization="match", temperature=0.5).weights(), [0.64, 0.36, 0.0, 0.0])

    @pytest.mark.parametrize("n", [4, 1100])  # the top-k and the sorted-order paths
    def test_match_rank(self, n):
        # keys S (1 - S) = -2, 0.09, 0.25, 0.1875 -> ranks 4, 3, 1, 2 -> 1/rank, normalised (sum 25/12)
        plr = _scored(
            [2.0, 0.9, 0.5, 0.25],
            n=n,
            prioritization="match_rank",
            temperature=1.0,
            replay_schedule="fixed",
            replay_prob=1.0,
        )
        assert plr._sorted == (n > 1024)
        _close(plr.weights()[:4], [0.12, 0.16, 0.48, 0.24])
        _close(plr.weights()[4:], torch.zeros(n - 4))
        plr.update(_fb([0], score=[0.6]))  # key 0.24: now rank 2
        _close(plr.weights()[:4], torch.tensor([1 / 2, 1 / 4, 1.0, 1 / 3]) / (25 / 12))

    @pytest.mark.parametrize("n", [6, 1100])
    def test_match_rank_is_rank_of_the_match_key(self, n):
        g = torch.Generator().manual_seed(n)
        scores = torch.rand(6, generator=g) * 1.4 - 0.2
        plr = _scored(
            scores, n=n, prioritization="match_rank", temperature=1.0, replay_schedule="fixed", replay_prob=1.0
        )
        seen = torch.arange(n) < 6
        keys = torch.full((n,), -math.inf, dtype=torch.float64)
        keys[:6] = _match_key(plr.state["score"][:6])
        _close(plr.weights(), F.normalize(F.rank_weights(keys, 1.0, mask=seen)))

    def test_a_new_transform_in_the_mixture(self):
        # eps_greedy with staleness (rho = 0.5) and p = 3/4 (proportionate, one unseen level)
        plr = _plr(4, prioritization="eps_greedy", eps=0.3, staleness_coef=0.5)
        plr.update(_fb([0, 1, 2], score=[0.2, 0.5, 0.1]))
        plr.state["timestamp"][:3] = torch.tensor([0, 2, 3])
        plr.state["episode_count"].fill_(4)
        p_s = torch.tensor([0.1, 0.8, 0.1])  # 0.7 on level 1, 0.3 / 3 everywhere
        p_c = torch.tensor([4.0, 2.0, 1.0]) / 7
        expected = torch.cat([0.75 * (0.5 * p_s + 0.5 * p_c), torch.tensor([0.25])])
        _close(plr.weights(), expected)

    def test_temperature_only_where_it_applies(self):
        for kind in ("eps_greedy", "constant", "max"):
            a = _scored([0.1, 0.4, 0.3], prioritization=kind, temperature=0.1).weights()
            b = _scored([0.1, 0.4, 0.3], prioritization=kind, temperature=3.0).weights()
            assert torch.equal(a, b), kind

    def test_all_zero_weights_replay_uniformly_over_seen_levels(self):
        # power and match: no positive h; fixed schedule p = 0.8, 0.2 on the unseen level
        for kind, scores in (("power", [0.0, -1.0]), ("match", [1.0, 3.0])):
            plr = _scored(scores, n=3, prioritization=kind, replay_schedule="fixed", replay_prob=0.8)
            _close(plr.weights(), [0.4, 0.4, 0.2])

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"prioritization='best' is not one of .*'softmax'.*'match_rank'"):
            _plr(3, prioritization="best")
        for eps in (-0.1, 1.5, math.nan):
            with pytest.raises(ValueError, match="eps must"):
                _plr(3, eps=eps)
        _plr(3, prioritization="eps_greedy", eps=0.0)
        _plr(3, prioritization="eps_greedy", eps=1.0)


# ---------------------------------------------------------------------- one distribution
def _tv(freq: torch.Tensor, w: torch.Tensor) -> float:
    return 0.5 * float((freq.double() - w.double()).abs().sum())


def _empirical(plr: PrioritizedLevelReplay, draws: int, per_call: int) -> torch.Tensor:
    """Frequencies of ``draws`` levels drawn in calls of ``per_call`` from the same state (each
    call changes the staleness: the state is restored, the generator goes on)."""
    sd = plr.state_dict()
    counts = torch.zeros(plr.space.num_tasks, dtype=torch.float64, device=plr.device)
    for _ in range(draws // per_call):
        plr.load_state_dict(sd, load_rng=False)
        counts += torch.bincount(plr.sample(per_call), minlength=plr.space.num_tasks).double()
    plr.load_state_dict(sd, load_rng=False)
    return (counts / counts.sum()).cpu()


def _prepared(
    kind: str, *, robust: bool = False, stale: bool = True, device: torch.device | None = None
) -> PrioritizedLevelReplay:
    plr = PrioritizedLevelReplay(
        DiscreteSpace(num_tasks=10, device=device),
        prioritization=kind,
        temperature=0.7,
        eps=0.3,
        staleness_coef=0.3,
        replay_schedule="fixed" if robust else "proportionate",
        robust=robust,
        seed=5,
    )
    seen = 10 if robust else 7
    scores = torch.tensor([0.1, 0.9, 0.4, 0.4, 0.0, 0.65, -0.2, 0.5, 0.3, 0.8])[:seen]
    plr.update(_fb(list(range(seen)), score=scores).to(plr.device))
    if stale:
        plr.sample(9)  # some levels become stale
        plr.update(_fb([2, 5], score=[0.45, 0.7]).to(plr.device))
    return plr


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", PRIORITIZATIONS)
@pytest.mark.parametrize(("robust", "stale"), [(False, True), (True, True), (False, False)])
def test_sampling_matches_weights(kind, robust, stale, device):
    """40,000 draws from a seeded generator against weights(): total variation < 0.02 (a bug that
    moves 0.02 of the mass, e.g. a missed fallback or mixture term, fails it)."""
    plr = _prepared(kind, robust=robust, stale=stale, device=device)
    w = plr.weights().cpu()
    if not stale:  # right after an update no level is stale: C is Q
        assert int(F.staleness_weights(plr.state["timestamp"], plr.state["episode_count"]).sum()) == 0
    freq = _empirical(plr, 40_000, 800)
    assert _tv(freq, w) < 0.02, f"{kind}: sampled {freq.tolist()} vs weights {w.tolist()}"


@pytest.mark.parametrize("kind", ["rank", "power", "eps_greedy"])
def test_small_calls_sample_the_weights_too(kind):
    """Resets of a few envs take the CPU path that searches the staleness cdf only when some draw
    needs it: the same distribution."""
    plr = _prepared(kind)
    freq = _empirical(plr, 20_000, 4)
    assert _tv(freq, plr.weights()) < 0.02


def test_weights_and_sample_read_one_mixture(monkeypatch):
    """Both go through ``_mixture``: a change there reaches both."""
    plr = _prepared("softmax")
    calls = []
    original = plr._mixture
    monkeypatch.setattr(plr, "_mixture", lambda: calls.append(1) or original())
    plr.weights()
    plr.sample(3)
    assert len(calls) == 2


def test_the_margin_catches_a_real_bug():
    """Dropping the staleness term (a plausible bug) moves more than 0.02 of the mass."""
    plr = _prepared("rank")
    w = plr.weights()
    m = plr._mixture()
    m.rho = 0.0
    assert _tv(m.dense().float(), w) > 0.02


# ---------------------------------------------------------------------- numerics
class TestNumerics:
    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize(("beta", "big"), [(0.1, 1e31), (0.01, 1.2e3), (0.01, 1.3e3), (0.01, 3e38)])
    def test_power_with_a_small_temperature_does_not_overflow(self, beta, big, device):
        # before: h^(1/β) = inf, all weights NaN, every draw an unseen level
        plr = _scored([big, 1.0], n=4, device=device, prioritization="power", temperature=beta)
        w = _check_distribution(plr)
        _close(w, [0.5, 0.0, 0.25, 0.25])  # (1 / big)^(1/β) underflows next to 1
        tasks = plr.sample(4000)
        assert 0.4 < float((tasks == 0).float().mean()) < 0.6
        assert not bool((tasks == 1).any())

    @pytest.mark.parametrize("device", DEVICES)
    def test_power_with_a_small_temperature_does_not_underflow(self, device):
        # before: (1e-5)^100 = 0 in float64, P_S uniform
        plr = _scored([1e-5, 5e-6], n=4, device=device, prioritization="power", temperature=0.01)
        w = _check_distribution(plr)
        ratio = 0.5**100  # (5e-6 / 1e-5)^(1/β)
        _close(w, [0.5 / (1 + ratio), 0.5 * ratio / (1 + ratio), 0.25, 0.25])
        assert float(w[1]) == pytest.approx(0.5 * ratio, rel=1e-5)

    def test_match_and_softmax_with_a_small_temperature(self):
        # match: 0.25^1000 underflows; scaled: (0.24 / 0.25)^1000 = 0.96^1000
        plr = _scored([0.5, 0.4], prioritization="match", temperature=1e-3)
        w = _check_distribution(plr)
        assert float(w[1]) == pytest.approx(0.96**1000, rel=1e-3)
        # softmax: exp(1 / 1e-3) overflows; exp((S - M) / β) = 1, e^-500
        plr = _scored([1.0, 0.5], prioritization="softmax", temperature=1e-3)
        _close(_check_distribution(plr), [1.0, 0.0])

    def test_weights_recover_when_the_big_score_goes(self):
        plr = _scored([1e31, 1.0], prioritization="power", temperature=0.1)
        _close(plr.weights(), [1.0, 0.0])
        plr.update(_fb([0], score=[0.5]))  # back to the plain formula: 0.5^10 : 1
        _close(plr.weights(), torch.tensor([0.5**10, 1.0]) / (1 + 0.5**10))

    @pytest.mark.parametrize("kind", ["rank", "power", "softmax", "match"])
    def test_two_episodes_near_float32_max(self, kind):
        # before: the float32 sum overflowed, inf was stored, then 0 * inf = NaN
        plr = _scored([0.5, 0.5], n=3, prioritization=kind)
        plr.update(_fb([0, 0, 1], score=[3e38, 3e38, 1.0]))
        assert float(plr.state["score"][0]) == pytest.approx(3e38, rel=1e-6)
        _check_distribution(plr)
        plr.update(_fb([0, 1], score=[0.25, 2.0]))  # ordinary scores again
        _close(plr.state["score"][:2], [0.25, 2.0])
        _check_distribution(plr)

    def test_ema_of_scores_near_float32_max(self):
        plr = _plr(3, prioritization="power", smoothing=0.5)
        plr.update(_fb([0], score=[3.4e38]))
        plr.update(_fb([0, 0], score=[3.4e38, 3.4e38]))
        assert bool(torch.isfinite(plr.state["score"]).all())
        _check_distribution(plr)

    def test_nonfinite_feedback_is_counted_and_skipped(self):
        plr = _plr(5)
        plr.update(_fb([0, 1, 2, 3], score=[math.nan, math.inf, -math.inf, 1.0]))
        assert plr.metrics()["curriculum/skipped_nonfinite"] == 3
        assert plr.state["seen"].tolist() == [False, False, False, True, False]
        _check_distribution(plr)
        mc = _plr(4, score_function="max_mc")
        mc.update(_fb([0, 1, 2], [math.inf, 1.0, 2.0], value_mean=[0.0, math.nan, 1.0]))
        assert mc.metrics()["curriculum/skipped_nonfinite"] == 2  # the return of 0, the value of 1
        assert mc.state["seen"].tolist() == [False, False, True, False]
        _check_distribution(mc)

    def test_max_mc_difference_saturates(self):
        # before: 3e38 - (-3e38) = inf in float32
        plr = _plr(4, score_function="max_mc")
        plr.update(_fb([0, 1], [3e38, 1.0], value_mean=[-3e38, 0.0]))
        assert float(plr.state["score"][0]) == F32_MAX
        assert float(plr.state["score"][1]) == 1.0
        _check_distribution(plr)

    def test_float64_scores_beyond_float32_saturate(self):
        plr = _plr(3, prioritization="power")
        fb = _fb([0, 1], score=[0.0, 0.0])
        fb["score"] = torch.tensor([1e300, 2.0], dtype=torch.float64)
        plr.update(fb)
        assert plr.metrics()["curriculum/skipped_nonfinite"] == 0
        assert float(plr.state["score"][0]) == F32_MAX
        _check_distribution(plr)

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("kind", PRIORITIZATIONS)
    @pytest.mark.parametrize("score_function", ["l1_value_loss", "max_mc"])
    def test_hostile_batches_keep_every_rule(self, kind, score_function, device):
        big = [1e30, -1e30, 3e38, -3e38, 3e38, -3e38, math.nan, math.inf, -math.inf, 1e-30]
        ordinary = [0.0, 1.0, 0.5, 1.0, 0.0, 1.0, 0.25, 0.75, 0.5, 0.1]
        plr = PrioritizedLevelReplay(
            DiscreteSpace(num_tasks=5, device=device),
            prioritization=kind,
            score_function=score_function,
            temperature=0.05,
            seed=1,
        )
        for values in (big, big, ordinary, big, ordinary):
            tasks = plr.sample(len(values))
            v = torch.tensor(values, device=plr.device)
            ret = torch.where(torch.isfinite(v), v, 0.0)
            plr.update(episode_feedback(tasks, ret, score=v, value_mean=-v))
            plr.step(len(values))
            _check_distribution(plr)
            metrics = plr.metrics()
            assert not any(math.isinf(x) for x in metrics.values()), metrics

    def test_metrics_before_any_score(self):
        m = _plr(3).metrics()
        assert math.isnan(m["curriculum/score_max"])
        assert m["curriculum/score_mean"] == 0.0

    def test_score_mean_of_huge_scores_is_finite(self):
        plr = _scored([3e38, 3e38, 3e38])
        assert plr.metrics()["curriculum/score_mean"] == pytest.approx(3e38, rel=1e-6)

    @pytest.mark.parametrize(("kind", "temperature"), [("rank", 0.1), ("rank", 1.0), ("power", 0.5)])
    def test_older_states_with_inf_load(self, kind, temperature):
        """States of earlier versions hold -inf for unseen levels (and possibly a NaN score)."""
        n = 1100 if temperature == 1.0 else 6  # the sorted path is rebuilt from the repaired scores
        plr = _plr(n, prioritization=kind, temperature=temperature, staleness_coef=0.1)
        plr.update(_fb([0, 1, 2, 3], score=[0.2, 0.9, 0.5, 0.7]))
        sd = plr.state_dict()
        sd["state"]["score"][4:] = -math.inf
        sd["state"]["max_return"][:] = -math.inf
        sd["state"]["score"][1] = math.nan
        plr.load_state_dict(sd)
        assert float(plr.state["score"][1]) == 0.0  # a NaN score of the old version
        assert float(plr.state["score"][4]) == torch.finfo(torch.float32).min
        w = _check_distribution(plr)
        if kind == "rank" and plr._sorted:
            order = plr.state["order"][:4].tolist()
            assert order == [3, 2, 0, 1]
        assert float(w[1]) < float(w[0])  # level 1 (score 0 now) ranks or weighs below level 0

    def test_ordinary_inputs_keep_the_paper_numbers(self):
        """Rank and power with finite ordinary scores: the paper's formulas (as before)."""
        plr = _scored([0.1, 0.4, 0.3, 0.2], temperature=1.0)
        _close(plr.weights(), [0.12, 0.48, 0.24, 0.16])
        power = _scored([0.2, 0.5, 0.0], prioritization="power", temperature=0.5)
        _close(power.weights(), [0.04 / 0.29, 0.25 / 0.29, 0.0])
