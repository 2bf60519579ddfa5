"""Tests of the replay-side integration: CurriculumSampler and ReplayDecisionTransform."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ListStorage, ReplayBuffer
from torchrl.envs import Compose, TransformedEnv

from currlearn.curricula.adr import ADRCurriculum
from currlearn.curricula.plr import PrioritizedLevelReplay
from currlearn.envs.point_mass import PointMassGateEnv
from currlearn.feedback import episode_feedback
from currlearn.integrations.replay import CurriculumSampler, ReplayDecisionTransform, SegmentSumTree, SumTree
from currlearn.integrations.torchrl import CurriculumTransform
from currlearn.spaces import BoxSpace, DiscreteSpace
from currlearn.testing import get_default_devices


def _buffer(
    tasks: torch.Tensor, sampler: CurriculumSampler, capacity: int | None = None, batch_size: int = 256
) -> ReplayBuffer:
    storage = LazyTensorStorage(capacity or tasks.numel(), device=sampler.device)
    rb = ReplayBuffer(storage=storage, sampler=sampler, batch_size=batch_size)
    rb.extend(TensorDict({"task_id": tasks, "obs": torch.arange(tasks.numel(), dtype=torch.float32)}, [tasks.numel()]))
    return rb


def _frequencies(rb: ReplayBuffer, num_tasks: int, draws: int = 100) -> torch.Tensor:
    counts = torch.zeros(num_tasks)
    for _ in range(draws):
        counts += torch.bincount(rb.sample()["task_id"].cpu(), minlength=num_tasks)
    return counts / counts.sum()


TREES = [SumTree, SegmentSumTree]  # currlearn's tensor tree and TorchRL's C++ one (CPU)


@pytest.mark.parametrize("tree_cls", TREES)
class TestSumTree:
    @pytest.mark.parametrize("capacity", [1, 2, 5, 64, 1000])
    def test_find_matches_a_cumulative_sum(self, capacity, tree_cls):
        g = torch.Generator().manual_seed(capacity)
        w = torch.randint(0, 4, (capacity,), generator=g).double()  # integers: exact sums, zeros included
        w[0] = 1.0
        tree = tree_cls(capacity)
        tree.build(w)
        assert float(tree.total) == float(w.sum())
        mass = torch.arange(int(w.sum())).double() + 0.5  # the middle of every unit of mass
        expected = torch.searchsorted(torch.cumsum(w, 0), mass, right=True)
        assert tree.find(mass).tolist() == expected.tolist()
        torch.testing.assert_close(tree.leaves(torch.arange(capacity)), w)

    def test_never_returns_a_zero_weight_leaf(self, tree_cls):
        g = torch.Generator().manual_seed(0)
        w = torch.rand(1000, generator=g, dtype=torch.float64) * (torch.rand(1000, generator=g) < 0.1)
        tree = tree_cls(1024)
        tree.build(w)
        edges = torch.cumsum(w, 0)  # the boundaries, where rounding decides
        mass = torch.cat([edges, edges * (1 - 1e-15), torch.rand(10_000, generator=g).double() * tree.total])
        mass = mass.clamp_max(float(tree.total) * (1 - 1e-16))
        assert bool((w[tree.find(mass)] > 0).all())
        # a tiny leaf before a zero one, and masses just below the total
        w = torch.tensor([0.5, 0.5, 1.5 * 2**-53, 0.0], dtype=torch.float64)
        tree = tree_cls(4)
        tree.build(w)
        top = torch.tensor(float(tree.total), dtype=torch.float64)
        mass = torch.stack([torch.nextafter(top, torch.tensor(0.0, dtype=torch.float64)), top * (1 - 2**-52)])
        assert tree.find(mass).tolist() == [2, 2]

    def test_update_equals_a_rebuild(self, tree_cls):
        g = torch.Generator().manual_seed(1)
        w = torch.rand(300, generator=g, dtype=torch.float64)
        tree = tree_cls(300)
        tree.build(w)
        idx = torch.randint(0, 300, (80,), generator=g)  # with duplicates
        new = torch.rand(80, generator=g, dtype=torch.float64)
        tree.update(idx, new)
        w[idx] = tree.leaves(idx)  # duplicates: the value the tree kept, which must be one of those given
        assert all(float(v) in new.tolist() for v in tree.leaves(idx))
        fresh = tree_cls(300)
        fresh.build(w)
        torch.testing.assert_close(tree.leaves(torch.arange(300)), fresh.leaves(torch.arange(300)))
        torch.testing.assert_close(tree.total, fresh.total)
        mass = torch.rand(1000, generator=g, dtype=torch.float64) * fresh.total
        assert tree.find(mass).tolist() == fresh.find(mass).tolist()
        if tree_cls is SumTree:
            torch.testing.assert_close(tree.nodes, fresh.nodes)


class TestCurriculumSampler:
    @pytest.mark.parametrize("device", get_default_devices())
    def test_frequencies_follow_task_weights(self, device):
        tasks = torch.tensor([0] * 10 + [1] * 30 + [2] * 60)  # items per task: 10, 30, 60
        sampler = CurriculumSampler(num_tasks=3, capacity=100, seed=0, device=device)
        sampler.set_task_weights(torch.tensor([3.0, 1.0, 0.0]))
        rb = _buffer(tasks, sampler)
        freq = _frequencies(rb, 3)
        expected = torch.tensor([30.0, 30.0, 0.0]) / 60  # weight x number of items
        assert (freq - expected).abs().max() < 0.02, (
            f"sampled task frequencies {freq.tolist()}, expected {expected.tolist()}"
        )

    def test_frequencies_follow_a_curriculum(self):
        plr = PrioritizedLevelReplay(DiscreteSpace(num_tasks=4), temperature=1.0, staleness_coef=0.0, seed=0)
        plr.update(episode_feedback(torch.arange(4), torch.zeros(4), score=torch.tensor([0.4, 0.3, 0.2, 0.1])))
        sampler = CurriculumSampler(plr, capacity=400, seed=0)
        rb = _buffer(torch.arange(4).repeat(100), sampler)
        freq = _frequencies(rb, 4)
        expected = plr.weights()  # equal item counts per task
        assert (freq - expected).abs().max() < 0.02, f"sampled {freq.tolist()}, curriculum weights {expected.tolist()}"

    def test_difficulty_times_priority(self):
        sampler = CurriculumSampler(num_tasks=2, capacity=4, alpha=1.0, difficulty_smoothing=0.5, eps=1e-6, seed=0)
        sampler.set_task_weights(torch.tensor([1.0, 2.0]))
        rb = _buffer(torch.tensor([0, 0, 1, 1]), sampler)
        sampler.update_difficulty(torch.tensor([0, 1]), torch.tensor([0.5, 2.0]))  # first rating replaces 1
        sampler.update_difficulty(torch.tensor([1]), torch.tensor([0.0]))  # EMA: 0.5 * 2 + 0.5 * 0
        sampler.update_priority(torch.tensor([0, 2, 3]), torch.tensor([-4.0, 1.0, math.nan]))  # NaN: skipped
        w = sampler.item_weights(rb.storage)
        # task weight x difficulty x (|p| + eps)^alpha; item 1 keeps the max priority it got when added (1), item 3 too
        expected = torch.tensor([1 * 0.5 * 4.0, 1 * 1.0 * 1.0, 2 * 1.0 * 1.0, 2 * 1.0 * 1.0])
        assert torch.allclose(w, expected, atol=1e-4), w
        assert int(sampler.skipped_nonfinite) == 1
        rb.extend(TensorDict({"task_id": torch.tensor([1]), "obs": torch.zeros(1)}, [1]))  # overwrites item 0
        assert float(sampler.difficulty[0]) == 1.0
        assert float(sampler.priority[0]) == pytest.approx(4.0, rel=1e-4)

    def test_prioritized_sampling_frequencies(self):
        sampler = CurriculumSampler(num_tasks=1, capacity=3, alpha=1.0, seed=0)
        rb = _buffer(torch.zeros(3, dtype=torch.long), sampler, batch_size=512)
        rb.update_priority(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 5.0]))
        counts = torch.zeros(3)
        for _ in range(60):
            _, info = rb.sample(return_info=True)
            counts += torch.bincount(info["index"], minlength=3)
        freq = counts / counts.sum()
        expected = torch.tensor([1.0, 2.0, 5.0]) / 8
        assert (freq - expected).abs().max() < 0.02, f"sampled {freq.tolist()}, expected {expected.tolist()}"

    def test_importance_weights(self):
        sampler = CurriculumSampler(num_tasks=2, capacity=2, beta=1.0, seed=0)
        sampler.set_task_weights(torch.tensor([1.0, 3.0]))
        rb = _buffer(torch.tensor([0, 1]), sampler, batch_size=64)
        _, info = rb.sample(return_info=True)
        p = torch.where(info["index"] == 0, 0.25, 0.75)
        assert torch.allclose(info["probability"], p)
        iw = (2 * p) ** -1.0
        assert torch.allclose(info["_weight"], iw / iw.max())

    def test_zero_weights_fall_back_to_uniform(self):
        sampler = CurriculumSampler(num_tasks=2, capacity=10, seed=0)
        sampler.set_task_weights(torch.zeros(2))
        rb = _buffer(torch.tensor([0, 1] * 5), sampler)
        assert rb.sample().shape == (256,)

    def test_state_round_trip_and_files(self, tmp_path):
        sampler = CurriculumSampler(num_tasks=3, capacity=50, alpha=0.5, seed=0)
        rb = _buffer(torch.arange(3).repeat(10), sampler, capacity=50)
        sampler.update_priority(torch.arange(30), torch.rand(30))
        sampler.update_difficulty(torch.arange(0, 30, 2), torch.rand(15))
        sd = sampler.state_dict()
        expected = rb.sample()["obs"]
        sampler.load_state_dict(sd)
        assert torch.equal(rb.sample()["obs"], expected)
        sampler.dumps(tmp_path / "s")
        other = CurriculumSampler(num_tasks=3, capacity=50, alpha=0.5, seed=1)
        other.loads(tmp_path / "s")
        assert torch.equal(other.sample(rb.storage, 256)[0], sampler.sample(rb.storage, 256)[0])

    def test_no_aliasing_and_mismatch(self):
        sampler = CurriculumSampler(num_tasks=3, capacity=50, seed=0)
        sd = sampler.state_dict()
        sampler.load_state_dict(sd)
        sd["difficulty"].fill_(7.0)
        assert float(sampler.difficulty.max()) == 1.0
        small = CurriculumSampler(num_tasks=3, capacity=40, seed=0)
        before = small.state_dict()
        with pytest.raises(ValueError, match="state_dict has capacity=50, this sampler has capacity=40"):
            small.load_state_dict(sampler.state_dict())
        assert torch.equal(before["difficulty"], small.difficulty)
        assert torch.equal(before["rng"], small.generator.get_state())
        with pytest.raises(ValueError, match="num_tasks=3, this sampler has num_tasks=4"):
            CurriculumSampler(num_tasks=4, capacity=50).load_state_dict(sampler.state_dict())

    def test_tree_follows_every_change(self):
        """After extends past the capacity (a ring buffer), priority and difficulty updates and a
        new curriculum decision, the drawn items' weights are the current ones."""
        plr = PrioritizedLevelReplay(DiscreteSpace(num_tasks=5), temperature=1.0, staleness_coef=0.0, seed=0)
        plr.update(episode_feedback(torch.arange(5), torch.zeros(5), score=torch.arange(5.0)))
        sampler = CurriculumSampler(plr, capacity=64, alpha=0.7, seed=0)
        storage = LazyTensorStorage(64)
        rb = ReplayBuffer(storage=storage, sampler=sampler, batch_size=32)
        g = torch.Generator().manual_seed(0)

        def check():
            _, info = rb.sample(return_info=True)
            dense = sampler.item_weights(storage).double()
            torch.testing.assert_close(
                info["probability"].double(), dense[info["index"]] / dense.sum(), rtol=1e-5, atol=0
            )
            assert bool((dense[info["index"]] > 0).all())

        for step in range(12):
            rb.extend(TensorDict({"task_id": torch.randint(5, (20,), generator=g)}, [20]))  # wraps after 3 extends
            check()
            idx = torch.randint(0, len(storage), (16,), generator=g)
            rb.update_priority(idx, torch.rand(16, generator=g) * 5)
            sampler.update_difficulty(idx[:8], torch.rand(8, generator=g))
            check()
            if step % 4 == 3:  # a new decision: other task weights
                plr.update(episode_feedback(torch.arange(5), torch.zeros(5), score=torch.rand(5, generator=g)))
                check()

    def test_empty(self):
        sampler = CurriculumSampler(num_tasks=2, capacity=5, alpha=1.0, seed=0)
        rb = _buffer(torch.tensor([0, 1]), sampler, capacity=5)
        rb.update_priority(torch.tensor([0]), torch.tensor([9.0]))
        rb.empty()
        assert float(sampler.priority.max()) == 1.0
        assert float(sampler.max_priority) == 1.0

    def test_list_storage(self):
        sampler = CurriculumSampler(num_tasks=2, capacity=10, seed=0)
        sampler.set_task_weights(torch.tensor([0.0, 1.0]))
        rb = ReplayBuffer(storage=ListStorage(10), sampler=sampler, batch_size=16)
        rb.extend(TensorDict({"task_id": torch.tensor([0, 1, 0])}, [3]))
        assert set(rb.sample()["task_id"].tolist()) == {1}

    def test_beyond_multinomial_limit(self):
        n = 2**24 + 16  # torch.multinomial refuses more than 2**24 categories
        sampler = CurriculumSampler(num_tasks=2, capacity=n, seed=0)
        sampler.set_task_weights(torch.tensor([0.0, 1.0]))
        tasks = torch.zeros(n, dtype=torch.long)
        tasks[-3:] = 1
        rb = ReplayBuffer(storage=LazyTensorStorage(n), sampler=sampler, batch_size=64)
        rb.extend(TensorDict({"task_id": tasks}, [n]))
        _, info = rb.sample(return_info=True)
        assert set(info["index"].tolist()) <= {n - 3, n - 2, n - 1}

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="needs a curriculum or num_tasks"):
            CurriculumSampler()
        with pytest.raises(ValueError, match="must be a DiscreteCurriculum"):
            CurriculumSampler(ADRCurriculum(BoxSpace({"m": 0.0}, {"m": 1.0})))
        with pytest.raises(ValueError, match="capacity must be an int >= 1"):
            CurriculumSampler(num_tasks=2, capacity=0)
        with pytest.raises(ValueError, match="difficulty_smoothing must lie in"):
            CurriculumSampler(num_tasks=2, difficulty_smoothing=0.0)
        with pytest.raises(ValueError, match="alpha and beta must be >= 0"):
            CurriculumSampler(num_tasks=2, alpha=-1.0)
        sampler = CurriculumSampler(num_tasks=2, capacity=4)
        with pytest.raises(ValueError, match=r"weights must have shape \[2\]"):
            sampler.set_task_weights(torch.ones(3))
        with pytest.raises(ValueError, match="finite and >= 0"):
            sampler.set_task_weights(torch.tensor([1.0, -1.0]))
        rb = ReplayBuffer(storage=LazyTensorStorage(8), sampler=sampler, batch_size=2)
        with pytest.raises(ValueError, match="capacity is 4"):
            rb.extend(TensorDict({"task_id": torch.zeros(6, dtype=torch.long)}, [6]))
        no_task = ReplayBuffer(
            storage=LazyTensorStorage(4), sampler=CurriculumSampler(num_tasks=2, capacity=4), batch_size=2
        )
        no_task.extend(TensorDict({"obs": torch.zeros(2)}, [2]))
        with pytest.raises(KeyError, match="no 'task_id' entry"):
            no_task.sample()
        with pytest.raises(RuntimeError, match="empty storage"):
            CurriculumSampler(num_tasks=2, capacity=4).sample(LazyTensorStorage(4), 2)


