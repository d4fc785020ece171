"""The measurements of musicrnn's benchmark suite; `python -m experiments.benchmarks` runs them all.

Each measurement is a function returning a dict of numbers. The runner executes each one in a fresh
subprocess, so its peak memory (ru_maxrss) is its own and no measurement warms another's caches.
Times are medians over repeats after a warm-up.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from musicrnn.nets.heads import positive_pressure_mse
from musicrnn.nets.note_lstm import NoteLSTM, NoteLSTMConfig

SEED_MODEL = NoteLSTMConfig(hidden_size=128, num_layers=3, dropout=0.3, dense_size=256)  # the paper's model
SEQ_LEN = 100
BATCH = 64


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict:
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def matmul_peak(quick: bool = False) -> dict:
    """fp32 matmul throughput, 1024 x 1024 (the machine's practical peak for this model's kind of work)."""
    n = 256 if quick else 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median_seconds(lambda: a @ b, repeats=5 if quick else 30, warmup=3)
    return {"matmul_gflops": 2 * n**3 / seconds / 1e9}


def lstm_flops_per_step(config: NoteLSTMConfig = SEED_MODEL, input_size: int = 3) -> float:
    """Forward + backward multiply-adds x 2 of the LSTM layers, dense layer and heads for one sample-step
    (backward ~ 2 x forward)."""
    h = config.hidden_size
    forward = 0
    for layer in range(config.num_layers):
        inputs = input_size if layer == 0 else h
        forward += 2 * 4 * h * (inputs + h)
    features = config.dense_size or h
    if config.dense_size:
        forward += 2 * h * config.dense_size
    forward += 2 * features * (config.num_pitches + 2)
    return 3.0 * forward


def training_windows(corpus: str | None, quick: bool) -> torch.Tensor:
    """(N, SEQ_LEN + 1, 3) training windows of the real DataModule (the built-in Bach chorales unless
    `corpus` names a MIDI folder)."""
    from musicrnn.data.datamodule import BachChoralesDataModule, NoteSequenceDataModule

    cls = NoteSequenceDataModule if corpus else BachChoralesDataModule
    dm = cls(path=corpus, seq_len=16 if quick else SEQ_LEN, batch_size=BATCH)
    dm.setup()
    dataset = dm.datasets["train"]
    return torch.stack([dataset[i] for i in range(len(dataset))])


def seed_loss(net: NoteLSTM, batch: torch.Tensor) -> torch.Tensor:
    """The paper's loss, as `NoteHeads` computes it: 0.05 CE(pitch) + MSE(step) + MSE(duration), each
    MSE with the negative-prediction penalty."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    output, _ = net(inputs)
    pitch = F.cross_entropy(output.pitch_logits.reshape(-1, 128), targets[..., 0].reshape(-1).long())
    step = positive_pressure_mse(output.step.reshape(-1), targets[..., 1].reshape(-1), 10.0)
    duration = positive_pressure_mse(output.duration.reshape(-1), targets[..., 2].reshape(-1), 10.0)
    return 0.05 * pitch + step + duration


