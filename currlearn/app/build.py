"""Builders: each turns one config node into its object with Hydra's ``instantiate``.

Nothing here knows an env or a curriculum by name: an env config names its factory
(``env._target_``, called with the node's keys; it validates its own arguments) and a
curriculum config names its class and reads the env's tasks from the ``task`` node. The
curriculum drives the env through a :class:`~currlearn.integrations.torchrl.CurriculumTransform`
put first among the env's transforms (with a ``ReplayDecisionTransform`` after it for robust
PLR).
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from currlearn.app.errors import AppError, first_line

__all__ = [
    "attach_curriculum",
    "build_curriculum",
    "build_env",
    "build_eval_curriculum",
    "build_logger",
    "build_trainer",
    "flat_hparams",
    "instantiate_node",
]


def _parameters(target: Any) -> tuple[list[str], bool]:
    """The keyword parameters of a callable, and whether it also takes ``**kwargs``."""
    try:
        # a class: its __init__ (a metaclass's __call__ may hide it behind *args, **kwargs)
        fn = target.__init__ if inspect.isclass(target) else target
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [], True
    if inspect.isclass(target):
        params = params[1:]  # self
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def _check_keys(node: Any, key: str) -> None:
    """Every ``_target_`` node under ``node`` (``node`` included) has only keys its target takes.

    Raises:
        AppError: a target that cannot be imported, or a key it does not take (the message
            lists those it takes).
    """
    from hydra.utils import get_object

    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target:
            try:
                fn = get_object(target)
            except Exception as e:
                raise AppError(f"{key}._target_={target!r} cannot be imported ({first_line(e)}).") from None
            named, var_kw = _parameters(fn)
            unknown = [k for k in node if not k.startswith("_") and k not in named]
            if unknown and not var_kw:
                raise AppError(
                    f"{key}.{unknown[0]} is not a parameter of {target}: allowed parameters: {', '.join(named)}."
                )
        for k, v in node.items():
            if not str(k).startswith("_"):
                _check_keys(v, f"{key}.{k}")
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _check_keys(v, f"{key}[{i}]")


def instantiate_node(node: Mapping[str, Any], key: str, **overrides: Any) -> Any:
    """``hydra.utils.instantiate(node)``, its errors as one :class:`AppError` line naming the key.

    Args:
        node (mapping): a config node with a ``_target_``.
        key (str): where the node sits in the config (``"env"``, ``"curriculum"``), for messages.
        **overrides: keyword arguments that replace the node's values.

    Raises:
        AppError: a target (the node's or a nested node's) cannot be imported, a node has keys
            its target does not take, or a target raised on its arguments (the message names
            the nested node, e.g. ``curriculum.schedules``).
    """
    import re

    from hydra.utils import instantiate

    _check_keys(node, key)
    try:
        return instantiate(dict(node), _convert_="all", **overrides)
    except Exception as e:  # instantiate wraps the target's own error
        cause = e
        while cause.__cause__ is not None:
            cause = cause.__cause__
        nested = re.search(r"full_key: ([\w.\[\]]+)", str(e))
        where = f"{key}.{nested.group(1)}" if nested else key
        target = node.get("_target_")
        if nested:
            sub: Any = node
            for part in nested.group(1).split("."):
                sub = sub.get(part) if isinstance(sub, Mapping) else None
            target = sub.get("_target_", target) if isinstance(sub, Mapping) else target
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if isinstance(cause, ImportError):
            text += " (a package it needs is not installed)"
        raise AppError(f"{where} ({target}): {text}") from e


def build_curriculum(conf: Mapping[str, Any]) -> Any:
    """The curriculum of a resolved config (``conf["curriculum"]``)."""
    from currlearn.base import Curriculum

    node = conf["curriculum"]
    if not isinstance(node, Mapping) or not node.get("_target_"):
        raise AppError("curriculum._target_ is not set: choose a curriculum config (curriculum=level, none, ...).")
    cur = instantiate_node(node, "curriculum")
    if not isinstance(cur, Curriculum):
        raise AppError(
            f"curriculum._target_={node['_target_']!r} built a {type(cur).__name__}, not a currlearn Curriculum."
        )
    return cur


def eval_path(conf: Mapping[str, Any]) -> str:
    """The node of the evaluation tasks: ``"task.eval"`` where the env config sets it, else
    ``"task.target"``."""
    return "task.eval" if conf["task"].get("eval") is not None else "task.target"


def build_eval_curriculum(conf: Mapping[str, Any], node: Any = None, path: str | None = None) -> Any:
    """Uniform over the evaluation tasks: ``task.eval`` where the env config sets it, else
    ``task.target``: a grid of parameter values, or a task space node (a ``_target_``, e.g.
    the held-out mazes of ``env=maze``). ``node`` (named ``path`` in messages) evaluates other
    tasks, e.g. an entry of ``task.heldout``.
    """
    from currlearn.curricula import DomainRandomization
    from currlearn.spaces import TaskSpace, grid_space

    if node is None:
        path = eval_path(conf)
        node = conf["task"][path.split(".")[1]]
    if isinstance(node, Mapping) and node.get("_target_"):
        space = instantiate_node(node, path, device=conf["device"])
        if not isinstance(space, TaskSpace):
            raise AppError(f"{path}._target_={node['_target_']!r} built a {type(space).__name__}, not a TaskSpace.")
    else:
        try:
            space = grid_space(node, device=conf["device"])
        except (KeyError, ValueError, TypeError) as e:
            raise AppError(f"{path}: {e}") from None
    return DomainRandomization(space, seed=conf["seed"] + 10_000, device=conf["device"])


@dataclasses.dataclass
class HeldOut:
    """One entry of ``task.heldout``: its evaluation curriculum and, for a pool of policies,
    the opponent callable its evaluation env plays (set by :func:`play_heldout_pools`)."""

    curriculum: Any
    pool: Any = None
    opponent: Any = None


def build_heldout(conf: Mapping[str, Any]) -> dict[str, HeldOut]:
    """The entries of ``task.heldout``, name -> held-out tasks never trained on, evaluated at
    the end of a run: tasks in the form of ``task.target`` (e.g. the scripted opponents of a
    two-player game that are not in the training pool), or ``{pool: <run dir>}``, the policy
    snapshots in the opponent pool of another run's checkpoint (played by the trained
    network's architecture, see :func:`play_heldout_pools`)."""
    node = conf["task"].get("heldout")
    if node is None:
        return {}
    if not isinstance(node, Mapping) or not node:
        raise AppError(
            f"task.heldout={node!r} must be a mapping of names to tasks (in the form of task.target) or to "
            "{pool: <run dir>}, e.g. {perfect: {task_id: [2]}}."
        )
    out = {}
    for name, tasks in node.items():
        path = f"task.heldout.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise AppError(f"task.heldout has the name {name!r}: names must be identifiers (letters, digits, _).")
        if isinstance(tasks, Mapping) and "pool" in tasks:
            if set(tasks) != {"pool"}:
                raise AppError(f"{path} has {sorted(tasks)}: a pool entry has the one key pool (a run directory).")
            pool = load_heldout_pool(conf, tasks["pool"], f"{path}.pool")
            grid = {"task_id": list(range(pool.capacity))}
            out[name] = HeldOut(build_eval_curriculum(conf, grid, path), pool)
        else:
            out[name] = HeldOut(build_eval_curriculum(conf, tasks, path))
    return out


