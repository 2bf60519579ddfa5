"""The structures behind the fast update and sample paths, against the slow definitions.

- ``F.group_by_task`` with a scratch tensor (``O(episodes)``) against ``torch.unique``;
- ``F.rank_codes`` and ``F.update_top_candidates`` (the top-k kept per update) against a sort
  and a full ``topk``;
- the sorted keys of the difficulty curricula against a sort of all items;
- the kept sums of learning progress against the exact sums;
- draws made by rejection (learning progress, PLR's staleness), from a top-k set
  (learnability) or from sorted keys (difficulty) against each curriculum's ``weights()``;
- states saved by earlier versions (a difficulty order, no PLR staleness bound, no progress
  sums) still load.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from currlearn import functional as F
from currlearn.curricula.difficulty import CompetenceCurriculum, EasyFirstCurriculum
from currlearn.curricula.learning_progress import LearnabilityCurriculum, LearningProgressCurriculum
from currlearn.curricula.plr import PrioritizedLevelReplay
from currlearn.feedback import episode_feedback
from currlearn.sorted_keys import SortedKeys
from currlearn.spaces import DiscreteSpace


def _tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return 0.5 * float((a.double() - b.double()).abs().sum())


def _empirical(cur, draws: int, per_call: int) -> torch.Tensor:
    """Frequencies of ``draws`` samples taken ``per_call`` at a time from the same state (the
    state is restored between calls: drawing moves PLR's staleness)."""
    sd = cur.state_dict()
    counts = torch.zeros(cur.space.num_tasks, dtype=torch.float64)
    for _ in range(draws // per_call):
        cur.load_state_dict(sd, load_rng=False)
        counts += torch.bincount(cur.sample(per_call), minlength=cur.space.num_tasks).double()
    cur.load_state_dict(sd, load_rng=False)
    return counts / counts.sum()


# ---------------------------------------------------------------------- functional pieces
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 29), min_size=0, max_size=80), st.integers(0, 2**31))
def test_group_by_task_with_scratch_matches_unique(tasks, seed):
    g = torch.Generator().manual_seed(seed)
    task = torch.tensor(tasks, dtype=torch.int64)
    v = torch.randn(task.numel(), generator=g, dtype=torch.float64)
    valid = torch.rand(task.numel(), generator=g) < 0.8
    scratch = torch.full((30,), 7, dtype=torch.int64)  # arbitrary contents
    ids, n, (s,) = F.group_by_task(task, v, valid=valid, scratch=scratch)
    ref_ids, ref_n, (ref_s,) = F.group_by_task(task, v, valid=valid)
    order = torch.argsort(ids)
    assert ids.unique().numel() == ids.numel()
    assert ids[order].tolist() == ref_ids.tolist()
    assert n[order].tolist() == ref_n.tolist()
    torch.testing.assert_close(s[order], ref_s)
    kept = task[valid].tolist()
    assert ids.tolist() == list(dict.fromkeys(kept)), "ids are not in the order of their first episode"


def test_rank_codes_order_by_key_then_id():
    keys = torch.tensor([0.5, 2.0, -1.0, 2.0, 0.5, -math.inf, 3.0])
    ids = torch.arange(keys.numel())
    codes = F.rank_codes(keys, ids)
    assert codes.unique().numel() == codes.numel()
    by_codes = torch.argsort(codes, descending=True).tolist()
    by_hand = sorted(range(keys.numel()), key=lambda i: (-float(keys[i]), i))
    assert by_codes == by_hand == [6, 1, 3, 0, 4, 2, 5]
    # float64 keys beyond float32's range saturate (they do not become infinities)
    big = F.rank_codes(torch.tensor([-1e300, -math.inf, 1e300, math.inf], dtype=torch.float64), torch.arange(4))
    assert torch.argsort(big, descending=True).tolist() == [3, 2, 0, 1]


def test_match_rank_never_ranks_an_unseen_level_first():
    """A seen level whose S (1 - S) lies below float32's range still ranks above the unseen."""
    plr = PrioritizedLevelReplay(
        DiscreteSpace(num_tasks=4),
        prioritization="match_rank",
        staleness_coef=0.0,
        replay_schedule="fixed",
        replay_prob=1.0,
        seed=0,
    )
    plr.update(episode_feedback(torch.tensor([3]), torch.zeros(1), score=torch.tensor([1e20])))
    assert plr.weights().tolist() == [0.0, 0.0, 0.0, 1.0]
    assert set(plr.sample(64).tolist()) == {3}


