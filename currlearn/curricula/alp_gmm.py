"""ALP-GMM: absolute learning progress with Gaussian mixtures over a box of parameters.

Portelas, Colas, Hofmann, Oudeyer 2019, "Teacher algorithms for curriculum learning of Deep
RL in continuously parameterized environments", https://arxiv.org/abs/1910.07224.

For every finished episode on task ``x`` with return ``r``, the *absolute learning progress*
is ``ALP = |r - r_old|`` where ``r_old`` is the return of the nearest task (Euclidean, in the
box normalised to [0, 1]^d) among the tasks played before it (0 for the very first task).
Every ``fit_interval`` episodes, Gaussian mixture models are fitted on the ``(x, ALP)`` pairs of
the last ``fit_window`` episodes, one per number of components in ``2..max_components``, and
the one with the lowest AIC is kept. A task is then drawn uniformly at random with probability
``random_share``; otherwise a component is picked with probability proportional to the ALP
coordinate of its mean, and the task is drawn from that component's Gaussian (over the task
dimensions), clipped to the box. Until the first fit, all tasks are random.

Everything is tensors: the history is a preallocated ring buffer (capacity + size), the
nearest-neighbour search is exact (a grid of quantile cells in up to 3 dimensions, a brute force
in chunks of episodes where the grid cannot decide), and the EM fits all candidate mixtures at
once (a batch of models, padded to ``max_components``, with their Mahalanobis terms in matrix
products) and stops early as scikit-learn's ``GaussianMixture`` does (``em_tol``). The grid's
sizes and the early stop read a few numbers on the host per update (none with ``em_tol=None``
in more than 3 dimensions).

Examples:
    >>> import torch
    >>> from currlearn.feedback import episode_feedback
    >>> from currlearn.spaces import BoxSpace
    >>> cur = ALPGMMCurriculum(BoxSpace({"x": 0.0}, {"x": 1.0}), fit_interval=8, max_components=3, seed=0)
    >>> tasks = cur.sample(8)
    >>> cur.update(episode_feedback(tasks, tasks[:, 0]))  # return = x: learning progress
    >>> bool(cur.state["fitted"])
    True
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from currlearn.base import Curriculum, check_finite, check_positive_int, check_probability
from currlearn.metrics import MetricLike
from currlearn.spaces import BoxSpace, TaskSpace

__all__ = ["ALPGMMCurriculum", "fit_gmm"]

# Nearest-neighbour search: candidates per block (a multiple of the SIMD width), and distances
# per chunk of episodes on CPU (about the cache) and on other devices.
_NN_BLOCK = 256
_NN_CHUNK_CPU = 2**21
_NN_CHUNK_DEVICE = 2**24
# The grid search (up to 3 dimensions): at most this many cells a side, at least this many
# points (below, the brute force is as fast), at most this many (episode, candidate) pairs.
_GRID_MAX_DIM = 3
_GRID_MAX_CELLS = 1024
_GRID_MIN_POINTS = 2048
_GRID_MAX_PAIRS = 2**24


def _log_joint(x: Tensor, xx: Tensor, means: Tensor, chol: Tensor, log_w: Tensor) -> Tensor:
    """``log w_k + log N(x | mean_k, L_k L_k^T)`` for a batch of models, laid out ``[n, C, K]``.

    Shapes: x ``[n, D]``, xx ``[n, D * D + D]`` (each point's outer product ``x x^T``, then
    ``x``), means
    ``[C, K, D]``, chol ``[C, K, D, D]``, log_w ``[C, K]``.

    The Mahalanobis terms ``(x - m)^T P (x - m)`` (``P = L^-T L^-1``) are expanded as
    ``<x x^T, P> - 2 x^T P m + m^T P m``: two matrix products over all models at once, where a
    difference per point and model costs ``C K n D`` elementwise work (several times slower on
    CPU). :func:`fit_gmm` centres the data first, so the expansion does not cancel.
    """
    c, k, d = means.shape
    n = x.shape[0]
    eye = torch.eye(d, device=chol.device, dtype=chol.dtype)
    inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^-1
    prec = inv.transpose(-1, -2) @ inv  # [C, K, D, D]
    pm = (prec @ means.unsqueeze(-1)).squeeze(-1)  # [C, K, D]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    bias = log_w - 0.5 * (logdet + d * math.log(2 * math.pi))  # [C, K]
    # one product: [x x^T | x] against [P | -2 P m] (two small products cost twice the time)
    weights = torch.cat([prec.reshape(c * k, d * d), pm.reshape(c * k, d).mul(-2)], 1)  # [C K, D D + D]
    maha = xx @ weights.T  # [n, C K]
    maha.add_((means * pm).sum(-1).reshape(1, c * k)).clamp_min_(0)
    return maha.mul_(-0.5).add_(bias.reshape(1, c * k)).view(n, c, k)


def _safe_cholesky(cov: Tensor, reg: float) -> Tensor:
    """Cholesky factors; a matrix that is not positive definite falls back to its diagonal."""
    chol, info = torch.linalg.cholesky_ex(cov)
    diag = torch.diagonal(cov, dim1=-2, dim2=-1).clamp_min(reg).sqrt()
    return torch.where((info != 0)[..., None, None], torch.diag_embed(diag), chol)


def fit_gmm(
    x: Tensor,
    num_components: Tensor | list[int],
    max_components: int,
    *,
    iterations: int = 50,
    kmeans_iterations: int = 10,
    reg_covar: float = 1e-6,
    tol: float | None = 1e-3,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Fit one Gaussian mixture per entry of ``num_components`` with EM, all at once.

    Args:
        x (Tensor): shape ``[n, D]``, the data.
        num_components (Tensor or list of int): shape ``[C]``, components of each model
            (each ``<= max_components``); models are padded to ``max_components`` with
            inactive components of weight 0.
        max_components (int): the padding size ``K``.
        iterations (int): the most EM iterations.
        kmeans_iterations (int): k-means steps that initialise the means (>= 1).
        reg_covar (float): added to the covariance diagonals, as scikit-learn's default.
        tol (float, optional): stop once no model's mean log-likelihood per point rose by more
            than ``tol`` in an iteration (scikit-learn's ``GaussianMixture`` test and default,
            which the ALP-GMM paper used); one host sync per iteration. ``None``: always run
            ``iterations`` (no sync).
        generator (torch.Generator, optional): for the initial means (random data points).

    Returns:
        A dict with ``weights [C, K]``, ``means [C, K, D]``, ``chol [C, K, D, D]`` (Cholesky
        factors of the covariances), ``log_likelihood [C]`` (total) and ``aic [C]``
        (``2 p - 2 log L`` with ``p = k D + k D (D + 1) / 2 + k - 1`` free parameters).

    Examples:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.cat([torch.randn(100, 1, generator=g) - 5, torch.randn(100, 1, generator=g) + 5])
        >>> fit = fit_gmm(x, [1, 2], 2, generator=g)
        >>> int(fit["aic"].argmin())  # two clusters: the 2-component model wins
        1
        >>> fit["means"][1, :, 0].sort().values.round()
        tensor([-5.,  5.])
    """
    check_positive_int("kmeans_iterations", kmeans_iterations)
    n, d = x.shape
    device, dtype = x.device, x.dtype
    # Centred data: the means are shifted back at the end (see _log_joint).
    shift = x.mean(0)
    x = x - shift
    xx = torch.cat([(x.unsqueeze(-1) * x.unsqueeze(-2)).reshape(n, d * d), x], 1)  # [n, D D + D]
    ks = torch.as_tensor(num_components, device=device, dtype=torch.int64)
    c = ks.numel()
    k_max = max_components
    active = torch.arange(k_max, device=device).unsqueeze(0) < ks.unsqueeze(1)  # [C, K]
    # Initialisation: random distinct data points as means, refined by k-means (Lloyd) steps,
    # then the first M-step from the hard assignment (as scikit-learn's k-means init).
    init = torch.rand(c, n, generator=generator, device=device).argsort(-1)[:, :k_max]  # [C, K] (n >= K)
    means = x[init]  # [C, K, D]
    eye = torch.eye(d, device=device, dtype=dtype)
    chol = eye.expand(c, k_max, d, d)  # set by the M-step that ends the k-means phase
    log_w = torch.zeros(c, k_max, device=device, dtype=dtype)
    previous = None
    for step in range(kmeans_iterations + iterations):
        # responsibilities, laid out [n, C K]
        if step < kmeans_iterations:
            dist = torch.cdist(x.expand(c, n, d), means).masked_fill_(~active.unsqueeze(1), math.inf)  # [C, n, K]
            resp = torch.nn.functional.one_hot(dist.argmin(-1), k_max).to(dtype).transpose(0, 1).reshape(n, c * k_max)
        else:
            # E-step: one exp for the normaliser and the responsibilities (a logsumexp
            # followed by exp(log_p - norm) would take two).
            log_p = _log_joint(x, xx, means, chol, log_w)  # [n, C, K]
            top = log_p.amax(-1, keepdim=True)
            e = log_p.sub_(top).exp_()
            total = e.sum(-1, keepdim=True)
            if tol is not None:  # converged: the parameters of the last M-step are kept
                mean_ll = (top + total.log()).mean(0).squeeze(-1)  # [C]
                if previous is not None and bool(((mean_ll - previous).abs() < tol).all()):
                    break
                previous = mean_ll
            resp = e.div_(total).view(n, c * k_max)
        # M-step.
        nk = resp.sum(0).view(c, k_max) + 10 * torch.finfo(dtype).eps  # [C, K]
        s = (resp.T @ x).view(c, k_max, d)  # sum_n r x
        means = torch.where((nk > 1e-3).unsqueeze(-1), s / nk.unsqueeze(-1), means)
        if step >= kmeans_iterations - 1:
            # sum_n r (x - m)(x - m)^T = sum_n r x x^T - m s^T - s m^T + nk m m^T: one matrix
            # product for all models (exact for any m, the kept means of empty components too)
            second = (resp.T @ xx[:, : d * d]).view(c, k_max, d, d)
            ms = means.unsqueeze(-1) * s.unsqueeze(-2)  # m s^T
            mm = means.unsqueeze(-1) * means.unsqueeze(-2)
            scatter = second - ms - ms.transpose(-1, -2) + nk[..., None, None] * mm
            cov = scatter / nk[..., None, None] + reg_covar * eye
            chol = _safe_cholesky(cov, reg_covar)
            log_w = torch.where(active, torch.log(nk / n), -math.inf)
    log_likelihood = torch.logsumexp(_log_joint(x, xx, means, chol, log_w), -1).sum(0)
    means = means + shift
    params = ks.to(dtype) * (d + d * (d + 1) / 2 + 1) - 1
    return {
        "weights": torch.exp(log_w),
        "means": means,
        "chol": chol,
        "log_likelihood": log_likelihood,
        "aic": 2 * params - 2 * log_likelihood,
    }


