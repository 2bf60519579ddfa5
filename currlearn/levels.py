"""Generated levels as tensors: a level space whose rows are written at run time, the
generator and editor contracts, and a content hash for deduplication.

A *level* is a TensorDict of fixed shapes (a maze's wall grid, start and goal, ...). A
*generator* draws a batch of them; an *editor* maps a batch of levels to edited ones (ACCEL's
mutations). Both are plain callables, so a Hydra config selects them by ``_target_``::

    def generator(num: int, rng: torch.Generator, device: torch.device) -> TensorDict: ...
    def editor(levels: TensorDict, rng: torch.Generator) -> TensorDict: ...

:class:`LevelSpace` is a :class:`~currlearn.spaces.DiscreteSpace` whose table holds levels
instead of fixed parameter values: task ``i`` is row ``i``, and ``params`` of a batch of ids are
the levels' leaves, which :class:`~currlearn.integrations.torchrl.CurriculumTransform` writes
into the env at reset as it does any parameters.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> def generator(num, rng, device):
    ...     return TensorDict({"goal": torch.randint(5, (num, 2), generator=rng, device=device)}, [num])
    >>> space = LevelSpace(generator(1, torch.Generator().manual_seed(0), "cpu")[0], num_levels=3)
    >>> space.write(torch.tensor([2]), TensorDict({"goal": torch.tensor([[4, 1]])}, [1]))
    >>> space.params(torch.tensor([2, 0]))["goal"].tolist()
    [[4, 1], [0, 0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn.spaces import DiscreteSpace

__all__ = ["LevelEditor", "LevelGenerator", "LevelSpace", "check_levels", "level_hash"]

LevelGenerator = Callable[[int, torch.Generator, torch.device], TensorDictBase]
"""``(num, rng, device) -> levels``: a TensorDict of batch size ``[num]`` on ``device``."""

LevelEditor = Callable[[TensorDictBase, torch.Generator], TensorDictBase]
"""``(levels, rng) -> edited``: the same batch size, keys, shapes and dtypes."""

_HASH_SEED = 0x5EED  # fixed: a level hashes the same in every run and process
_OFFSET = 0x9E3779B97F4A7C15 - 2**64  # the golden-ratio constant as a signed int64
_PRIME = 0x100000001B3  # FNV-1a's 64-bit prime


def check_levels(levels: object, template: TensorDictBase, num: int, argument: str) -> TensorDictBase:
    """Raise ``ValueError`` (naming ``argument``) unless ``levels`` is a TensorDict of batch size
    ``[num]`` with exactly ``template``'s keys, and per-level shapes and dtypes. Returns it.
    """
    if not isinstance(levels, TensorDictBase):
        raise ValueError(f"{argument} must return a TensorDict of levels, got {type(levels).__name__}.")
    if tuple(levels.batch_size) != (num,):
        raise ValueError(f"{argument} returned batch size {list(levels.batch_size)}, expected [{num}].")
    want = {k: (tuple(v.shape), v.dtype) for k, v in template.items(True, True)}
    got = {k: (tuple(v.shape[1:]), v.dtype) for k, v in levels.items(True, True)}
    if set(got) != set(want):
        raise ValueError(f"{argument} returned keys {sorted(map(str, got))}, expected {sorted(map(str, want))}.")
    for k, (shape, dtype) in want.items():
        if got[k] != (shape, dtype):
            raise ValueError(
                f"{argument} returned {k!r} of per-level shape {list(got[k][0])} and dtype {got[k][1]}, "
                f"expected shape {list(shape)} and dtype {dtype}."
            )
    return levels


def level_hash(levels: TensorDictBase) -> Tensor:
    """A 64-bit content hash per level, shape ``[n]``, int64: equal levels hash equal, and two
    different levels collide with probability about ``2**-64``. Every leaf is read as integers
    (floats by their bits) and combined with fixed random odd multipliers, wrapping around.
    """
    n = levels.batch_size[0]
    device = levels.device if levels.device is not None else torch.device("cpu")
    out = torch.zeros(n, dtype=torch.int64, device=device)
    rng = torch.Generator().manual_seed(_HASH_SEED)
    for key in sorted(levels.keys(True, True), key=str):
        leaf = levels.get(key)
        leaf = leaf.reshape(n, math.prod(leaf.shape[1:]))
        leaf = leaf.double().view(torch.int64) if leaf.dtype.is_floating_point else leaf.to(torch.int64)
        mult = torch.randint(-(2**62), 2**62, (leaf.shape[1],), generator=rng).mul_(2).add_(1).to(device)
        mixed = (leaf + _OFFSET) * mult  # offset: a zero cell still counts
        out = out * _PRIME + (mixed ^ (mixed >> 29)).sum(1)
    return out


class LevelSpace(DiscreteSpace):
    """``num_levels`` rows of levels shaped like ``example``; row ``i`` is task ``i``.

    Args:
        example (TensorDict): one level (batch size ``[]``): its keys, shapes and dtypes.
        num_levels (int): rows, >= 1.
        device: where the rows live. Default CPU.

    Raises:
        ValueError: ``num_levels < 1``, an example with a batch size, no leaves, or nested keys.
    """

    def __init__(self, example: TensorDictBase, num_levels: int, device: torch.device | str | None = None) -> None:
        if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 1:
            raise ValueError(f"num_levels must be an int >= 1, got {num_levels!r}.")
        if not isinstance(example, TensorDictBase) or example.batch_dims != 0:
            raise ValueError(
                "example must be one level: a TensorDict with batch size [], got "
                f"{type(example).__name__} {list(getattr(example, 'batch_size', []))}."
            )
        keys = list(example.keys(True, True))
        if not keys or any(not isinstance(k, str) for k in keys):
            raise ValueError(f"a level needs one or more top-level tensor entries (no nesting), got keys {keys}.")
        device = torch.device("cpu") if device is None else torch.device(device)
        self.template = example.to(device).clone()
        self._num_tasks = num_levels
        self.table = TensorDict(
            {k: torch.zeros((num_levels, *v.shape), dtype=v.dtype, device=device) for k, v in self.template.items()},
            batch_size=[num_levels],
            device=device,
        )
        self.names = tuple(keys)

    def write(self, ids: Tensor, levels: TensorDictBase) -> None:
        """Store ``levels`` (batch size ``[len(ids)]``) in rows ``ids`` (distinct)."""
        ids = ids.to(self.device)
        for k, column in self.table.items():
            column.index_copy_(0, ids, levels.get(k).to(self.device, column.dtype))

    def levels(self, ids: Tensor) -> TensorDict:
        """The levels in rows ``ids``, a TensorDict of batch size ``ids.shape`` (copies)."""
        return self.params(ids)

    def to(self, device: torch.device | str) -> LevelSpace:  # noqa: D102
        self.table = self.table.to(device)
        self.template = self.template.to(device)
        return self

    def __repr__(self) -> str:
        return f"LevelSpace(num_levels={self._num_tasks}, names={list(self.names)})"
