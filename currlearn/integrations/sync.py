"""The curriculum's decision as tensors that TorchRL's weight-sync schemes move to collector workers.

The curriculum stays authoritative in the trainer process. What a replica in a worker needs to
sample as it would (counters and state: scores, levels, schedules' positions; never the
generator) is copied into the buffers of a :class:`CurriculumDecision`, an ``nn.Module`` that
every :class:`~currlearn.integrations.torchrl.CurriculumTransform` owns as its ``decision``.
A weight-sync scheme pushes the trainer's copy to the workers' copies like policy weights (the
scheme knows the transform's path in a worker); each worker's transform loads a new decision
into its replica at the next reset or step::

    trainer process                                 worker process w (env + CurriculumTransform)
    curriculum.update(feedback)                     transform.decision  (buffers, CPU)
    decision.capture(curriculum)  -- scheme -->       seq changed? -> replica.load_state_dict(...)
    collector.update_policy_weights_(                 reset envs draw from the replica
        weights, model_id=...)                      transitions tagged (task, decision_version)

:func:`decision_schemes` builds the scheme (``"process"``: TorchRL's
``MultiProcessWeightSyncScheme``, a pipe per worker; ``"shared"``: its
``SharedMemWeightSyncScheme``, one shared-memory copy read by every worker; ``"ray"``: its
``RayWeightSyncScheme``, for ``RayCollector``); a
:class:`~currlearn.integrations.torchrl.CurriculumHook` given a collector with such a scheme pushes
after every update. Pushes are whole: a worker loads a decision only when its first and last
buffers carry the same sequence number, so a decision written while a worker reads it (with
``MultiAsyncCollector``) is loaded at the worker's next reset or step, never half-written.

A worker that is gone (its process exited, its Ray actor was killed) cannot be pushed to: the
push raises :class:`WorkerLostError`, one line naming the worker, instead of waiting for an
acknowledgement that never comes.
"""

from __future__ import annotations

import queue
from typing import Any

import torch
from tensordict import TensorDict
from torch import Tensor, nn
from torchrl.weight_update import MultiProcessWeightSyncScheme, RayWeightSyncScheme, SharedMemWeightSyncScheme

from currlearn.base import Curriculum, check_choice

__all__ = [
    "CurriculumDecision",
    "ProcessDecisionScheme",
    "RayDecisionScheme",
    "SharedDecisionScheme",
    "WorkerLostError",
    "check_workers",
    "decision_schemes",
]

_GROUPS = ("counters", "state")
_STATIC = ("_version", "_type", "space", "num_envs", "metric")


def _leaves(curriculum: Curriculum) -> list[tuple[str, str, Tensor]]:
    """``(group, key, tensor)`` of the curriculum's decision, in a fixed order."""
    out = [("counters", k, v) for k, v in curriculum.counters.items()]
    for k, v in curriculum.state.items(True, True):
        out.append(("state", ".".join(k) if isinstance(k, tuple) else k, v))
    return out


def refuse_in_workers(curriculum: Curriculum) -> None:
    """Raise ``ValueError`` for a curriculum whose replicas cannot sample in collector workers
    (:attr:`~currlearn.base.Curriculum.samples_in_trainer`)."""
    if curriculum.samples_in_trainer:
        raise ValueError(
            f"{type(curriculum).__name__} cannot sample in collector workers: {curriculum.samples_in_trainer}; keep "
            "its CurriculumTransform in the trainer process over a batched env (and drive it without collector=): "
            "TransformedEnv(ParallelEnv(n, make_env), CurriculumTransform(curriculum))."
        )


