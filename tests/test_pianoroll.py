"""Piano rolls: the representation's round trips on real MIDI, the benchmark pickle, frame NLL and accuracy,
and the piano-roll model through the real CLI (JSB Chorales) and generation."""

from __future__ import annotations

import math
import pickle
import tracemalloc
from pathlib import Path

import miditoolkit
import numpy as np
import pytest
import torch

from musicrnn.data import PianoRollDataset, PianoRollMidiDataModule, PianoRollPickleDataModule, load_pianoroll_pickle
from musicrnn.data.pianoroll_data import pad_rolls
from musicrnn.errors import MusicrnnError
from musicrnn.generation.sampling import generate_frames
from musicrnn.midi.io import read_midi, write_midi
from musicrnn.nets.heads import frame_nll, target_mask
from musicrnn.representations.pianoroll import (
    notes_to_pianoroll,
    pianoroll_frames,
    pianoroll_to_notes,
    pianoroll_to_pitch_lists,
)
from musicrnn.training.callbacks import Metrics
from musicrnn.training.models import pianoroll_lstm
from musicrnn.training.module import SequenceModel
from tests.helpers import metrics_after_testing, quiet_trainer, require_shared, write_corpus, write_piece

JSB = ("jsb_chorales", "JSB Chorales.pickle")


def write_quantised(path: Path, ticks_per_beat: int = 384) -> Path:
    """Two voices on a sixteenth-note grid, a tempo change half-way, no two abutting notes of one pitch."""
    midi = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tempo_changes = [miditoolkit.TempoChange(96.0, 0), miditoolkit.TempoChange(150.0, 8 * ticks_per_beat)]
    sixteenth = ticks_per_beat // 4
    upper, lower = miditoolkit.Instrument(0, name="upper"), miditoolkit.Instrument(32, name="lower")
    rng = np.random.default_rng(3)
    tick = 0
    pitch = 72
    while tick < 16 * ticks_per_beat:
        length = int(rng.choice([1, 2, 3, 4])) * sixteenth
        pitch = int(np.clip(pitch + rng.choice([-3, -2, -1, 1, 2, 4]), 60, 84))  # never the same pitch twice
        upper.notes.append(miditoolkit.Note(80, pitch, tick, tick + length))
        tick += length
    for beat in range(0, 16, 2):  # half notes with a rest between chords, three keys at once
        for p in (48, 52, 55) if beat % 4 == 0 else (50, 53, 57):
            lower.notes.append(miditoolkit.Note(70, p, beat * ticks_per_beat, (beat + 1) * ticks_per_beat + sixteenth))
    midi.instruments = [upper, lower]
    midi.dump(str(path))
    return path


# -- representation ---------------------------------------------------------------------------------
def test_quantised_file_round_trips_exactly_through_the_roll(tmp_path):
    original = read_midi(write_quantised(tmp_path / "q.mid"))
    roll = notes_to_pianoroll(original, steps_per_quarter=4)
    assert roll.shape[1] == 88 and 64 <= len(roll) <= 67 and roll.sum(axis=1).max() == 4
    back = read_midi(
        write_midi(pianoroll_to_notes(roll, steps_per_quarter=4), tmp_path / "back.mid", time_unit="beats")
    )
    key = lambda n: sorted(zip(n["pitch"].tolist(), n["start_beat"].tolist(), n["end_beat"].tolist()))  # noqa: E731
    assert key(back) == key(original)


def test_grid_follows_beats_not_seconds_across_a_tempo_change(tmp_path):
    notes = read_midi(write_quantised(tmp_path / "q.mid", ticks_per_beat=96))
    roll = notes_to_pianoroll(notes, steps_per_quarter=1)
    # The lower voice's chords start on beats 0, 2, 4, ... both before and after the tempo change at beat 8.
    for beat in range(0, 16, 2):
        expected = {48, 52, 55} if beat % 4 == 0 else {50, 53, 57}
        assert expected <= {k + 21 for k in np.flatnonzero(roll[beat])}


def test_abutting_notes_of_one_pitch_merge_into_one_held_note(tmp_path):
    midi = miditoolkit.MidiFile(ticks_per_beat=4)
    inst = miditoolkit.Instrument(0)
    inst.notes = [miditoolkit.Note(90, 60, 0, 4), miditoolkit.Note(90, 60, 4, 8), miditoolkit.Note(90, 64, 12, 13)]
    midi.instruments = [inst]
    midi.dump(str(tmp_path / "m.mid"))
    notes = pianoroll_to_notes(
        notes_to_pianoroll(read_midi(tmp_path / "m.mid"), steps_per_quarter=4), steps_per_quarter=4
    )
    assert notes["pitch"].tolist() == [60, 64]
    assert notes["start_beat"].tolist() == [0.0, 3.0] and notes["end_beat"].tolist() == [2.0, 3.25]