def plain_training(corpus: str | None = None, quick: bool = False) -> dict:
    """A plain PyTorch loop (no DataLoader: batches sliced from one tensor) over the real windows."""
    torch.manual_seed(0)
    windows = training_windows(corpus, quick)
    net = NoteLSTM(SEED_MODEL)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    steps = 4 if quick else 40
    batches = [windows[(i * BATCH) % max(1, len(windows) - BATCH) :][:BATCH] for i in range(steps + 5)]

    def run(batch_list):
        for batch in batch_list:
            optimizer.zero_grad(set_to_none=True)
            loss = seed_loss(net, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()

    run(batches[:5])  # warm-up
    start = time.perf_counter()
    run(batches[5:])
    seconds = time.perf_counter() - start
    time_steps = sum(b.shape[0] * (b.shape[1] - 1) for b in batches[5:])
    return {"plain_steps_per_s": time_steps / seconds, "plain_seconds": seconds}


def device_training(device: str = "cpu", corpus: str | None = None, quick: bool = False) -> dict:
    """On `device` (cpu, cuda): training steps/s of the seed model in fp32 and in bf16 autocast (what
    `trainer.precision=bf16-mixed` does), and generation notes/s of the default note_lstm (the torch loop:
    the compiled one is CPU-only) at batch 1 and 64."""
    from musicrnn.generation.sampling import generate_steps

    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: torch sees no CUDA device here")
    windows = training_windows(corpus, quick).to(target)
    steps = 3 if quick else 30
    results = {
        "device": str(target),
        "device_name": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
    }
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        net = NoteLSTM(SEED_MODEL).to(target)
        optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
        batches = [windows[(i * BATCH) % max(1, len(windows) - BATCH) :][:BATCH] for i in range(steps + 3)]

        def run(batch_list):
            for batch in batch_list:
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(target.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = seed_loss(net, batch)
                loss.backward()
                optimizer.step()
            if target.type == "cuda":
                torch.cuda.synchronize(target)

        run(batches[:3])
        start = time.perf_counter()
        run(batches[3:])
        results[f"training_{precision}_steps_per_s"] = steps / (time.perf_counter() - start)
    module = default_note_model().to(target)
    primer = default_model_primer()
    notes = 16 if quick else 128
    for batch in (1, 64):
        seconds = median_seconds(
            lambda: generate_steps(module.net, module.head, primer, notes, num_samples=batch, seed=0, compiled=False),
            1 if quick else 3,
        )
        results[f"generation_b{batch}_notes_per_s"] = batch * notes / seconds
    return results


def pianoroll_flops_per_frame(hidden: int = 512, dense: int = 512, keys: int = 88, nade_hidden: int = 0) -> float:
    """Forward + backward multiply-adds x 2 per target frame of the JSB recipe's network (one LSTM layer, the
    dense layer, the output; with a NADE its hidden-bias layer and the NADE's two (keys x H) products)."""
    forward = 2 * 4 * hidden * (keys + hidden) + 2 * hidden * dense + 2 * dense * keys
    if nade_hidden:
        forward += 2 * dense * nade_hidden + 2 * 2 * keys * nade_hidden
    return 3.0 * forward


def pianoroll_recipe(jsb: str | None = None, output: str = "bernoulli", quick: bool = False, midi: str | None = None):
    """The JSB recipe's network (LSTM 512, dense 512, dropout and recurrent-weight dropout 0.6), seeded, the
    training batches it is timed on (whole pieces in batches of 8: the real JSB training split, or with `midi`
    (POP909) that folder's piano rolls, `data=pianoroll_midi`, ~1,000-2,000 frames each), and `train`, which
    runs the module's own step, gradient clipping at 1 and Adam over a list of batches and returns their target
    frames. Returns (model, batches, train, size): what `pianoroll_training` times and `profiles pianoroll`
    profiles."""
    from musicrnn.data import PianoRollMidiDataModule, PianoRollPickleDataModule
    from musicrnn.training.models import pianoroll_lstm

    torch.manual_seed(0)
    size = dict(hidden_size=64, dense_size=64, nade_hidden=16) if quick else dict(hidden_size=512, dense_size=512)
    model = pianoroll_lstm(num_layers=1, dropout=0.6, weight_dropout=0.6, output=output, **size)
    model.log = model.log_dict = lambda *args, **kwargs: None  # outside a Trainer: nothing to log to
    if midi:
        datamodule = PianoRollMidiDataModule(midi, seq_len=None, batch_size=8)
    else:
        datamodule = PianoRollPickleDataModule(jsb, batch_size=8)
    datamodule.setup()
    batches = list(datamodule.train_dataloader())[: 3 if quick else (6 if midi else 29)]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def train(batch_list) -> int:
        frames = 0
        for batch in batch_list:
            optimizer.zero_grad(set_to_none=True)
            result = model._step(batch, "train")
            result["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            frames += int((batch[1] - 1).sum())
        return frames

    return model, batches, train, size


def pianoroll_training(
    jsb: str | None = None, output: str = "bernoulli", quick: bool = False, midi: str | None = None
) -> dict:
    """`pianoroll_recipe`'s network trained on its batches after 2 warm-up steps: target frames per second."""
    _, batches, train, size = pianoroll_recipe(jsb, output, quick, midi)
    train(batches[:2])  # warm-up
    start = time.perf_counter()
    frames = train(batches)
    seconds = time.perf_counter() - start
    nade_hidden = size.get("nade_hidden", 150) if output == "nade" else 0
    flops = pianoroll_flops_per_frame(size["hidden_size"], size["dense_size"], 88, nade_hidden)
    return {"frames_per_s": frames / seconds, "flops_per_frame": flops, "seconds": seconds}


def lightning_training(corpus: str | None = None, quick: bool = False) -> dict:
    """The same model and data through musicrnn's own DataModule, LightningModule and Trainer, with the
    default callbacks and the TensorBoard logger, as `musicrnn-train model=seed_paper` runs it."""
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from musicrnn.cli.conf_dir import CONFIG_DIR
    from musicrnn.cli.train import instantiate_group

    warmup, steps = (2, 4) if quick else (5, 40)

    class StepClock(pl.Callback):
        """Wall time of the training steps after the warm-up: each step's own time (forward, backward,
        optimiser, callbacks, logging) plus the wait for the next batch inside an epoch. Epoch ends
        (validation, checkpoints) are timed apart: the plain loop has none."""

        def __init__(self):
            self.steps = 0
            self.step_seconds = 0.0
            self.data_wait = 0.0
            self.batch_start = self.batch_end = None

        def on_train_epoch_start(self, trainer, module):
            self.batch_end = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.batch_start = time.perf_counter()
            if trainer.global_step > warmup and self.batch_end is not None:
                self.data_wait += self.batch_start - self.batch_end  # fetching this batch, between the hooks

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.batch_end = time.perf_counter()
            if trainer.global_step > warmup:
                self.steps += 1
                self.step_seconds += self.batch_end - self.batch_start

    overrides = [
        "model=seed_paper",
        "trainer.max_epochs=1000",
        f"+trainer.max_steps={warmup + steps}",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        f"data.batch_size={BATCH}",
        # max_steps can end training mid-epoch, before any validation: no val/loss to stop on yet.
        "+callbacks.early_stopping.strict=false",
    ]
    overrides += ["data=midi_dir", f"data.path={corpus}"] if corpus else []
    overrides += ["data.seq_len=16"] if quick else []
    with tempfile.TemporaryDirectory() as out, initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={out}"])
        torch.manual_seed(0)
        datamodule = instantiate(cfg.data)
        model = instantiate(cfg.model)
        clock = StepClock()
        callbacks = [*instantiate_group(cfg.callbacks), clock]
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=instantiate_group(cfg.logger))
        trainer.fit(model, datamodule=datamodule)
    seconds = clock.step_seconds + clock.data_wait
    seq_len = cfg.data.seq_len
    return {
        "lightning_steps_per_s": clock.steps * BATCH * seq_len / seconds,
        "lightning_seconds": seconds,
        "data_wait_fraction": clock.data_wait / seconds,
        "measured_steps": clock.steps,
    }


def generation(quick: bool = False) -> dict:
    """Notes per second of the seed model with temperature sampling, batch 1 and 16: musicrnn's generator
    (state carried; the compiled loop, and the torch loop it replaces) vs the TensorFlow tutorial's method
    (re-run the 25-note window for every note)."""
    from musicrnn.generation.sampling import generate_events

    torch.manual_seed(0)
    net = NoteLSTM(SEED_MODEL).eval()
    primer = np.abs(np.random.default_rng(0).normal(size=(25, 3))).astype(np.float32)
    primer[:, 0] = np.random.default_rng(1).integers(40, 80, 25)
    notes = 32 if quick else 256
    repeats = 2 if quick else 5
    results = {}
    for batch in (1, 16):
        seconds = median_seconds(lambda: generate_events(net, primer, notes, num_samples=batch, seed=0), repeats)
        results[f"carried_notes_per_s_b{batch}"] = batch * notes / seconds
        seconds = median_seconds(
            lambda: generate_events(net, primer, notes, num_samples=batch, seed=0, compiled=False), repeats
        )
        results[f"torch_loop_notes_per_s_b{batch}"] = batch * notes / seconds
        seconds = median_seconds(lambda: window_rerun(net, primer, notes, batch), repeats)
        results[f"window_notes_per_s_b{batch}"] = batch * notes / seconds
    return results


@torch.no_grad()
def window_rerun(
    net: NoteLSTM, primer: np.ndarray, num_notes: int, batch: int, temperature: float = 1.0
) -> torch.Tensor:
    """The tutorial's generator: every note re-runs the last 25 notes from a zero state."""
    window = torch.from_numpy(primer).unsqueeze(0).expand(batch, -1, -1).contiguous()
    out = []
    for _ in range(num_notes):
        output, _ = net(window)
        pitch = torch.multinomial(torch.softmax(output.pitch_logits[:, -1] / temperature, -1), 1).float()
        note = torch.cat([pitch, output.step[:, -1:].clamp(min=0), output.duration[:, -1:].clamp(min=0)], -1)
        out.append(note)
        window = torch.cat([window[:, 1:], note.unsqueeze(1)], 1)
    return torch.stack(out, 1)


def ensemble_generation(quick: bool = False) -> dict:
    """K = 5 members (stacked into one network) vs one model, same settings, batch 1."""
    from musicrnn.generation.sampling import generate_events
    from musicrnn.training.ensemble import ensemble_from_modules
    from musicrnn.training.models import note_lstm

    modules = []
    for seed in range(5):
        torch.manual_seed(seed)
        modules.append(note_lstm(hidden_size=128, num_layers=3, dropout=0.3, dense_size=256).eval())
    ensemble = ensemble_from_modules(modules)
    primer = np.zeros((25, 3), dtype=np.float32)
    primer[:, 0] = 60
    notes = 32 if quick else 256
    results = {}
    for compiled in (True, False):
        single = median_seconds(
            lambda: generate_events(modules[0].net, primer, notes, seed=0, compiled=compiled), 2 if quick else 5
        )
        five = median_seconds(
            lambda: generate_events(ensemble.net, primer, notes, seed=0, compiled=compiled), 2 if quick else 5
        )
        loop = "compiled" if compiled else "torch_loop"
        results.update(
            {
                f"{loop}_single_seconds": single,
                f"{loop}_ensemble5_seconds": five,
                f"{loop}_ensemble5_ratio": five / single,
                f"{loop}_ensemble5_notes_per_s": notes / five,
            }
        )
    return results


def default_note_model():
    """The shipped default note model (conf/model/note_lstm.yaml's settings), untrained, in eval mode."""
    from omegaconf import OmegaConf

    from musicrnn.cli.conf_dir import CONFIG_DIR
    from musicrnn.training.models import note_lstm

    settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / "note_lstm.yaml").model)
    settings.pop("_target_")
    settings["time_unit"] = "seconds"
    torch.manual_seed(0)
    return note_lstm(**settings).eval()


