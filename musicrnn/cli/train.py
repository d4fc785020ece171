"""`musicrnn-train` (also `python -m musicrnn.cli.train`): train, test and sample, configured by Hydra.

musicrnn-train                                            # built-in Bach chorales, the paper's model
musicrnn-train data=midi_dir data.path=~/midis model=seed_paper trainer.max_epochs=20
musicrnn-train -m model.hidden_size=64,128 seed=1,2       # a multirun: one folder per job
musicrnn-train train=false ckpt_path='logs/train/multirun/x/*/checkpoints/best.ckpt'   # test an ensemble
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import TensorBoardLogger

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.cli.config_validation import validate_run_config
from musicrnn.cli.generate import sample_checkpoint
from musicrnn.data.pianoroll_data import PianoRollDataModule
from musicrnn.errors import CheckpointError, MusicrnnError, errors_as_one_line, run_hydra_cli
from musicrnn.training.callbacks.random_state import RandomStateCheckpoint
from musicrnn.training.checkpoint import expand_checkpoints, load_model, load_module
from musicrnn.training.checkpoint_io import SafeCheckpointIO
from musicrnn.training.pianoroll_module import PianoRollModule

log = logging.getLogger(__name__)
# A deprecation inside pytorch_lightning itself (its own use of torch's pytree), not actionable here.
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config group that holds several (callbacks, loggers)."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(entry)
        for entry in group.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def _scalar_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items())}


def train(cfg: DictConfig, command: str = "musicrnn-train") -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, test the best checkpoint, write a sample. Returns (metrics, objects), so tests and sweepers
    can read the numbers."""
    started = time.perf_counter()
    # One checkpoint resumes training (or is tested); several (a list or a glob) are tested as an ensemble.
    spec = cfg.get("ckpt_path")
    if spec == "last":
        spec = str(latest_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name))
        log.info("ckpt_path=last: resuming from %s", spec)
    checkpoints = expand_checkpoints(spec) if spec else []  # a ListConfig is a Sequence: used as it is
    for path in checkpoints:
        if not path.is_file():
            raise CheckpointError(path, "file not found")  # before any work, not after the data loads
    ensemble = len(checkpoints) > 1
    if ensemble and cfg.get("train"):
        raise MusicrnnError(
            f"ckpt_path names {len(checkpoints)} checkpoints: an ensemble is tested, not trained (add train=false)"
        )
    check_data_and_model_kinds(cfg)  # the model config also sets the data's windows: it must fit, tested or not
    validate_run_config(cfg)  # unknown keys, wrong types, out-of-range values: before the data is read
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)  # Lightning's own line would go to stderr
        log.info("seed %d (torch, numpy, random and the data loader workers)", cfg.seed)
    output_dir = Path(cfg.paths.output_dir)
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    if ensemble:
        model: pl.LightningModule = load_model(checkpoints, cfg.get("ensemble_weights"))
    elif checkpoints and not cfg.get("train"):
        model = load_module(checkpoints[0])  # tested as saved: the checkpoint carries its own settings
    else:
        model = hydra.utils.instantiate(cfg.model)
        if checkpoints:
            check_resumable(model, checkpoints[0])
    check_model_matches_data(model, datamodule)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    # Always: random states in every checkpoint (an exact resume), atomic checkpoint writes and safe reads.
    callbacks.append(RandomStateCheckpoint())
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[SafeCheckpointIO()]
    )

    metrics: dict[str, float] = {}
    resume = str(checkpoints[0]) if checkpoints and cfg.get("train") else None
    if cfg.get("train"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
        metrics.update(_scalar_metrics(trainer.callback_metrics))
    objective, diverged = _objective(cfg, trainer, metrics)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback and cfg.get("train") else ""
    best = "" if diverged else best or resume or ""  # a diverged run has no checkpoint worth testing or sampling
    tested_as_loaded = bool(checkpoints) and not cfg.get("train")  # a given checkpoint or ensemble, in memory
    if cfg.get("test") and not diverged:
        trainer.test(model, datamodule=datamodule, ckpt_path=None if tested_as_loaded else best or None, verbose=False)
        metrics.update(_scalar_metrics(trainer.callback_metrics))

    _log_hparams(loggers, datamodule, model, objective)

    sample_paths = []
    sample_cfg = cfg.get("sample") or {}
    if not trainer.is_global_zero:  # under DDP: one process writes the sample, the summary and metrics.json
        sample_cfg = {}
    sampled = model if tested_as_loaded else load_module(best) if best and sample_cfg else None
    # A note model's sample is num_notes long, a piano-roll model's num_frames; 0 or null means no sample.
    length = sample_cfg.get("num_frames" if isinstance(sampled, PianoRollModule) else "num_notes")
    if sampled is not None and length:
        # The checkpoint's own held-out primer, read whole (it is one training window long).
        sample_paths = sample_checkpoint(
            sampled,
            output_dir / "samples" / "sample.mid",
            primer_notes=0,
            primer_frames=0,
            num_notes=int(length),
            num_frames=int(length),
            temperature=float(sample_cfg["temperature"]),
            seed=cfg.get("seed"),
        )

    elapsed = time.perf_counter() - started
    if trainer.is_global_zero:
        _write_metrics_json(
            output_dir,
            cfg,
            objective,
            diverged,
            best,
            metrics,
            elapsed,
            trainer.current_epoch if cfg.get("train") else 0,
        )
        _print_summary(command, output_dir, best, sample_paths, metrics, elapsed)
    objects = {
        "datamodule": datamodule,
        "model": model,
        "trainer": trainer,
        "best_checkpoint": best,
        "samples": sample_paths,
        "objective": objective,
        "diverged": diverged,
    }
    return metrics, objects


def _objective(cfg: DictConfig, trainer: pl.Trainer, metrics: dict[str, float]) -> tuple[float, bool]:
    """What a sweeper optimises: the best value of the checkpoint's monitored metric (default val/loss).
    A run whose loss went non-finite (diverged) gets the worst value, +inf (or -inf when maximising), so a
    sweep records a bad trial and goes on."""
    monitor, mode = _monitor(cfg), OmegaConf.select(cfg, "callbacks.model_checkpoint.mode") or "min"
    worst = float("inf") if mode == "min" else float("-inf")
    if not monitor:
        return float("nan"), False
    non_finite = [
        name for name in (monitor, "train/loss_epoch") if name in metrics and not math.isfinite(metrics[name])
    ]
    if cfg.get("train") and non_finite:
        log.warning(
            "the run diverged (%s is not finite): its objective is %s; no test and no sample", non_finite[0], worst
        )
        return worst, True
    callback = trainer.checkpoint_callback
    best = callback.best_model_score if callback is not None and callback.monitor == monitor else None
    value = float(best) if best is not None else metrics.get(monitor, float("nan"))
    return value, False


def _write_metrics_json(
    output_dir: Path,
    cfg: DictConfig,
    objective: float,
    diverged: bool,
    best: str,
    metrics: dict[str, float],
    elapsed: float,
    epochs: int,
) -> None:
    """The run's numbers in one file (what musicrnn-sweep-report reads for each job). Strict JSON: a
    non-finite value (a diverged run's objective or loss) is written as null."""
    finite = lambda value: value if math.isfinite(value) else None  # noqa: E731
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "objective": finite(objective),
        "monitor": _monitor(cfg),
        "diverged": diverged,
        "best_checkpoint": best,
        "seconds": round(elapsed, 1),
        "epochs": epochs,
        "metrics": {k: finite(v) for k, v in metrics.items()},
    }
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")