def load_heldout_pool(conf: Mapping[str, Any], run_dir: Any, path: str) -> Any:
    """The policy snapshots of the opponent pool saved in ``run_dir``'s checkpoint (its bots
    left out), as a :class:`~currlearn.FictitiousSelfPlay` pool of exactly those snapshots,
    in the order they were added."""
    from tensordict import TensorDict

    from currlearn.app.checkpoint import load_checkpoint
    from currlearn.curricula import FictitiousSelfPlay

    ckpt = load_checkpoint(Path(str(run_dir)), path)
    saved = (ckpt["trainer"].get("curriculum") or {}).get("curriculum") or {}
    state = saved.get("state") or {}
    keys = [k for k in state if k.startswith("params.")]
    if not keys:
        raise AppError(
            f"{path}={str(run_dir)!r}: the run's curriculum ({saved.get('_type', 'unknown')}) has no pool of policy "
            "snapshots: pass the directory of a run with curriculum=self_play, fsp or pfsp."
        )
    slots = [i for i in state["added"].argsort().tolist() if state["valid"][i] and state["bot"][i] < 0]
    if not slots:
        raise AppError(f"{path}={str(run_dir)!r}: the run's pool holds no snapshot yet, only scripted bots.")
    pool = FictitiousSelfPlay(capacity=len(slots), seed=conf["seed"] + 10_000, device=conf["device"])
    for i in slots:
        pool.add(TensorDict({tuple(k.split(".")[1:]): state[k][i] for k in keys}, []))
    return pool


