"""The trained policy on the target tasks: success rate and mean return."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["PeriodicEval", "evaluate", "evaluate_heldout", "first_episodes"]

_CHUNK = 64  # steps per rollout call while waiting for every env's first episode to end


def first_episodes(env: Any, policy: Any, max_steps: int) -> tuple[Any, Any, Any, Any]:
    """Play ``env`` from a reset until every env finished its first episode (or ``max_steps``).

    Returns:
        ``(returns, success, finished, outcome)``, each of shape ``[num_envs]``: the return
        and success of each env's first episode, whether it ended within ``max_steps`` (an
        unfinished episode counts as no success), and the ``"outcome"`` at its last step (a
        two-player game's 1 / 0.5 / 0; 0 for an unfinished one). Success and outcome are NaN
        where the env reports none.
    """
    import torch
    from torchrl.envs.utils import step_mdp

    td = env.reset()
    n = env.batch_size.numel()
    returns = torch.zeros(n)
    success = torch.zeros(n, dtype=torch.bool)
    finished = torch.zeros(n, dtype=torch.bool)
    outcome = torch.zeros(n)
    has_success = has_outcome = False
    steps = 0
    while steps < max_steps and not bool(finished.all()):
        k = min(_CHUNK, max_steps - steps)
        roll = env.rollout(k, policy, auto_reset=False, tensordict=td, break_when_any_done=False)
        k = roll.shape[-1]
        done = roll.get(("next", "done")).reshape(n, k).cpu()
        first = (~finished)[:, None] & ((torch.cumsum(done.long(), 1) - done.long()) == 0)
        returns += (roll.get(("next", "reward")).reshape(n, k).cpu().float() * first).sum(1)
        if ("next", "success") in roll.keys(True):
            has_success = True
            success |= (roll.get(("next", "success")).reshape(n, k).cpu().bool() & first).any(1)
        if ("next", "outcome") in roll.keys(True):
            has_outcome = True
            o = roll.get(("next", "outcome")).reshape(n, k).cpu().float()
            outcome += torch.where(first & done, o, torch.zeros_like(o)).sum(1)
        finished |= done.any(1)
        td = step_mdp(roll[..., -1])
        steps += k
    nan = torch.full((n,), math.nan)
    return returns, (success & finished).float() if has_success else nan, finished, outcome if has_outcome else nan


def evaluate(
    conf: Mapping[str, Any],
    policy: Any,
    curriculum: Any = None,
    episodes: int | None = None,
    seed: int | None = None,
    prefix: str = "target",
    opponent: Any = None,
) -> dict[str, float]:
    """``episodes`` (default ``eval.episodes``) episodes of ``policy`` on the evaluation tasks
    (``task.eval``, else ``task.target``), each the first episode of an env of a fresh
    evaluation env (seeded ``seed``, default ``seed + 10000``), in as many rounds of
    ``eval.num_envs`` (default ``env.num_envs``) envs as needed. ``curriculum`` is what
    :func:`~currlearn.app.build.build_eval_curriculum` builds (built here when None).
    ``opponent`` (a two-player env's ``opponent`` callable) plays the evaluation env's
    opponents; default the env's own (its scripted bots).

    Returns:
        ``{prefix}_return`` and ``{prefix}_success``, the means over the episodes, and
        ``{prefix}_outcome`` where the env reports a game's outcome (a draw counts half);
        ``return``, ``success``, ``outcome`` with ``prefix=""``.
    """
    import torch
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from currlearn.app.build import _base_env, build_env, build_eval_curriculum

    ev = conf["eval"]
    episodes = ev["episodes"] if episodes is None else episodes
    if curriculum is None:
        curriculum = build_eval_curriculum(conf)
    seed = conf["seed"] + 10_000 if seed is None else seed
    # The evaluation tasks are drawn from `seed` too: every evaluation is a function of the
    # policy and its seed alone (not of the evaluations before it, which a resumed run lacks).
    curriculum.generator.manual_seed(seed)
    env = build_env(conf, curriculum, seed=seed, num_envs=ev.get("num_envs"))
    if opponent is not None:
        _base_env(env).opponent = opponent
    device = next(policy.parameters()).device
    if env.device is not None and env.device != device:  # a CPU-only env, networks on the GPU
        from torchrl.envs import DeviceCastTransform

        env.append_transform(DeviceCastTransform(device, env.device))
    mode = ExplorationType.DETERMINISTIC if ev["deterministic"] else ExplorationType.RANDOM
    returns, success, outcome = [], [], []
    try:
        with torch.no_grad(), set_exploration_type(mode):
            played = 0
            while played < episodes:
                r, s, _, o = first_episodes(env, policy, ev["max_steps"])
                returns.append(r)
                success.append(s)
                outcome.append(o)
                played += r.numel()
    finally:
        env.close()
    lead = f"{prefix}_" if prefix else ""
    out = {
        f"{lead}return": float(torch.cat(returns)[:episodes].mean()),
        f"{lead}success": float(torch.cat(success)[:episodes].mean()),
    }
    o = float(torch.cat(outcome)[:episodes].mean())
    if not math.isnan(o):
        out[f"{lead}outcome"] = o
    return out


def evaluate_heldout(conf: Mapping[str, Any], policy: Any, heldout: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`evaluate` on each set of held-out tasks (``task.heldout``; ``heldout`` from
    :func:`~currlearn.app.build.build_heldout`), ``eval.episodes`` episodes each.

    Returns:
        ``{}`` without held-out tasks; else ``"heldout"``: name -> ``{"return", "success"[,
        "outcome"]}``, and ``"heldout_success"`` (``"heldout_outcome"``): the mean over the
        names, each set weighted alike.
    """
    if not heldout:
        return {}
    per = {}
    for name, entry in heldout.items():
        per[name] = evaluate(conf, policy, entry.curriculum, prefix="", opponent=entry.opponent)
    summary: dict[str, Any] = {"heldout": per}
    for key in ("success", "outcome"):
        values = [v[key] for v in per.values() if key in v]
        if values:
            summary[f"heldout_{key}"] = sum(values) / len(values)
    return summary


class PeriodicEval:
    """Evaluation on the target tasks every ``eval.every`` iterations, during training.

    Each evaluation plays ``eval.every_episodes`` episodes on a fresh evaluation env seeded
    from the iteration, with the policy's random draws from a generator of its own
    (:func:`torch.random.fork_rng`): the training run is the same with or without it, and a
    resumed run evaluates exactly as the uninterrupted one.

    Args:
        conf (mapping): the run's config.
        policy: the policy being trained.
        curriculum: the evaluation curriculum (:func:`~currlearn.app.build.build_eval_curriculum`).
        logger (optional): a TorchRL logger; receives ``eval/success`` and ``eval/return`` at
            the step ``frames()``.
        frames (callable): the frames collected so far.
    """

    def __init__(self, conf: Mapping[str, Any], policy: Any, curriculum: Any, logger: Any, frames: Any) -> None:
        self.conf = conf
        self.policy = policy
        self.curriculum = curriculum
        self.logger = logger
        self.frames = frames
        self.every = conf["eval"]["every"]
        self.episodes = conf["eval"]["every_episodes"]

    def __call__(self, iteration: int) -> dict[str, float]:
        """The ``eval/*`` values of ``iteration``'s row (none off the evaluation iterations)."""
        if not self.every or iteration % self.every:
            return {}
        import torch

        device = next(self.policy.parameters()).device
        seed = self.conf["seed"] + 10_000 + 1_000_003 * iteration
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            out = evaluate(self.conf, self.policy, self.curriculum, episodes=self.episodes, seed=seed)
        row = {
            "eval/success": out["target_success"],
            "eval/return": out["target_return"],
            "eval/episodes": self.episodes,
        }
        if self.logger is not None:
            step = int(self.frames())
            for key in ("eval/success", "eval/return"):
                if math.isfinite(row[key]):
                    self.logger.log_scalar(key, row[key], step=step)
        return row
