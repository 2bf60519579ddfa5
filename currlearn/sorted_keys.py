"""A sorted set of distinct int64 keys in rows with room to grow: rank and select in a few
tensor ops, and an update of ``k`` keys that rewrites only the rows it touches.

The keys live in the rows of one ``[rows, capacity]`` tensor, each row sorted and holding
between 0 and ``capacity`` keys in its first slots; every key of a row is smaller than every
key of the next. The slots after a row's keys repeat a value that keeps the flattened tensor
non-decreasing (the row's largest key, or an emptied row's old keys), so one
``searchsorted`` over the flattened rows locates any key, and the running count of keys per
row turns a position into a rank and a rank into a position.

A layout fills rows to half their capacity. Replacing ``k`` keys removes them from their rows
and inserts the new ones into the rows whose ranges hold them: ``O(t * capacity + k log k)``
for the ``t <= 2 k`` rows touched, plus ``O(n / capacity)`` for the running counts, in about
thirty tensor ops, where one flat sorted array moves ``O(n)`` keys. A row that would overflow
makes the whole set be laid out again, ``O(n)``, which needs ``capacity / 2`` insertions into
one row since the last layout.

An update large enough to touch most rows (``k * capacity > n / 8``) costs less on one flat
sorted array (a few sequential passes over it), so the set switches to that (one row of ``n``
slots, no room) and back to rows once updates are small again (``k * capacity < n / 32``);
either switch costs ``O(n)``. Queries are the same in both.

Used by :class:`~currlearn.curricula.EasyFirstCurriculum` and
:class:`~currlearn.curricula.CompetenceCurriculum` (items sorted by difficulty).

Examples:
    >>> import torch
    >>> keys = SortedKeys(torch.tensor([10, 20, 30, 40, 50]), capacity=4)
    >>> keys.select(torch.tensor([0, 4])).tolist()
    [10, 50]
    >>> keys.replace(torch.tensor([20]), torch.tensor([45]))
    >>> keys.values().tolist()
    [10, 30, 40, 45, 50]
    >>> keys.rank(torch.tensor([44, 45])).tolist()  # keys <= each
    [3, 4]
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SortedKeys"]


class SortedKeys:
    """``n`` distinct int64 keys, sorted, in rows of ``capacity`` slots (or one flat row).

    Args:
        keys (Tensor): shape ``[n]``, int64, sorted ascending, distinct, ``n >= 1``.
        capacity (int): slots per row, even, ``>= 2``. Default 64.
    """

    # an update of k keys switches to one flat row above k * capacity > n * FLAT_ABOVE, and back
    # to rows below k * capacity < n * ROWS_BELOW
    FLAT_ABOVE = 1 / 8
    ROWS_BELOW = 1 / 32

    def __init__(self, keys: Tensor, capacity: int = 64) -> None:
        self.n = keys.numel()
        if self.n < 1:
            raise ValueError("SortedKeys needs at least one key.")
        if not isinstance(capacity, int) or capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even integer >= 2, got {capacity!r}.")
        self.row_capacity = capacity
        self.device = keys.device
        self._flat_layout(keys)

    # ------------------------------------------------------------------ layouts
    def _flat_layout(self, keys: Tensor) -> None:
        """One row of ``n`` slots: the sorted keys themselves."""
        self.flat, self.rows, self.capacity = keys, 1, self.n
        self.counts = torch.full((1,), self.n, dtype=torch.int64, device=self.device)
        self._recount()

    def _row_layout(self, keys: Tensor) -> None:
        """Rows filled to half their capacity, each padded with its last key."""
        cap, n = self.row_capacity, self.n
        per = cap // 2
        rows = -(-n // per)
        padded = torch.cat([keys, keys[-1:].expand(rows * per - n)]).view(rows, per)
        self.flat = torch.cat([padded, padded[:, -1:].expand(rows, per)], 1).view(-1)
        self.rows, self.capacity = rows, cap
        self.counts = torch.full((rows,), per, dtype=torch.int64, device=self.device)
        self.counts[-1] = n - per * (rows - 1)
        self._recount()

    def _recount(self) -> None:
        self.ends = torch.cumsum(self.counts, 0)  # rank just past each row's keys
        self.starts = self.ends - self.counts

    # ------------------------------------------------------------------ queries
    def rank(self, x: Tensor) -> Tensor:
        """How many keys are ``<= x``, elementwise (int64)."""
        position = torch.searchsorted(self.flat, x, right=True)
        if self.rows == 1:
            return position
        row = (position // self.capacity).clamp_max(self.rows - 1)
        offset = position - row * self.capacity
        return self.starts.index_select(0, row) + torch.minimum(offset, self.counts.index_select(0, row))

    def select(self, r: Tensor) -> Tensor:
        """The keys of ranks ``r`` (0 = the smallest), elementwise; ``0 <= r < n``."""
        if self.rows == 1:
            return self.flat.index_select(0, r)
        row = torch.searchsorted(self.ends, r, right=True).clamp_max(self.rows - 1)
        return self.flat.index_select(0, row * self.capacity + r - self.starts.index_select(0, row))

    def values(self) -> Tensor:
        """All keys, sorted, shape ``[n]``: ``O(rows * capacity)``."""
        if self.rows == 1:
            return self.flat[: self.n]
        live = torch.arange(self.capacity, device=self.device) < self.counts.unsqueeze(1)
        return self.flat.view(self.rows, self.capacity).masked_select(live)

    # ------------------------------------------------------------------ update
    def replace(self, old: Tensor, new: Tensor) -> None:
        """Remove the keys ``old`` (distinct, present) and insert ``new`` (as many, distinct, and
        distinct from the keys that stay).
        """
        work = new.numel() * self.row_capacity
        if work > self.n * self.FLAT_ABOVE or self.n <= self.row_capacity // 2:
            if self.rows > 1:
                self._flat_layout(self.values())
        elif self.rows == 1 and work < self.n * self.ROWS_BELOW:
            self._row_layout(self.flat)
        if self.rows == 1:
            self._flat_layout(_merge(self.flat, old, new))
        elif not self._replace_in_rows(old, new):  # a row would overflow: lay out again
            self._row_layout(_merge(self.values(), old, new))

    def _replace_in_rows(self, old: Tensor, new: Tensor) -> bool:
        """:meth:`replace` in the rows they touch; False (and nothing changed) if one would
        overflow.
        """
        cap, flat = self.capacity, self.flat
        old_position = torch.searchsorted(flat, old)
        new = torch.sort(new).values
        # a new key goes to the row of the first slot >= it: the keys before that slot are
        # smaller, those from it on are larger, whatever the slot holds
        new_row = (torch.searchsorted(flat, new) // cap).clamp_max(self.rows - 1)
        old_row = old_position // cap
        touched = torch.unique(torch.cat([old_row, new_row]))  # sorted
        t = touched.numel()
        old_local = torch.searchsorted(touched, old_row)
        new_local = torch.searchsorted(touched, new_row)
        counts = self.counts.index_select(0, touched)
        new_counts = counts - torch.bincount(old_local, minlength=t) + torch.bincount(new_local, minlength=t)
        if bool(new_counts.max() > cap):
            return False
        block = flat.view(self.rows, cap).index_select(0, touched)
        keep = torch.arange(cap, device=self.device) < counts.unsqueeze(1)
        keep.view(-1).index_fill_(0, old_local * cap + old_position % cap, False)
        merged = _insert(block.masked_select(keep), new)
        first = torch.cumsum(new_counts, 0) - new_counts
        offset = torch.arange(cap, device=self.device)
        source = first.unsqueeze(1) + torch.minimum(offset, (new_counts - 1).clamp_min(0).unsqueeze(1))
        rewritten = merged.index_select(0, source.view(-1).clamp_max(merged.numel() - 1)).view(t, cap)
        # an emptied row keeps its old slots: they still lie between its neighbours' keys
        block = torch.where(new_counts.unsqueeze(1) > 0, rewritten, block)
        flat.view(self.rows, cap).index_copy_(0, touched, block)
        self.counts.index_copy_(0, touched, new_counts)
        self._recount()
        return True


def _insert(kept: Tensor, new: Tensor) -> Tensor:
    """The sorted ``kept`` keys with the sorted ``new`` ones merged in at their ranks."""
    size = kept.numel() + new.numel()
    at_new = torch.searchsorted(kept, new) + torch.arange(new.numel(), device=kept.device)
    is_new = torch.zeros(size, dtype=torch.bool, device=kept.device).index_fill_(0, at_new, True)
    merged = torch.empty(size, dtype=kept.dtype, device=kept.device).masked_scatter_(~is_new, kept)
    return merged.index_copy_(0, at_new, new)


def _merge(keys: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """The sorted ``keys`` without ``old`` and with ``new``: a few sequential passes."""
    moved = torch.zeros(keys.numel(), dtype=torch.bool, device=keys.device)
    moved.index_fill_(0, torch.searchsorted(keys, old), True)
    return _insert(keys.masked_select(~moved), torch.sort(new).values)