def check_data_and_model_kinds(cfg: DictConfig) -> None:
    """Piano-roll data needs a piano-roll model and note data a note model: say so before anything is built."""
    try:
        data_class = hydra.utils.get_class(cfg.data._target_)
        model_class = hydra.utils.get_class(cfg.model._target_)
    except Exception:
        return  # a bad _target_ is reported by the instantiation itself
    rolls, roll_model = issubclass(data_class, PianoRollDataModule), issubclass(model_class, PianoRollModule)
    if rolls and not roll_model:
        raise MusicrnnError(
            f"the data config ({data_class.__name__}) gives piano rolls but the model is a note model ({model_class.__name__}): add model=pianoroll_lstm"
        )
    if roll_model and not rolls:
        raise MusicrnnError(
            f"model=pianoroll_lstm needs piano-roll data (data=jsb_chorales, pianoroll_pickle or pianoroll_midi), not {data_class.__name__}"
        )


def check_model_matches_data(model: pl.LightningModule, datamodule: pl.LightningDataModule) -> None:
    """A model (built, or loaded from checkpoints) must read the data's representation."""
    if isinstance(model, PianoRollModule) != isinstance(datamodule, PianoRollDataModule):
        kind = "piano-roll" if isinstance(model, PianoRollModule) else "note"
        raise MusicrnnError(
            f"the checkpoint holds a {kind} model but the data config gives {'notes' if kind == 'piano-roll' else 'piano rolls'}: choose the data= (or experiment=) it was trained with"
        )
    names = ("num_keys", "lowest_pitch", "steps_per_quarter") if isinstance(model, PianoRollModule) else ("time_unit",)
    for name in names:
        mine, data = model.hparams.get(name), getattr(datamodule, name, None)
        if data is not None and mine != data:
            raise MusicrnnError(
                f"the model has {name}={mine!r} but the data has {data!r}: set data.{name}={mine!r} (or use a matching checkpoint)"
            )


