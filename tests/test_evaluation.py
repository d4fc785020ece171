"""The evaluation's measures on hand-built note lists with known answers, and on real pieces."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from musicrnn.evaluation import figures
from musicrnn.evaluation.features import TIME_BIN_CENTRES, interval_histogram, novelty_features, time_histogram
from musicrnn.evaluation.musical import musical_metrics
from musicrnn.evaluation.novelty import (
    NgramIndex,
    longest_true_run,
    nearest_similarity,
    ngram_hashes,
    novelty_summary,
)
from musicrnn.evaluation.yang_lerch import FEATURES, overlap_and_kl, yang_lerch
from musicrnn.midi.audio import audio_unavailable_reason, read_wav_mono, render_wav
from musicrnn.midi.io import find_midi_files, notes_from_columns, read_midi
from tests.helpers import is_png, needs_fluidsynth, require_shared, write_corpus, write_piece


def beats(pitches, onsets, lengths=1.0) -> np.ndarray:
    onsets = np.asarray(onsets, dtype=float)
    return notes_from_columns(pitches, onsets, onsets + lengths, time_unit="beats")


C_MAJOR_SCALE = beats([60, 62, 64, 65, 67, 69, 71, 72], range(8))


def test_a_c_major_scale_has_the_known_statistics():
    m = musical_metrics(C_MAJOR_SCALE)
    assert m["n_pitch_classes_used"] == 7 and m["n_pitches_used"] == 8 and m["pitch_range"] == 12
    assert m["pitch_in_scale_rate"] == 1.0 and m["scale_consistency"] == 1.0
    assert m["pitch_entropy"] == pytest.approx(3.0)  # 8 equally likely pitches
    # C twice, six others once: -(2/8 log2 2/8 + 6/8 log2 1/8) = 0.5 + 2.25
    assert m["pitch_class_entropy"] == pytest.approx(2.75)
    assert m["polyphony"] == 1.0 and m["polyphony_rate"] == 0.0 and m["empty_beat_rate"] == 0.0
    # In D major, C (twice) and F are outside: 5 of 8.
    assert musical_metrics(C_MAJOR_SCALE, scale_root=2)["pitch_in_scale_rate"] == pytest.approx(5 / 8)


def test_chords_rests_and_grooves_have_the_known_statistics():
    triad = beats([60, 64, 67], [0, 0, 0], 4.0)
    m = musical_metrics(triad)
    assert m["polyphony"] == 3.0 and m["polyphony_rate"] == 1.0 and m["n_pitch_classes_used"] == 3
    # Half-beat notes on beats 0 and 3 of four: beats 1 and 2 are empty.
    assert musical_metrics(beats([60, 62], [0, 3], 0.5))["empty_beat_rate"] == pytest.approx(0.5)
    same_bars = [0, 1, 1.5, 3, 4, 5, 5.5, 7]
    assert musical_metrics(beats([60] * 8, same_bars, 0.5))["groove_consistency"] == pytest.approx(1.0)
    # The bars' onset patterns differ at 4 of 96 grid positions: 1 - 4/96.
    other_bar = [0, 1, 1.5, 3, 4, 4.5, 6, 7]
    assert musical_metrics(beats([60] * 8, other_bar, 0.5))["groove_consistency"] == pytest.approx(1 - 4 / 96)


def test_feature_histograms_count_intervals_steps_and_durations():
    intervals = interval_histogram(C_MAJOR_SCALE)
    assert intervals[12 + 2] == pytest.approx(5 / 7) and intervals[12 + 1] == pytest.approx(2 / 7)
    steps = time_histogram(np.array([0.0, 0.5, 0.5, 1.0]))
    assert steps[list(TIME_BIN_CENTRES).index(0.5)] == pytest.approx(0.5)
    # Pitches 0-127, pitch classes, intervals of -12..12 semitones, then steps and durations in the note-value bins:
    # five histograms of one each.
    features = novelty_features(C_MAJOR_SCALE)
    assert features.shape == (128 + 12 + (2 * 12 + 1) + 2 * len(TIME_BIN_CENTRES),)
    assert features.sum() == pytest.approx(5.0)


def test_a_training_piece_against_its_own_corpus_is_not_novel_and_fully_copied(tmp_path):
    corpus = [read_midi(p) for p in find_midi_files(write_corpus(tmp_path / "c", num_pieces=6))]
    summary = novelty_summary([corpus[2]], corpus)
    assert summary["similarity_mean"] == pytest.approx(1.0) and summary["novelty_mean"] == pytest.approx(0.0, abs=1e-12)
    assert summary["copy_rate_mean"] == 1.0 and summary["longest_copied_run"] == len(corpus[2])


def test_copy_detection_sees_what_histograms_cannot(tmp_path):
    """A piece with its notes' pitches shuffled keeps its pitch histograms (high similarity) but copies no
    8-gram; a training melody pasted into new music is found as a copied run of its length."""
    corpus = [read_midi(write_piece(tmp_path / f"p{i}.mid", seed=i, with_drums=False)) for i in range(4)]
    shuffled = corpus[0].copy()
    shuffled["pitch"] = np.random.default_rng(0).permutation(shuffled["pitch"])
    index = NgramIndex(corpus)
    assert index.copy_stats(shuffled).copy_rate < 0.05
    sim, nearest = nearest_similarity(novelty_features(shuffled)[None], np.stack([novelty_features(p) for p in corpus]))
    assert sim[0] > 0.9 and nearest[0] == 0

    fresh = beats(np.random.default_rng(1).integers(40, 90, 60), np.arange(60) * 0.37, 0.3)
    pasted = corpus[1][(corpus[1]["start_beat"] >= 4) & (corpus[1]["start_beat"] < 12)].copy()
    shift = fresh["start_beat"][-1] + 1 - pasted["start_beat"][0]
    pasted["start_beat"] += shift
    pasted["end_beat"] += shift
    stats = index.copy_stats(np.concatenate([fresh, pasted]))
    assert stats.longest_copied_run == len(pasted)
    assert 0 < stats.copy_rate < 1


def test_the_copy_search_finds_what_a_set_lookup_finds(tmp_path):
    """copy_stats' binary search in the sorted corpus hashes against np.isin, on half-copied real pieces."""
    corpus = [read_midi(write_piece(tmp_path / f"p{i}.mid", seed=i, with_drums=False)) for i in range(6)]
    index = NgramIndex(corpus[:3])
    for piece in corpus[3:] + [np.concatenate([corpus[4][:40], corpus[0][20:80]])]:
        hashes = ngram_hashes(piece, index.n)
        expected = np.isin(hashes, index.hashes)
        stats = index.copy_stats(piece)
        assert stats.copy_rate == float(expected.mean())
        run = longest_true_run(expected)
        assert stats.longest_copied_run == (run + index.n - 1 if run else 0)
    assert NgramIndex([]).copy_stats(corpus[0]).copy_rate == 0.0


