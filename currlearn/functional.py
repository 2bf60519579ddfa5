r"""Pure tensor functions behind the adaptive curricula: prioritisation, staleness, normalisation.

Every function takes and returns tensors, keeps them on their device, and never synchronises
with the host unless its docstring says so. The curricula in :mod:`currlearn.curricula` are
thin stateful wrappers around these functions; they are public so that users can build their
own samplers and check the formulas by hand.

The prioritisation functions follow Prioritized Level Replay (Jiang et al. 2021,
https://arxiv.org/abs/2010.03934), Section 3: given scores :math:`S_i` and a temperature
:math:`\beta`, :math:`P_S(l_i) = h(S_i)^{1/\beta} / \sum_j h(S_j)^{1/\beta}` with
:math:`h(S_i) = 1/\mathrm{rank}(S_i)` (rank prioritisation) or :math:`h(S_i) = S_i` (power
prioritisation); the staleness distribution is :math:`P_C(l_i) = (c - C_i) / \sum_j (c - C_j)`
and the replay distribution mixes them, :math:`P = (1 - \rho) P_S + \rho P_C`.

Examples:
    >>> import torch
    >>> from currlearn import functional as F
    >>> scores = torch.tensor([0.1, 0.5, 0.3])
    >>> F.rank_weights(scores, temperature=1.0)
    tensor([0.3333, 1.0000, 0.5000])
    >>> F.normalize(F.power_weights(scores, temperature=1.0))
    tensor([0.1111, 0.5556, 0.3333])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "batch_ema",
    "effective_length",
    "finite",
    "group_by_task",
    "inverse_permutation",
    "mix_staleness",
    "normalize",
    "partition_promote",
    "power_weights",
    "rank_cdf",
    "rank_codes",
    "rank_weights",
    "sample_from_cdf",
    "saturate",
    "staleness_weights",
    "top_candidates",
    "update_sorted_order",
    "update_top_candidates",
    "update_topk",
]


def normalize(weights: Tensor, mask: Tensor | None = None) -> Tensor:
    """Scale non-negative weights to sum to 1; all-zero weights become uniform (over ``mask``).

    Args:
        weights (Tensor): shape ``[n]``, non-negative and finite.
        mask (Tensor, optional): shape ``[n]``, bool: the support used when all weights are
            zero (and zeroed outside). Default: all entries.

    Returns:
        Shape ``[n]``, non-negative, summing to 1 (or all zero when ``mask`` is all False).

    Examples:
        >>> import torch
        >>> normalize(torch.tensor([1.0, 3.0]))
        tensor([0.2500, 0.7500])
        >>> normalize(torch.zeros(3), mask=torch.tensor([True, False, True]))
        tensor([0.5000, 0.0000, 0.5000])
    """
    if mask is not None:
        # weights are finite: a product (a ``where`` over an irregular mask is several times
        # slower on CPU)
        support = mask.to(weights.dtype)
        weights = weights * support
    else:
        support = torch.ones_like(weights)
    total = weights.sum()
    fallback = support / support.sum().clamp_min(1)
    return torch.where(total > 0, weights / total.clamp_min(torch.finfo(weights.dtype).tiny), fallback)


def rank_weights(scores: Tensor, temperature: float, mask: Tensor | None = None) -> Tensor:
    """Rank prioritisation: ``h(S_i)^(1/β)`` with ``h = 1 / rank`` (rank 1 = highest score).

    Ranks are taken among the entries in ``mask`` (PLR ranks the seen levels only); ties are
    broken by position (the lower index ranks first). This is the reference formula: it sorts,
    ``O(n log n)``. :class:`~currlearn.curricula.PrioritizedLevelReplay` keeps the order
    incrementally with :func:`update_sorted_order` instead.

    Args:
        scores (Tensor): shape ``[n]``, finite.
        temperature (float): β > 0; small β concentrates on the top ranks.
        mask (Tensor, optional): shape ``[n]``, bool; entries outside get weight 0.

    Returns:
        Unnormalised weights, shape ``[n]``.

    Examples:
        >>> import torch
        >>> rank_weights(torch.tensor([2.0, 5.0, 1.0]), temperature=0.5)
        tensor([0.2500, 1.0000, 0.1111])
        >>> rank_weights(torch.tensor([2.0, 5.0, 1.0]), 1.0, mask=torch.tensor([True, False, True]))
        tensor([1.0000, 0.0000, 0.5000])
    """
    if mask is not None:
        scores = torch.where(mask, scores, torch.full_like(scores, -float("inf")))
    order = torch.sort(scores, descending=True, stable=True).indices
    ranks = inverse_permutation(order) + 1
    w = ranks.to(scores.dtype).pow(-1.0 / temperature)
    if mask is not None:
        w = torch.where(mask, w, torch.zeros_like(w))
    return w


def rank_cdf(num: int, temperature: float, device: torch.device | str | None = None) -> Tensor:
    """Cumulative rank weights ``sum_{r <= k} r^(-1/β)`` for ``k = 1..num``, in float64.

    Sampling a rank ``r`` from the first ``m`` entries (``m`` seen levels) and taking the
    level of rank ``r`` draws from rank prioritisation without sorting at sample time.

    Examples:
        >>> rank_cdf(3, temperature=1.0)
        tensor([1.0000, 1.5000, 1.8333], dtype=torch.float64)
    """
    ranks = torch.arange(1, num + 1, dtype=torch.float64, device=device)
    return torch.cumsum(ranks.pow(-1.0 / temperature), 0)


def effective_length(cdf: Tensor) -> int:
    """Entries of a cumulative sum before it stops growing (later entries are never drawn).

    For rank prioritisation with a small temperature the rank weights underflow the cdf's
    precision after a few dozen ranks; sampling from the prefix is then exactly the same and
    much cheaper. Synchronises with the host (call once).

    Examples:
        >>> effective_length(rank_cdf(10_000, temperature=0.1))
        39
    """
    growing = cdf[1:] > cdf[:-1]
    if not bool(growing.any()):
        return 1
    return int(growing.nonzero()[-1]) + 2


def power_weights(scores: Tensor, temperature: float, mask: Tensor | None = None) -> Tensor:
    """Power prioritisation: ``max(S_i, 0)^(1/β)``, zero outside ``mask``.

    Args:
        scores (Tensor): shape ``[n]``, finite. Negative scores count as 0.
        temperature (float): β > 0.
        mask (Tensor, optional): shape ``[n]``, bool.

    Examples:
        >>> import torch
        >>> power_weights(torch.tensor([-1.0, 2.0, 3.0]), temperature=0.5)
        tensor([0., 4., 9.])
    """
    w = scores.clamp_min(0).pow_(1.0 / temperature)
    if mask is not None:
        w = w.mul_(mask)  # finite weights: a product (a `where` over an irregular mask is slower on CPU)
    return w


def staleness_weights(timestamps: Tensor, counter: Tensor | int, mask: Tensor | None = None) -> Tensor:
    """Staleness ``c - C_i``: episodes sampled since level ``i`` was last sampled (PLR's ``P_C``).

    Timestamps in the future (``C_i > c``, e.g. a sentinel marking unseen levels) give 0.

    Args:
        timestamps (Tensor): shape ``[n]``, int64: ``C_i``, the episode counter at the last
            time level ``i`` was sampled.
        counter (Tensor or int): ``c``, the current episode counter.
        mask (Tensor, optional): shape ``[n]``, bool; entries outside get 0.

    Returns:
        Shape ``[n]``, int64 (exact; sample with :func:`sample_from_cdf` on its cumsum).

    Examples:
        >>> import torch
        >>> staleness_weights(torch.tensor([0, 3, 5, 9]), 5)
        tensor([5, 2, 0, 0])
    """
    w = (counter - timestamps).clamp_min(0)
    if mask is not None:
        w = w * mask
    return w


def mix_staleness(p_score: Tensor, p_staleness: Tensor, staleness_coef: float) -> Tensor:
    """The PLR replay distribution ``(1 - ρ) P_S + ρ P_C``.

    ``ρ`` is the paper's staleness coefficient (``staleness_coef`` in the reference code). When
    ``P_C`` is all zero (no level is stale yet) the result is ``P_S``.

    Args:
        p_score (Tensor): shape ``[n]``, sums to 1.
        p_staleness (Tensor): shape ``[n]``, sums to 1 or is all zero.
        staleness_coef (float): ρ in [0, 1].

    Examples:
        >>> import torch
        >>> mix_staleness(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 0.1)
        tensor([0.9000, 0.1000])
    """
    has_stale = p_staleness.sum() > 0
    mixed = (1.0 - staleness_coef) * p_score + staleness_coef * p_staleness.to(p_score.dtype)
    return torch.where(has_stale, mixed, p_score)


def inverse_permutation(order: Tensor) -> Tensor:
    """``rank`` with ``rank[order[i]] = i`` (the position of each entry in ``order``).

    Examples:
        >>> import torch
        >>> inverse_permutation(torch.tensor([2, 0, 1]))
        tensor([1, 2, 0])
    """
    inv = torch.empty_like(order)
    inv.scatter_(0, order, torch.arange(order.numel(), device=order.device, dtype=order.dtype))
    return inv


def update_topk(top: Tensor, old_kth: Tensor, keys: Tensor, index: Tensor) -> Tensor:
    """The ``k`` largest keys after some keys changed, from the old top-``k`` and the changed
    entries only, falling back to a full ``topk`` when that cannot be exact.

    An entry outside the old top-``k`` whose key did not change is at most ``old_kth``; so when
    the ``k``-th largest new key among the candidates (old top-``k`` and changed entries) is at
    least ``old_kth``, no other entry can displace one of them. Otherwise (a top entry's key
    fell below the old ``k``-th) the result is ``torch.topk(keys, k)``.

    Args:
        top (Tensor): shape ``[k]``, int64: the old top-``k`` ids, by descending old key.
        old_kth (Tensor): scalar: the ``k``-th largest old key (``old_keys[top[-1]]``).
        keys (Tensor): shape ``[n]``, the new keys (``-inf`` allowed, no NaN).
        index (Tensor): shape ``[m]``, int64: the entries whose key changed.

    Returns:
        Shape ``[k]``, int64: ids of the ``k`` largest new keys, by descending key (ties in any
        order, as ``torch.topk``).

    Note:
        One host synchronisation (the exactness test).

    Examples:
        >>> import torch
        >>> keys = torch.tensor([5.0, 4.0, 3.0, 2.0])
        >>> top = torch.tensor([0, 1])
        >>> old_kth = keys[1].clone()
        >>> keys[3] = 9.0
        >>> update_topk(top, old_kth, keys, torch.tensor([3]))
        tensor([3, 0])
        >>> keys[3], keys[0] = 0.0, 1.0  # both fall: only a full search is exact
        >>> update_topk(torch.tensor([3, 0]), torch.tensor(5.0), keys, torch.tensor([0, 3]))
        tensor([1, 2])
    """
    k = top.numel()
    candidates = torch.unique(torch.cat([top, index]))
    values, pos = keys.index_select(0, candidates).topk(k)
    if bool(values[-1] >= old_kth):
        return candidates.index_select(0, pos)
    return keys.topk(k).indices


def finite(x: Tensor) -> Tensor:
    """``torch.isfinite(x)`` in two elementwise ops (``|x| < inf``; NaN compares False), for
    the per-episode checks of every update: ``isfinite`` takes about twice as long on CPU.

    Examples:
        >>> import torch
        >>> finite(torch.tensor([1.0, float("nan"), float("inf"), -3e38]))
        tensor([ True, False, False,  True])
    """
    return x.abs() < math.inf


def rank_codes(keys: Tensor, ids: Tensor) -> Tensor:
    """Distinct int64 codes that order entries by key (compared as float32) descending, ties by
    id ascending: ``topk`` of the codes picks the same entries however it is reached (an
    incremental update or a rebuild after a load), where ``topk`` of tied keys may not. Finite
    keys beyond float32's range count as its largest magnitude (:func:`saturate`); infinities
    keep their place.

    Args:
        keys (Tensor): shape ``[m]``, floating, no NaN.
        ids (Tensor): shape ``[m]``, int64 ids in ``[0, 2**31)``.

    Examples:
        >>> import torch
        >>> codes = rank_codes(torch.tensor([1.0, 2.0, 2.0]), torch.arange(3))
        >>> codes.topk(3).indices  # key 2 first, the lower id first among the ties
        tensor([1, 2, 0])
    """
    k = keys if keys.dtype == torch.float32 else saturate(keys.double(), torch.float32)
    return (_sortable_int(k).long() << 32) | (0x7FFFFFFF - ids)


def top_candidates(codes: Tensor, k: int, member: Tensor, spare: int = 1024) -> tuple[Tensor, Tensor]:
    """Candidates for the ``k`` largest distinct ``codes`` from all of them, with a spare: the
    start (and rebuild) of :func:`update_top_candidates`. ``O(n)``.

    Args:
        codes (Tensor): shape ``[n]``, int64, distinct (:func:`rank_codes`).
        k (int): how many must stay exact, ``1 <= k``.
        member (Tensor): shape ``[n]``, bool; set in place to True exactly at the candidates.
        spare (int): keep ``max(k, spare)`` candidates (at most ``n``).

    Returns:
        ``(top, bound)``: the candidates by descending code, and the bound of every other code
        (the lowest candidate's, or the smallest int64 when all are candidates).

    Examples:
        >>> import torch
        >>> member = torch.zeros(4, dtype=torch.bool)
        >>> top, bound = top_candidates(torch.tensor([3, 9, 1, 7]), 1, member, spare=2)
        >>> top.tolist(), int(bound), member.tolist()
        ([1, 3], 7, [False, True, False, True])
    """
    n = codes.numel()
    m = min(n, max(k, spare))
    values, top = torch.topk(codes, m)
    bound = values[-1] if m < n else torch.tensor(torch.iinfo(torch.int64).min, device=codes.device)
    member.zero_().index_fill_(0, top, True)
    return top, bound


def update_top_candidates(
    top: Tensor, bound: Tensor, keys: Tensor, index: Tensor, member: Tensor, k: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Keep ``m`` candidates for the ``k <= m`` largest keys after some keys changed, in
    ``O(m + len(index))``: the top-``k`` stays exact while the candidates hold it.

    Invariant: every entry outside ``top`` has a key ``<= bound``. The new candidates are the
    ``m`` largest of the old ones and the changed entries (``index``), by their new keys; the
    first one left out raises ``bound``. The first ``k`` new candidates are the top-``k`` of
    all keys when the ``k``-th of them is ``>= bound``; when it is not (top entries fell and
    the spare candidates ran out), the caller rebuilds with ``keys.topk(m)`` (bound: the
    ``m``-th key). A spare of ``m - k`` candidates makes that rare: with the top entries'
    keys redrawn at every update, about once every ``(m - k) / k`` updates.

    Args:
        top (Tensor): shape ``[m]``, int64: the candidates, by descending old key.
        bound (Tensor): scalar: no entry outside ``top`` has a larger key.
        keys (Tensor): shape ``[n]``, the new keys (``-inf`` allowed, no NaN).
        index (Tensor): shape ``[c]``, int64, unique: the entries whose key changed.
        member (Tensor): shape ``[n]``, bool: True exactly at ``top``; updated in place.
        k (int): how many of the candidates must be exact, ``1 <= k <= m``.

    Returns:
        ``(top [m], bound, exact)``: the new candidates by descending key, the new bound, and
        a bool tensor: whether ``top[:k]`` is the top-``k`` of ``keys`` (ties in any order).

    Examples:
        >>> import torch
        >>> keys = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
        >>> top = torch.tensor([0, 1, 2]); bound = keys[3].clone()  # entries 3, 4 are <= 2
        >>> member = torch.zeros(5, dtype=torch.bool).index_fill_(0, top, True)
        >>> keys[0] = 0.0  # the best entry falls: entries 1 and 2 are still the top 2
        >>> top, bound, exact = update_top_candidates(top, bound, keys, torch.tensor([0]), member, k=2)
        >>> top.tolist(), float(bound), bool(exact)
        ([1, 2, 0], 2.0, True)
    """
    m = top.numel()
    fresh = index.masked_select(~member.index_select(0, index))
    candidates = torch.cat([top, fresh])
    values = keys.index_select(0, candidates)
    if candidates.numel() > m:
        values, pos = values.topk(m + 1)
        bound = torch.maximum(bound, values[m])
        pos = pos[:m]
    else:
        values, pos = values.sort(descending=True)
    new_top = candidates.index_select(0, pos)
    member.index_fill_(0, top, False).index_fill_(0, new_top, True)
    return new_top, bound, values[k - 1] >= bound


def update_sorted_order(order: Tensor, keys: Tensor, index: Tensor, *, assume_unique: bool = False) -> Tensor:
    """Re-sort a permutation after some keys changed, in ``O(n + m log n)`` (no full sort).

    ``order`` sorted the *old* keys in descending order. ``keys`` holds the new keys, which
    differ from the old ones only at ``index``. The result sorts the new keys in descending
    order: unchanged entries keep their relative order, changed entries are merged in with
    ``searchsorted`` (a changed entry goes after unchanged entries with an equal key).

    Args:
        order (Tensor): shape ``[n]``, int64, a permutation of ``0..n-1``.
        keys (Tensor): shape ``[n]``, the new keys (``-inf`` allowed, no NaN).
        index (Tensor): shape ``[m]``, int64, the changed entries (duplicates allowed).
        assume_unique (bool): ``index`` is free of duplicates (skips a sort); changed entries
            with equal new keys then keep the order they have in ``index``.

    Returns:
        The new permutation, shape ``[n]``.

    Note:
        The number of distinct changed entries is data dependent: one host synchronisation
        per call on CUDA.

    Examples:
        >>> import torch
        >>> keys = torch.tensor([3.0, 2.0, 1.0, 0.0])
        >>> order = torch.tensor([0, 1, 2, 3])
        >>> keys[3] = 2.5
        >>> update_sorted_order(order, keys, torch.tensor([3]))
        tensor([0, 3, 1, 2])
    """
    n = order.numel()
    device = order.device
    changed_ids = index if assume_unique else torch.unique_consecutive(torch.sort(index).values)
    m = changed_ids.numel()
    changed = torch.zeros(n, dtype=torch.bool, device=device).index_fill_(0, changed_ids, True)
    changed_seq = changed.index_select(0, order)  # [n], changed slots in the old order
    seq_keys = keys.index_select(0, order)
    # Keys of the unchanged entries, in the old (still sorted) order; changed slots take the
    # key of the previous unchanged slot so that the sequence stays non-increasing.
    mono = torch.cummin(seq_keys.masked_fill_(changed_seq, float("inf")), 0).values
    kept_before = torch.cumsum((~changed_seq).to(torch.int64), 0)  # unchanged slots in [0, p]
    # Changed entries sorted by their new key (descending, ties in the order of ``index``).
    new_keys = keys.index_select(0, changed_ids)
    perm = torch.sort(~_sortable_int(new_keys), stable=True).indices  # descending keys
    new_keys = new_keys.index_select(0, perm)
    new_ids = changed_ids.index_select(0, perm)
    # Number of unchanged entries with key >= each new key.
    hits = torch.searchsorted(-mono, -new_keys, right=True)
    ins = torch.where(hits > 0, kept_before.index_select(0, (hits - 1).clamp_min(0)), torch.zeros_like(hits))
    new_pos = ins + torch.arange(m, device=device)
    # Final slot of an unchanged entry with rank r among unchanged: r + #{i : ins_i <= r}.
    counts = torch.zeros(n + 1, dtype=torch.int64, device=device)
    counts.index_add_(0, ins, torch.ones_like(ins))
    inserted_upto = torch.cumsum(counts, 0)
    r = (kept_before - 1).clamp_min(0)
    kept_pos = r + inserted_upto.index_select(0, r)
    if m:
        # Changed slots first write their old id into the new entries' slots (overwritten below).
        slots = changed_seq.nonzero().squeeze(1)  # m of them, in sequence order
        kept_pos.index_copy_(0, slots, new_pos)
    out = torch.empty_like(order)
    out.index_copy_(0, kept_pos, order)
    out.index_copy_(0, new_pos, new_ids)
    return out


def _sortable_int(x: Tensor) -> Tensor:
    """Integers that sort like the floats ``x`` (integer sorts are radix sorts on CPU, faster)."""
    if x.dtype == torch.float64:
        bits, mask = x.view(torch.int64), 0x7FFFFFFFFFFFFFFF
    else:
        bits, mask = x.to(torch.float32).view(torch.int32), 0x7FFFFFFF
    bits = torch.where(bits == torch.iinfo(bits.dtype).min, torch.zeros_like(bits), bits)  # -0.0 == 0.0
    return torch.where(bits < 0, bits ^ mask, bits)


def partition_promote(order: Tensor, position: Tensor, ids: Tensor, boundary: int) -> None:
    """Move entries to the front part of a two-part permutation, in place, in ``O(len(ids))``.

    ``order`` is a permutation split at ``boundary`` (e.g. seen levels first, unseen after) and
    ``position`` its inverse. The entries ``ids`` (unique, all at positions ``>= boundary``) are
    swapped into positions ``[boundary, boundary + len(ids))``, so that the front part grows by
    ``len(ids)``. Synchronises with the host (data-dependent sizes).

    Args:
        order (Tensor): shape ``[n]``, int64.
        position (Tensor): shape ``[n]``, int64, ``position[order[i]] = i``.
        ids (Tensor): shape ``[s]``, int64, unique.
        boundary (int): size of the front part.

    Examples:
        >>> import torch
        >>> order = torch.tensor([0, 1, 2, 3, 4]); position = order.clone()
        >>> partition_promote(order, position, torch.tensor([4]), boundary=2)
        >>> order, position
        (tensor([0, 1, 4, 3, 2]), tensor([0, 1, 4, 3, 2]))
    """
    s = ids.numel()
    if s == 0:
        return
    hi = boundary + s
    pos = position.index_select(0, ids)
    outside = pos >= hi
    out_ids, out_pos = ids[outside], pos[outside]
    region = order[boundary:hi]
    in_slots = boundary + (~torch.isin(region, ids)).nonzero().squeeze(1)
    movers = order.index_select(0, in_slots)  # entries of the back part sitting in the target slots
    order.index_copy_(0, out_pos, movers)
    position.index_copy_(0, movers, out_pos)
    order.index_copy_(0, in_slots, out_ids)
    position.index_copy_(0, out_ids, in_slots)


def batch_ema(old: Tensor, mean: Tensor, count: Tensor, smoothing: float, initialized: Tensor) -> Tensor:
    """Exponential moving average after ``count`` observations with mean ``mean`` at once.

    ``count`` sequential updates ``x <- (1 - a) x + a v`` with values of mean ``mean`` move the
    average to ``(1 - a)^count x + (1 - (1 - a)^count) mean`` (exact when the values are
    equal). Uninitialised entries take ``mean``.

    Args:
        old (Tensor): shape ``[m]``, the current averages.
        mean (Tensor): shape ``[m]``, the batch means.
        count (Tensor): shape ``[m]``, observations per entry (``> 0``).
        smoothing (float): ``a`` in (0, 1]; 1 keeps the latest mean.
        initialized (Tensor): shape ``[m]``, bool.

    Examples:
        >>> import torch
        >>> batch_ema(torch.tensor([1.0, 5.0]), torch.tensor([0.0, 2.0]), torch.tensor([2.0, 1.0]),
        ...           0.5, torch.tensor([True, False]))
        tensor([0.2500, 2.0000])
    """
    m = mean.double()
    if smoothing == 1:  # the latest mean, initialised or not
        return saturate(m, old.dtype)
    x = old.double()  # a convex mix of finite values, rounded into old's range
    keep = (count.double() * math.log1p(-smoothing)).exp_()  # (1 - a)^count; pow is 3x slower
    return saturate(torch.where(initialized, keep * x + (1.0 - keep) * m, m), old.dtype)


def saturate(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` cast to the floating ``dtype``, finite values beyond its range clamped to its
    largest finite magnitude (not rounded to infinity); NaN and infinities pass unchanged.

    Examples:
        >>> import torch
        >>> saturate(torch.tensor([1e39, -1e39, 2.0], dtype=torch.float64), torch.float32)
        tensor([ 3.4028e+38, -3.4028e+38,  2.0000e+00])
    """
    big = torch.finfo(dtype).max
    finite = torch.isfinite(x)
    return torch.where(finite, x.clamp(-big, big), x).to(dtype)


def group_by_task(
    task: Tensor, *values: Tensor, valid: Tensor | None = None, scratch: Tensor | None = None
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Per-task counts and sums of per-episode values, over the tasks that occur.

    With ``scratch`` (an int64 tensor with an entry per task, e.g. kept by the curriculum) the
    grouping scatters into it, touching only the ``e`` entries of the batch: ``O(e)`` work, no
    sort (``torch.unique`` sorts the batch, ``O(e log e)``: about 3 times slower at 4096
    episodes). The ids then come in the order of their first episode. Without it, they come
    sorted. A fresh tensor of ``num_tasks`` entries as scratch costs a page fault per touched
    page: keep one.

    Args:
        task (Tensor): shape ``[e]``, int64 task ids.
        *values (Tensor): each of shape ``[e]``.
        valid (Tensor, optional): shape ``[e]``, bool; invalid episodes are dropped.
        scratch (Tensor, optional): int64, at least as many entries as the largest id + 1, on
            ``task``'s device; its contents are overwritten (at the ids only).

    Returns:
        ``(task_ids [m], counts [m], [sums [m] per value])`` with ``task_ids`` unique (sorted
        without ``scratch``, else in the order of their first episode);
        counts and the sums of floating values in float64 (a sum of float32 values near their
        range's end stays finite, and so does the mean). Synchronises with the host (dynamic
        size ``m``).

    Examples:
        >>> import torch
        >>> ids, n, (s,) = group_by_task(torch.tensor([4, 1, 4]), torch.tensor([1.0, 2.0, 3.0]))
        >>> ids, n.tolist(), s.tolist()
        (tensor([1, 4]), [1.0, 2.0], [2.0, 4.0])
        >>> scratch = torch.empty(5, dtype=torch.int64)
        >>> ids, n, (s,) = group_by_task(torch.tensor([4, 1, 4]), torch.tensor([1.0, 2.0, 3.0]), scratch=scratch)
        >>> ids, n.tolist(), s.tolist()
        (tensor([4, 1]), [2.0, 1.0], [4.0, 2.0])
    """
    if valid is not None:
        task = task.masked_select(valid)
        values = tuple(v.masked_select(valid) for v in values)
    dtype = torch.float64
    device = task.device
    e = task.numel()
    if scratch is None:
        ids, inv = torch.unique(task, return_inverse=True)
        m = ids.numel()
    else:
        # The first episode of each task represents it: the smallest episode index per task.
        episode = torch.arange(e, device=device)
        first = scratch
        first.index_fill_(0, task, e).scatter_reduce_(0, task, episode, "amin")
        rep = first.index_select(0, task)
        is_first = rep == episode
        ids = task.masked_select(is_first)
        m = ids.numel()
        # slot of each task among ``ids``: written at the representative, read by every episode
        first.index_copy_(0, ids, torch.arange(m, device=device))
        inv = first.index_select(0, task)
    counts = torch.zeros(m, dtype=dtype, device=device).index_add_(0, inv, torch.ones(e, dtype=dtype, device=device))
    sums = [
        torch.zeros(m, dtype=dtype if v.is_floating_point() else v.dtype, device=device).index_add_(
            0, inv, v.double() if v.is_floating_point() else v
        )
        for v in values
    ]
    return ids, counts, sums


def sample_from_cdf(cdf: Tensor, u: Tensor, size: Tensor | None = None) -> Tensor:
    """Indices drawn by inverse-CDF: ``searchsorted(cdf, u * total)``.

    An integer ``cdf`` (cumulative integer weights) is sampled exactly: the target is the
    integer ``floor(u * total)``, uniform in ``[0, total)``.

    Args:
        cdf (Tensor): shape ``[n]``, non-decreasing cumulative weights (float or int64).
        u (Tensor): shape ``[k]``, uniform in [0, 1), float64 for integer ``cdf``.
        size (Tensor, optional): scalar int64, sample among the first ``size`` entries only
            (default all); must be >= 1.

    Returns:
        Shape ``[k]``, int64 indices in ``[0, size)``.

    Examples:
        >>> import torch
        >>> cdf = torch.tensor([1.0, 1.0, 3.0])
        >>> sample_from_cdf(cdf, torch.tensor([0.0, 0.4, 0.99]))
        tensor([0, 2, 2])
        >>> sample_from_cdf(torch.tensor([1, 1, 3]), torch.tensor([0.0, 0.34, 0.99], dtype=torch.float64))
        tensor([0, 2, 2])
    """
    n = cdf.numel()
    last = torch.full((), n - 1, dtype=torch.int64, device=cdf.device) if size is None else (size - 1).clamp(0, n - 1)
    total = cdf[last]
    if cdf.dtype.is_floating_point:
        target = u.to(cdf.dtype) * total
    else:
        target = torch.minimum((u * total).long(), (total - 1).clamp_min(0))
    idx = torch.searchsorted(cdf, target, right=True)
    return torch.minimum(idx, last)