def test_any_roll_is_a_fixed_point_of_roll_to_midi_to_roll(tmp_path):
    rng = np.random.default_rng(0)
    roll = rng.random((50, 88)) < 0.08
    notes = read_midi(write_midi(pianoroll_to_notes(roll, steps_per_quarter=2), tmp_path / "r.mid", time_unit="beats"))
    assert np.array_equal(notes_to_pianoroll(notes, steps_per_quarter=2, num_frames=50), roll)


def test_real_pop909_file_roll_round_trips(tmp_path):
    path = require_shared("pop909", "POP909", "001", "001.mid")
    roll = notes_to_pianoroll(read_midi(path), steps_per_quarter=4)
    assert roll.shape[0] > 500 and roll.any(axis=1).mean() > 0.9
    written = write_midi(pianoroll_to_notes(roll, steps_per_quarter=4), tmp_path / "001.mid", time_unit="beats")
    assert np.array_equal(notes_to_pianoroll(read_midi(written), steps_per_quarter=4), roll)


def test_sustain_pedal_holds_released_notes_until_the_pedal_lifts(tmp_path):
    midi = miditoolkit.MidiFile(ticks_per_beat=4)
    inst = miditoolkit.Instrument(0)
    inst.notes = [
        miditoolkit.Note(90, 60, 0, 2),  # released at 2 while the pedal is down (1..8): held to 8
        miditoolkit.Note(90, 64, 0, 2),  # struck again at 4: held only until then
        miditoolkit.Note(90, 64, 4, 5),  # released at 5 under the pedal: held to 8
        miditoolkit.Note(90, 67, 9, 10),  # after the pedal: unchanged
    ]
    inst.control_changes = [miditoolkit.ControlChange(64, 127, 1), miditoolkit.ControlChange(64, 0, 8)]
    midi.instruments = [inst]
    midi.dump(str(tmp_path / "pedal.mid"))
    plain = read_midi(tmp_path / "pedal.mid")
    held = read_midi(tmp_path / "pedal.mid", sustain=True)
    assert plain["end_tick"].tolist() == [2, 2, 5, 10]
    assert held["end_tick"].tolist() == [8, 4, 8, 10]