class CurriculumDecision(nn.Module):
    """A curriculum's decision (counters and state, no generator) held as CPU buffers.

    Buffers, in this order: ``seq`` (pushes so far; 0: never captured), one per counter and
    state tensor (``counters__<key>``, ``state__<key>`` with ``.`` written ``__``),
    ``decision_version`` and ``step_calls`` of the authoritative curriculum, ``refresh``
    (1: workers re-draw every env's task now, as after a resume) and ``seal`` (equal to ``seq``
    once a push is complete).

    Args:
        curriculum (Curriculum): the curriculum (or a replica) whose state sets the buffers'
            names, shapes and dtypes; they stay fixed (a scheme moves tensors of fixed shapes).
    """

    def __init__(self, curriculum: Curriculum) -> None:
        if not isinstance(curriculum, Curriculum):
            raise TypeError(f"curriculum must be a currlearn Curriculum, got {type(curriculum).__name__}.")
        refuse_in_workers(curriculum)
        super().__init__()
        self.register_buffer("seq", torch.zeros((), dtype=torch.int64))
        self._names: list[tuple[str, str, str]] = []  # (group, key, buffer name)
        for group, key, value in _leaves(curriculum):
            name = f"{group}__{key.replace('.', '__')}"
            if hasattr(self, name):
                raise ValueError(f"two state keys of the curriculum map to one buffer name {name!r}.")
            self.register_buffer(name, value.detach().to("cpu", copy=True))
            self._names.append((group, key, name))
        for name in ("decision_version", "step_calls", "refresh", "seal"):
            self.register_buffer(name, torch.zeros((), dtype=torch.int64))
        sd = curriculum.state_dict()
        self._static = {k: sd[k] for k in _STATIC if k in sd}
        self.applied = 0  # the seq last loaded into a replica (not a buffer: it is local)

    # ------------------------------------------------------------------ trainer side
    def capture(self, curriculum: Curriculum, *, refresh: bool = False) -> None:
        """Copy ``curriculum``'s decision into the buffers and bump ``seq``.

        Args:
            curriculum (Curriculum): the authoritative curriculum.
            refresh (bool): ask the workers to re-draw every env's task on loading it.

        Raises:
            ValueError: a state tensor appeared, vanished or changed shape or dtype since the
                decision was built; the buffers are unchanged then.
        """
        leaves = _leaves(curriculum)
        keys = [(g, k) for g, k, _ in self._names]
        if [(g, k) for g, k, _ in leaves] != keys:
            raise ValueError(
                f"the curriculum's state keys changed since its decision was built: {[k for _, k, _ in leaves]} "
                f"vs {[k for _, k in keys]}; a decision pushed to workers needs a fixed schema."
            )
        targets = [getattr(self, name) for _, _, name in self._names]
        for (_, key, value), target in zip(leaves, targets):
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(
                    f"the curriculum's state {key!r} is now {value.dtype} {list(value.shape)}, its decision was built "
                    f"with {target.dtype} {list(target.shape)}; a decision pushed to workers needs fixed shapes."
                )
        for (_, _, value), target in zip(leaves, targets):
            target.copy_(value.detach())
        self.decision_version.fill_(curriculum.decision_version)
        self.step_calls.fill_(curriculum.step_calls)
        self.refresh.fill_(int(refresh))
        seq = int(self.seq) + 1
        self.seq.fill_(seq)
        self.seal.fill_(seq)

    def signature(self) -> list[tuple[str, str]]:
        """``(buffer name, "dtype [shape]")`` of every buffer: what must match across processes."""
        return [(name, f"{b.dtype} {list(b.shape)}") for name, b in self.named_buffers()]

    def weights(self) -> TensorDict:
        """The buffers as a TensorDict, as a weight-sync scheme sends them."""
        return TensorDict.from_module(self)

    # ------------------------------------------------------------------ worker side
    @property
    def pending(self) -> bool:
        """Whether a complete push arrived that was not loaded yet."""
        seq = int(self.seq)
        return seq != self.applied and seq == int(self.seal)

    def apply_to(self, curriculum: Curriculum) -> bool | None:
        """Load a pending decision into ``curriculum`` (a replica; its generator is kept).

        Returns:
            None when nothing was pending (or a push was being written: it is loaded at the
            next call), else the push's ``refresh`` flag.
        """
        if not self.pending:
            return None
        seq = int(self.seq)
        values = {name: getattr(self, name).clone() for _, _, name in self._names}
        meta = (int(self.decision_version), int(self.step_calls), bool(self.refresh))
        if int(self.seq) != seq or int(self.seal) != seq:  # written while being read
            return None
        sd: dict[str, Any] = {**self._static, "counters": {}, "state": {}, "rng": curriculum.generator.get_state()}
        for group, key, name in self._names:
            sd[group][key] = values[name]
        curriculum.load_state_dict(sd, load_rng=False)
        curriculum.decision_version, curriculum.step_calls = meta[0], meta[1]
        self.applied = seq
        return meta[2]


