"""The off-policy demo (examples/offpolicy_replay.py): SAC with a CurriculumSampler replay
buffer; the gates replayed from the buffer follow the curriculum's weights."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "offpolicy_replay.py"


def _load():
    spec = importlib.util.spec_from_file_location("offpolicy_replay", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def result():
    demo = _load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return demo.run(1200, check_draws=20_000, seed=0, verbose=False)


def test_sac_trains_and_curriculum_moves(result):
    hist = result["history"]
    assert len(hist) == 6  # 1200 frames / 200 per batch
    assert all(math.isfinite(r["loss_qvalue"]) and math.isfinite(r["loss_actor"]) for r in hist)
    cur = result["curriculum"]
    assert cur.metrics()["curriculum/episodes"] == hist[-1]["episodes"] > 0
    # the weights are updated from the batches: they are not the same every iteration
    w = torch.stack(result["weights"])
    assert not torch.allclose(w[0], w[-1]), f"the curriculum's weights never moved: {w[0].tolist()}"
    assert len(result["buffer"]) == 1200


def test_replayed_task_frequencies_follow_curriculum_weights(result):
    """Each iteration: total variation between replayed and expected gate frequencies of a
    20k-item draw stays below 0.03 (sampling noise is about 0.01); at the end every gate is
    within 4 standard errors (+0.002) of w_t n_t / sum_s w_s n_s."""
    for row in result["history"]:
        assert row["tv_replay_vs_weights"] < 0.03, (
            f"iteration {row['iteration']}: replayed gates are {row['tv_replay_vs_weights']:.4f} (TV) away "
            "from the curriculum's weights"
        )
    c = result["check"]
    n = 20_000
    p = c["expected"]
    tol = 4 * (p * (1 - p) / n).sqrt() + 0.002
    off = ((c["observed"] - p).abs() > tol).nonzero().flatten().tolist()
    assert not off, "gates replayed off their weight: " + "; ".join(
        f"gate {t}: replayed {float(c['observed'][t]):.4f}, expected {float(p[t]):.4f} "
        f"(weight {float(c['weights'][t]):.4f}, stored share {float(c['stored'][t]):.4f})"
        for t in off
    )
    # and the weights matter: uniform replay (the stored mix) would be far from them
    assert result["history"][-1]["tv_stored_vs_weights"] > 0.1