def play_heldout_pools(heldout: Mapping[str, HeldOut], env: Any, trainer: Any) -> None:
    """Each held-out pool's opponent: its snapshots played with the trained actor's network
    (:class:`~currlearn.integrations.opponents.OpponentPolicy`, the best legal move by its
    logits, as the training pool is played). The snapshots must fit that network."""
    from tensordict import TensorDict

    from currlearn.integrations.opponents import OpponentPolicy

    for name, entry in heldout.items():
        if entry.pool is None:
            continue
        game = _base_env(env)
        if not _is_two_player(game):
            raise AppError(
                f"task.heldout.{name}.pool plays a pool of opponents, but env {type(game).__name__} is not a "
                "two-player env (no `opponent` and `bot_move`): use env=tictactoe."
            )
        net = _logits_net(trainer, f"task.heldout.{name}.pool")
        ours = {k: tuple(v.shape) for k, v in TensorDict.from_module(net).items(True, True)}
        theirs = {k: tuple(v.shape[1:]) for k, v in entry.pool.snapshots.items(True, True)}
        if ours != theirs:
            raise AppError(
                f"task.heldout.{name}.pool: its snapshots' parameters {_shapes(theirs)} do not fit the policy's "
                f"network {_shapes(ours)}: train the held-out pool with the same env and algo settings."
            )
        entry.opponent = _best_legal_move(OpponentPolicy(net, entry.pool))


def check_bot_ids(
    conf: Mapping[str, Any], env: Any, curriculum: Any, eval_curriculum: Any, heldout: Mapping[str, HeldOut]
) -> None:
    """In a two-player env, the evaluation envs play the scripted bot each task's ``task_id``
    names (a held-out pool plays its own snapshots): every such id must name one of the env's
    bots, and a held-out one none of the training pool's (``task.bots``), checked before
    training rather than at the evaluation after it."""
    import torch

    from currlearn.curricula.opponents import OpponentCurriculum
    from currlearn.spaces import DiscreteSpace

    game = _base_env(env)
    bots = getattr(game, "num_bots", None)
    if not (_is_two_player(game) and isinstance(bots, int)):
        return
    trained = _pool_bots(conf) if isinstance(curriculum, OpponentCurriculum) else 0
    if trained > bots:
        raise AppError(f"task.bots={trained}: {type(game).__name__} has {bots} scripted bots (0-{bots - 1}).")
    checks = [(eval_path(conf), eval_curriculum, 0)]
    checks += [(f"task.heldout.{n}", h.curriculum, trained) for n, h in heldout.items() if h.pool is None]
    for path, evaluation, first in checks:
        space = evaluation.space
        if not isinstance(space, DiscreteSpace):
            continue
        params = space.params(torch.arange(space.num_tasks, device=space.device))
        if "task_id" not in params.keys():
            raise AppError(
                f"{path} has {sorted(params.keys())}: in {type(game).__name__} a task is an opponent, task_id "
                f"(the scripted bot it names, 0-{bots - 1})."
            )
        ids = params["task_id"].round().long()
        bad = ids[(ids < first) | (ids >= bots)]
        if bad.numel():
            names = getattr(game, "bot_names", None)
            shown = f" {list(names)}" if names else ""
            taken = f", and bots 0-{first - 1} are in the training pool (task.bots={first})" if first else ""
            raise AppError(
                f"{path} has task_id {int(bad[0])}: the evaluation plays the scripted bot each id names; "
                f"{type(game).__name__} has bots 0-{bots - 1}{shown}{taken}."
            )


def _shapes(params: Mapping[Any, tuple[int, ...]]) -> str:
    return "{" + ", ".join(f"{'.'.join(k) if isinstance(k, tuple) else k}: {list(v)}" for k, v in params.items()) + "}"


