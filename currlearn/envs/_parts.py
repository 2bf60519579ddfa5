"""Spec and seeding pieces that the batched envs of :mod:`currlearn.envs` share."""

from __future__ import annotations

import torch
from torchrl.data import Categorical, Composite


def done_spec(n: int) -> Composite:
    """The ``done``, ``terminated`` and ``truncated`` flags of ``n`` envs, each ``[n, 1]`` bool."""
    flag = Categorical(2, (n, 1), dtype=torch.bool)
    return Composite(done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(n,))


def seeded_generator(seed: int | None, device: torch.device | None) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (None: a fresh random seed)."""
    rng = torch.Generator(device=device)
    if seed is None:
        rng.seed()
    else:
        rng.manual_seed(int(seed))
    return rng
