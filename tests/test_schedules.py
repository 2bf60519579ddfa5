"""Tests of currlearn.schedules against closed forms written in plain Python."""

from __future__ import annotations

import math

import pytest
import torch

from currlearn.schedules import (
    ChainSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    Schedule,
    StepSchedule,
    make_schedule,
)
from currlearn.testing import get_default_devices

ITERATIONS = list(range(-3, 40))  # before start, inside, after the end


# ---------------------------------------------------------------- plain-Python references
def _progress(it: float, start: int, total: int) -> float:
    return min(max(it - start, 0), total)


def ref_linear(it: float, init: float, final: float, total: int, start: int = 0) -> float:
    return init + (final - init) * _progress(it, start, total) / total


def ref_cosine(it: float, init: float, final: float, total: int, start: int = 0) -> float:
    p = _progress(it, start, total)
    return final + (init - final) * (1 + math.cos(math.pi * p / total)) / 2


def ref_exponential(it: float, init: float, final: float, total: int, start: int = 0) -> float:
    return init * (final / init) ** (_progress(it, start, total) / total)


def ref_step(it: float, values: list[float], boundaries: list[int]) -> float:
    return values[sum(1 for b in boundaries if it >= b)]


def _approx(x: float) -> object:
    return pytest.approx(x, rel=1e-5, abs=1e-6)


CASES = [
    ("linear", LinearSchedule, ref_linear, dict(init=0.5, final=2.0, total=10)),
    ("linear_down_start", LinearSchedule, ref_linear, dict(init=3.0, final=-1.0, total=7, start=5)),
    ("cosine", CosineSchedule, ref_cosine, dict(init=1.0, final=0.0, total=12)),
    ("cosine_start", CosineSchedule, ref_cosine, dict(init=-2.0, final=4.0, total=9, start=11)),
    ("exponential", ExponentialSchedule, ref_exponential, dict(init=1.0, final=0.01, total=20)),
    ("exponential_neg", ExponentialSchedule, ref_exponential, dict(init=-0.5, final=-8.0, total=6, start=3)),
]


