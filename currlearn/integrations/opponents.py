"""Acting with each env's opponent in one batched call.

:class:`OpponentPolicy` runs the opponents an :class:`~currlearn.curricula.opponents.OpponentCurriculum`
chose (one slot id per env) as one vectorised call of the policy's module: the pool's
parameters are gathered per env (``curriculum.opponent_params(ids)``, batch ``[envs]``) and the
module is called with them through ``torch.func.functional_call`` under ``torch.vmap``, so every
env is played by its own snapshot without a Python loop over envs, on CPU or GPU. Scripted bots
(slots given by ``curriculum.add_bot(k)``) are called once each on their envs.

Wrap it in a ``TensorDictModule`` to act from a TorchRL env's tensordict::

    opponent = TensorDictModule(OpponentPolicy(net, curriculum, bots=[random_bot]),
                                in_keys=["opponent_id", "opponent_observation"],
                                out_keys=["opponent_action"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from currlearn.curricula.opponents import OpponentCurriculum

__all__ = ["OpponentPolicy"]


class OpponentPolicy(nn.Module):
    """``forward(opponents, *inputs)``: the output of each env's opponent on its inputs.

    Args:
        module (nn.Module): the policy network the snapshots were taken from (its parameters
            are not used, only its structure); it maps one env's inputs (no batch dimension)
            to its output, as ``torch.vmap`` calls it.
        curriculum (OpponentCurriculum): the pool.
        bots (sequence of callables): ``bots[k](*inputs)`` -> outputs for a batch of envs
            playing scripted bot ``k``.

    Raises:
        TypeError: ``module`` is not an nn.Module, ``curriculum`` is not an opponent curriculum.
    """

    def __init__(
        self, module: nn.Module, curriculum: OpponentCurriculum, bots: Sequence[Callable[..., Tensor]] = ()
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module, got {type(module).__name__}.")
        if not isinstance(curriculum, OpponentCurriculum):
            raise TypeError(f"curriculum must be an OpponentCurriculum, got {type(curriculum).__name__}.")
        super().__init__()
        self.net = module
        self.curriculum = curriculum
        self.bots = list(bots)
        self._call = torch.vmap(self._one)

    def _one(self, params: dict[str, Tensor], *inputs: Tensor) -> Tensor:
        return functional_call(self.net, params, inputs)

    def forward(self, opponents: Tensor, *inputs: Tensor) -> Tensor:
        """The outputs ``[envs, ...]`` of each env's opponent (``opponents``: slot ids ``[envs]``)."""
        cur = self.curriculum
        opponents = opponents.reshape(-1).long()
        bot_of = cur.state["bot"][opponents]
        snap = bot_of < 0
        out = None
        if bool(snap.any()):
            # bot envs are played with their slots' zero parameters here and overwritten below
            params = cur.opponent_params(opponents)
            out = self._call(dict(params.flatten_keys(".").items()), *inputs)
        for k in bot_of[~snap].unique().tolist():
            if k >= len(self.bots):
                raise ValueError(f"opponent slot plays bot {k}, but OpponentPolicy has {len(self.bots)} bots.")
            mask = bot_of == k
            acted = self.bots[k](*(x[mask] for x in inputs))
            if out is None:
                out = torch.zeros((opponents.numel(), *acted.shape[1:]), dtype=acted.dtype, device=acted.device)
            out[mask] = acted.to(out.dtype)
        return out  # type: ignore[return-value]