class _DecisionSender:
    """What the decision schemes below add to TorchRL's schemes.

    TorchRL's schemes find the model by its ``model_id`` on the collector, in the trainer
    process (which has no worker env) and in the worker (where a dotted path such as
    ``"env.transform[1].decision"`` cannot be a key over Ray). Here the trainer side sends the
    trainer's :class:`CurriculumDecision` (``source``), and the worker side finds its decision at
    ``f"{worker_path}.decision"`` on its collector, checks that it has the trainer's buffers, and
    stops there (TorchRL would pass a received model on to the worker's policy).
    """

    def __init__(self, source: CurriculumDecision, worker_path: str, **kwargs: Any) -> None:
        if not isinstance(source, CurriculumDecision):
            raise TypeError(f"source must be a CurriculumDecision, got {type(source).__name__}.")
        if not isinstance(worker_path, str) or not worker_path:
            raise ValueError(
                f"worker_path must be the transform's path in a worker collector, e.g. "
                f"transform_path(make_env()) == 'env.transform[1]'; got {worker_path!r}."
            )
        super().__init__(**kwargs)  # type: ignore[call-arg]
        self._source = source
        self.worker_path = worker_path
        self._signature = source.signature()

    @property
    def source(self) -> CurriculumDecision:
        """The trainer's decision (what is pushed)."""
        return self._source

    def _init_on_sender_impl(self, *, model_id: str | None = None, context: Any = None, ctx: Any = None, **kw: Any):
        if context is None:
            return super()._init_on_sender_impl(model_id=model_id, ctx=ctx, **kw)  # type: ignore[misc]
        workers = _num_workers(context)
        return super()._init_on_sender_impl(  # type: ignore[misc]
            model_id=model_id, model=self._source, devices=[torch.device("cpu")] * workers, ctx=ctx
        )

    def _init_on_receiver_impl(self, *, model_id: str | None = None, context: Any = None, **kwargs: Any) -> None:
        if context is not None:
            from torchrl.weight_update.utils import _resolve_model

            kwargs["model"] = _resolve_model(context, f"{self.worker_path}.decision")
            kwargs.setdefault("worker_idx", getattr(context, "worker_idx", None))
        super()._init_on_receiver_impl(model_id=model_id, **kwargs)  # type: ignore[misc]
        self.context = None  # nothing to pass on
        mine = self.model.signature() if isinstance(self.model, CurriculumDecision) else None
        if mine != self._signature:
            diff = sorted(set(self._signature) ^ set(mine or []))[:4]
            raise ValueError(
                f"the worker's curriculum does not match the trainer's (at {self.worker_path}.decision): their "
                f"decisions differ in {sorted({name for name, _ in diff})}; build both from the same curriculum config."
            )

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state.pop("_source", None)  # the workers have their own decision module
        return state