def attach_curriculum(env: Any, curriculum: Any) -> Any:
    """``env`` with the transforms that play ``curriculum`` first among its transforms."""
    from torchrl.envs import TransformedEnv

    from currlearn.integrations.replay import ReplayDecisionTransform
    from currlearn.integrations.torchrl import CurriculumTransform, find_transforms

    if find_transforms(env, CurriculumTransform):
        raise AppError(
            "env already has a CurriculumTransform: drop it from the env config, the app adds the one that plays "
            "`curriculum`."
        )
    transforms = [CurriculumTransform(curriculum)]
    if getattr(curriculum, "robust", False):
        transforms.append(ReplayDecisionTransform(curriculum))
    if not isinstance(env, TransformedEnv):
        env = TransformedEnv(env)
    for i, t in enumerate(transforms):
        env.insert_transform(i, t)
    return env


def build_env(conf: Mapping[str, Any], curriculum: Any, *, seed: int | None = None, num_envs: int | None = None) -> Any:
    """The env of ``conf["env"]`` (its ``_target_`` called with the node), played by ``curriculum``.

    Args:
        conf (mapping): the resolved config.
        curriculum (Curriculum): what the envs play.
        seed (int, optional): replaces ``env.seed`` (the evaluation env's own seed).
        num_envs (int, optional): replaces ``env.num_envs``.
    """
    node = conf["env"]
    overrides: dict[str, Any] = {"seed": seed} if seed is not None and "seed" in node else {}
    if num_envs is not None:
        overrides["num_envs"] = num_envs
    env = instantiate_node(node, "env", **overrides)
    from torchrl.envs import EnvBase

    if not isinstance(env, EnvBase):
        raise AppError(f"env._target_={node['_target_']!r} built a {type(env).__name__}, not a TorchRL env.")
    return attach_curriculum(env, curriculum)


def _base_env(env: Any) -> Any:
    return getattr(env, "base_env", env)


def _is_two_player(game: Any) -> bool:
    """A two-player env: its opponent's moves are made by a settable ``opponent`` callable and
    it has scripted bots (``bot_move``)."""
    return hasattr(game, "opponent") and hasattr(game, "bot_move")


def _logits_net(trainer: Any, who: str) -> Any:
    """The actor's observation -> logits network, which plays snapshots of itself."""
    actor = trainer.loss_module.actor_network
    if "logits" not in actor[0].out_keys:
        raise AppError(f"{who} needs a discrete-action two-player env; the actor has no logits.")
    return actor[0].module


def _best_legal_move(opponents: Any) -> Any:
    """An env's ``opponent`` callable from an ``OpponentPolicy``: each game's opponent takes the
    legal cell of its highest logit."""
    import torch

    def move(board: Any, legal: Any, ids: Any) -> Any:
        with torch.no_grad():
            logits = opponents(ids, board)
        return logits.masked_fill(~legal, float("-inf")).argmax(-1)

    return move


def seed_opponent_pool(conf: Mapping[str, Any], curriculum: Any) -> None:
    """An opponent curriculum's pool starts with the env's scripted bots (``task.bots`` of them,
    default 1), so that the first games, played before any snapshot, have an opponent."""
    from currlearn.curricula.opponents import OpponentCurriculum

    if not isinstance(curriculum, OpponentCurriculum):
        return
    bots = _pool_bots(conf)
    if isinstance(bots, bool) or not isinstance(bots, int) or not 1 <= bots <= curriculum.capacity - 1:
        raise AppError(
            f"task.bots={bots!r}: the scripted opponents of the pool must be an int in [1, {curriculum.capacity - 1}] "
            f"(curriculum.capacity={curriculum.capacity} leaves room for one snapshot)."
        )
    for k in range(bots):
        curriculum.add_bot(k)


def _pool_bots(conf: Mapping[str, Any]) -> Any:
    """``task.bots``, default 1: the scripted bots 0 .. bots-1 start an opponent pool."""
    bots = conf["task"].get("bots")
    return 1 if bots is None else bots