class ALPGMMCurriculum(Curriculum):
    """ALP-GMM over a :class:`~currlearn.spaces.BoxSpace` (Portelas et al. 2019).

    Args:
        space (BoxSpace): the parameter box.
        random_share (float): probability of a uniformly random task, in [0, 1]. Default 0.2
            (the paper).
        fit_interval (int): episodes between two GMM fits, >= 1. Default 250 (the paper).
        fit_window (int, optional): the fit uses the ``(task, ALP)`` pairs of the last
            ``fit_window`` episodes; default ``fit_interval``. Must be ``<= history_capacity``
            and ``>= max_components``.
        max_components (int): the candidate models have ``2..max_components`` components (1 if
            ``max_components`` is 1), chosen by AIC. Default 10 (the paper: 2 to 10).
        history_capacity (int): ring buffer of past ``(task, return)`` pairs used for the
            nearest-neighbour ALP. Default 20000 (the paper keeps all history).
        em_iterations (int): the most EM iterations per fit. Default 50.
        em_tol (float, optional): a fit stops early once no candidate model's mean
            log-likelihood per point rises by more than this (scikit-learn's test, default
            1e-3); ``None`` runs ``em_iterations`` always.
        metric (str or callable): the per-episode value whose progress is measured: ``"return"``
            (default), ``"success"``, a name given to
            :func:`~currlearn.metrics.register_metric`, or a callable ``batch -> Tensor [envs,
            time]`` of per-step values summed over each episode (see :mod:`currlearn.metrics`;
            :meth:`make_tracker` computes it). ``"metric"`` reads the entry of a tracker built
            with ``EpisodeTracker(step_metric=...)``. NaN values are counted and skipped.
        seed, device: see :class:`~currlearn.base.Curriculum`.

    Raises:
        TypeError: a space that is not a BoxSpace.
        ValueError: bad sizes or probabilities (the message names the argument and value).
    """

    def __init__(
        self,
        space: TaskSpace,
        *,
        random_share: float = 0.2,
        fit_interval: int = 250,
        fit_window: int | None = None,
        max_components: int = 10,
        history_capacity: int = 20_000,
        em_iterations: int = 50,
        em_tol: float | None = 1e-3,
        metric: MetricLike = "return",
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(space, BoxSpace):
            raise TypeError(f"ALPGMMCurriculum needs a BoxSpace (continuous parameters), got {space!r}.")
        self.random_share = check_probability("random_share", random_share)
        self.fit_interval = check_positive_int("fit_interval", fit_interval)
        self.fit_window = check_positive_int("fit_window", fit_interval if fit_window is None else fit_window)
        self.max_components = check_positive_int("max_components", max_components)
        self.history_capacity = check_positive_int("history_capacity", history_capacity)
        self.em_iterations = check_positive_int("em_iterations", em_iterations)
        self.em_tol = None if em_tol is None else check_finite("em_tol", em_tol)
        if self.em_tol is not None and self.em_tol <= 0:
            raise ValueError(f"em_tol must be > 0 (or None: no early stop), got {em_tol!r}.")
        if self.fit_window > self.history_capacity:
            raise ValueError(f"fit_window={self.fit_window} must be <= history_capacity={self.history_capacity}.")
        if self.fit_window < self.max_components:
            raise ValueError(
                f"fit_window={self.fit_window} must be >= max_components={self.max_components} (one point per component at least)."
            )
        self._set_metric(metric)
        super().__init__(space, seed=seed, device=device)
        d, k, h = space.dim, self.max_components, self.history_capacity
        self._candidates = list(range(2, k + 1)) if k >= 2 else [1]
        self.state = TensorDict(
            {
                "tasks": torch.zeros(h, d),  # normalised to [0, 1]^d
                "returns": torch.zeros(h),
                "alp": torch.zeros(h),
                "size": torch.zeros((), dtype=torch.int64),
                "cursor": torch.zeros((), dtype=torch.int64),
                "since_fit": torch.zeros((), dtype=torch.int64),
                "fitted": torch.zeros((), dtype=torch.bool),
                "num_fits": torch.zeros((), dtype=torch.int64),
                "components": torch.zeros((), dtype=torch.int64),
                "means": torch.zeros(k, d + 1),
                "chol": torch.eye(d).expand(k, d, d).clone(),
                "component_prob": torch.zeros(k),
            },
            device=self.device,
        )
        self._since_fit = 0  # host mirror of state["since_fit"]: the fit decision needs no sync
        self._size = 0  # host mirror of state["size"]: the search reads the filled prefix, no sync

    def _on_load(self) -> None:
        self._since_fit = int(self.state["since_fit"])
        self._size = int(self.state["size"])

    # ------------------------------------------------------------------ helpers
    def _normalise(self, tasks: Tensor) -> Tensor:
        box: BoxSpace = self.space  # type: ignore[assignment]
        width = (box.high - box.low).clamp_min(1e-12)
        return ((tasks.to(box.low.dtype) - box.low) / width).clamp(0, 1)

    def _denormalise(self, unit: Tensor) -> Tensor:
        box: BoxSpace = self.space  # type: ignore[assignment]
        return box.low + unit * (box.high - box.low)

    # ------------------------------------------------------------------ sampling
    def _sample(self, num: int, env_ids: Tensor | None) -> Tensor:
        st = self.state
        d = self.space.dim
        g = self.generator
        u = torch.rand(num, generator=g, device=self.device)
        uniform = torch.rand(num, d, generator=g, device=self.device)
        # GMM draw: component by ALP of its mean, then the task marginal of that Gaussian.
        prob = st["component_prob"]
        prob = torch.where(prob.sum() > 0, prob, torch.full_like(prob, 1.0 / prob.numel()))
        comp = torch.multinomial(prob, num, replacement=True, generator=g)
        z = torch.randn(num, d, 1, generator=g, device=self.device)
        draws = st["means"][comp, :d] + (st["chol"][comp] @ z).squeeze(-1)
        use_gmm = st["fitted"] & (u >= self.random_share)
        unit = torch.where(use_gmm.unsqueeze(-1), draws.clamp(0, 1), uniform)
        return self._denormalise(unit)

    # ------------------------------------------------------------------ learning
    def _nearest_returns(self, x: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """Return of the nearest earlier task for each row of ``x`` (history, then the batch).

        Exact. In up to 3 dimensions a grid narrows each episode's candidates to its cell and the
        neighbouring ones: the cells are cut at quantiles of every coordinate (about 2
        candidates a cell where the tasks are spread evenly, and as many where they cluster), and
        a candidate outside the neighbourhood lies further away than the nearest face of the
        neighbourhood, so a nearest candidate closer than that face is the nearest of all. The
        episodes whose nearest candidate there is not that close (sparse regions, an empty
        neighbourhood), and every episode when the grid would compare more pairs than a
        64th of the brute force or in higher dimensions, get the brute-force search
        (:meth:`_nearest_brute`). Distances are summed from the coordinate differences in the
        same order either way.

        Returns:
            The returns ``[m]`` and whether an earlier task exists ``[m]`` (bool).
        """
        m, d = x.shape
        n = self._size
        if d > _GRID_MAX_DIM or n + m < _GRID_MIN_POINTS:
            return self._nearest_brute(x, r, torch.arange(m, device=x.device))
        st = self.state
        device = x.device
        points = torch.cat([st["tasks"][:n], x])  # candidate j: history slot j, then batch row j - n
        values = torch.cat([st["returns"][:n], r])
        total = n + m
        g = max(1, min(_GRID_MAX_CELLS, int((total / 2) ** (1 / d))))
        strides = g ** torch.arange(d, device=device)
        # cell faces at quantiles of each coordinate: faces[k] has g + 1 values, the first and
        # last pushed out to infinity (nothing lies beyond them)
        picks = torch.arange(g + 1, device=device) * (total - 1) // g  # (integers: exact at any size)
        faces = torch.sort(points, 0).values.index_select(0, picks).T.contiguous()  # [d, g + 1]
        faces[:, 0], faces[:, -1] = -math.inf, math.inf
        coords = torch.stack(
            [torch.searchsorted(faces[k, 1:-1], points[:, k].contiguous(), right=True) for k in range(d)], 1
        )
        cell = (coords * strides).sum(-1)
        by_cell = torch.sort(cell, stable=True)  # candidates grouped by cell, in column order within
        counts = torch.bincount(cell, minlength=g**d)
        starts = torch.cumsum(counts, 0) - counts
        # neighbour cells of every episode: [m, 3^d]
        offsets = torch.cartesian_prod(*[torch.tensor([-1, 0, 1], device=device)] * d).reshape(-1, d)
        near = coords[n:].unsqueeze(1) + offsets  # [m, 3^d, d]
        inside = ((near >= 0) & (near < g)).all(-1)
        near_cell = (near.clamp(0, g - 1) * strides).sum(-1)
        width = torch.where(inside, counts[near_cell], 0).reshape(-1)  # candidates per (episode, cell)
        num_pairs = int(width.sum())
        if num_pairs > min(_GRID_MAX_PAIRS, m * total // 64):  # crowded cells: the brute force is as good
            return self._nearest_brute(x, r, torch.arange(m, device=device))
        # one (episode, candidate) pair per candidate of each neighbour cell
        pair_group = torch.repeat_interleave(torch.arange(width.numel(), device=device), width)
        first = torch.cumsum(width, 0) - width
        rank = torch.arange(num_pairs, device=device) - first[pair_group]
        pos = starts[near_cell.reshape(-1)][pair_group] + rank
        cand = by_cell.indices[pos]  # candidate columns
        query = pair_group // offsets.shape[0]  # episode rows
        q, c = x.index_select(0, query), points.index_select(0, cand)
        dist = torch.sub(q[:, 0], c[:, 0]).square_()
        for k in range(1, d):
            diff = torch.sub(q[:, k], c[:, k])
            dist.addcmul_(diff, diff)
        dist.masked_fill_(cand - n >= query, math.inf)  # batch rows from the episode's own on
        best = torch.full((m,), math.inf, device=device, dtype=dist.dtype).scatter_reduce_(0, query, dist, "amin")
        column = torch.where(dist == best[query], cand, total)
        best_col = torch.full((m,), total, device=device, dtype=torch.int64).scatter_reduce_(0, query, column, "amin")
        # exact where the nearest is closer than the nearest face of the neighbourhood (every
        # candidate outside lies beyond it); a margin for the rounding of the distances
        own = coords[n:]
        low = faces.gather(1, (own - 1).clamp_min(0).T).T  # [m, d]
        low = torch.where(own > 0, low, -math.inf)
        high = faces.gather(1, (own + 2).clamp_max(g).T).T
        gap = torch.minimum(x - low, high - x).amin(-1)
        exact = best < gap.square() * (1 - 1e-5)
        out = values[best_col.clamp_max(total - 1)]
        has = torch.isfinite(best)
        rest = (~exact).nonzero().squeeze(1)
        if rest.numel():
            r_rest, has_rest = self._nearest_brute(x, r, rest)
            out = out.index_copy(0, rest, r_rest)
            has = has.index_copy(0, rest, has_rest)
        return out, has

    def _nearest_brute(self, x: Tensor, r: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`_nearest_returns` for the batch rows ``rows`` (sorted) by brute force.

        The squared distances are summed from the coordinate differences (no
        ``|x|^2 - 2 x.y + |y|^2`` expansion, whose rounding can swap close neighbours), over the
        filled part of the history and the batch rows before each row only. The candidates are
        laid out as ``[history | batch]`` columns padded with ``inf`` to whole blocks of
        ``_NN_BLOCK``; episodes go in chunks of rows that stay in cache, and the argmin is taken
        on block minima, then inside the winning block (``amin`` is much cheaper than
        ``argmin`` on the full rows). Ties go to the first candidate: the history before the batch.
        """
        st = self.state
        m, d = x.shape
        q_count = rows.numel()
        n, block = self._size, _NN_BLOCK
        device, dtype = x.device, x.dtype
        n_pad, m_pad = -(-n // block) * block, -(-m // block) * block
        ref = torch.full((d, n_pad + m_pad), math.inf, device=device, dtype=dtype)  # candidates, one row per coordinate
        ref[:, :n] = st["tasks"][:n].T
        ref[:, n_pad : n_pad + m] = x.T
        values = torch.zeros(n_pad + m_pad, device=device, dtype=r.dtype)
        values[:n] = st["returns"][:n]
        values[n_pad : n_pad + m] = r
        budget = _NN_CHUNK_CPU if device.type == "cpu" else _NN_CHUNK_DEVICE
        chunk = min(q_count, max(1, budget // (n_pad + m_pad)))
        buf = torch.empty(2 * chunk * (n_pad + m_pad), device=device, dtype=dtype)
        queries = x.index_select(0, rows).T.unsqueeze(-1)  # [d, q, 1]
        best_d = torch.empty(q_count, device=device, dtype=dtype)
        best_i = torch.empty(q_count, device=device, dtype=torch.int64)
        row_list = rows.tolist() if device.type == "cpu" else None
        for start in range(0, q_count, chunk):  # chunks of episodes (bounded memory), not a loop over tasks
            stop = min(start + chunk, q_count)
            c = stop - start
            lo_row = row_list[start] if row_list is not None else int(rows[start])
            hi_row = row_list[stop - 1] if row_list is not None else int(rows[stop - 1])
            width = n_pad + -(-(hi_row + 1) // block) * block  # the history and the batch up to the chunk's last row
            dist = buf[: c * width].view(c, width)
            diff = buf[c * width : 2 * c * width].view(c, width)
            q = queries[:, start:stop]
            torch.sub(q[0], ref[0, :width], out=dist).square_()
            for k in range(1, d):
                dist.addcmul_(torch.sub(q[k], ref[k, :width], out=diff), diff)
            # Batch rows from the chunk's first row's block on: only those before each episode count.
            first = lo_row // block * block
            later = torch.arange(first, width - n_pad, device=device) >= rows[start:stop].unsqueeze(1)
            dist[:, n_pad + first :].masked_fill_(later, math.inf)
            blocks = dist.view(c, -1, block)
            blk = blocks.amin(-1).argmin(1, keepdim=True)  # [c, 1]
            inner = blocks.gather(1, blk.unsqueeze(-1).expand(c, 1, block)).squeeze(1)  # [c, block]
            pos = inner.argmin(1, keepdim=True)
            best_d[start:stop] = inner.gather(1, pos).squeeze(1)
            best_i[start:stop] = (blk * block + pos).squeeze(1)
        return values[best_i], torch.isfinite(best_d)

    def _update(self, feedback: TensorDictBase) -> None:
        values, valid = self._metric_values(feedback)
        x = self._normalise(feedback["task"][valid])
        r = values[valid]
        m = r.numel()
        if m == 0:
            return
        h = self.history_capacity
        if m > h:  # only the last h episodes fit in the history
            x, r, m = x[-h:], r[-h:], h
        st = self.state
        r_old, has_old = self._nearest_returns(x, r)
        # |r - r_old| of two finite float32 returns may exceed float32's range: saturate it
        gap = (r.double() - r_old.double()).abs().clamp_max(torch.finfo(r.dtype).max).to(r.dtype)
        alp = torch.where(has_old, gap, torch.zeros_like(r))
        slots = (st["cursor"] + torch.arange(m, device=self.device)) % h
        st["tasks"].index_copy_(0, slots, x)
        st["returns"].index_copy_(0, slots, r)
        st["alp"].index_copy_(0, slots, alp)
        st["cursor"].copy_((st["cursor"] + m) % h)
        st["size"].copy_((st["size"] + m).clamp_max(h))
        self._size = min(self._size + m, h)
        self._since_fit += m
        st["since_fit"] += m
        if self._since_fit >= self.fit_interval:
            self._fit()
            self._since_fit = 0
            st["since_fit"].zero_()

    def _fit(self) -> None:
        """Fit the candidate GMMs on the last ``fit_window`` (task, ALP) pairs; keep the best AIC."""
        st = self.state
        h, w, d = self.history_capacity, self.fit_window, self.space.dim
        # The window is at most the episodes stored; `size >= fit_interval` here, and the
        # window is taken from the most recent entries of the ring.
        slots = (st["cursor"] - 1 - torch.arange(w, device=self.device)) % h
        data = torch.cat([st["tasks"][slots], st["alp"][slots].unsqueeze(-1)], -1)
        keep = torch.arange(w, device=self.device) < st["size"]
        # Pad missing rows (fewer stored episodes than the window) by repeating valid rows.
        data = data[
            torch.where(
                keep, torch.arange(w, device=self.device), torch.arange(w, device=self.device) % st["size"].clamp_min(1)
            )
        ]
        fit = fit_gmm(
            data.double(),
            self._candidates,
            self.max_components,
            iterations=self.em_iterations,
            tol=self.em_tol,
            generator=self.generator,
        )
        best = fit["aic"].argmin()
        means, chol_full, weights = fit["means"][best], fit["chol"][best], fit["weights"][best]
        # Task marginal of each Gaussian: the top-left d x d block of the covariance.
        cov = chol_full @ chol_full.transpose(-1, -2)
        chol_task = _safe_cholesky(cov[:, :d, :d], 1e-6)
        active = weights > 0
        alp_of_mean = means[:, d].clamp_min(0) * active
        prob = torch.where(alp_of_mean.sum() > 0, alp_of_mean, weights)
        st["means"].copy_(means.to(st["means"].dtype))
        st["chol"].copy_(chol_task.to(st["chol"].dtype))
        st["component_prob"].copy_((prob / prob.sum()).to(st["component_prob"].dtype))
        st["components"].copy_(active.sum())
        st["fitted"].fill_(True)
        st["num_fits"] += 1

    def _metrics(self) -> dict[str, Tensor | float]:
        st = self.state
        size = st["size"]
        return {
            "history_size": size,
            "alp_mean": st["alp"].double().sum() / size.clamp_min(1),
            "components": st["components"],
            "num_fits": st["num_fits"],
        }