def default_model_primer() -> np.ndarray:
    """25 notes for the default model's rows: pitches climbing 60..71 and round again, 0.25 apart and 0.25 long, velocity 80."""
    primer = np.zeros((25, 4), dtype=np.float32)
    primer[:, 0], primer[:, 1], primer[:, 2], primer[:, 3] = np.arange(25) % 12 + 60, 0.25, 0.25, 80
    return primer


def controlled_generation(quick: bool = False) -> dict:
    """Notes per second of the default note_lstm (embeddings, categorical timing, velocity): plain sampling
    at batch 1 and 16 (the compiled loop) and the torch loop it replaces, at batch 1 with a repetition
    penalty and with nucleus sampling (the compiled loop), and the best of a beam search of 4 x 2 (notes of
    the result per second; the torch loop)."""
    from musicrnn.generation.sampling import BeamSearch, generate_steps
    from musicrnn.nets.heads import SamplingSettings

    module = default_note_model()
    primer = default_model_primer()
    notes = 32 if quick else 256
    repeats = 2 if quick else 5
    runs = {
        "plain": (SamplingSettings(), BeamSearch(), 1, True),
        "plain_b16": (SamplingSettings(), BeamSearch(), 16, True),
        "torch_loop": (SamplingSettings(), BeamSearch(), 1, False),
        "torch_loop_b16": (SamplingSettings(), BeamSearch(), 16, False),
        "penalty": (SamplingSettings(repetition_penalty=1.2), BeamSearch(), 1, True),
        "top_p": (SamplingSettings(top_p=0.9), BeamSearch(), 1, True),
        "beam_4x2": (SamplingSettings(), BeamSearch(4, 2, 1), 1, True),
    }
    results = {}
    for name, (settings, beam, batch, compiled) in runs.items():
        seconds = median_seconds(
            lambda: generate_steps(
                module.net, module.head, primer, notes, num_samples=batch, settings=settings, seed=0, beam=beam,
                compiled=compiled,
            ),
            repeats,
        )  # fmt: skip
        results[f"{name}_notes_per_s"] = batch * notes / seconds
    results["beam_4x2_cost"] = results["torch_loop_notes_per_s"] / results["beam_4x2_notes_per_s"]
    return results