def check_two_player(env: Any, curriculum: Any) -> None:
    """An opponent curriculum needs a two-player env: one whose opponent moves are made by a
    settable ``opponent`` callable and that has scripted bots (``bot_move``)."""
    from currlearn.curricula.opponents import OpponentCurriculum

    game = _base_env(env)
    if isinstance(curriculum, OpponentCurriculum) and not _is_two_player(game):
        raise AppError(
            f"curriculum={type(curriculum).__name__} chooses opponents, but env {type(game).__name__} is not a "
            "two-player env (no `opponent` and `bot_move`): use env=tictactoe."
        )


def play_opponents(env: Any, curriculum: Any, trainer: Any) -> None:
    """With an opponent curriculum, the training env's opponents are the pool's: the scripted
    bots, and snapshots of the actor's network (taken every ``curriculum.snapshot_every``
    iterations) played by :class:`~currlearn.integrations.opponents.OpponentPolicy` in one
    batched call, each env's opponent taking the best legal move by its logits.
    """
    import torch

    from currlearn.curricula.opponents import OpponentCurriculum
    from currlearn.integrations.opponents import OpponentPolicy

    game = _base_env(env)
    if not isinstance(curriculum, OpponentCurriculum):
        return
    check_two_player(env, curriculum)
    net = _logits_net(trainer, f"curriculum={type(curriculum).__name__}")
    curriculum.track(net)

    def bot(k: int) -> Any:
        return lambda board: 10.0 * torch.nn.functional.one_hot(game.bot_move(board, board == 0, k), 9).float()

    game.opponent = _best_legal_move(OpponentPolicy(net, curriculum, bots=[bot(k) for k in range(game.num_bots)]))


def build_logger(conf: Mapping[str, Any], run_dir: Path) -> Any:
    """The TorchRL logger of ``conf["log"]``, or None; a logger that takes a ``log_dir`` (or
    ``save_dir``) writes under ``run_dir/logs``.
    """
    from hydra.utils import get_object

    node = dict(conf["log"] or {})
    if not node.get("_target_"):
        return None
    try:
        named, _ = _parameters(get_object(node["_target_"]))
    except Exception:
        named = []  # instantiate_node reports the import error
    for key in ("log_dir", "save_dir"):
        if key in named:
            node.setdefault(key, str(run_dir / "logs"))
            break
    logs = run_dir / "logs"
    existed = logs.exists()
    try:
        return instantiate_node(node, "log")
    except AppError as e:
        if not existed:  # a logger may make its directory before it fails
            shutil.rmtree(logs, ignore_errors=True)
        if "not installed" not in str(e):
            raise
        extra = next((x for x in ("tensorboard", "wandb") if x in str(node["_target_"]).lower()), None)
        hint = f'pip install "currlearn[{extra}]", or ' if extra else ""
        raise AppError(f"{e}; {hint}log=csv and log=none need no further package.") from None


def build_trainer(conf: Mapping[str, Any], env: Any, curriculum: Any, logger: Any = None) -> tuple[Any, Any]:
    """TorchRL's PPO ``Trainer`` (``make_ppo_trainer``) from ``conf["algo"]``, its budget
    ``conf["frames"]``; returns ``(trainer, hook)``.
    """
    from currlearn.integrations.ppo import PPOSettings, make_ppo_trainer

    node = {k: v for k, v in conf["algo"].items() if k != "_target_"}
    node["total_frames"] = conf["frames"]
    allowed = [f.name for f in dataclasses.fields(PPOSettings)]
    for key in node:
        if key not in allowed:
            raise AppError(f"algo.{key} is not a setting of algo (PPOSettings): allowed: {', '.join(allowed)}.")
    try:
        settings = PPOSettings(**node)
    except (TypeError, ValueError) as e:
        raise AppError(str(e).replace("ppo.", "algo.")) from None
    return make_ppo_trainer(env, curriculum, settings, logger=logger, log_interval=0, device=conf["device"])


def flat_hparams(conf: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``conf`` as one level of ``"a.b.c"`` keys with number, string or bool values (lists and
    None as strings), the form every TorchRL logger's ``log_hparams`` takes.

    Examples:
        >>> flat_hparams({"seed": 0, "env": {"num_envs": 16, "ladder": [1, 2]}, "resume": None})
        {'seed': 0, 'env.num_envs': 16, 'env.ladder': '[1, 2]', 'resume': 'None'}
    """
    out: dict[str, Any] = {}
    for key, value in conf.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out