def _num_workers(collector: Any) -> int:
    for attr in ("num_workers", "_num_workers"):
        n = getattr(collector, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    devices = getattr(collector, "policy_device", None)
    if isinstance(devices, (list, tuple)) and devices:
        return len(devices)
    raise ValueError(f"cannot tell how many workers {type(collector).__name__} has (no num_workers).")


class WorkerLostError(RuntimeError):
    """A collector worker is gone (its process exited, its Ray actor died): the curriculum's
    decision cannot reach it. The trainer's curriculum is unchanged by the failed push; resume
    from the last checkpoint with new workers."""


def _lost(worker: int | str, why: str, version: int | None) -> WorkerLostError:
    what = "the curriculum's decision" + (f" (version {version})" if version is not None else "")
    return WorkerLostError(
        f"collector worker {worker} is gone ({why}): {what} cannot reach it; the trainer's curriculum and its "
        "last checkpoint are intact: resume from the checkpoint with new workers."
    )


def check_workers(processes: Any, version: int | None = None) -> None:
    """Raise :class:`WorkerLostError` if one of ``processes`` (a multi-process collector's
    ``procs``) has exited."""
    for i, p in enumerate(processes or ()):
        if getattr(p, "_closed", False) or not p.is_alive():
            code = None if getattr(p, "_closed", False) else p.exitcode
            raise _lost(i, "closed" if code is None else f"exit code {code}", version)


def _ray_worker_gone(error: BaseException) -> str | None:
    """What a failed push over Ray says when a remote collector is gone, or None if the error
    is something else. A killed actor shows as Ray's ``ActorDiedError`` or as the
    ``torch.distributed`` group's "Connection closed by peer"."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if type(error).__module__.startswith("ray.") or "Connection closed by peer" in str(error):
        return f"a collector worker is gone ({type(error).__name__}: {first[:120]}): the curriculum's decision cannot reach it"
    return None


class _WatchesWorkers:
    """TorchRL's process and shared-memory schemes wait for every worker's acknowledgement
    without a timeout, so a push to a worker that died would wait forever. Given the worker
    processes (:meth:`watch`), the wait checks between short polls that they are alive."""

    _POLL_S = 0.25

    def watch(self, processes: Any, version: int | None = None) -> None:
        self._procs, self._push_version = list(processes or ()), version

    def _wait_for_ack(self, worker_ids: Any = None, timeout: float | None = None) -> None:
        procs = getattr(self, "_procs", None)
        acks = getattr(self, "_ack_queues", None)
        if not procs or not acks or timeout is not None:
            return super()._wait_for_ack(worker_ids=worker_ids, timeout=timeout)  # type: ignore[misc]
        targets = list(acks) if worker_ids is None else [worker_ids] if isinstance(worker_ids, int) else worker_ids
        for idx in targets:
            while True:
                try:
                    acks[idx].get(timeout=self._POLL_S)
                    break
                except queue.Empty:
                    check_workers(procs, getattr(self, "_push_version", None))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state.pop("_procs", None)
        return state


class ProcessDecisionScheme(_WatchesWorkers, _DecisionSender, MultiProcessWeightSyncScheme):
    """TorchRL's ``MultiProcessWeightSyncScheme`` for a :class:`CurriculumDecision`: every push
    is sent down a pipe to each worker, whose receiver thread writes it into the worker's
    decision buffers."""


class SharedDecisionScheme(_WatchesWorkers, _DecisionSender, SharedMemWeightSyncScheme):
    """TorchRL's ``SharedMemWeightSyncScheme`` for a :class:`CurriculumDecision`: the workers'
    decision buffers are one shared-memory copy that every push writes in place."""


class RayDecisionScheme(_DecisionSender, RayWeightSyncScheme):
    """TorchRL's ``RayWeightSyncScheme`` for a :class:`CurriculumDecision` (``RayCollector``):
    pushes go over a ``torch.distributed`` group that TorchRL sets up between the trainer and the
    remote collectors."""

    def _init_on_sender_impl(self, *, model_id: str | None = None, context: Any = None, **kw: Any):
        kw["model"] = self._source
        return RayWeightSyncScheme._init_on_sender_impl(self, model_id=model_id, context=context, **kw)


_SCHEMES = {"process": ProcessDecisionScheme, "shared": SharedDecisionScheme, "ray": RayDecisionScheme}
BACKENDS = ("process", "shared", "ray")


def decision_schemes(
    curriculum_or_decision: Curriculum | CurriculumDecision, worker_path: str, backend: str = "shared"
) -> dict[str, Any]:
    """TorchRL weight-sync schemes that push a curriculum's decision to collector workers.

    Returns ``{model_id: scheme}`` for a collector's ``weight_sync_schemes`` (merge it with the
    policy's, if any); give the same collector to
    :class:`~currlearn.integrations.torchrl.CurriculumHook`::

        path = transform_path(make_env())                       # e.g. "env.transform[1]"
        collector = MultiAsyncCollector([make_env] * 2, policy, ...,
                                        weight_sync_schemes=decision_schemes(curriculum, path))
        hook = CurriculumHook(curriculum, collector=collector)

    The ``model_id`` is the decision's path in a worker (``f"{worker_path}.decision"``), which
    TorchRL's process collectors resolve; with ``"ray"`` it is ``"curriculum_decision"`` (a key
    without dots, which TorchRL's Ray calls need; the scheme finds the decision by its path).

    Args:
        curriculum_or_decision: the authoritative curriculum (its decision is built here), or
            a :class:`CurriculumDecision` built from it.
        worker_path (str): the transform's path in a worker's collector
            (:func:`~currlearn.integrations.torchrl.transform_path`).
        backend (str): ``"shared"`` (default: one shared-memory copy written in place,
            ``SharedMemWeightSyncScheme``, as TorchRL's multi-process collectors use for policy
            weights) or ``"process"`` (each push pickled down a queue per worker,
            ``MultiProcessWeightSyncScheme``: every buffer travels as a new shared-memory
            segment, a few times slower), for ``MultiSyncCollector`` / ``MultiAsyncCollector``;
            ``"ray"`` (``RayWeightSyncScheme``) for ``RayCollector``.

    The scheme's ``source`` is the trainer's :class:`CurriculumDecision`.
    """
    backend = check_choice("backend", backend, BACKENDS)
    source = curriculum_or_decision
    if isinstance(source, Curriculum):
        source = CurriculumDecision(source)
        source.capture(curriculum_or_decision)  # workers start from the current decision
    scheme = _SCHEMES[backend](source, worker_path)
    return {"curriculum_decision" if backend == "ray" else f"{worker_path}.decision": scheme}
