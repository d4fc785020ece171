"""One listening clip: the first `seconds` of a MIDI file, rendered to WAV with FluidSynth."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from musicrnn.midi.audio import render_wav
from musicrnn.midi.io import read_midi, write_midi


def cut_notes(notes: np.ndarray, seconds: float, *, program: int | None = None) -> np.ndarray:
    """The notes sounding in the first `seconds` after the first onset, moved to start at 0.

    Leading silence is dropped so that every system's clip starts with music (a generated file that
    opens with a rest would otherwise sound different for a reason that is not the music). Notes still
    sounding at the cut are shortened to end there. `program` puts every non-drum note on one General
    MIDI instrument, so that the timbre cannot tell a listener which system a clip came from.
    """
    notes = notes.copy()
    offset = notes["start"].min()
    notes["start"] -= offset
    notes["end"] -= offset
    notes = notes[notes["start"] < seconds]
    notes["end"] = np.minimum(notes["end"], seconds)
    if program is not None:
        notes["program"][~notes["is_drum"]] = program
    return notes


def read_clip_notes(source: str | os.PathLike) -> np.ndarray:
    """All the notes a listener hears in `source`, drums included. Raises MidiReadError (one line)."""
    # The pedal is applied to the note lengths because a cut clip is written as notes, without controllers.
    return read_midi(source, include_drums=True, sustain=True)


def render_clip(
    notes: np.ndarray,
    midi_path: str | os.PathLike,
    wav_path: str | os.PathLike,
    *,
    seconds: float,
    program: int | None = None,
) -> float:
    """Cut `notes` to `seconds`, write the cut as `midi_path` and render it to `wav_path`; returns the
    clip's length in seconds (the synthesiser's release tail included). Raises AudioUnavailable.

    The MIDI is cut before rendering rather than the WAV after it: only the clip is synthesised (not a
    whole piece to throw most of it away), and the notes sounding at the cut get the synthesiser's own
    release, so a clip ends with a natural decay instead of a click in the middle of a note.
    """
    write_midi(cut_notes(notes, seconds, program=program), midi_path, time_unit="seconds")
    render_wav(midi_path, wav_path)
    return wav_seconds(wav_path)


def wav_seconds(path: str | os.PathLike) -> float:
    with wave.open(str(Path(path))) as handle:
        return handle.getnframes() / handle.getframerate()
