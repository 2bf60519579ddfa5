"""Task spaces: what a curriculum chooses from, and how a task becomes env parameters.

A *task* is a tensor. In a discrete space (:class:`DiscreteSpace`) a task is an integer id in
``[0, num_tasks)``; a batch of tasks has shape ``[n]``, dtype ``int64``. In a continuous space
(:class:`BoxSpace`) a task is a vector of parameter values; a batch has shape ``[n, dim]``.
:meth:`TaskSpace.params` maps a batch of tasks to a ``TensorDict`` of named env parameters with
batch size ``[n]``, on the space's device.

Examples:
    >>> import torch
    >>> from currlearn.spaces import DiscreteSpace, BoxSpace, ProductSpace
    >>> levels = DiscreteSpace({"g": [5.0, 7.0, 9.8], "m": [0.5, 1.0, 2.0]})
    >>> levels.params(torch.tensor([0, 2]))["g"]
    tensor([5.0000, 9.8000])
    >>> box = BoxSpace(low={"gate_width": 0.5}, high={"gate_width": 4.0})
    >>> box.params(torch.tensor([[1.0]]))["gate_width"]
    tensor([1.])
    >>> ProductSpace([levels, DiscreteSpace({"l": [1.0, 2.0]})]).num_tasks
    6
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import torch
from tensordict import TensorDict
from torch import Tensor

__all__ = ["BoxSpace", "DiscreteSpace", "ProductSpace", "TaskSpace", "grid_space"]


class TaskSpace(ABC):
    """Base class of task spaces.

    Attributes:
        names (tuple of str): the env parameters a task sets, in order.
        is_discrete (bool): whether tasks are integer ids.
    """

    names: tuple[str, ...]
    is_discrete: bool

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Device of the space's tables and of the tasks it produces."""

    @property
    def num_tasks(self) -> int:
        """Number of tasks of a discrete space.

        Raises:
            TypeError: for a continuous space.
        """
        raise TypeError(f"{type(self).__name__} is continuous: it has no num_tasks.")

    @property
    def task_shape(self) -> tuple[int, ...]:
        """Shape of one task: ``()`` for an id, ``(dim,)`` for a vector."""
        return ()

    @property
    def task_dtype(self) -> torch.dtype:
        """Dtype of tasks: ``int64`` ids or floating vectors."""
        return torch.int64 if self.is_discrete else torch.get_default_dtype()

    @abstractmethod
    def params(self, tasks: Tensor) -> TensorDict:
        """Env parameters of a batch of tasks.

        Args:
            tasks (Tensor): shape ``[n, *task_shape]``.

        Returns:
            A TensorDict with batch size ``[n]`` and one entry per name in :attr:`names`.
        """

    @abstractmethod
    def sample_uniform(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``num`` tasks uniformly. Returns shape ``[num, *task_shape]``."""

    @abstractmethod
    def check_tasks(self, tasks: Tensor, argument: str = "tasks") -> None:
        """Raise ``ValueError`` naming ``argument`` if any task is outside the space.

        This synchronises with the host; call it on input validation paths, not hot loops.
        """

    @abstractmethod
    def to(self, device: torch.device | str) -> TaskSpace:
        """Move the space's tables to ``device`` (in place). Returns ``self``."""

    def check_names(self, names: Sequence[str], argument: str = "names") -> None:
        """Raise ``ValueError`` if a name is not a parameter of this space."""
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(
                f"{argument} has unknown parameter(s) {unknown}; this space's parameters are {list(self.names)}."
            )


def _as_name(name: object, argument: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{argument}: parameter names must be non-empty strings, got {name!r}.")
    return name


def _ids_inside(tasks: Tensor, num_tasks: int) -> bool:
    """Whether every id lies in ``[0, num_tasks)``: one pass, one sync."""
    lo, hi = torch.aminmax(tasks)
    return bool((lo >= 0) & (hi < num_tasks))


class DiscreteSpace(TaskSpace):
    """A table of ``num_tasks`` tasks, each a set of named parameter values.

    Args:
        params (mapping of str to list of numbers, optional): one list per env parameter, all
            of the same length ``num_tasks``; task ``i`` sets ``name = params[name][i]``. Lists of
            Python ints give ``int64`` parameters, anything else the default float dtype.
        num_tasks (int, optional): number of tasks when ``params`` is not given (bare ids, e.g.
            level seeds); the parameter ``task_id`` then carries the id.
        device: device of the tables. Default CPU.

    Raises:
        ValueError: lists of unequal length, an empty table, non-finite values.
    """

    is_discrete = True

    def __init__(
        self,
        params: Mapping[str, Sequence[float]] | None = None,
        num_tasks: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        device = torch.device("cpu") if device is None else torch.device(device)
        if params is None:
            if num_tasks is None or isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
                raise ValueError(
                    f"DiscreteSpace needs params or num_tasks >= 1, got params=None, num_tasks={num_tasks!r}."
                )
            table = {"task_id": torch.arange(num_tasks, device=device)}
        else:
            if not isinstance(params, Mapping) or not params:
                raise ValueError(f"params must be a non-empty mapping of name -> list of values, got {params!r}.")
            lengths = {_as_name(k, "params"): len(v) for k, v in params.items()}
            if len(set(lengths.values())) != 1:
                raise ValueError(
                    f"params lists must all have the same length (one value per task), got lengths {lengths}."
                )
            n = next(iter(lengths.values()))
            if n == 0:
                raise ValueError("params lists are empty: a DiscreteSpace needs at least one task.")
            if num_tasks is not None and num_tasks != n:
                raise ValueError(f"num_tasks={num_tasks} does not match the {n} values given per parameter in params.")
            table = {}
            for k, v in params.items():
                values = list(v)
                is_int = all(isinstance(x, int) and not isinstance(x, bool) for x in values)
                t = torch.as_tensor(values, dtype=torch.int64 if is_int else torch.get_default_dtype(), device=device)
                if not is_int and not torch.isfinite(t).all():
                    raise ValueError(f"params[{k!r}] has non-finite values: {values}.")
                table[k] = t
            num_tasks = n
        self._num_tasks = int(num_tasks)
        self.table = TensorDict(table, batch_size=[self._num_tasks], device=device)
        self.names = tuple(table)

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.table.device

    @property
    def num_tasks(self) -> int:  # noqa: D102
        return self._num_tasks

    def params(self, tasks: Tensor) -> TensorDict:  # noqa: D102
        tasks = tasks.to(self.device)
        # Per-column indexing: a fraction of the cost of indexing the TensorDict (a hot path
        # of every env reset).
        return TensorDict({k: v[tasks] for k, v in self.table.items()}, batch_size=tasks.shape, device=self.device)

    def sample_uniform(self, num: int, generator: torch.Generator | None = None) -> Tensor:  # noqa: D102
        return torch.randint(self._num_tasks, (num,), generator=generator, device=self.device)

    def check_tasks(self, tasks: Tensor, argument: str = "tasks") -> None:  # noqa: D102
        if tasks.dtype.is_floating_point or tasks.dtype == torch.bool:
            raise ValueError(f"{argument} must hold integer task ids, got dtype {tasks.dtype}.")
        if tasks.numel() and not _ids_inside(tasks, self._num_tasks):
            bad = tasks[(tasks < 0) | (tasks >= self._num_tasks)]
            raise ValueError(f"{argument} has task ids {bad[:5].tolist()} outside [0, {self._num_tasks}).")

    def to(self, device: torch.device | str) -> DiscreteSpace:  # noqa: D102
        self.table = self.table.to(device)
        return self

    def __repr__(self) -> str:
        return f"DiscreteSpace(num_tasks={self._num_tasks}, names={list(self.names)})"


class BoxSpace(TaskSpace):
    """A box of named continuous parameters, ``low[name] <= value <= high[name]``.

    Args:
        low (mapping of str to float): lower bound per parameter.
        high (mapping of str to float): upper bound per parameter, ``>= low``, same names.
        device: device of the bounds. Default CPU.

    Raises:
        ValueError: different names in ``low`` and ``high``, non-finite or inverted bounds.
    """

    is_discrete = False

    def __init__(
        self,
        low: Mapping[str, float],
        high: Mapping[str, float],
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(low, Mapping) or not low:
            raise ValueError(f"low must be a non-empty mapping of name -> float, got {low!r}.")
        if not isinstance(high, Mapping) or set(low) != set(high):
            raise ValueError(
                f"low and high must name the same parameters, got low={list(low)}, high={list(high) if isinstance(high, Mapping) else high!r}."
            )
        names = tuple(_as_name(k, "low") for k in low)
        for k in names:
            lo, hi = float(low[k]), float(high[k])
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"bounds of {k!r} must be finite, got low={lo}, high={hi}.")
            if hi < lo:
                raise ValueError(f"bounds of {k!r} are inverted: low={lo} > high={hi}.")
        device = torch.device("cpu") if device is None else torch.device(device)
        self.names = names
        self.low = torch.tensor([float(low[k]) for k in names], device=device)
        self.high = torch.tensor([float(high[k]) for k in names], device=device)

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.low.device

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return len(self.names)

    @property
    def task_shape(self) -> tuple[int, ...]:  # noqa: D102
        return (self.dim,)

    def params(self, tasks: Tensor) -> TensorDict:  # noqa: D102
        tasks = tasks.to(self.device)
        return TensorDict(
            {k: tasks[..., i] for i, k in enumerate(self.names)}, batch_size=tasks.shape[:-1], device=self.device
        )

    def sample_uniform(self, num: int, generator: torch.Generator | None = None) -> Tensor:  # noqa: D102
        u = torch.rand((num, self.dim), generator=generator, device=self.device)
        return self.low + u * (self.high - self.low)

    def check_tasks(self, tasks: Tensor, argument: str = "tasks") -> None:  # noqa: D102
        if tasks.shape[-1:] != (self.dim,):
            raise ValueError(f"{argument} must have shape [n, {self.dim}], got {list(tasks.shape)}.")
        t = tasks.to(self.device)
        outside = (t < self.low - 1e-6) | (t > self.high + 1e-6) | ~torch.isfinite(t)
        if outside.any():
            raise ValueError(
                f"{argument} has values outside the box low={self.low.tolist()}, high={self.high.tolist()}."
            )

    def clip(self, tasks: Tensor) -> Tensor:
        """Clamp tasks into the box."""
        return torch.maximum(torch.minimum(tasks, self.high), self.low)

    def to(self, device: torch.device | str) -> BoxSpace:  # noqa: D102
        self.low, self.high = self.low.to(device), self.high.to(device)
        return self

    def __repr__(self) -> str:
        return f"BoxSpace(names={list(self.names)}, low={self.low.tolist()}, high={self.high.tolist()})"


class ProductSpace(TaskSpace):
    """The product of several spaces with disjoint parameter names.

    A product of discrete spaces is discrete: task ids are mixed-radix numbers, the last space
    varying fastest. A product with any continuous factor is continuous: a task is the
    concatenation of the factors' tasks, discrete factors contributing their id as one float.

    Args:
        spaces (list of TaskSpace): the factors, at least one.
    """

    def __init__(self, spaces: Sequence[TaskSpace]) -> None:
        spaces = list(spaces)
        if not spaces:
            raise ValueError("ProductSpace needs at least one space, got an empty list.")
        names: list[str] = []
        for i, s in enumerate(spaces):
            if not isinstance(s, TaskSpace):
                raise TypeError(f"spaces[{i}] must be a TaskSpace, got {type(s).__name__}.")
            clash = set(names) & set(s.names)
            if clash:
                raise ValueError(
                    f"spaces[{i}] repeats parameter(s) {sorted(clash)}; factors must set different parameters."
                )
            names.extend(s.names)
        self.spaces = spaces
        self.names = tuple(names)
        self.is_discrete = all(s.is_discrete for s in spaces)
        self._widths = [1 if s.is_discrete else s.task_shape[0] for s in spaces]
        if self.is_discrete:
            sizes = [s.num_tasks for s in spaces]
            self._num_tasks = math.prod(sizes)
            strides = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]
            self._sizes = torch.tensor(sizes, device=self.device)
            self._strides = torch.tensor(strides, device=self.device)

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.spaces[0].device

    @property
    def num_tasks(self) -> int:  # noqa: D102
        if not self.is_discrete:
            return super().num_tasks
        return self._num_tasks

    @property
    def task_shape(self) -> tuple[int, ...]:  # noqa: D102
        return () if self.is_discrete else (sum(self._widths),)

    def split(self, tasks: Tensor) -> list[Tensor]:
        """The factors' tasks of a batch of product tasks."""
        if self.is_discrete:
            digits = (tasks.unsqueeze(-1) // self._strides) % self._sizes
            return list(digits.unbind(-1))
        parts, start = [], 0
        for s, w in zip(self.spaces, self._widths):
            chunk = tasks[..., start : start + w]
            parts.append(chunk[..., 0].round().long() if s.is_discrete else chunk)
            start += w
        return parts

    def join(self, parts: Sequence[Tensor]) -> Tensor:
        """A batch of product tasks from the factors' tasks."""
        if self.is_discrete:
            return (torch.stack(list(parts), -1) * self._strides).sum(-1)
        cols = [
            p.unsqueeze(-1).to(torch.get_default_dtype()) if s.is_discrete else p for s, p in zip(self.spaces, parts)
        ]
        return torch.cat(cols, -1)

    def params(self, tasks: Tensor) -> TensorDict:  # noqa: D102
        tasks = tasks.to(self.device)
        out = self.spaces[0].params(self.split(tasks)[0])
        for s, part in zip(self.spaces[1:], self.split(tasks)[1:]):
            out.update(s.params(part))
        return out

    def sample_uniform(self, num: int, generator: torch.Generator | None = None) -> Tensor:  # noqa: D102
        return self.join([s.sample_uniform(num, generator) for s in self.spaces])

    def check_tasks(self, tasks: Tensor, argument: str = "tasks") -> None:  # noqa: D102
        if self.is_discrete:
            DiscreteSpace.check_tasks(self, tasks, argument)  # type: ignore[arg-type]
            return
        if tasks.shape[-1:] != self.task_shape:
            raise ValueError(f"{argument} must have shape [n, {self.task_shape[0]}], got {list(tasks.shape)}.")
        for i, (s, part) in enumerate(zip(self.spaces, self.split(tasks))):
            s.check_tasks(part, f"{argument} (factor {i})")

    def to(self, device: torch.device | str) -> ProductSpace:  # noqa: D102
        for s in self.spaces:
            s.to(device)
        if self.is_discrete:
            self._sizes, self._strides = self._sizes.to(device), self._strides.to(device)
        return self

    def __repr__(self) -> str:
        return f"ProductSpace({self.spaces!r})"


def grid_space(axes: Mapping[str, Sequence[float]], device: torch.device | str | None = None) -> DiscreteSpace:
    """A :class:`DiscreteSpace` of every combination of ``axes`` (``{name: values}``), the last
    name varying fastest: a grid of levels for the discrete adaptive curricula.

    Args:
        axes (mapping of str to list of numbers): the values of each env parameter.
        device: device of the tables. Default CPU.

    Raises:
        ValueError: ``axes`` is empty or not a mapping, or a value list is empty.

    Examples:
        >>> space = grid_space({"a": [1.0, 2.0], "b": [0.0, 5.0, 9.0]})
        >>> space.num_tasks, space.params(torch.tensor([5]))["a"].tolist()
        (6, [2.0])
    """
    import itertools

    if not isinstance(axes, Mapping) or not axes:
        raise ValueError(f"axes must be a non-empty mapping of parameter -> list of values, got {axes!r}.")
    values = []
    for name, v in axes.items():
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) == 0:
            raise ValueError(f"axes[{name!r}] must be a non-empty list of values, got {v!r}.")
        values.append([float(x) for x in v])
    combos = list(itertools.product(*values))
    return DiscreteSpace({n: [c[i] for c in combos] for i, n in enumerate(axes)}, device=device)
