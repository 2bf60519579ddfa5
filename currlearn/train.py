"""``currlearn-train``: PPO on a TorchRL env with a curriculum, configured by Hydra.

Run ``currlearn-train`` (or ``python -m currlearn.train``) for the default config
(``currlearn/conf/train.yaml``: level curriculum on the point-mass gate task); override from
the command line, e.g. ``currlearn-train curriculum=none seed=3 env.gate_width=0.3``, or sweep
with ``-m curriculum=none,level seed=0,1,2``.

The run directory (Hydra's) receives ``.hydra/config.yaml`` (the config), ``metrics.csv``
(one row per iteration), ``checkpoints/last.pt`` (trainer + curriculum + RNG, every
``checkpoint_every`` iterations, at the end and on Ctrl-C; written atomically),
``returns.png`` / ``curriculum.png`` and ``summary.json`` (with ``target_success``: the
policy's success rate on the env's target task after training).

Bad input exits with status 1 and one line ``currlearn-train: error: ...``; set
``HYDRA_FULL_ERROR=1`` for Hydra's and Python's full traceback.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

__all__ = ["TrainError", "build_curriculum", "build_env", "grid_space", "main", "run"]

PROG = "currlearn-train"
CHECKPOINT = "last.pt"
CHECKPOINT_VERSION = 1

# Env config keys that are not constructor arguments but curriculum material.
_ENV_META = ("name", "metric", "threshold", "ladder", "box", "stages", "levels", "adr")
_ENV_ARGS = {
    "point_mass": ("num_envs", "max_steps", "gate_position", "gate_width"),
    "pendulum": ("num_envs", "max_steps", "g"),
    # Gymnasium / MiniGrid envs, built by ``env.factory`` (currlearn.integrations.gym)
    "cartpole_params": ("num_envs", "max_steps", "length", "masscart", "factory", "batched"),
    "minigrid_doorkey_ladder": ("num_envs", "max_steps", "env_index", "factory", "batched"),
    "minigrid_seeds": ("num_envs", "max_steps", "num_train_seeds", "num_test_seeds", "factory", "batched"),
}
# The config keys a resumed run takes from the resumed run (the rest from the command line).
_RESUME_KEEP = ("curriculum", "env", "schedule", "algo", "seed")


class TrainError(ValueError):
    """Bad input: reported as one line and exit status 1."""


# --------------------------------------------------------------------------- validation
def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainError(f"{key}={value!r} is invalid: expected an integer >= {minimum}.")
    return value


def _validate(cfg: dict[str, Any]) -> None:
    """Check the top-level settings and the env section (curricula check their own)."""
    _int("frames", cfg["frames"], 1)
    _int("seed", cfg["seed"], 0)
    _int("checkpoint_every", cfg["checkpoint_every"], 0)
    _int("num_threads", cfg["num_threads"], 1)
    _int("eval.episodes", cfg["eval"]["episodes"], 1)
    if not isinstance(cfg["eval"]["deterministic"], bool):
        raise TrainError(f"eval.deterministic={cfg['eval']['deterministic']!r} is invalid: expected true or false.")
    if cfg["device"] != "cpu":
        raise TrainError(f"device={cfg['device']!r} is not supported: allowed values: cpu.")
    env = cfg["env"]
    name = env.get("name")
    if name not in _ENV_ARGS:
        raise TrainError(f"env.name={name!r} is unknown: allowed values: {', '.join(_ENV_ARGS)}.")
    allowed = _ENV_ARGS[name]
    for key in env:
        if key not in allowed and key not in _ENV_META:
            raise TrainError(f"env.{key} is not a parameter of env={name}: allowed parameters: {', '.join(allowed)}.")
    _int("env.num_envs", env["num_envs"], 1)
    _int("env.max_steps", env["max_steps"], 1)
    if name == "point_mass":
        for key, lo, hi, open_low in (
            ("gate_position", -4.0, 4.0, False),
            ("gate_width", 0.0, 8.0, True),
        ):
            v = env[key]
            ok = (
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and (v > lo if open_low else v >= lo)
                and v <= hi
            )
            if not ok:
                rng = f"({lo}, {hi}]" if open_low else f"[{lo}, {hi}]"
                raise TrainError(f"env.{key}={v!r} is out of range: allowed range {rng}.")
    elif name == "pendulum":
        g = env["g"]
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not g > 0:
            raise TrainError(f"env.g={g!r} is out of range: expected a number > 0.")
    cur = cfg["curriculum"]
    if (cur.get("_target_") or "").endswith("LevelCurriculum"):
        th = cur.get("threshold")
        if isinstance(th, bool) or not isinstance(th, (int, float)) or not math.isfinite(th):
            raise TrainError(f"curriculum.threshold={th!r} is invalid: expected a finite number.")
        if cur.get("metric") == "success" and not 0.0 <= th <= 1.0:
            raise TrainError(f"curriculum.threshold={th!r} is out of range: a success rate lies in [0, 1].")
    for key in ("frames_per_batch", "num_epochs", "minibatch_size", "hidden"):
        _int(f"algo.{key}", cfg["algo"][key], 1)


# --------------------------------------------------------------------------- builders
def build_curriculum(cfg: Mapping[str, Any]) -> Any:
    """The curriculum of a resolved config (a plain dict), or None for ``curriculum=none``."""
    from hydra.utils import instantiate

    from currlearn.schedules import make_schedule

    node = dict(cfg["curriculum"])
    target = node.get("_target_")
    if not target:
        return _fixed_task_curriculum(cfg)
    if target.endswith("ScheduledCurriculum") and node.get("schedules") is None:
        node["schedules"] = _ladder_schedules(cfg, make_schedule)
    try:
        return instantiate(node, _convert_="all")
    except Exception as e:  # instantiate wraps the constructor's error
        cause = e.__cause__ if e.__cause__ is not None else e
        raise TrainError(f"curriculum ({target}): {cause}") from e


def grid_space(axes: Mapping[str, Any], device: Any = None) -> Any:
    """A :class:`~currlearn.DiscreteSpace` of every combination of ``axes`` (``{name: values}``),
    the last name varying fastest: the task space of the discrete adaptive curricula, built from
    the env config's ``levels`` (``space: {_target_: currlearn.train.grid_space, axes:
    ${env.levels}}``).

    Examples:
        >>> grid_space({"a": [1.0, 2.0], "b": [0.0, 5.0, 9.0]}).num_tasks
        6
    """
    import itertools

    from currlearn.spaces import DiscreteSpace

    if not isinstance(axes, Mapping) or not axes:
        raise TrainError(f"env.levels must be a non-empty mapping of parameter -> values, got {axes!r}.")
    names = list(axes)
    values = []
    for name in names:
        v = axes[name]
        if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) == 0:
            raise TrainError(f"env.levels.{name} must be a non-empty list of values, got {v!r}.")
        values.append([float(x) for x in v])
    combos = list(itertools.product(*values))
    params = {n: [c[i] for c in combos] for i, n in enumerate(names)}
    return DiscreteSpace(params, device=device)


def _fixed_task_curriculum(cfg: Mapping[str, Any], seed: int | None = None) -> Any:
    """``curriculum=none``: the point mass takes its target in its constructor (no transform);
    the pendulum gets its target parameters through a constant schedule.
    """
    env = cfg["env"]
    seed = cfg["seed"] if seed is None else seed
    if env["name"] == "point_mass":
        return None
    if "factory" in env:
        return _gym_target_curriculum(cfg, seed, training=True)
    from currlearn import ConstantSchedule, ScheduledCurriculum

    return ScheduledCurriculum({"g": ConstantSchedule(float(env["g"]))}, seed=seed)


def _gym_target_curriculum(cfg: Mapping[str, Any], seed: int, *, training: bool = False) -> Any:
    """The fixed tasks of a Gymnasium env config: its target task (the ``env.<param>`` values
    of the ladder's parameters); for level seeds, uniform over the training seeds when
    ``training`` and over the held-out test seeds otherwise.
    """
    from currlearn import DiscreteSpace, DomainRandomization

    env = cfg["env"]
    if env["name"] == "minigrid_seeds":
        from currlearn.integrations.gym import seed_spaces

        train, test, _ = seed_spaces(env["num_train_seeds"], env["num_test_seeds"])
        return DomainRandomization(train if training else test, seed=seed)
    return DomainRandomization(DiscreteSpace({k: [env[k]] for k in env["ladder"]}), seed=seed)


class StopAtIterationEnd:
    """Context manager: the first Ctrl-C (SIGINT) asks training to stop at the end of the current
    iteration (:attr:`requested`); a second one interrupts at once (``KeyboardInterrupt``).

    An interrupt in the middle of an optimisation step can leave TorchRL's loss half-way through
    a parameter swap (it then fails with another error than ``KeyboardInterrupt``); stopping at
    an iteration boundary keeps the checkpoint consistent. Outside the main thread (where signal
    handlers cannot be set) it does nothing.
    """

    def __init__(self, message: str = "") -> None:
        self.message = message
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.message:
            print(self.message, file=sys.stderr)

    def __enter__(self) -> StopAtIterationEnd:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _curriculum_transforms(curriculum: Any) -> list[Any]:
    """The transforms that play ``curriculum``: a CurriculumTransform, and for robust PLR the
    ReplayDecisionTransform whose flags keep new levels' episodes out of the PPO loss.
    """
    from currlearn.integrations.replay import ReplayDecisionTransform
    from currlearn.integrations.torchrl import CurriculumTransform

    out = [CurriculumTransform(curriculum)]
    if getattr(curriculum, "robust", False):
        out.append(ReplayDecisionTransform(curriculum))
    return out


def _with_curriculum(base: Any, curriculum: Any) -> Any:
    from torchrl.envs import Compose, TransformedEnv

    transforms = _curriculum_transforms(curriculum)
    return TransformedEnv(base, transforms[0] if len(transforms) == 1 else Compose(*transforms))


def _build_gym_env(cfg: Mapping[str, Any], curriculum: Any, *, target: bool, num_envs: int, seed: int) -> Any:
    from hydra.utils import instantiate
    from torchrl.envs import ParallelEnv, SerialEnv

    env_cfg = cfg["env"]
    make_one = instantiate(dict(env_cfg["factory"]))
    if target:
        curriculum = _gym_target_curriculum(cfg, seed)
    elif curriculum is None:
        curriculum = _fixed_task_curriculum(cfg)
    batched = env_cfg.get("batched", "serial")
    if batched not in ("serial", "parallel"):
        raise TrainError(f"env.batched={batched!r} is invalid: allowed values: serial, parallel.")
    base = (ParallelEnv if batched == "parallel" else SerialEnv)(num_envs, make_one)
    env = _with_curriculum(base, curriculum)
    env.set_seed(seed)
    return env


def _ladder_schedules(cfg: Mapping[str, Any], make_schedule: Any) -> dict[str, Any]:
    s = cfg["schedule"]
    kind = s["kind"]
    total = _int("schedule.total", s["total"], 1)
    start = _int("schedule.start", s["start"], 0)
    out = {}
    for name, values in cfg["env"]["ladder"].items():
        values = [float(v) for v in values]
        init, final = values[0], values[-1]
        try:
            if kind == "step":
                n = len(values)
                bounds = [start + round(total * i / (n - 1)) for i in range(1, n)] if n > 1 else []
                out[name] = (
                    make_schedule("step", values=values, boundaries=bounds)
                    if n > 1
                    else make_schedule("constant", value=init)
                )
            elif kind == "exponential" and (init == 0 or final == 0 or (init > 0) != (final > 0)):
                warnings.warn(
                    f"schedule=exponential: env.ladder.{name} goes from {init} to {final}, but an exponential "
                    "needs non-zero ends of the same sign; this parameter follows a linear schedule instead.",
                    UserWarning,
                    stacklevel=2,
                )
                out[name] = make_schedule("linear", init=init, final=final, total=total, start=start)
            else:
                out[name] = make_schedule(kind, init=init, final=final, total=total, start=start)
        except (TypeError, ValueError) as e:
            raise TrainError(f"schedule={kind} for env.ladder.{name}: {e}") from e
    return out


def _pendulum_obs() -> Any:
    import torch
    from torchrl.data import Unbounded
    from torchrl.envs.transforms import Transform

    class PendulumObservation(Transform):
        """``observation = (cos th, sin th, thdot / 8)`` for the PPO networks."""

        def __init__(self) -> None:
            super().__init__(in_keys=["th", "thdot"], out_keys=["observation"])

        def _call(self, td: Any) -> Any:
            th, thdot = td.get("th"), td.get("thdot")
            td.set("observation", torch.stack([th.cos(), th.sin(), thdot / 8.0], -1))
            return td

        def _reset(self, td: Any, td_reset: Any) -> Any:
            return self._call(td_reset)

        def transform_observation_spec(self, spec: Any) -> Any:
            spec["observation"] = Unbounded(shape=(*spec.shape, 3), dtype=torch.float32, device=spec.device)
            return spec

    return PendulumObservation()


def build_env(
    cfg: Mapping[str, Any],
    curriculum: Any = None,
    *,
    target: bool = False,
    num_envs: int | None = None,
    seed: int | None = None,
) -> Any:
    """The TorchRL env of a resolved config, with a CurriculumTransform when ``curriculum``.

    With ``target=True`` the env plays the config's target task (for evaluation).
    """
    from torchrl.envs import Compose, StepCounter, TransformedEnv

    from currlearn.envs import PointMassGateEnv, make_pendulum

    env_cfg = cfg["env"]
    n = num_envs if num_envs is not None else env_cfg["num_envs"]
    seed = cfg["seed"] if seed is None else seed
    if "factory" in env_cfg:
        return _build_gym_env(cfg, curriculum, target=target, num_envs=n, seed=seed)
    if env_cfg["name"] == "point_mass":
        base = PointMassGateEnv(
            n,
            max_steps=env_cfg["max_steps"],
            gate_position=float(env_cfg["gate_position"]),
            gate_width=float(env_cfg["gate_width"]),
            device=cfg["device"],
            seed=seed,
        )
        if curriculum is None:
            return base
        return _with_curriculum(base, curriculum)
    base = make_pendulum(n, device=cfg["device"], seed=seed)
    if target:
        curriculum = _fixed_task_curriculum(cfg, seed)
    transforms = _curriculum_transforms(curriculum) if curriculum is not None else []
    return TransformedEnv(base, Compose(*transforms, StepCounter(env_cfg["max_steps"]), _pendulum_obs()))


def _build_logger(cfg: Mapping[str, Any], run_dir: Path) -> Any:
    node = dict(cfg["logger"])
    target = node.get("_target_")
    if not target:
        return None
    if target.endswith("WandbLogger"):
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise TrainError(
                "logger=wandb needs the wandb package (pip install wandb); allowed without it: csv, tensorboard, none."
            ) from None
        node.setdefault("save_dir", str(run_dir / "logs"))
    elif target.endswith("TensorboardLogger"):
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise TrainError(
                "logger=tensorboard needs the tensorboard package (pip install tensorboard); allowed without it: csv, none."
            ) from None
        node.setdefault("log_dir", str(run_dir / "logs"))
    else:
        node.setdefault("log_dir", str(run_dir / "logs"))
    from hydra.utils import instantiate

    return instantiate(node, _convert_="all")


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then ``os.replace``: an existing checkpoint is
    never left half-written.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The last checkpoint of ``run_dir``; TrainError when missing or unreadable."""
    import torch

    if not run_dir.is_dir():
        raise TrainError(f"resume={str(run_dir)!r}: no such run directory.")
    files = sorted(run_dir.glob(f"**/{CHECKPOINT}"))
    if not files:
        raise TrainError(f"resume={str(run_dir)!r}: the run directory has no checkpoint ({CHECKPOINT}).")
    path = files[0]
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise TrainError(
            f"resume={str(run_dir)!r}: the checkpoint {path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION or "trainer" not in ckpt:
        raise TrainError(
            f"resume={str(run_dir)!r}: {path} is not a currlearn-train checkpoint (version {CHECKPOINT_VERSION})."
        )
    return ckpt


# --------------------------------------------------------------------------- the run
def _mean(x: Any) -> float:
    return float(x.float().mean()) if x.numel() else float("nan")


def evaluate(cfg: Mapping[str, Any], policy: Any) -> dict[str, float]:
    """Success rate and mean return of ``policy`` on the env's target task (one episode per
    env of a fresh batch of ``eval.episodes`` envs).
    """
    import torch
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    n = cfg["eval"]["episodes"]
    if "factory" in cfg["env"]:  # Gymnasium envs step one by one: evaluate one batch of the training size
        n = min(n, cfg["env"]["num_envs"])
    env = build_env(cfg, None, target=True, num_envs=n, seed=cfg["seed"] + 10_000)
    mode = ExplorationType.DETERMINISTIC if cfg["eval"]["deterministic"] else ExplorationType.RANDOM
    with torch.no_grad(), set_exploration_type(mode):
        td = env.rollout(cfg["env"]["max_steps"], policy, break_when_any_done=False)
    done = td.get(("next", "done")).reshape(n, -1)
    before = (torch.cumsum(done.long(), 1) - done.long()) == 0  # steps of each env's first episode
    reward = td.get(("next", "reward")).reshape(n, -1)
    out = {"target_return": float((reward * before).sum(1).mean())}
    if ("next", "success") in td.keys(True):
        success = td.get(("next", "success")).reshape(n, -1).bool()
        out["target_success"] = float((success & before).any(1).float().mean())
    else:
        out["target_success"] = float("nan")
    env.close()
    return out


def run(cfg: DictConfig | Mapping[str, Any], run_dir: str | os.PathLike) -> dict[str, Any]:
    """Train with a composed config, writing into ``run_dir``; returns the summary.

    Raises:
        TrainError: bad input (before any file is written into ``run_dir``, except on resume
            errors found later).
    """
    import torch
    from tensordict import TensorDictBase
    from tqdm import tqdm

    from currlearn.feedback import EpisodeTracker
    from currlearn.integrations.ppo import PPOSettings, find_curriculum_transform, make_ppo_trainer

    warnings.filterwarnings("ignore", message=".*hook stage will be replaced.*", category=FutureWarning)
    run_dir = Path(run_dir)
    conf = _resolve(cfg)
    ckpt = None
    if conf.get("resume"):
        resume_dir = Path(conf["resume"]).expanduser().resolve()
        ckpt = load_checkpoint(resume_dir)
        old = ckpt.get("config") or {}
        for key in _RESUME_KEEP:
            if key in old:
                conf[key] = old[key]
        conf["algo"]["total_frames"] = conf["frames"]
    _validate(conf)
    torch.set_num_threads(conf["num_threads"])
    torch.manual_seed(conf["seed"])

    curriculum = build_curriculum(conf)
    env = build_env(conf, curriculum)
    algo = {k: v for k, v in conf["algo"].items() if k != "_target_"}
    algo["total_frames"] = conf["frames"]
    try:
        settings = PPOSettings(**algo)
    except (TypeError, ValueError) as e:
        raise TrainError(str(e).replace("ppo.", "algo.")) from None
    logger = _build_logger(conf, run_dir)
    trainer, _hook = make_ppo_trainer(env, curriculum, settings, logger=logger, log_interval=0)
    transform = find_curriculum_transform(env)
    policy = trainer.collector.policy if hasattr(trainer.collector, "policy") else None

    metrics_path = run_dir / conf["output"]["metrics"]
    ckpt_path = run_dir / conf["output"]["checkpoint_dir"] / CHECKPOINT
    state = {"iteration": 0, "wall_time": 0.0, "rows": []}
    if ckpt is not None:
        try:
            trainer.load_state_dict(ckpt["trainer"])
        except Exception as e:
            raise TrainError(
                f"resume={conf['resume']!r}: the checkpoint does not fit this config ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})."
            ) from None
        torch.set_rng_state(ckpt["torch_rng"])
        state.update(
            iteration=ckpt["iteration"],
            wall_time=ckpt["wall_time"],
            rows=list(ckpt.get("rows", [])),
        )
        if hasattr(trainer.collector, "update_policy_weights_"):
            trainer.collector.update_policy_weights_()
        if transform is not None:
            transform.refresh()
    if trainer.collected_frames >= conf["frames"]:
        raise TrainError(
            f"frames={conf['frames']} is reached already by the resumed run ({trainer.collected_frames} frames): pass a larger frames."
        )

    tracker = EpisodeTracker(task_key=("next", "done"))  # any per-step key: tasks are not needed here
    last: dict[str, float] = {}

    def on_batch(batch: TensorDictBase) -> TensorDictBase:
        fb = tracker(batch)
        last["episodes"] = fb.batch_size[0]
        last["return"] = _mean(fb["return"])
        last["success"] = _mean(fb["success"])
        last["length"] = _mean(fb["length"])
        return batch

    bar = tqdm(
        total=conf["frames"],
        initial=trainer.collected_frames,
        unit="frame",
        disable=not conf["progress"],
        dynamic_ncols=True,
        file=sys.stderr,
    )
    t0 = time.perf_counter() - state["wall_time"]

    def checkpoint() -> None:
        save_checkpoint(
            ckpt_path,
            {
                "version": CHECKPOINT_VERSION,
                "trainer": trainer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "iteration": state["iteration"],
                "wall_time": state["wall_time"],
                "rows": state["rows"],
                "config": conf,
            },
        )

    def on_iteration() -> None:
        state["iteration"] += 1
        state["wall_time"] = time.perf_counter() - t0
        row: dict[str, Any] = {
            "iteration": state["iteration"],
            "frames": int(trainer.collected_frames),
            "wall_time": round(state["wall_time"], 4),
            "episodes": last.get("episodes", 0),
            "return": last.get("return", float("nan")),
            "success": last.get("success", float("nan")),
            "episode_length": last.get("length", float("nan")),
        }
        if curriculum is not None:
            row.update(
                {k if k.startswith("curriculum/") else f"curriculum/{k}": v for k, v in curriculum.metrics().items()}
            )
            if transform is not None and transform.tasks is not None:
                params = curriculum.params(transform.tasks.reshape(-1, *curriculum.space.task_shape))
                row.update({f"task/{k}": _mean(v) for k, v in params.items()})
        state["rows"].append(row)
        _write_metrics(metrics_path, state["rows"])
        bar.update(row["frames"] - bar.n)
        post = {"ret": f"{row['return']:.2f}", "succ": f"{row['success']:.2f}"}
        post.update(_curriculum_summary(row))
        bar.set_postfix(post, refresh=False)
        every = conf["checkpoint_every"]
        # the last one is written here: trainer.train() shuts the collector down afterwards
        if trainer.collected_frames >= conf["frames"] or (every and state["iteration"] % every == 0):
            checkpoint()
            state["saved_at"] = state["iteration"]

    trainer.register_op("batch_process", on_batch)
    trainer.register_op("post_steps", on_iteration)

    stop = StopAtIterationEnd(f"{PROG}: stopping at the end of this iteration (Ctrl-C again to stop at once)")

    def stop_if_asked() -> None:
        if stop.requested:
            raise KeyboardInterrupt

    trainer.register_op("post_steps", stop_if_asked)  # after on_iteration: the row is written

    interrupted = False
    try:
        with stop:
            trainer.train()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if interrupted:
        if state.get("saved_at") != state["iteration"]:
            checkpoint()
        print(
            f"{PROG}: interrupted; checkpoint saved to {ckpt_path} (continue with resume={run_dir})",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    if conf["output"]["plots"]:
        from currlearn.report import plot_run

        plot_run(state["rows"], run_dir)
    eval_policy = policy if policy is not None else trainer.loss_module.actor_network
    summary: dict[str, Any] = {
        "curriculum": _choice(cfg, "curriculum"),
        "env": conf["env"]["name"],
        "seed": conf["seed"],
        "frames": int(trainer.collected_frames),
        "iterations": state["iteration"],
        "wall_time": round(state["wall_time"], 3),
        "final_return": state["rows"][-1]["return"] if state["rows"] else float("nan"),
        "final_success": state["rows"][-1]["success"] if state["rows"] else float("nan"),
        **evaluate(conf, eval_policy),
    }
    if curriculum is not None:
        summary["curriculum_metrics"] = curriculum.metrics()
    if conf.get("resume"):
        summary["resumed_from"] = conf["resume"]
    (run_dir / conf["output"]["summary"]).write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def _curriculum_summary(row: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    if "curriculum/level_mean" in row:
        out["level"] = f"{row['curriculum/level_mean']:.0f}"
    if "curriculum/stage" in row:
        out["stage"] = f"{row['curriculum/stage']:.0f}"
    for k, v in row.items():
        if k.startswith("task/"):
            out[k[5:]] = f"{v:.2f}"
    return out


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _resolve(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        try:
            c = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:
            raise TrainError(_one_line(str(e))) from None
        c.pop("hydra", None)
        return c  # type: ignore[return-value]
    return json.loads(json.dumps(cfg))


def _choice(cfg: Any, group: str) -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices[group])
    except Exception:
        t = (cfg.get(group) or {}).get("_target_") if isinstance(cfg, Mapping) else None
        return str(t.rsplit(".", 1)[-1]) if t else "none"


# --------------------------------------------------------------------------- CLI
def _one_line(text: str) -> str:
    """Condense a (Hydra) error message to one line: list items (indented lines) are joined
    with commas, other lines with semicolons; search path and hints are dropped.
    """
    out = ""
    prev_item = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "object_type=")):
            continue
        if line.startswith("Config search path"):
            break
        item = raw[:1] in (" ", "\t") and not line.endswith(":")
        if not out:
            out = line
        elif item and prev_item:
            out += f", {line}"
        elif out.endswith(":"):
            out += f" {line}"
        else:
            out = out.rstrip(".;") + f"; {line}"
        prev_item = item
    return re.sub(r"\s+", " ", out)


def _allowed_keys_hint(msg: str, overrides: list[str]) -> str:
    """For "Could not override 'a.b'", the keys that ``a`` has in the composed config."""
    m = re.search(r"Could not override '([\w.]+)'", msg)
    if not m:
        return ""
    parent, _, _ = m.group(1).rpartition(".")
    try:
        from hydra import compose, initialize_config_module

        keep = [
            o
            for o in overrides
            if "=" in o and not o.startswith(("-", "hydra")) and m.group(1) not in o.split("=", 1)[0]
        ]
        with initialize_config_module("currlearn.conf", version_base="1.3"):
            cfg = compose("train", overrides=keep)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        keys = [str(k) for k in node] if isinstance(node, DictConfig) else []
    except Exception:
        return ""
    return f"; allowed keys of {parent or 'the config'}: {', '.join(keys)}" if keys else ""


def _fail(msg: str) -> None:
    sys.exit(f"{PROG}: error: {_one_line(msg)}")


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def _app(cfg: DictConfig) -> float | None:
    _release_stderr()
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        summary = run(cfg, run_dir)
    except KeyboardInterrupt:
        sys.exit(130)
    except TrainError as e:
        _discard_new_run_dir(run_dir, hc)
        _fail(str(e))
    except (ValueError, TypeError, KeyError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _discard_new_run_dir(run_dir, hc)
        _fail(f"{type(e).__name__}: {e}")
    print(
        f"{PROG}: {summary['curriculum']} on {summary['env']}, seed {summary['seed']}: {summary['frames']} frames "
        f"in {summary['wall_time']:.1f} s; final success {summary['final_success']:.2f}, "
        f"target success {summary.get('target_success', float('nan')):.2f}; run dir {run_dir}",
        flush=True,
    )
    return summary.get("target_success")


def _discard_new_run_dir(run_dir: Path, hc: Any) -> None:
    """Remove the run dir Hydra made for a run that failed on its input: only Hydra's own
    files are in it. Sweep dirs and directories with anything else in them are kept.
    """
    from hydra.types import RunMode

    if hc.mode != RunMode.RUN or not run_dir.is_dir():
        return
    names = {p.name for p in run_dir.iterdir()}
    if names <= {".hydra", f"{hc.job.name}.log", "train.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


_real_stderr: Any = None
_captured: io.StringIO | None = None


def _release_stderr() -> None:
    global _captured
    if _real_stderr is not None and sys.stderr is not _real_stderr:
        text = _captured.getvalue() if _captured is not None else ""
        sys.stderr = _real_stderr
        if text:
            sys.stderr.write(text)
        _captured = None


def main() -> None:
    """Console entry point ``currlearn-train``.

    Hydra reports its own errors (unknown group option, bad override) as several lines; they
    are caught here and condensed to one, unless ``HYDRA_FULL_ERROR=1``.
    """
    # TorchRL's INFO lines (read from this variable at its import) would break the progress bar.
    os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
    global _real_stderr, _captured
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        _app()
        return
    _real_stderr = sys.stderr
    _captured = io.StringIO()
    sys.stderr = _captured
    code: Any = 0
    try:
        _app()
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        code = 130
    finally:
        text = _captured.getvalue() if (_captured is not None and sys.stderr is _captured) else ""
        sys.stderr = _real_stderr
    if code not in (0, None):
        if text.strip():
            msg = _one_line(text)
            sys.exit(f"{PROG}: error: {msg}{_allowed_keys_hint(msg, sys.argv[1:])}")
        sys.exit(code)
    if text:
        sys.stderr.write(text)


if __name__ == "__main__":
    # run the app from the importable module, not from __main__, so that process-based
    # launchers (hydra/launcher=joblib) pickle the task function by reference
    from currlearn.train import main as _main

    _main()