@settings(max_examples=80, deadline=None)
@given(
    st.integers(2, 60),
    st.integers(1, 8),
    st.integers(0, 12),
    st.lists(st.lists(st.integers(0, 59), max_size=30), min_size=1, max_size=8),
    st.integers(0, 2**31),
)
def test_update_top_candidates_keeps_the_exact_top_k(n, k, spare, updates, seed):
    """Updates of random entries, some with a key that falls: whenever the function says the
    top-k is exact it is a full topk's, and rebuilding when it is not keeps it so; every entry
    outside the candidates stays under the bound."""
    k = min(k, n)
    m = min(n, k + spare)
    g = torch.Generator().manual_seed(seed)
    keys = torch.randint(-4, 5, (n,), generator=g).float()
    ids = torch.arange(n)
    codes = F.rank_codes(keys, ids)

    def rebuild():
        member = torch.zeros(n, dtype=torch.bool)
        top, bound = F.top_candidates(codes, k, member, spare=m)
        assert top.tolist() == codes.topk(m).indices.tolist()
        return top, bound, member

    top, bound, member = rebuild()
    for changed in updates:
        index = torch.tensor(sorted({c % n for c in changed}), dtype=torch.int64)
        keys[index] = torch.randint(-4, 5, (index.numel(),), generator=g).float()
        codes.index_copy_(0, index, F.rank_codes(keys[index], index))
        top, bound, exact = F.update_top_candidates(top, bound, codes, index, member, k)
        assert top.unique().numel() == m
        assert member.sum() == m and bool(member[top].all())
        outside = ~member
        assert bool((codes[outside] <= bound).all()), "an entry outside the candidates is above the bound"
        if bool(exact):
            assert top[:k].tolist() == codes.topk(k).indices.tolist()
        else:
            top, bound, member = rebuild()


# ---------------------------------------------------------------------- difficulty keys
@pytest.mark.parametrize("cls", [EasyFirstCurriculum, CompetenceCurriculum])
@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 39), min_size=1, max_size=25), min_size=1, max_size=6), st.integers(0, 2**31))
def test_difficulty_keys_stay_a_full_sort(cls, batches, seed):
    """After any updates (ties included: returns from a few values), the kept keys are those a
    sort of all items gives, and the items decode to a permutation."""
    g = torch.Generator().manual_seed(seed)
    cur = cls(DiscreteSpace(num_tasks=40), num_bins=4, smoothing=0.5, seed=0)
    for tasks in batches:
        t = torch.tensor(tasks)
        ret = torch.randint(0, 3, (t.numel(),), generator=g).float()
        cur.update(episode_feedback(t, ret))
        keys = cur._keys.values()
        cur._sort_keys()
        assert keys.tolist() == cur._keys.values().tolist()
        assert sorted(cur._ids_of(keys).tolist()) == list(range(40))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 120),
    st.sampled_from([2, 4, 6, 16]),
    st.sampled_from(["rows", "flat", "switching"]),
    st.lists(st.tuples(st.integers(1, 120), st.booleans()), min_size=1, max_size=12),
    st.integers(0, 2**31),
)
def test_sorted_keys_match_a_sorted_tensor(n, capacity, layout, updates, seed):
    """Rows that fill up (a new layout), empty out, or take keys beyond every row, one flat row,
    and switches between the two: ``values``, ``select`` and ``rank`` stay those of one sorted
    tensor of the same keys, and the flattened rows stay non-decreasing."""
    g = torch.Generator().manual_seed(seed)
    universe = torch.randperm(4 * n + 8, generator=g) * 3  # gaps: ranks of absent keys too
    current = universe[:n].clone()
    keys = SortedKeys(torch.sort(current).values, capacity=capacity)
    if layout == "rows":
        keys.FLAT_ABOVE = keys.ROWS_BELOW = math.inf
    elif layout == "flat":
        keys.FLAT_ABOVE = keys.ROWS_BELOW = 0.0
    for k, clustered in updates:
        k = min(k, n)
        index = torch.randperm(n, generator=g)[:k]
        staying = torch.ones(n, dtype=torch.bool)
        staying[index] = False
        free = universe[~torch.isin(universe, current[staying])]
        if clustered:  # all new keys next to each other: one row takes them all
            free = torch.sort(free).values
            start = int(torch.randint(free.numel() - k + 1, (1,), generator=g))
            new = free[start : start + k]
        else:  # an old key may come back as its own new key
            new = free[torch.randperm(free.numel(), generator=g)[:k]]
        keys.replace(current[index], new[torch.randperm(k, generator=g)])
        current[index] = new
        expected = torch.sort(current).values
        assert keys.values().tolist() == expected.tolist()
        assert keys.select(torch.arange(n)).tolist() == expected.tolist()
        probe = torch.arange(-1, int(universe.max()) + 2)
        assert keys.rank(probe).tolist() == torch.searchsorted(expected, probe, right=True).tolist()
        assert bool((keys.flat[1:] >= keys.flat[:-1]).all())


