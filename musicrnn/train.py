"""`musicrnn-train` (also `python -m musicrnn.train`): train, test and sample, configured by Hydra.

    musicrnn-train                                            # built-in Bach chorales, the paper's model
    musicrnn-train data=midi_dir data.path=~/midis model=seed_paper trainer.max_epochs=20
    musicrnn-train -m model.hidden_size=64,128 seed=1,2       # a multirun: one folder per job
    musicrnn-train train=false ckpt_path='logs/train/multirun/x/*/checkpoints/best.ckpt'   # test an ensemble
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import TensorBoardLogger
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from musicrnn.checkpoint import expand_checkpoints, load_model, load_module
from musicrnn.conf_dir import CONFIG_DIR
from musicrnn.errors import CheckpointError, MusicrnnError, one_line
from musicrnn.generate import sample_checkpoint

log = logging.getLogger(__name__)
# A deprecation inside pytorch_lightning itself (its own use of torch's pytree), not actionable here.
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config group that holds several (callbacks, loggers)."""
    if not group:
        return []
    return [hydra.utils.instantiate(entry) for entry in group.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def _scalar_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items())}


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, test the best checkpoint, write a sample. Returns (metrics, objects), so tests and sweepers
    can read the numbers."""
    started = time.perf_counter()
    # One checkpoint resumes training (or is tested); several (a list or a glob) are tested as an ensemble.
    spec = cfg.get("ckpt_path")
    checkpoints = expand_checkpoints(OmegaConf.to_object(spec) if isinstance(spec, ListConfig) else spec) if spec else []
    for path in checkpoints:
        if not path.is_file():
            raise CheckpointError(path, "file not found")  # before any work, not after the data loads
    ensemble = len(checkpoints) > 1
    if ensemble and cfg.get("train"):
        raise MusicrnnError(f"ckpt_path names {len(checkpoints)} checkpoints: an ensemble is tested, not trained (add train=false)")
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    if ensemble:
        model: pl.LightningModule = load_model(checkpoints, cfg.get("ensemble_weights"))
    else:
        model = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers:  # logger=none: Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    metrics: dict[str, float] = {}
    resume = str(checkpoints[0]) if checkpoints and not ensemble else None
    if cfg.get("train"):
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
        metrics.update(_scalar_metrics(trainer.callback_metrics))
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback and cfg.get("train") else ""
    best = best or resume or ""  # test=true train=false evaluates the given checkpoint (an ensemble: in memory)
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics.update(_scalar_metrics(trainer.callback_metrics))

    _log_hparams(loggers, datamodule, model, metrics.get(_monitor(cfg) or "", float("nan")))

    sample_paths = []
    if (best or ensemble) and cfg.get("sample") and (cfg.sample.get("num_notes") or cfg.sample.get("num_frames")):
        # The checkpoint's own held-out primer, read whole (it is one training window long).
        sample_paths = sample_checkpoint(
            model if ensemble else load_module(best),
            output_dir / "samples" / "sample.mid",
            primer_notes=0,
            primer_frames=0,
            num_notes=int(cfg.sample.get("num_notes") or 1),
            num_frames=int(cfg.sample.get("num_frames") or 1),
            temperature=float(cfg.sample.temperature),
            seed=cfg.get("seed"),
        )

    elapsed = time.perf_counter() - started
    _print_summary(output_dir, best, sample_paths, metrics, elapsed)
    objects = {"datamodule": datamodule, "model": model, "trainer": trainer, "best_checkpoint": best, "samples": sample_paths}
    return metrics, objects


def _monitor(cfg: DictConfig) -> str | None:
    return OmegaConf.select(cfg, "callbacks.model_checkpoint.monitor")


def _log_hparams(loggers: list, datamodule: pl.LightningDataModule, model: pl.LightningModule, objective: float) -> None:
    """Give TensorBoard's HParams tab the data and model settings with the run's objective as `hp_metric`
    (Lightning writes that summary only when it is given a metric, and it has none at the start)."""
    params = {**dict(getattr(datamodule, "hparams", {})), **dict(model.hparams)}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, {"hp_metric": objective})


def _print_summary(output_dir: Path, best: str, samples: list[Path], metrics: dict[str, float], elapsed: float) -> None:
    lines = [f"musicrnn-train finished in {elapsed:.1f} s", f"  run folder      : {output_dir}"]
    if best:
        lines.append(f"  best checkpoint : {best}")
    lines.append(f"  TensorBoard     : tensorboard --logdir {output_dir / 'tensorboard'}")
    for path in samples:
        lines.append(f"  sample          : {path}")
    test = {k[len('test/'):]: v for k, v in metrics.items() if k.startswith("test/")}
    if test:
        lines.append("  test metrics    :")
        baselines = ("unigram", "bigram")
        lines.append(f"    {'':<19} {'model':>9} " + " ".join(f"{b:>9}" for b in baselines))
        for name, value in test.items():
            if not name.startswith(tuple(f"{b}_" for b in baselines)):
                floors = " ".join(f"{test[f'{b}_{name}']:>9.4f}" if f"{b}_{name}" in test else f"{'':>9}" for b in baselines)
                lines.append(f"    {name:<19} {value:>9.4f} {floors}")
    print("\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics, _ = train(cfg)
    except (MusicrnnError, InstantiationException, OmegaConfBaseException) as error:
        # Bad data, a bad or missing config value, or a bad checkpoint: say what and why in one line.
        print(f"musicrnn-train: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None
    monitor = _monitor(cfg)
    return metrics.get(monitor) if monitor else None


if __name__ == "__main__":
    main()