def test_longest_true_run():
    assert longest_true_run(np.array([False, True, True, False, True])) == 2
    assert longest_true_run(np.zeros(4, dtype=bool)) == 0


def test_yang_lerch_overlap_is_one_for_the_same_distribution_and_falls_for_another(tmp_path):
    values = np.random.default_rng(0).normal(size=400)
    overlap, kl = overlap_and_kl(values, values)
    assert overlap == pytest.approx(1.0, abs=1e-6) and kl == pytest.approx(0.0, abs=1e-6)
    shifted_overlap, shifted_kl = overlap_and_kl(values, values + 3)
    assert shifted_overlap < 0.25 and shifted_kl > 1.0

    real = [read_midi(write_piece(tmp_path / f"r{i}.mid", seed=i, with_drums=False)) for i in range(12)]
    alike = [read_midi(write_piece(tmp_path / f"a{i}.mid", seed=100 + i, with_drums=False)) for i in range(8)]
    rng = np.random.default_rng(2)
    noise = [
        beats(rng.integers(21, 108, 200), np.cumsum(rng.exponential(0.4, 200)), rng.exponential(0.5, 200) + 0.05)
        for _ in range(8)
    ]
    near, far = yang_lerch(real, alike), yang_lerch(real, noise)
    for feature in ("pitch_range", "pitch_class_histogram", "avg_pitch_interval"):
        assert near[feature]["overlap_area"] > far[feature]["overlap_area"], feature


def test_yang_lerch_features_of_a_scale_and_a_chord():
    values = {name: feature(C_MAJOR_SCALE) for name, feature in FEATURES.items()}
    assert values["pitch_count"][0] == 8 and values["pitch_range"][0] == 12
    assert values["avg_pitch_interval"][0] == pytest.approx(12 / 7) and values["avg_ioi"][0] == pytest.approx(1.0)
    assert (
        values["pitch_class_histogram"][0] == pytest.approx(2 / 8) and values["note_length_histogram"][8] == 1.0
    )  # 1 beat
    chord_then_note = beats([60, 64, 67, 72], [0, 0, 0, 2], 2.0)
    assert FEATURES["avg_ioi"](chord_then_note)[0] == pytest.approx(2.0)  # onsets 0 and 2: the chord is one onset


def test_real_pieces_against_their_own_corpus_have_similarity_one_and_copy_rate_one():
    pop909 = require_shared("pop909", "POP909")
    pop = [read_midi(p) for p in sorted(pop909.glob("0[0-1]?/0[0-1]?.mid"))[:12]]
    from music21 import corpus

    chorale = read_midi(Path(corpus.parse("bach/bwv269").write("midi")))
    pieces = pop + [chorale]
    summary = novelty_summary([pop[5], chorale], pieces)
    assert summary["similarity_mean"] == pytest.approx(1.0) and summary["copy_rate_mean"] == 1.0
    others = novelty_summary([chorale], pop)  # a chorale among pop songs: far, and nothing copied
    assert others["similarity_mean"] < 0.9 and others["copy_rate_mean"] == 0.0