def test_sorted_keys_update_of_one_key_rewrites_two_rows_at_most():
    keys = SortedKeys(torch.arange(0, 40000, 2), capacity=64)
    keys.replace(torch.tensor([0]), torch.tensor([1]))  # small updates: in rows
    before = keys.flat.clone()
    keys.replace(torch.tensor([10]), torch.tensor([30001]))
    changed = (keys.flat != before).view(keys.rows, keys.capacity).any(1)
    assert changed.sum() == 2 and keys.rows == 625  # the old row and the new one


# ---------------------------------------------------------------------- learning progress sums
def test_learning_progress_sums_follow_the_exact_sums():
    g = torch.Generator().manual_seed(0)
    cur = LearningProgressCurriculum(DiscreteSpace(num_tasks=500), fast_rate=0.3, slow_rate=0.2, seed=0)
    for _ in range(200):
        t = torch.randint(500, (64,), generator=g)
        cur.update(episode_feedback(t, torch.zeros(64), success=(torch.rand(64, generator=g) < 0.4).float()))
    lp = cur.learning_progress().double()
    s1, s2 = cur.state["progress_sums"][:2].tolist()
    assert s1 == pytest.approx(float(lp.sum()), rel=1e-12)
    assert s2 == pytest.approx(float(lp.square().sum()), rel=1e-12)
    mean, std = cur._stats
    exact_mean, exact_std = cur._exact_z_stats(cur._lp, cur._played)
    assert float(mean) == pytest.approx(float(exact_mean), rel=1e-9)
    assert float(std) == pytest.approx(float(exact_std), rel=1e-6)


# ---------------------------------------------------------------------- draws against weights
def _varied(cur, n: int, rounds: int = 6, seed: int = 0):
    """Feedback that spreads the curriculum's weights: per-task success rates of all kinds."""
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(n, generator=g)
    for _ in range(rounds):
        t = torch.randint(n, (4 * n,), generator=g)
        success = (torch.rand(t.numel(), generator=g) < rate[t]).float()
        cur.update(episode_feedback(t, success * 2 - 0.5, success=success))
        rate = (rate + 0.3 * torch.rand(n, generator=g)).clamp(0, 1)  # progress changes
        cur.step(1)
    return cur


@pytest.mark.parametrize(
    "make",
    [
        lambda: LearningProgressCurriculum(DiscreteSpace(num_tasks=12), fast_rate=0.5, slow_rate=0.2, seed=1),
        lambda: LearningProgressCurriculum(DiscreteSpace(num_tasks=12), uniform_share=0.3, seed=1),
        lambda: LearnabilityCurriculum(DiscreteSpace(num_tasks=12), topk=4, learnable_prob=0.7, seed=1),
        lambda: LearnabilityCurriculum(DiscreteSpace(num_tasks=12), sampling="proportional", seed=1),
        lambda: EasyFirstCurriculum(
            DiscreteSpace(num_tasks=12), num_bins=3, temperature=0.5, anneal_iterations=20, seed=1
        ),
        lambda: CompetenceCurriculum(
            DiscreteSpace(num_tasks=12), num_bins=4, temperature=0.2, anneal_iterations=20, seed=1
        ),
    ],
    ids=["lp", "lp_uniform_share", "learnability_topk", "learnability_proportional", "easy_first", "competence"],
)
def test_draws_follow_weights(make):
    """40,000 draws against weights(): total variation < 0.02 (40,000 draws over 12 tasks give
    about 0.01; a draw path that drops or doubles a branch moves far more)."""
    cur = _varied(make(), 12)
    w = cur.weights()
    freq = _empirical(cur, 40_000, 4000)
    assert _tv(freq, w) < 0.02, f"sampled {freq.tolist()} vs weights {w.tolist()}"


def test_learning_progress_with_one_played_task_draws_it_as_weighted():
    cur = LearningProgressCurriculum(DiscreteSpace(num_tasks=50), fast_rate=0.5, slow_rate=0.1, seed=0)
    cur.update(episode_feedback(torch.tensor([3, 3]), torch.zeros(2), success=torch.tensor([1.0, 1.0])))
    cur.update(episode_feedback(torch.tensor([3]), torch.zeros(1), success=torch.tensor([0.0])))
    w = cur.weights()
    freq = _empirical(cur, 40_000, 4000)
    assert _tv(freq, w) < 0.03