class TestClosedForms:
    @pytest.mark.parametrize(("name", "cls", "ref", "kwargs"), CASES, ids=[c[0] for c in CASES])
    def test_int_input(self, name, cls, ref, kwargs):
        s = cls(**kwargs)
        for it in ITERATIONS:
            out = s(it)
            assert isinstance(out, torch.Tensor)
            assert out.shape == ()
            assert out.dtype == torch.get_default_dtype()
            assert float(out) == _approx(ref(it, **kwargs)), f"{name} at iteration {it}"

    @pytest.mark.parametrize(("name", "cls", "ref", "kwargs"), CASES, ids=[c[0] for c in CASES])
    @pytest.mark.parametrize("device", get_default_devices())
    @pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float32, torch.float64])
    def test_tensor_input_keeps_shape(self, name, cls, ref, kwargs, device, dtype):
        s = cls(**kwargs)
        its = torch.tensor(ITERATIONS[:42], device=device).to(dtype).reshape(6, 7)
        out = s(its)
        assert out.shape == its.shape
        assert out.device == its.device
        assert out.dtype == torch.get_default_dtype()
        expected = [[ref(float(v), **kwargs) for v in row] for row in its.tolist()]
        torch.testing.assert_close(out.cpu(), torch.tensor(expected), rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize(("name", "cls", "ref", "kwargs"), CASES, ids=[c[0] for c in CASES])
    def test_clamped_outside_range(self, name, cls, ref, kwargs):
        s = cls(**kwargs)
        start = kwargs.get("start", 0)
        assert s.end == start + kwargs["total"]
        for it in [-100, start - 1, start]:
            assert float(s(it)) == _approx(kwargs["init"])
        for it in [s.end, s.end + 1, s.end + 10_000]:
            assert float(s(it)) == _approx(kwargs["final"])

    @pytest.mark.parametrize(("name", "cls", "ref", "kwargs"), CASES, ids=[c[0] for c in CASES])
    def test_bounds(self, name, cls, ref, kwargs):
        lo, hi = cls(**kwargs).bounds()
        assert lo == _approx(min(kwargs["init"], kwargs["final"]))
        assert hi == _approx(max(kwargs["init"], kwargs["final"]))

    def test_constant(self):
        s = ConstantSchedule(2.5, total=4, start=2)
        for it in ITERATIONS:
            assert float(s(it)) == 2.5
        assert s(torch.zeros(3, 2, dtype=torch.int64)).shape == (3, 2)

    def test_linear_docstring_values(self):
        s = LinearSchedule(0.0, 1.0, total=10)
        assert float(s(5)) == _approx(0.5)
        assert float(s(torch.tensor(5))) == _approx(0.5)


class TestChainSchedule:
    @staticmethod
    def _ref_warmup_linear(it: float) -> float:
        # Constant 0 for 5 iterations, then a linear ramp 0 -> 1 over 10 iterations.
        if it < 5:
            return 0.0
        return min((it - 5) / 10, 1.0)

    def test_warmup_then_linear(self):
        s = ChainSchedule([ConstantSchedule(0.0, total=5), LinearSchedule(0.0, 1.0, total=10)])
        assert s.total == 15
        for it in ITERATIONS:
            assert float(s(it)) == _approx(self._ref_warmup_linear(it)), f"iteration {it}"
        its = torch.tensor([[0, 5, 10], [15, 30, 7]])
        out = s(its)
        assert out.shape == (2, 3)
        expected = torch.tensor([[self._ref_warmup_linear(v) for v in row] for row in its.tolist()])
        torch.testing.assert_close(out, expected)

    def test_three_segments_ignore_own_start(self):
        # Segment starts are ignored: each runs in local time from 0.
        segs = [
            LinearSchedule(1.0, 0.0, total=4, start=50),
            CosineSchedule(0.0, 2.0, total=6, start=7),
            ConstantSchedule(3.0, total=2),
        ]
        s = ChainSchedule(segs)

        def ref(it: float) -> float:
            if it < 4:
                return ref_linear(it, 1.0, 0.0, 4)
            if it < 10:
                return ref_cosine(it - 4, 0.0, 2.0, 6)
            return 3.0

        for it in ITERATIONS:
            assert float(s(it)) == _approx(ref(it)), f"iteration {it}"

    @pytest.mark.parametrize("device", get_default_devices())
    def test_device(self, device):
        s = ChainSchedule([ConstantSchedule(0.0, total=5), StepSchedule([1.0, 2.0], [3])])
        out = s(torch.arange(12, device=device))
        assert out.device == device
        assert out.tolist() == [0.0] * 5 + [1.0] * 3 + [2.0] * 4

    def test_errors(self):
        with pytest.raises(ValueError, match="ChainSchedule needs at least one schedule"):
            ChainSchedule([])
        with pytest.raises(TypeError, match=r"schedules\[1\] must be a Schedule, got float"):
            ChainSchedule([ConstantSchedule(0.0), 1.0])


class TestStepSchedule:
    VALUES = [1.0, 2.0, 3.0, -4.0]
    BOUNDS = [10, 20, 21]

    def test_at_and_around_boundaries(self):
        s = StepSchedule(self.VALUES, self.BOUNDS)
        points = [-5, 0, 9, 10, 11, 19, 20, 21, 22, 1000]
        for it in points:
            assert float(s(it)) == ref_step(it, self.VALUES, self.BOUNDS), f"iteration {it}"
        out = s(torch.tensor(points).reshape(2, 5))
        assert out.shape == (2, 5)
        assert out.flatten().tolist() == [ref_step(it, self.VALUES, self.BOUNDS) for it in points]

    @pytest.mark.parametrize("device", get_default_devices())
    def test_tensor_on_device(self, device):
        s = StepSchedule([1.0, 2.0, 3.0], boundaries=[10, 20])
        out = s(torch.tensor([0, 10, 19, 20, 99], device=device))
        assert out.device == device
        assert out.tolist() == [1.0, 2.0, 2.0, 3.0, 3.0]

    def test_no_boundaries_is_constant(self):
        s = StepSchedule([7.0], [])
        assert [float(s(it)) for it in (0, 5, 10**6)] == [7.0, 7.0, 7.0]

    def test_bounds(self):
        assert StepSchedule(self.VALUES, self.BOUNDS).bounds() == (-4.0, 3.0)

    @pytest.mark.parametrize("boundaries", [[10, 10], [20, 10], [5, 7, 6]])
    def test_non_increasing_boundaries(self, boundaries):
        values = [0.0] * (len(boundaries) + 1)
        with pytest.raises(ValueError, match="boundaries must be strictly increasing"):
            StepSchedule(values, boundaries)

    @pytest.mark.parametrize(("values", "boundaries"), [([1.0, 2.0], [1, 2]), ([1.0, 2.0, 3.0, 4.0], [1, 2]), ([], [])])
    def test_len_mismatch(self, values, boundaries):
        with pytest.raises(ValueError, match=r"len\(values\) == len\(boundaries\) \+ 1"):
            StepSchedule(values, boundaries)

    def test_bad_boundary(self):
        with pytest.raises(ValueError, match=r"boundaries\[0\] must be an int >= 0, got -1"):
            StepSchedule([1.0, 2.0], [-1])
        with pytest.raises(ValueError, match=r"boundaries\[1\] must be an int >= 0, got 2.5"):
            StepSchedule([1.0, 2.0, 3.0], [1, 2.5])

    def test_non_finite_value(self):
        with pytest.raises(ValueError, match=r"values\[1\] must be finite, got nan"):
            StepSchedule([1.0, float("nan")], [3])


class TestErrors:
    @pytest.mark.parametrize("total", [0, -1, -100])
    @pytest.mark.parametrize("cls", [LinearSchedule, CosineSchedule, ExponentialSchedule])
    def test_total_not_positive(self, cls, total):
        with pytest.raises(ValueError, match=rf"total must be > 0 iterations, got {total}\."):
            cls(1.0, 2.0, total=total)

    def test_total_not_int(self):
        with pytest.raises(TypeError, match=r"total must be an int number of iterations, got 2\.5"):
            LinearSchedule(0.0, 1.0, total=2.5)
        with pytest.raises(TypeError, match="total must be an int number of iterations, got True"):
            LinearSchedule(0.0, 1.0, total=True)
        with pytest.raises(ValueError, match="total must be > 0 iterations, got 0"):
            ConstantSchedule(1.0, total=0)

    def test_bad_start(self):
        with pytest.raises(ValueError, match=r"start must be an int >= 0, got -1"):
            LinearSchedule(0.0, 1.0, total=3, start=-1)

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
    @pytest.mark.parametrize("cls", [LinearSchedule, CosineSchedule, ExponentialSchedule])
    def test_non_finite_init_final(self, cls, bad):
        with pytest.raises(ValueError, match=r"init must be finite, got"):
            cls(bad, 1.0, total=3)
        with pytest.raises(ValueError, match=r"final must be finite, got"):
            cls(1.0, bad, total=3)
        with pytest.raises(ValueError, match=r"value must be finite, got"):
            ConstantSchedule(bad)

    def test_non_number_init(self):
        with pytest.raises(TypeError, match=r"init must be a real number, got '1' \(str\)"):
            LinearSchedule("1", 2.0, total=3)

    @pytest.mark.parametrize(("init", "final"), [(0.0, 1.0), (1.0, 0.0), (1.0, -1.0), (-2.0, 3.0), (0.0, 0.0)])
    def test_exponential_zero_or_sign_change(self, init, final):
        with pytest.raises(ValueError, match="ExponentialSchedule needs init and final non-zero and of the same sign"):
            ExponentialSchedule(init, final, total=5)


class TestMakeSchedule:
    @pytest.mark.parametrize(
        ("kind", "kwargs", "cls"),
        [
            ("constant", dict(value=1.5), ConstantSchedule),
            ("linear", dict(init=0.0, final=1.0, total=4), LinearSchedule),
            ("cosine", dict(init=1.0, final=0.0, total=4), CosineSchedule),
            ("exponential", dict(init=1.0, final=4.0, total=4), ExponentialSchedule),
            ("step", dict(values=[1.0, 2.0], boundaries=[2]), StepSchedule),
        ],
    )
    def test_known_kinds(self, kind, kwargs, cls):
        s = make_schedule(kind, **kwargs)
        assert type(s) is cls
        assert isinstance(s, Schedule)

    def test_values(self):
        assert float(make_schedule("cosine", init=1.0, final=0.0, total=4)(2)) == _approx(0.5)
        assert float(make_schedule("exponential", init=1.0, final=4.0, total=4)(2)) == _approx(2.0)

    def test_unknown_kind_lists_known(self):
        with pytest.raises(
            ValueError,
            match=r"Unknown schedule kind='sigmoid'; known kinds: \['constant', 'cosine', 'exponential', 'linear', 'step'\]",
        ):
            make_schedule("sigmoid", init=0.0, final=1.0, total=3)
