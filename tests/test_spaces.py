"""Tests of currlearn.spaces: parameter tables, sampling, validation, product ids."""

from __future__ import annotations

import itertools

import pytest
import torch
from tensordict import TensorDict

from currlearn.spaces import BoxSpace, DiscreteSpace, ProductSpace
from currlearn.testing import get_default_devices

G = [5.0, 7.0, 9.8, 3.2]
N = [1, 2, 3, 4]


class TestDiscreteSpace:
    @staticmethod
    def _make_space(device=None) -> DiscreteSpace:
        return DiscreteSpace({"g": G, "n": N, "mix": [1, 2.5, 3, 4]}, device=device)

    @pytest.mark.parametrize("device", get_default_devices())
    def test_params_lookup(self, device):
        space = self._make_space(device)
        assert space.num_tasks == 4
        assert space.names == ("g", "n", "mix")
        assert space.is_discrete
        assert space.task_shape == ()
        assert space.task_dtype == torch.int64
        assert space.device == device
        ids = [2, 0, 3, 3, 1]
        p = space.params(torch.tensor(ids))
        assert isinstance(p, TensorDict)
        assert p.batch_size == (5,)
        assert p.device == device
        assert p["g"].tolist() == pytest.approx([G[i] for i in ids])
        assert p["n"].tolist() == [N[i] for i in ids]
        assert p["mix"].tolist() == [[1, 2.5, 3, 4][i] for i in ids]

    def test_dtypes(self):
        space = self._make_space()
        p = space.params(torch.tensor([0]))
        assert p["n"].dtype == torch.int64  # all Python ints
        assert p["g"].dtype == torch.get_default_dtype()
        assert p["mix"].dtype == torch.get_default_dtype()  # ints and floats mixed -> float
        assert DiscreteSpace({"b": [True, False]}).table["b"].dtype == torch.get_default_dtype()

    def test_bare_ids(self):
        space = DiscreteSpace(num_tasks=5)
        assert space.names == ("task_id",)
        assert space.params(torch.tensor([4, 1]))["task_id"].tolist() == [4, 1]

    def test_unequal_lengths(self):
        with pytest.raises(
            ValueError, match=r"params lists must all have the same length .* got lengths \{'g': 3, 'm': 2\}"
        ):
            DiscreteSpace({"g": [1.0, 2.0, 3.0], "m": [1.0, 2.0]})

    def test_other_construction_errors(self):
        with pytest.raises(ValueError, match="params lists are empty"):
            DiscreteSpace({"g": []})
        with pytest.raises(ValueError, match="params must be a non-empty mapping"):
            DiscreteSpace({})
        with pytest.raises(ValueError, match=r"num_tasks=3 does not match the 2 values"):
            DiscreteSpace({"g": [1.0, 2.0]}, num_tasks=3)
        with pytest.raises(
            ValueError, match=r"DiscreteSpace needs params or num_tasks >= 1, got params=None, num_tasks=0"
        ):
            DiscreteSpace(num_tasks=0)
        with pytest.raises(ValueError, match=r"params\['g'\] has non-finite values"):
            DiscreteSpace({"g": [1.0, float("inf")]})
        with pytest.raises(TypeError, match="parameter names must be non-empty strings"):
            DiscreteSpace({"": [1.0]})

    @pytest.mark.parametrize("device", get_default_devices())
    def test_check_tasks(self, device):
        space = self._make_space(device)
        space.check_tasks(torch.tensor([0, 3, 1], device=device))
        space.check_tasks(torch.tensor([], dtype=torch.int64))
        with pytest.raises(ValueError, match=r"my_tasks has task ids \[4\] outside \[0, 4\)"):
            space.check_tasks(torch.tensor([0, 4, 1], device=device), "my_tasks")
        with pytest.raises(ValueError, match=r"tasks has task ids \[-1\] outside \[0, 4\)"):
            space.check_tasks(torch.tensor([-1, 2], device=device))
        with pytest.raises(ValueError, match="tasks must hold integer task ids, got dtype torch.float32"):
            space.check_tasks(torch.tensor([0.0, 1.0], device=device))

    @pytest.mark.parametrize("device", get_default_devices())
    def test_sample_uniform(self, device):
        space = self._make_space(device)
        g1 = torch.Generator(device=device).manual_seed(3)
        g2 = torch.Generator(device=device).manual_seed(3)
        t = space.sample_uniform(4000, g1)
        assert t.shape == (4000,)
        assert t.dtype == torch.int64
        assert t.device == device
        assert torch.equal(t, space.sample_uniform(4000, g2))
        counts = torch.bincount(t.cpu(), minlength=4)
        assert counts.sum() == 4000
        # 1000 expected per task, std ~27: a wide margin.
        assert ((counts - 1000).abs() < 150).all(), f"observed counts {counts.tolist()}"

    def test_check_names(self):
        space = self._make_space()
        space.check_names(["g", "n"])
        with pytest.raises(
            ValueError, match=r"cfg has unknown parameter\(s\) \['x'\]; this space's parameters are \['g', 'n', 'mix'\]"
        ):
            space.check_names(["g", "x"], "cfg")