def test_plr_staleness_draws_with_an_old_bound_and_a_lone_stale_level():
    """The rejection draw of P_C renews an outdated bound, and falls back to the cdf when one
    level alone is stale among many: both keep the draws on weights()."""
    n = 60
    plr = PrioritizedLevelReplay(DiscreteSpace(num_tasks=n), staleness_coef=0.5, temperature=1.0, seed=0)
    plr.update(
        episode_feedback(
            torch.arange(n), torch.zeros(n), score=torch.rand(n, generator=torch.Generator().manual_seed(0))
        )
    )
    # every level sampled long after the bound (0): most proposals are rejected at first
    st_ = plr.state
    st_["episode_count"].fill_(10**9)
    st_["timestamp"].fill_(10**9 - 5)
    st_["timestamp"][7] = 10**9 - 3000  # one level far staler than the others
    plr._on_load()
    w = plr.weights()
    sd = plr.state_dict()
    plr.sample(2000)
    assert int(plr.state["stale_floor"]) == 10**9 - 3000, "the bound was not renewed"
    plr.load_state_dict(sd)
    freq = _empirical(plr, 60_000, 2000)  # sampling noise: a total variation of about 0.007
    assert _tv(freq, w) < 0.02, f"sampled {freq[:10].tolist()} vs weights {w[:10].tolist()}"
    # one stale level: nearly every proposal is rejected, the cdf draws the rest
    st_["timestamp"].fill_(10**9)
    st_["timestamp"][11] = 10**9 - 1
    st_["stale_floor"].zero_()
    plr._on_load()
    w = plr.weights()
    freq = _empirical(plr, 60_000, 2000)
    assert _tv(freq, w) < 0.02


# ---------------------------------------------------------------------- earlier states
def test_states_of_earlier_versions_load():
    space = DiscreteSpace(num_tasks=6)
    fb = episode_feedback(torch.tensor([0, 1, 2]), torch.tensor([1.0, 0.0, 0.5]), success=torch.tensor([1.0, 0.0, 1.0]))
    # difficulty: earlier states held the sorted order, now rebuilt from the values
    cur = EasyFirstCurriculum(space, num_bins=2, seed=0)
    cur.update(fb)
    sd = cur.state_dict()
    sd["state"]["order"] = torch.arange(6)
    fresh = EasyFirstCurriculum(DiscreteSpace(num_tasks=6), num_bins=2, seed=0)
    fresh.load_state_dict(sd)
    torch.testing.assert_close(fresh.weights(), cur.weights())
    # PLR: no staleness bound (0 bounds every timestamp)
    plr = PrioritizedLevelReplay(space, seed=0)
    plr.update(episode_feedback(torch.tensor([0, 1]), torch.zeros(2), score=torch.tensor([0.2, 0.4])))
    plr.sample(3)
    sd = plr.state_dict()
    del sd["state"]["stale_floor"]
    fresh = PrioritizedLevelReplay(DiscreteSpace(num_tasks=6), seed=0)
    fresh.state["stale_floor"].fill_(123)
    fresh.load_state_dict(sd)
    assert int(fresh.state["stale_floor"]) == 0
    torch.testing.assert_close(fresh.weights(), plr.weights())
    # learning progress: no kept sums (computed from the progress on load)
    lp = LearningProgressCurriculum(space, seed=0)
    lp.update(fb)
    lp.update(episode_feedback(torch.tensor([0]), torch.zeros(1), success=torch.tensor([0.0])))
    sd = lp.state_dict()
    sums = sd["state"].pop("progress_sums")
    fresh = LearningProgressCurriculum(DiscreteSpace(num_tasks=6), seed=0)
    fresh.load_state_dict(sd)
    torch.testing.assert_close(fresh.state["progress_sums"], sums)
    # an unknown extra entry is still refused
    sd = lp.state_dict()
    sd["state"]["order"] = torch.arange(6)
    with pytest.raises(ValueError, match="state keys"):
        LearningProgressCurriculum(DiscreteSpace(num_tasks=6), seed=0).load_state_dict(sd)