def latest_last_checkpoint(task_dir: Path) -> Path:
    """The newest `last.ckpt` of this task's runs (`ckpt_path=last`)."""
    pattern = "runs/*/checkpoints/last.ckpt"
    found = sorted(task_dir.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError("last", f"no {task_dir / pattern} to resume from")
    return found[-1]


def check_resumable(model: pl.LightningModule, path: Path) -> None:
    """Resuming needs the configured model to be the checkpoint's: same class, same parameter shapes."""
    saved = load_module(path)
    if type(saved) is not type(model):
        raise CheckpointError(
            path, f"holds a {type(saved).__name__}, but the configured model is a {type(model).__name__}"
        )
    mine, theirs = model.state_dict(), saved.state_dict()
    for name, tensor in theirs.items():
        if name not in mine or mine[name].shape != tensor.shape:
            shape = tuple(mine[name].shape) if name in mine else "absent"
            raise CheckpointError(
                path,
                f"does not fit the configured model ({name}: {tuple(tensor.shape)} saved, {shape} configured): resume with the settings it was trained with",
            )


def _monitor(cfg: DictConfig) -> str | None:
    return OmegaConf.select(cfg, "callbacks.model_checkpoint.monitor")


def _log_hparams(
    loggers: list, datamodule: pl.LightningDataModule, model: pl.LightningModule, objective: float
) -> None:
    """Give TensorBoard's HParams tab the data and model settings with the run's objective as `hp_metric`
    (Lightning writes that summary only when it is given a metric, and it has none at the start)."""
    params = {**dict(getattr(datamodule, "hparams", {})), **dict(model.hparams)}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, {"hp_metric": objective})


def _print_summary(
    command: str, output_dir: Path, best: str, samples: list[Path], metrics: dict[str, float], elapsed: float
) -> None:
    lines = [f"{command} finished in {elapsed:.1f} s", f"  run folder      : {output_dir}"]
    if best:
        lines.append(f"  best checkpoint : {best}")
    lines.append(f"  TensorBoard     : tensorboard --logdir {output_dir / 'tensorboard'}")
    for path in samples:
        lines.append(f"  sample          : {path}")
    test = {k[len("test/") :]: v for k, v in metrics.items() if k.startswith("test/")}
    if test:
        lines.append("  test metrics    :")
        baselines = ("unigram", "bigram")
        lines.append(f"    {'':<19} {'model':>9} " + " ".join(f"{b:>9}" for b in baselines))
        for name, value in test.items():
            if not name.startswith(tuple(f"{b}_" for b in baselines)):
                floors = " ".join(
                    f"{test[f'{b}_{name}']:>9.4f}" if f"{b}_{name}" in test else f"{'':>9}" for b in baselines
                )
                lines.append(f"    {name:<19} {value:>9.4f} {floors}")
    print("\n".join(lines), flush=True)


def route_lightning_logs() -> None:
    """Lightning's loggers get their own stderr handler when Lightning is imported before logging is set up,
    as it is here, before Hydra's: send them through Hydra's handlers instead (stdout and the run's log file),
    so that stderr carries warnings and errors only and an error is the one line on it."""
    for name in ("pytorch_lightning", "lightning_fabric"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
            logger.removeHandler(handler)
        logger.propagate = True


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    route_lightning_logs()
    with errors_as_one_line("musicrnn-train"):  # bad data, config value or checkpoint: what and why
        _, objects = train(cfg)
    return objects["objective"] if _monitor(cfg) else None


def cli() -> None:
    """The `musicrnn-train` console script: `main` with Hydra's own errors on one line too."""
    run_hydra_cli("musicrnn-train", main)


if __name__ == "__main__":
    cli()