class TestBoxSpace:
    LOW = {"w": 0.5, "m": -1.0, "fixed": 2.0}
    HIGH = {"w": 4.0, "m": 1.0, "fixed": 2.0}

    def _make_space(self, device=None) -> BoxSpace:
        return BoxSpace(self.LOW, self.HIGH, device=device)

    @pytest.mark.parametrize("device", get_default_devices())
    def test_params(self, device):
        space = self._make_space(device)
        assert not space.is_discrete
        assert space.dim == 3
        assert space.task_shape == (3,)
        rows = [[1.0, 0.5, 2.0], [4.0, -1.0, 2.0]]
        p = space.params(torch.tensor(rows))
        assert p.batch_size == (2,)
        assert p.device == device
        for i, name in enumerate(["w", "m", "fixed"]):
            assert p[name].tolist() == [r[i] for r in rows]

    @pytest.mark.parametrize("device", get_default_devices())
    def test_sample_uniform_within_bounds(self, device):
        space = self._make_space(device)
        gen = torch.Generator(device=device).manual_seed(0)
        t = space.sample_uniform(5000, gen)
        assert t.shape == (5000, 3)
        assert t.device == device
        lo = torch.tensor([self.LOW[k] for k in space.names], device=device)
        hi = torch.tensor([self.HIGH[k] for k in space.names], device=device)
        assert (t >= lo).all() and (t <= hi).all()
        mean = t.mean(0).cpu()
        mid = ((lo + hi) / 2).cpu()
        # std of the mean of 5000 uniforms on a width-3.5 interval is ~0.014.
        assert (mean - mid).abs().max() < 0.1, f"observed means {mean.tolist()}, expected {mid.tolist()}"
        assert torch.equal(t, space.sample_uniform(5000, torch.Generator(device=device).manual_seed(0)))
        space.check_tasks(t)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"bounds of 'w' are inverted: low=2.0 > high=1.0"):
            BoxSpace({"w": 2.0}, {"w": 1.0})
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match=r"bounds of 'w' must be finite"):
                BoxSpace({"w": 0.0}, {"w": bad})
            with pytest.raises(ValueError, match=r"bounds of 'w' must be finite"):
                BoxSpace({"w": bad}, {"w": 1.0})
        with pytest.raises(
            ValueError, match=r"low and high must name the same parameters, got low=\['w'\], high=\['v'\]"
        ):
            BoxSpace({"w": 0.0}, {"v": 1.0})
        with pytest.raises(ValueError, match="low must be a non-empty mapping"):
            BoxSpace({}, {})

    def test_check_tasks(self):
        space = self._make_space()
        with pytest.raises(ValueError, match=r"tasks must have shape \[n, 3\], got \[2, 2\]"):
            space.check_tasks(torch.zeros(2, 2))
        with pytest.raises(ValueError, match="fb has values outside the box"):
            space.check_tasks(torch.tensor([[5.0, 0.0, 2.0]]), "fb")
        with pytest.raises(ValueError, match="tasks has values outside the box"):
            space.check_tasks(torch.tensor([[1.0, float("nan"), 2.0]]))

    def test_clip(self):
        space = self._make_space()
        out = space.clip(torch.tensor([[10.0, -3.0, 2.0], [1.0, 0.0, 0.0]]))
        assert out.tolist() == [[4.0, -1.0, 2.0], [1.0, 0.0, 2.0]]

    def test_num_tasks_raises(self):
        with pytest.raises(TypeError, match="BoxSpace is continuous: it has no num_tasks"):
            _ = self._make_space().num_tasks