# ---------------------------------------------------------------------- ALP-GMM's nearest neighbours
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "ties", "sparse"])
def test_alp_gmm_grid_search_equals_the_brute_force(d, kind):
    """The grid search returns what the brute force returns (same nearest task, the same one
    among ties, the same earlier-episodes-only rule), for even, clustered, heavily tied
    (tasks on a lattice) and sparse data."""
    from currlearn.curricula.alp_gmm import ALPGMMCurriculum
    from currlearn.spaces import BoxSpace

    box = BoxSpace({f"x{i}": 0.0 for i in range(d)}, {f"x{i}": 1.0 for i in range(d)})
    cur = ALPGMMCurriculum(box, seed=0, history_capacity=6000)
    g = torch.Generator().manual_seed(d)

    def points(k: int) -> torch.Tensor:
        if kind == "clustered":
            return (0.3 + 0.02 * torch.randn(k, d, generator=g)).clamp(0, 1)
        if kind == "ties":
            return torch.randint(0, 6, (k, d), generator=g) / 5.0
        if kind == "sparse":
            return torch.rand(k, d, generator=g) ** 6  # most near 0, a few far out
        return torch.rand(k, d, generator=g)

    h = 5000
    cur.state["tasks"][:h] = points(h)
    cur.state["returns"][:h] = torch.rand(h, generator=g)
    cur.state["size"].fill_(h)
    cur._size = h
    x, r = points(1500), torch.rand(1500, generator=g)
    got, got_has = cur._nearest_returns(x, r)
    want, want_has = cur._nearest_brute(x, r, torch.arange(1500))
    assert torch.equal(got_has, want_has)
    assert torch.equal(got, want), f"{int((got != want).sum())} of 1500 differ"


def test_alp_gmm_em_tol():
    from currlearn.curricula.alp_gmm import ALPGMMCurriculum, fit_gmm
    from currlearn.spaces import BoxSpace

    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.randn(100, 2, generator=g, dtype=torch.float64) * 0.1,
            torch.randn(100, 2, generator=g, dtype=torch.float64) * 0.1 + 3,
        ]
    )
    early = fit_gmm(x, [1, 2, 3], 3, tol=1e-3, generator=torch.Generator().manual_seed(1))
    full = fit_gmm(x, [1, 2, 3], 3, tol=None, generator=torch.Generator().manual_seed(1))
    assert int(early["aic"].argmin()) == int(full["aic"].argmin()) == 1
    torch.testing.assert_close(early["means"][1].sort(0).values, full["means"][1].sort(0).values, atol=1e-3, rtol=0)
    box = BoxSpace({"a": 0.0}, {"a": 1.0})
    with pytest.raises(ValueError, match="em_tol must be > 0"):
        ALPGMMCurriculum(box, em_tol=0.0)
    with pytest.raises(ValueError, match="em_tol"):
        ALPGMMCurriculum(box, em_tol=math.nan)


@pytest.mark.parametrize(
    ("kind", "temperature", "big"),
    [
        ("power", 0.05, [1e30, 0.97e30, 0.9e30, 0.99e30, 0.95e30, 0.8e30, 0.92e30, 0.85e30]),
        ("softmax", 0.5, [1e3, 999.5, 999.0, 998.0, 999.8, 997.0, 999.2, 998.5]),
    ],
)
def test_plr_weight_tree_through_overflow_and_back(kind, temperature, big):
    """power / softmax on CPU keep their weights in a sum tree; scores whose weights overflow
    float64 (``S^(1/β)``, ``exp(S/β)``) switch to the scaled weights (no tree) and back: the
    draws follow weights() in each phase, and weights() is the formula's."""
    n = 8
    plr = PrioritizedLevelReplay(
        DiscreteSpace(num_tasks=n), prioritization=kind, temperature=temperature, staleness_coef=0.0, seed=0
    )
    ids = torch.arange(n)
    for scores in ([0.1, 0.5, 0.3, 0.9, 0.2, 0.4, 0.7, 0.6], big, [0.3, 0.1, 0.8, 0.2, 0.5, 0.9, 0.4, 0.6]):
        plr.update(episode_feedback(ids, torch.zeros(n), score=torch.tensor(scores)))
        s = plr.state["score"].double()  # as stored (float32)
        if kind == "softmax":
            w = ((s - s.max()) / temperature).exp()
        else:
            w = (s / s.max()) ** (1 / temperature)
        torch.testing.assert_close(plr.weights().double(), w / w.sum(), rtol=1e-4, atol=1e-6)
        freq = _empirical(plr, 40_000, 4000)
        assert _tv(freq, plr.weights()) < 0.02, (scores, freq.tolist())
        assert (plr._score_tree is None) == (scores is big), "the tree holds the weights unless they overflow"
