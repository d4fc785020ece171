"""`musicrnn-train` (also `python -m musicrnn.cli.train`): train, test and sample, configured by Hydra.

musicrnn-train                                            # built-in Bach chorales, the default note_lstm
musicrnn-train data=midi_dir data.path=~/midis model=seed_paper trainer.max_epochs=20
musicrnn-train -m model.hidden_size=64,128 seed=1,2       # a multirun: one folder per job
musicrnn-train train=false ckpt_path='logs/train/multirun/x/*/checkpoints/best.ckpt'   # test an ensemble
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from musicrnn.cli import static_targets
from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.cli.config_validation import validate_run_config
from musicrnn.cli.errors import errors_as_one_line, run_hydra_cli
from musicrnn.errors import CheckpointError, MusicrnnError
from musicrnn.training.checkpoint_paths import existing_checkpoints

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from musicrnn.training.module import SequenceModel

# torch and Lightning (~6 s to import) are imported by the functions that do work, not by this module: a
# typo, --help or a missing checkpoint is answered from the config alone, before they load.

log = logging.getLogger(__name__)
# A deprecation inside pytorch_lightning itself (its own use of torch's pytree), not actionable here.
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config group that holds several (callbacks, loggers). Here and
    for every object the CLIs build, `_convert_="all"`: constructors get plain lists and dicts, never Hydra's
    containers."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(entry, _convert_="all")
        for entry in group.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def _scalar_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items())}


def train(cfg: DictConfig, command: str = "musicrnn-train") -> tuple[dict[str, float], dict[str, Any]]:
    """What `musicrnn-train` does: fit (from scratch, or resumed from `ckpt_path`) then test the best
    checkpoint and write a sample; with `train=false`, test the checkpoint(s) at `ckpt_path` (several: their
    ensemble). Returns (metrics, objects), so tests and sweepers can read the numbers."""
    checkpoints = checkpoints_of(cfg)
    if not cfg.get("train"):
        return test(cfg, checkpoints, command)
    if len(checkpoints) > 1:
        raise MusicrnnError(
            f"ckpt_path names {len(checkpoints)} checkpoints: an ensemble is tested, not trained (add train=false)"
        )
    return fit(cfg, checkpoints[0] if checkpoints else None, command)


def fit(cfg: DictConfig, resume: Path | None = None, command: str = "musicrnn-train") -> tuple[dict, dict]:
    """Train the configured model (continuing the run of checkpoint `resume`, when given), test its best
    checkpoint, write a sample from it, and write metrics.json and the summary."""
    started = time.perf_counter()
    _check_and_seed(cfg)
    from musicrnn.training.checkpoint import load_module

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    if resume is not None:
        check_resumable(model, resume)
    check_model_matches_data(model, datamodule)
    trainer, loggers = _trainer(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(resume) if resume is not None else None)
    metrics = _scalar_metrics(trainer.callback_metrics)
    objective, diverged = _objective(cfg, trainer, metrics)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best = "" if diverged else best or (str(resume) if resume is not None else "")  # a diverged run: nothing to test
    if cfg.get("test") and not diverged:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics.update(_scalar_metrics(trainer.callback_metrics))
    _log_hparams(loggers, datamodule, model, objective)
    sampled = load_module(best) if best and _sample_settings(cfg, trainer) else None
    return _finish(cfg, command, started, trainer, datamodule, model, sampled, metrics, objective, diverged, best)


def test(cfg: DictConfig, checkpoints: list[Path], command: str = "musicrnn-train") -> tuple[dict, dict]:
    """Test the checkpoint (several: their ensemble, weighted by `ensemble_weights`) as saved, on the test
    split of the configured data, write a sample from it, and write metrics.json and the summary. Without a
    checkpoint, the configured model as initialised is tested."""
    started = time.perf_counter()
    _check_and_seed(cfg)
    from musicrnn.training.checkpoint import load_module
    from musicrnn.training.ensemble import load_model

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    weights = _plain(cfg.get("ensemble_weights"))
    if len(checkpoints) > 1:
        model = load_model(checkpoints, weights)
    else:  # tested as saved: the checkpoint carries its own settings
        model = load_module(checkpoints[0]) if checkpoints else hydra.utils.instantiate(cfg.model, _convert_="all")
    check_model_matches_data(model, datamodule)
    trainer, loggers = _trainer(cfg)
    metrics: dict[str, float] = {}
    objective, diverged = _objective(cfg, trainer, metrics)
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics.update(_scalar_metrics(trainer.callback_metrics))
    _log_hparams(loggers, datamodule, model, objective)
    sampled = model if checkpoints else None
    return _finish(cfg, command, started, trainer, datamodule, model, sampled, metrics, objective, diverged, "")


def checkpoints_of(cfg: DictConfig) -> list[Path]:
    """The checkpoints `ckpt_path` names (a path, a list, a glob, or "last": this task's newest last.ckpt),
    each checked to exist before any work, not after the data loads."""
    spec = _plain(cfg.get("ckpt_path"))
    if spec == "last":
        spec = str(latest_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name))
        log.info("ckpt_path=last: resuming from %s", spec)
    return existing_checkpoints(spec) if spec else []


def _plain(value):
    """A config value as plain Python (lists and dicts instead of Hydra's containers)."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _check_and_seed(cfg: DictConfig) -> None:
    check_data_and_model_kinds(cfg)  # the model config also sets the data's windows: it must fit, tested or not
    validate_run_config(cfg)  # unknown keys, wrong types, out-of-range values: before the data is read
    import pytorch_lightning as pl  # the work starts here

    route_lightning_logs()
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)  # Lightning's own line would go to stderr
        log.info("seed %d (torch, numpy, random and the data loader workers)", cfg.seed)


def _trainer(cfg: DictConfig) -> tuple[pl.Trainer, list]:
    """The configured Trainer, its callbacks and loggers."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    from musicrnn.training.callbacks.progress import EpochProgressLine
    from musicrnn.training.callbacks.random_state import RandomStateCheckpoint
    from musicrnn.training.checkpoint_io import SafeCheckpointIO

    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    # Always: random states in every checkpoint (an exact resume), atomic checkpoint writes and safe reads.
    callbacks.append(RandomStateCheckpoint())
    # Where no progress bar can be read (it is off, or stdout is a file: SLURM, CI, nohup), one line per epoch
    # instead; a bar written to a file is thousands of carriage returns, so there it is turned off.
    extra = {}
    if not cfg.trainer.get("enable_progress_bar", True) or not sys.stdout.isatty():
        mode = OmegaConf.select(cfg, "callbacks.model_checkpoint.mode") or "min"
        callbacks.append(EpochProgressLine(_monitor(cfg), mode))
        extra["enable_progress_bar"] = False
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, _convert_="all", callbacks=callbacks, logger=loggers or False, plugins=[SafeCheckpointIO()],
        **extra,
    )  # fmt: skip
    return trainer, loggers


def _sample_settings(cfg: DictConfig, trainer: pl.Trainer) -> dict:
    """The end-of-run sample's settings; none under DDP's other processes (one process writes the sample,
    the summary and metrics.json)."""
    return (_plain(cfg.get("sample")) or {}) if trainer.is_global_zero else {}


def _finish(cfg, command, started, trainer, datamodule, model, sampled, metrics, objective, diverged, best):
    """The end-of-run sample (the checkpoint's own held-out primer, read whole: it is one training window
    long), metrics.json and the summary; returns (metrics, objects)."""
    from musicrnn.generation.samples import sample_checkpoint
    from musicrnn.nets.heads import SamplingSettings

    output_dir = Path(cfg.paths.output_dir)
    sample = _sample_settings(cfg, trainer)
    sample_paths = []
    # A note model's sample is num_notes long, a piano-roll model's num_frames; 0 or null means no sample.
    length = sample.get(sampled.representation.length_setting) if sampled is not None else None
    if length:
        sample_paths = sample_checkpoint(
            sampled,
            output_dir / "samples" / "sample.mid",
            length=int(length),
            settings=SamplingSettings(temperature=float(sample["temperature"])),
            seed=cfg.get("seed"),
        )
    elapsed = time.perf_counter() - started
    if trainer.is_global_zero:
        epochs = trainer.current_epoch if cfg.get("train") else 0
        _write_metrics_json(output_dir, cfg, objective, diverged, best, metrics, elapsed, epochs)
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
    """The data must give the representation the model reads (notes, piano rolls): said before anything is
    built. Each data module class names what it gives (`representation_name`), each model builder what it
    reads (`training.models.REPRESENTATIONS`); both read from their source (`static_targets`), so this is
    said in milliseconds, with the classes imported only where the source cannot say."""
    try:
        data_target, model_name = str(cfg.data._target_), str(cfg.model._target_).rpartition(".")[2]
    except Exception:
        return  # a bad _target_ is reported by the instantiation itself
    gives = static_targets.attribute(data_target, "representation_name")
    model_kinds = static_targets.module_value("musicrnn.training.models", "REPRESENTATIONS")
    if gives is None or model_kinds is None:
        try:
            gives = getattr(hydra.utils.get_class(data_target), "representation_name", None)
        except Exception:
            return
        from musicrnn.training.models import REPRESENTATIONS as model_kinds
    reads = model_kinds.get(model_name)
    if gives is None or reads is None or gives == reads:
        return
    from musicrnn.representations import REPRESENTATIONS  # their nouns, for the message

    models = " or ".join(f"model={name}" for name, kind in model_kinds.items() if kind == gives)
    data, model = REPRESENTATIONS[gives], REPRESENTATIONS[reads]
    raise MusicrnnError(
        f"the data config ({data_target.rpartition('.')[2]}) gives {data.data_noun} but the model is a "
        f"{model.model_noun} model ({model_name}): add {models}, or choose data that gives {model.data_noun}"
    )


def check_model_matches_data(model: SequenceModel, datamodule: pl.LightningDataModule) -> None:
    """A model (built, or loaded from checkpoints) must read the data's representation, with its settings."""
    from musicrnn.representations import REPRESENTATIONS

    gives, reads = getattr(datamodule, "representation_name", None), model.representation
    if gives is not None and gives != reads.name:
        raise MusicrnnError(
            f"the checkpoint holds a {reads.model_noun} model but the data config gives "
            f"{REPRESENTATIONS[gives].data_noun}: choose the data= (or experiment=) it was trained with"
        )
    for name, mine in model.representation.settings().items():
        data = getattr(datamodule, name, None)
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
    from musicrnn.training.checkpoint import load_module

    saved = load_module(path)
    if saved.model_name != model.model_name:
        raise CheckpointError(
            path, f"holds a {saved.model_name} model, but the configured model is a {model.model_name}"
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
    from pytorch_lightning.loggers import TensorBoardLogger

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
