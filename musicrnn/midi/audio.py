"""MIDI -> WAV with FluidSynth and a General MIDI SoundFont, when both are installed.

Debian/Ubuntu: `apt-get install fluidsynth fluid-soundfont-gm`. The SoundFont is `$MUSICRNN_SOUNDFONT`
if set, else the first of `SOUNDFONT_CANDIDATES` that exists. The `fluidsynth` program is run as a
subprocess: it is what the packages install, and it renders faster than real time without a sound card.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from musicrnn.errors import MusicrnnError

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
SAMPLE_RATE = 44100


class AudioUnavailable(MusicrnnError):
    pass


def find_soundfont() -> Path | None:
    configured = os.environ.get("MUSICRNN_SOUNDFONT")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    return next((Path(p) for p in SOUNDFONT_CANDIDATES if Path(p).is_file()), None)


def audio_unavailable_reason() -> str | None:
    """None when MIDI can be rendered here, else one line saying what is missing and how to get it."""
    if shutil.which("fluidsynth") is None:
        return "audio not rendered: the fluidsynth program is not installed (apt-get install fluidsynth fluid-soundfont-gm)"
    if find_soundfont() is None:
        where = os.environ.get("MUSICRNN_SOUNDFONT") or "/usr/share/sounds/sf2"
        return f"audio not rendered: no General MIDI SoundFont at {where} (apt-get install fluid-soundfont-gm, or set MUSICRNN_SOUNDFONT)"
    return None


def render_wav(
    midi_path: str | os.PathLike,
    wav_path: str | os.PathLike | None = None,
    *,
    sample_rate: int = SAMPLE_RATE,
    gain: float = 0.6,
) -> Path:
    """Render one MIDI file to a 16-bit stereo WAV (default: beside it). Raises AudioUnavailable."""
    reason = audio_unavailable_reason()
    if reason:
        raise AudioUnavailable(reason)
    midi_path = Path(midi_path)
    wav_path = Path(wav_path) if wav_path else midi_path.with_suffix(".wav")
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "fluidsynth",
        "-ni",
        "-q",
        "-g",
        str(gain),
        "-r",
        str(sample_rate),
        "-F",
        str(wav_path),
        str(find_soundfont()),
        str(midi_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not wav_path.is_file() or wav_path.stat().st_size <= 44:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise AudioUnavailable(
            f"{midi_path}: fluidsynth failed ({detail[-1] if detail else f'exit {result.returncode}'})"
        )
    return wav_path


def read_wav_mono(path: str | os.PathLike):
    """(samples as float32 in [-1, 1], sample rate) of a 16-bit WAV, channels averaged: what TensorBoard's
    add_audio takes."""
    import wave

    import numpy as np

    with wave.open(str(path)) as wav:
        frames = wav.readframes(wav.getnframes())
        channels, rate = wav.getnchannels(), wav.getframerate()
    samples = np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1), rate