def test_yang_lerch_on_real_chorales_against_themselves_overlaps_more_than_against_pop():
    pop909 = require_shared("pop909", "POP909")
    pop = [read_midi(p) for p in sorted(pop909.glob("0[0-1]?/0[0-1]?.mid"))[:16]]
    from music21 import corpus  # the bundled Bach chorales, written by music21 as MIDI

    bach = []
    for name in ("bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6", "bach/bwv267", "bach/bwv281"):
        path = Path(corpus.parse(name).write("midi"))
        bach.append(read_midi(path))
    halves = yang_lerch(pop[:8], pop[8:])
    across = yang_lerch(pop[:8], bach)
    assert halves["pitch_range"]["overlap_area"] > across["pitch_range"]["overlap_area"]
    assert halves["avg_ioi"]["kl_divergence"] < across["avg_ioi"]["kl_divergence"]


def test_figures_are_written_and_not_empty(tmp_path):
    corpus = [read_midi(p) for p in find_midi_files(write_corpus(tmp_path / "c", num_pieces=4))]
    written = [
        figures.save(figures.piano_roll_figure(corpus[0], count=100), tmp_path / "f" / "first.png"),
        figures.save(figures.piano_roll_figure(corpus[0]), tmp_path / "f" / "whole.png"),
        figures.save(figures.histograms_figure(corpus[:2], corpus[2:]), tmp_path / "f" / "hist.png"),
    ]
    assert all(is_png(p) for p in written)


@pytest.mark.slow  # the fluidsynth program, in a subprocess
@needs_fluidsynth
def test_midi_renders_to_audible_wav_of_the_right_length(tmp_path):
    notes = read_midi(write_piece(tmp_path / "piece.mid", seed=3, num_bars=4, tempo_change=False, with_drums=False))
    wav = render_wav(tmp_path / "piece.mid")
    with wave.open(str(wav)) as handle:
        seconds = handle.getnframes() / handle.getframerate()
    assert notes["end"].max() <= seconds < notes["end"].max() + 5  # FluidSynth adds the release tail
    samples, rate = read_wav_mono(wav)
    assert rate == 44100 and np.abs(samples).max() > 0.05


def test_missing_fluidsynth_or_soundfont_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = audio_unavailable_reason()
    assert reason and "fluidsynth" in reason and "\n" not in reason
    # A fluidsynth program on the PATH (a stand-in, whatever this machine has) but no SoundFont where the
    # setting points: the SoundFont is what is named.
    program = tmp_path / "bin" / "fluidsynth"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(program.parent))
    monkeypatch.setenv("MUSICRNN_SOUNDFONT", str(tmp_path / "missing.sf2"))
    reason = audio_unavailable_reason()
    assert reason and "SoundFont" in reason and str(tmp_path / "missing.sf2") in reason and "\n" not in reason


def test_voicing_counts_notes_per_frame_and_semitone_clashes_by_hand():
    from musicrnn.evaluation.voicing import voicing

    # One beat frames: beat 0 a C major triad + octave (4 notes, no clash), beat 1 C and C# (2, a clash),
    # beat 2 B3 and C5 (2: a major seventh, pitch classes B and C, a clash), beat 3 a single E (1 note).
    piece = beats([48, 52, 55, 60, 60, 61, 59, 72, 64], [0, 0, 0, 0, 1, 1, 2, 2, 3])
    measured = voicing([piece], steps_per_quarter=1)
    assert measured["notes_per_frame"] == [0.0, 0.25, 0.5, 0.0, 0.25, 0.0, 0.0]
    assert measured["mean_notes_per_frame"] == (4 + 2 + 2 + 1) / 4
    assert measured["semitone_clash_rate"] == 2 / 3  # of the three frames of two or more notes


def test_voicing_of_real_jsb_chorales_is_four_voices_with_few_clashes():
    from musicrnn.data.pianoroll_data import load_pianoroll_pickle
    from musicrnn.evaluation.voicing import voicing
    from musicrnn.representations.pianoroll import pianoroll_to_notes

    rolls = load_pianoroll_pickle(require_shared("jsb_chorales", "JSB Chorales.pickle"))["test"]
    measured = voicing([pianoroll_to_notes(roll, 1) for roll in rolls], steps_per_quarter=1)
    assert measured["notes_per_frame"][4] > 0.8  # four-part harmony
    assert measured["semitone_clash_rate"] < 0.1
    # Independent keys with the same per-key frequencies voice nothing: a sharp contrast.
    frequencies = np.concatenate(rolls).mean(axis=0)
    rng = np.random.default_rng(0)
    shuffled = [rng.random(roll.shape) < frequencies for roll in rolls]
    independent = voicing([pianoroll_to_notes(roll, 1) for roll in shuffled if roll.any()], steps_per_quarter=1)
    assert independent["notes_per_frame"][4] < 0.5 and independent["semitone_clash_rate"] > 0.2