class TestProductSpace:
    @staticmethod
    def _make_factors(device=None):
        a = DiscreteSpace({"a": [10.0, 11.0, 12.0]}, device=device)
        b = DiscreteSpace({"b": [0, 1]}, device=device)
        c = DiscreteSpace({"c": [0.1, 0.2, 0.3, 0.4], "c2": [4, 3, 2, 1]}, device=device)
        return a, b, c

    @pytest.mark.parametrize("device", get_default_devices())
    def test_mixed_radix_matches_itertools_product(self, device):
        a, b, c = self._make_factors(device)
        space = ProductSpace([a, b, c])
        assert space.is_discrete
        assert space.num_tasks == 3 * 2 * 4
        assert space.names == ("a", "b", "c", "c2")
        combos = list(itertools.product(range(3), range(2), range(4)))  # the last factor varies fastest
        ids = torch.arange(space.num_tasks, device=device)
        p = space.params(ids)
        assert p.batch_size == (24,)
        assert p["a"].tolist() == pytest.approx([[10.0, 11.0, 12.0][i] for i, _, _ in combos])
        assert p["b"].tolist() == [[0, 1][j] for _, j, _ in combos]
        assert p["c"].tolist() == pytest.approx([[0.1, 0.2, 0.3, 0.4][k] for _, _, k in combos])
        assert p["c2"].tolist() == [[4, 3, 2, 1][k] for _, _, k in combos]
        parts = space.split(ids)
        assert [t.tolist() for t in parts] == [list(x) for x in zip(*combos)]
        assert torch.equal(space.join(parts), ids)

    def test_check_tasks_discrete(self):
        space = ProductSpace(list(self._make_factors()))
        space.check_tasks(torch.tensor([0, 23]))
        with pytest.raises(ValueError, match=r"tasks has task ids \[24\] outside \[0, 24\)"):
            space.check_tasks(torch.tensor([24]))

    def test_sample_uniform_discrete(self):
        space = ProductSpace(list(self._make_factors()))
        t = space.sample_uniform(2400, torch.Generator().manual_seed(1))
        assert t.dtype == torch.int64 and t.shape == (2400,)
        assert int(t.min()) >= 0 and int(t.max()) < 24
        assert torch.bincount(t, minlength=24).min() > 40  # 100 expected per id

    @pytest.mark.parametrize("device", get_default_devices())
    def test_mixed_box_and_discrete(self, device):
        d = DiscreteSpace({"g": [9.0, 10.0, 11.0]}, device=device)
        box = BoxSpace({"w": 0.0, "h": 1.0}, {"w": 1.0, "h": 3.0}, device=device)
        space = ProductSpace([box, d])
        assert not space.is_discrete
        assert space.task_shape == (3,)
        assert space.names == ("w", "h", "g")
        with pytest.raises(TypeError, match="continuous"):
            _ = space.num_tasks
        tasks = torch.tensor([[0.25, 2.0, 2.0], [1.0, 1.0, 0.0]], device=device)
        p = space.params(tasks)
        assert p["w"].tolist() == [0.25, 1.0]
        assert p["h"].tolist() == [2.0, 1.0]
        assert p["g"].tolist() == [11.0, 9.0]
        space.check_tasks(tasks)
        with pytest.raises(ValueError, match=r"tasks \(factor 1\) has task ids \[3\] outside \[0, 3\)"):
            space.check_tasks(torch.tensor([[0.5, 2.0, 3.0]], device=device))
        gen = torch.Generator(device=device).manual_seed(0)
        s = space.sample_uniform(500, gen)
        assert s.shape == (500, 3)
        space.check_tasks(s)
        assert set(s[:, 2].tolist()) == {0.0, 1.0, 2.0}

    def test_duplicate_names(self):
        with pytest.raises(
            ValueError, match=r"spaces\[1\] repeats parameter\(s\) \['g'\]; factors must set different parameters"
        ):
            ProductSpace([DiscreteSpace({"g": [1.0]}), BoxSpace({"g": 0.0}, {"g": 1.0})])

    def test_construction_errors(self):
        with pytest.raises(ValueError, match="ProductSpace needs at least one space"):
            ProductSpace([])
        with pytest.raises(TypeError, match=r"spaces\[0\] must be a TaskSpace, got dict"):
            ProductSpace([{"g": [1.0]}])

    def test_check_names_lists_known(self):
        space = ProductSpace([DiscreteSpace({"g": [1.0]}), BoxSpace({"w": 0.0}, {"w": 1.0})])
        with pytest.raises(
            ValueError, match=r"names has unknown parameter\(s\) \['mass'\]; this space's parameters are \['g', 'w'\]"
        ):
            space.check_names(["w", "mass"])