class TestReplayDecisionTransform:
    def test_every_transition_carries_its_episode_decision(self):
        space = DiscreteSpace({"gate_width": [0.5, 1.0, 2.0, 4.0]})
        plr = PrioritizedLevelReplay(space, robust=True, replay_schedule="fixed", replay_prob=0.5, num_envs=3, seed=0)
        env = TransformedEnv(
            PointMassGateEnv(3, max_steps=4, seed=0), Compose(CurriculumTransform(plr), ReplayDecisionTransform(plr))
        )
        first = env.rollout(8, break_when_any_done=False)
        assert not bool(first["level_replay"].any())  # nothing seen yet: every level is new
        plr.update(episode_feedback(torch.arange(4), torch.zeros(4), score=torch.rand(4)))
        td = env.rollout(40, break_when_any_done=False)
        flags = td["level_replay"]
        assert flags.any()
        assert not flags.all()
        # constant within an episode: it changes only right after a done
        done = td["next", "done"].squeeze(-1)
        change = flags[:, 1:] != flags[:, :-1]
        assert not bool((change & ~done[:, :-1]).any())
        # the mask a PPO update uses: keep the replayed steps
        flat = td.reshape(-1)
        kept = flat[flat["level_replay"]]
        assert kept.numel() == int(flags.sum())

    def test_needs_num_envs(self):
        plr = PrioritizedLevelReplay(DiscreteSpace(num_tasks=3))
        with pytest.raises(ValueError, match="built with num_envs"):
            ReplayDecisionTransform(plr)