def cli_startup(quick: bool = False) -> dict:
    """Seconds until `musicrnn-train model.hiden_size=3` (a typo), `musicrnn-generate` without a checkpoint
    and `musicrnn-train --help` return, beside `python -c "import pytorch_lightning"` (median of 3 each)."""
    import shutil
    import subprocess
    import sys

    def seconds(command: list[str]) -> float:
        def run():
            subprocess.run(command, capture_output=True, timeout=120)

        return median_seconds(run, 1 if quick else 3, warmup=1)

    train = shutil.which("musicrnn-train") or "musicrnn-train"
    generate = shutil.which("musicrnn-generate") or "musicrnn-generate"
    results = {
        "typo_seconds": seconds([train, "model.hiden_size=3"]),
        "no_checkpoint_seconds": seconds([generate]),
        "help_seconds": seconds([train, "--help"]),
        "import_lightning_seconds": seconds([sys.executable, "-c", "import pytorch_lightning"]),
    }
    results["typo_over_import"] = results["typo_seconds"] / results["import_lightning_seconds"]
    return results


def data_preparation(corpus: str, workers: int, parser: str = "symusic") -> dict:
    """Parse a MIDI folder into a fresh cache with `workers` processes and `parser`, then reload it from the
    cache."""
    from musicrnn.data.corpus import prepare_corpus

    def prepare():
        return prepare_corpus(corpus, cache_dir=cache, num_workers=workers, progress=False, parser=parser)

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        corpus_data = prepare()
        parse = time.perf_counter() - start
        files = len(corpus_data) + len(corpus_data.skipped)
        reload = median_seconds(prepare, 3, warmup=0)
    return {"files": files, "files_per_s": files / parse, "parse_seconds": parse, "reload_seconds": reload}


MEASUREMENTS: dict[str, Callable[..., dict]] = {
    "matmul_peak": matmul_peak,
    "plain_training": plain_training,
    "lightning_training": lightning_training,
    "generation": generation,
    "ensemble_generation": ensemble_generation,
    "controlled_generation": controlled_generation,
    "cli_startup": cli_startup,
    "device_training": device_training,
    "pianoroll_training": pianoroll_training,
}


def measure(name: str, kwargs: dict) -> dict:
    """One measurement by name, with the peak RSS of the process that ran it."""
    result = (data_preparation if name == "data_preparation" else MEASUREMENTS[name])(**kwargs)
    return {**result, "peak_rss_mib": peak_rss_mib()}