def test_a_roll_over_max_frames_is_refused_before_it_is_allocated():
    notes = pianoroll_to_notes(np.eye(4, 88, dtype=bool), steps_per_quarter=4)
    notes["end_beat"][-1] = 2**30 / 480  # a note held to tick 2^30 at 480 ticks per beat: 8.9 million frames
    frames = round(2**30 / 480 * 4)  # the last note's end, on the grid of 4 frames a beat
    assert pianoroll_frames(notes, 4) == frames
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"a roll of {frames} frames is over the 100000-frame limit"):
            notes_to_pianoroll(notes, steps_per_quarter=4, max_frames=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # the roll would have been 3.9 GB at its peak
    notes["end_beat"][-1] = np.inf
    with pytest.raises(ValueError, match="finite"):
        notes_to_pianoroll(notes)


def test_roll_length_is_known_before_the_roll_is_built(tmp_path):
    notes = read_midi(write_quantised(tmp_path / "q.mid"))
    for steps in (1, 3, 4, 12):
        assert pianoroll_frames(notes, steps) == len(notes_to_pianoroll(notes, steps_per_quarter=steps))


def test_midi_datamodule_skips_pieces_whose_roll_is_over_max_frames(tmp_path, caplog):
    corpus = write_corpus(tmp_path / "corpus", num_pieces=6, num_bars=2)
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    midi.instruments = [miditoolkit.Instrument(0)]
    midi.instruments[0].notes = [miditoolkit.Note(80, 60, 0, 480), miditoolkit.Note(80, 62, 3000 * 480, 3001 * 480)]
    midi.dump(str(corpus / "long.mid"))
    piece_frames, long_frames = 2 * 4 * 4, 3001 * 4  # 2 bars of 4 beats; a note ending on beat 3,001; 4 a beat
    datamodule = PianoRollMidiDataModule(str(corpus), max_frames=10_000, val_fraction=0.0, test_fraction=0.0)
    rolls = datamodule.load_rolls()
    assert len(rolls["train"]) == 6 and all(len(roll) == piece_frames for roll in rolls["train"])
    assert datamodule.skipped_rolls == [
        (
            "long.mid",
            f"a roll of {long_frames} frames is over the 10000-frame limit (data.max_frames; steps_per_quarter=4)",
        )
    ]
    assert any("skipped long.mid for piano rolls" in r.getMessage() for r in caplog.records)
    unlimited = PianoRollMidiDataModule(str(corpus), max_frames=None, val_fraction=0.0, test_fraction=0.0)
    assert sorted(map(len, unlimited.load_rolls()["train"])) == [piece_frames] * 6 + [long_frames]


# -- the benchmark pickle ---------------------------------------------------------------------------
def test_jsb_chorales_pickle_loads_with_the_standard_split():
    rolls = load_pianoroll_pickle(require_shared(*JSB))
    assert {s: len(r) for s, r in rolls.items()} == {"train": 229, "val": 76, "test": 77}
    active = np.flatnonzero(np.concatenate([np.concatenate(r) for r in rolls.values()]).any(axis=0)) + 21
    assert (active.min(), active.max()) == (43, 96)
    assert [sum(map(len, rolls[s])) for s in ("train", "val", "test")] == [13_807, 4_602, 4_725]
    with open(require_shared(*JSB), "rb") as f:
        raw = pickle.load(f)
    assert pianoroll_to_pitch_lists(rolls["test"][5]) == [sorted(frame) for frame in raw["test"][5]]


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"not a pickle at all", "cannot be read"),
        (pickle.dumps([[[60]]]), "expected a dict with keys"),
        (pickle.dumps({"train": [[[60]]], "valid": [], "test": [[[12]]]}), "split 'test': frame 0: pitch 12 outside"),
    ],
    ids=["garbage", "not-a-dict", "pitch-out-of-range"],
)
def test_bad_pickles_fail_with_one_line_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.pickle"
    path.write_bytes(content)
    with pytest.raises(MusicrnnError, match=reason) as error:
        load_pianoroll_pickle(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(MusicrnnError, match="file not found"):
        load_pianoroll_pickle(tmp_path / "missing.pickle")


def test_windows_make_every_frame_but_the_first_a_target_once():
    rolls = [np.ones((n, 4), dtype=bool) for n in (1, 2, 10, 23)]
    for seq_len in (None, 3, 7, 100):
        dataset = PianoRollDataset(rolls, seq_len)
        targets = sum(len(roll) - 1 for roll in rolls)  # 0 + 1 + 9 + 22
        assert dataset.frames() == targets
        rolls_batch, lengths = pad_rolls([dataset[i] for i in range(len(dataset))])
        assert target_mask(lengths, rolls_batch.shape[1] - 1).sum() == targets


def test_transposition_keeps_every_note_on_the_roll():
    roll = np.zeros((6, 10), dtype=bool)
    roll[:, [1, 7]] = True
    dataset = PianoRollDataset([roll], None, transpose=5)
    torch.manual_seed(0)
    shifts = set()
    for _ in range(200):
        item = dataset[0]
        keys = torch.nonzero(item[0]).flatten().tolist()
        assert len(keys) == 2 and keys[1] - keys[0] == 6 and 0 <= keys[0] and keys[1] <= 9
        shifts.add(keys[0] - 1)
    assert shifts == {-1, 0, 1, 2}


# -- metrics ----------------------------------------------------------------------------------------
def test_frame_nll_of_a_coin_flip_model_is_88_ln_2_and_a_hand_computed_case():
    target = (torch.rand(7, 88) < 0.05).float()
    assert torch.allclose(frame_nll(torch.zeros(7, 88), target), torch.full((7,), 88 * math.log(2)))
    # Keys with p = 0.5, 0.75, 0.2 against targets 1, 0, 1: -ln 0.5 - ln 0.25 - ln 0.2.
    logits = torch.tensor([[0.0, math.log(3.0), math.log(0.25)]])
    expected = -math.log(0.5) - math.log(0.25) - math.log(0.2)
    assert frame_nll(logits, torch.tensor([[1.0, 0.0, 1.0]])).item() == pytest.approx(expected, abs=1e-6)


class _ConstantNet(torch.nn.Module):
    """The same logits for every frame: scored through the real module, masking and metric code."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, frames, state=None):
        return self.logits.expand(*frames.shape[:2], -1), state


def _constant_module(logits: torch.Tensor, **kwargs) -> SequenceModel:
    module = pianoroll_lstm(num_keys=len(logits), **kwargs)
    module.net = _ConstantNet(logits)
    return module


def _test_metrics(module, datamodule) -> dict[str, float]:
    return metrics_after_testing(module, datamodule, Metrics())


def test_a_zero_weight_network_and_a_half_on_baseline_score_88_ln_2_per_frame(tmp_path):
    """Scored by the library (the model's test step, the Metrics callback and its independent-keys baseline): a
    real piano-roll network with every weight zero says p = 0.5 for every key, and so does the baseline fitted
    on training rolls whose every key is on in exactly half of the target frames: 88 ln 2 nats a frame,
    whatever the test frames hold."""
    every_key = list(range(21, 21 + 88))
    train = [[every_key if t % 2 else [] for t in range(9)] for _ in range(3)]  # target frames 1..8: 4 on, 4 off
    rng = np.random.default_rng(0)
    test = [[sorted(rng.choice(every_key, 4, replace=False).tolist()) for _ in range(n)] for n in (5, 12)]
    path = tmp_path / "halves.pickle"
    path.write_bytes(pickle.dumps({"train": train, "valid": test, "test": test}))
    datamodule = PianoRollPickleDataModule(str(path), batch_size=2)
    module = pianoroll_lstm(hidden_size=8, num_layers=1, init_output_bias=False)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
    metrics = _test_metrics(module, datamodule)
    assert np.array_equal(datamodule.key_frequencies(), np.full(88, 0.5))
    assert metrics["test/frame_nll"] == pytest.approx(88 * math.log(2), rel=1e-6)
    assert metrics["test/unigram_frame_nll"] == pytest.approx(88 * math.log(2), rel=1e-6)
    assert metrics["test/frame_accuracy"] == metrics["test/unigram_frame_accuracy"] == 0.0  # 0.5 is not "on"


def test_a_model_saying_one_half_scores_61_nats_per_frame_on_jsb_test():
    datamodule = PianoRollPickleDataModule(str(require_shared(*JSB)), batch_size=7)
    metrics = _test_metrics(_constant_module(torch.zeros(88)), datamodule)
    assert metrics["test/frame_nll"] == pytest.approx(88 * math.log(2), abs=1e-4)
    assert metrics["test/frame_accuracy"] == 0.0  # p = 0.5 is not above the threshold: no key predicted on
    # The independent-keys baseline beats the coin flip by far and is frame-weighted like the model.
    assert 10 < metrics["test/unigram_frame_nll"] < 30


def test_frame_nll_weighs_every_frame_once_and_accuracy_sums_counts(tmp_path):
    # Two pieces of 3 and 11 frames: 2 + 10 target frames. Key 0 is on in every frame, key 1 never.
    rolls = [np.zeros((n, 2), dtype=bool) for n in (3, 11)]
    for roll in rolls:
        roll[:, 0] = True
    rolls[1][4:, 1] = True  # the long piece turns key 1 on from frame 4: 7 of its 10 targets
    path = tmp_path / "tiny.pickle"
    lists = [pianoroll_to_pitch_lists(r, lowest_pitch=60) for r in rolls]
    path.write_bytes(pickle.dumps({"train": lists, "valid": lists, "test": lists}))
    datamodule = PianoRollPickleDataModule(str(path), lowest_pitch=60, num_keys=2, batch_size=2)
    p = torch.tensor([0.9, 0.6])
    metrics = _test_metrics(_constant_module(torch.log(p / (1 - p)), lowest_pitch=60), datamodule)
    # 12 frames: key 0 always right (-ln 0.9); key 1 on in 7 frames (-ln 0.6), off in 5 (-ln 0.4).
    expected = (12 * -math.log(0.9) + 7 * -math.log(0.6) + 5 * -math.log(0.4)) / 12
    assert metrics["test/frame_nll"] == pytest.approx(expected, abs=1e-5)
    # Both keys predicted on everywhere: TP = 12 + 7, FP = 5, FN = 0.
    assert metrics["test/frame_accuracy"] == pytest.approx(19 / 24, abs=1e-6)


# -- model, data from MIDI, generation ---------------------------------------------------------------
@pytest.mark.slow  # trains
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_learns_a_tiny_midi_corpus(tmp_path, cell):
    corpus = write_corpus(tmp_path / "corpus", num_pieces=12, num_bars=8)
    datamodule = PianoRollMidiDataModule(str(corpus), seq_len=16, batch_size=8, steps_per_quarter=2)
    module = pianoroll_lstm(
        hidden_size=64, num_layers=1, dropout=0.0, cell=cell, learning_rate=0.02, steps_per_quarter=2
    )
    trainer = quiet_trainer(max_epochs=40, enable_checkpointing=False, callbacks=[Metrics()])
    trainer.fit(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert metrics["val/frame_nll"] < metrics["val/unigram_frame_nll"]
    assert metrics["val/frame_accuracy"] > metrics["val/unigram_frame_accuracy"]
    frames = generate_frames(module.net, datamodule.primers()[0], 12, num_samples=3, seed=1)
    assert frames.shape == (3, 12, 88) and frames.dtype == bool
    assert np.array_equal(frames, generate_frames(module.net, datamodule.primers()[0], 12, num_samples=3, seed=1))


def test_midi_folder_datamodule_splits_and_windows(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", num_pieces=20, num_bars=4)
    datamodule = PianoRollMidiDataModule(str(corpus), seq_len=10, batch_size=4, steps_per_quarter=4)
    datamodule.setup()
    assert sum(len(datamodule.rolls[s]) for s in ("train", "val", "test")) == 20
    assert all(len(r) == 4 * 4 * 4 for s in datamodule.rolls for r in datamodule.rolls[s])  # 4 bars of 4 beats
    rolls, lengths = next(iter(datamodule.train_dataloader()))
    assert rolls.shape[1:] == (11, 88) and lengths.max() == 11
    write_piece(corpus / "new.mid", seed=99, num_bars=4)  # a changed folder rebuilds the cache
    assert sum(map(len, PianoRollMidiDataModule(str(corpus)).load_rolls().values())) == 21


@pytest.mark.slow  # trains
def test_training_starts_from_the_keys_log_odds_and_a_resumed_run_keeps_its_bias(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", num_pieces=12, num_bars=4)
    datamodule = PianoRollMidiDataModule(str(corpus), seq_len=16, batch_size=8, steps_per_quarter=2)
    module = pianoroll_lstm(hidden_size=8, num_layers=1, learning_rate=1e-9, steps_per_quarter=2)
    trainer = quiet_trainer(max_epochs=1, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule)
    p = np.clip(datamodule.key_frequencies(), 1e-4, 1 - 1e-4)
    assert np.allclose(module.net.head.bias.detach().numpy(), np.log(p / (1 - p)), atol=1e-4)  # lr ~ 0: unchanged
    with torch.no_grad():
        module.net.head.bias.fill_(3.0)
    trainer.save_checkpoint(tmp_path / "edited.ckpt")
    resumed = pianoroll_lstm(hidden_size=8, num_layers=1, learning_rate=1e-9, steps_per_quarter=2)
    quiet_trainer(max_epochs=2, enable_checkpointing=False).fit(
        resumed, datamodule=datamodule, ckpt_path=tmp_path / "edited.ckpt"
    )
    assert torch.allclose(resumed.net.head.bias, torch.full((88,), 3.0), atol=1e-4)


@pytest.mark.slow  # trains
def test_ema_checkpoint_is_tested_with_its_averaged_weights(tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    from musicrnn.training.callbacks import EMAWeights
    from musicrnn.training.checkpoint import load_module

    corpus = write_corpus(tmp_path / "corpus", num_pieces=12, num_bars=4)
    datamodule = PianoRollMidiDataModule(str(corpus), seq_len=16, batch_size=4, steps_per_quarter=2)
    module = pianoroll_lstm(hidden_size=16, num_layers=1, learning_rate=0.02, steps_per_quarter=2)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="best", monitor="val/loss")
    trainer = quiet_trainer(max_epochs=3, callbacks=[checkpoint, EMAWeights(decay=0.9), Metrics()])
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint.best_model_path, verbose=False)
    tested = float(trainer.callback_metrics["test/frame_nll"])

    saved = torch.load(checkpoint.best_model_path, weights_only=True)
    assert not torch.equal(saved["state_dict"]["net.head.bias"], saved["current_model_state"]["net.head.bias"])
    averaged = load_module(checkpoint.best_model_path)  # the averaged weights, as generation sees them
    again = _test_metrics(averaged, datamodule)["test/frame_nll"]
    assert tested == pytest.approx(again, abs=1e-4)
