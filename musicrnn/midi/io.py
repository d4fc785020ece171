"""Read MIDI files into note arrays (symusic or miditoolkit: musicrnn.midi.parsers) and write note arrays back
to playable MIDI (miditoolkit).

A note array is a numpy structured array with one row per note (`NOTE_DTYPE`). Times are kept in three
units side by side, because each consumer wants a different one: ticks (exact, for ordering and round
trips), seconds through the file's tempo map (what a listener hears) and beats (what a score shows).

Files come from scraped collections, so reading is defensive (`MidiLimits`): a file over a size limit is
refused before it is read, the chunk structure is checked before any event is parsed, and a parsed piece
with an unplayable tempo, too many notes or an absurd length is refused rather than turned into arrays.
Nothing is ever sized by a length the file claims.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import miditoolkit
import numpy as np

from musicrnn.errors import MidiReadError
from musicrnn.midi.parsers import (
    DEFAULT_PARSER,
    DEFAULT_TEMPO_BPM,
    ParsedMidi,
    ParsedTrack,
    ParseProblem,
    check_parser,
    parse_midi_bytes,
)

NOTE_DTYPE = np.dtype(
    [
        ("pitch", np.int16),
        ("velocity", np.int16),
        ("program", np.int16),
        ("is_drum", np.bool_),
        ("start_tick", np.int64),
        ("end_tick", np.int64),
        ("start", np.float64),  # seconds
        ("end", np.float64),
        ("start_beat", np.float64),  # quarter notes
        ("end_beat", np.float64),
    ]
)

MIDI_SUFFIXES = (".mid", ".midi")
MIB = 1024 * 1024


@dataclass(frozen=True)
class MidiLimits:
    """What a piece may be before it is skipped: each bound lies far beyond real music and far below what
    would exhaust a machine. For scale, POP909 and the parser fixtures reach 231 kB, 19,083 notes, 893 beats,
    593 s and tempos of 13 to 230 bpm. symusic parses ~40 MB/s; mido (`parser="miditoolkit"`) 0.1 (dense
    running status) to 0.7 MB/s into about 110 bytes of memory per file byte, so the size limit bounds a
    parse's memory near 1 GB; its time is bounded by the corpus's per-file time limit (a few hostile files of
    a few hundred kB take hours there: miditoolkit pairs stacked note-ons of one pitch in quadratic time).

    A note-on that is never released is dropped by the parser (miditoolkit pairs each note-on with a
    note-off), so it cannot stretch a piece. A note released absurdly late (or held there by a sustain pedal)
    does: the piece then ends past `max_beats` or `max_seconds` and is skipped, not clipped, because where the
    note should have ended is a guess. Changing a default here must bump corpus.CACHE_FORMAT_VERSION, so that
    caches built under the old limits are rebuilt."""

    max_file_mb: float = 8.0
    max_notes: int = 500_000
    min_tempo_bpm: float = 4.0  # MIDI's slowest tempo (0xFFFFFF us per beat) is 3.58 bpm: a broken writer's value
    max_tempo_bpm: float = 2_000.0
    max_beats: float = 100_000.0  # 14 hours at 120 bpm
    max_seconds: float = 36_000.0  # 10 hours

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MIB)


DEFAULT_LIMITS = MidiLimits()


def empty_notes(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=NOTE_DTYPE)


def ticks_to_seconds(
    ticks: np.ndarray, tempo_ticks: np.ndarray, tempo_bpm: np.ndarray, ticks_per_beat: int
) -> np.ndarray:
    """Map ticks to seconds through a piecewise-constant tempo map.

    Vectorised with searchsorted rather than miditoolkit's `get_tick_to_time_mapping`, which allocates
    one float per tick up to the file's last tick (gigabytes for a file with an absurd delta time).
    """
    ticks = np.asarray(ticks, dtype=np.float64)
    if len(tempo_ticks) == 0 or tempo_ticks[0] > 0:
        tempo_ticks = np.concatenate([[0], tempo_ticks])
        tempo_bpm = np.concatenate([[tempo_bpm[0] if len(tempo_bpm) else DEFAULT_TEMPO_BPM], tempo_bpm])
    tempo_ticks = np.asarray(tempo_ticks, dtype=np.float64)
    seconds_per_tick = 60.0 / (np.asarray(tempo_bpm, dtype=np.float64) * ticks_per_beat)
    segment_start_seconds = np.concatenate([[0.0], np.cumsum(np.diff(tempo_ticks) * seconds_per_tick[:-1])])
    segment = np.searchsorted(tempo_ticks, ticks, side="right") - 1
    return segment_start_seconds[segment] + (ticks - tempo_ticks[segment]) * seconds_per_tick[segment]


def _tempo_map(parsed: ParsedMidi, last_tick: int) -> tuple[np.ndarray, np.ndarray]:
    # Keep the last tempo event at any one tick (in file order); a zero or negative tempo cannot be played, so
    # drop it. A change after the last note moves no note (the seconds of earlier ticks do not depend on it),
    # so it is dropped too: its tick may be too large for a float, and its tempo should not get the file refused.
    order = np.argsort(parsed.tempo_ticks, kind="stable")
    by_tick = {
        int(t): float(b)
        for t, b in zip(parsed.tempo_ticks[order], parsed.tempo_bpm[order])
        if t <= last_tick and np.isfinite(b) and b > 0
    }
    if not by_tick:
        return np.zeros(1), np.array([DEFAULT_TEMPO_BPM])
    ticks = np.array(sorted(by_tick), dtype=np.float64)
    return ticks, np.array([by_tick[t] for t in sorted(by_tick)])


def _describe(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "truncated file (unexpected end of data)"
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def structure_problem(data: bytes) -> str | None:
    """Why `data` cannot be read as MIDI, judged from the header and the track chunk headers alone (no
    event is parsed, so this costs microseconds), or None.

    It refuses only what mido or `read_midi` would refuse anyway, with a plainer reason and before mido's
    header read allocates the header's claimed length. The format field is not checked: mido reads every value alike.
    Chunks after the declared tracks are ignored, as mido ignores them."""
    if len(data) < 14:
        return f"truncated header ({len(data)} bytes; a MIDI header has 14)"
    if data[:4] != b"MThd":
        return "not a MIDI file (no MThd header)"
    header_length = int.from_bytes(data[4:8], "big")
    if header_length < 6:
        return f"header length {header_length} (it must be at least 6)"
    if 8 + header_length > len(data):
        return f"header claims {header_length} bytes but the file has {len(data)}"
    _format, tracks, division = struct.unpack(">hhh", data[8:14])  # signed, as mido reads them
    if tracks <= 0:
        return f"header declares {tracks} tracks"
    if division == 0:
        return "ticks per beat is 0"
    if division < 0:
        return "SMPTE time division (frames per second), not ticks per beat: not supported"
    return _track_chunk_problem(data, 8 + header_length, tracks)


def _track_chunk_problem(data: bytes, position: int, tracks: int) -> str | None:
    for number in range(1, tracks + 1):
        if position + 8 > len(data):
            return f"header declares {tracks} tracks but the file holds {number - 1} (truncated file)"
        name, length = data[position : position + 4], int.from_bytes(data[position + 4 : position + 8], "big")
        if name != b"MTrk":
            return f"found a {name!r} chunk where track {number} should be (mido cannot skip unknown chunks)"
        if length == 0:
            return f"track {number} is empty (0 bytes)"  # miditoolkit fails on an empty track
        remaining = len(data) - position - 8
        if length > remaining:
            return f"track {number} claims {length} bytes but {remaining} remain (truncated file)"
        position += 8 + length
    return None


def _read_capped(path: Path, limits: MidiLimits) -> bytes:
    """The file's bytes, refusing an empty file or one over the size limit. It reads the size the open file
    has (so a file that grows meanwhile is read as it was, and a read buffer is never larger than the file)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_file_bytes:
                raise MidiReadError(path, f"{size / MIB:.1f} MB, over the {limits.max_file_mb:g} MB limit")
            data = f.read(size)
    except OSError as error:
        raise MidiReadError(path, f"cannot open: {error.strerror or error}") from None
    if len(data) == 0:
        raise MidiReadError(path, "empty file (0 bytes)")
    return data


def _parse(path: Path, data: bytes, parser: str) -> ParsedMidi:
    problem = structure_problem(data)
    if problem:
        raise MidiReadError(path, f"cannot parse: {problem}")
    try:
        return parse_midi_bytes(data, parser)
    except ParseProblem as problem:
        raise MidiReadError(path, str(problem)) from None
    except MemoryError:
        raise  # the caller's process limit speaks for itself (see corpus.py)
    except Exception as error:  # miditoolkit/mido raise many types for malformed input
        raise MidiReadError(path, f"cannot parse: {_describe(error)}") from None


def _length_problem(notes: np.ndarray, limits: MidiLimits) -> str | None:
    last_beat, last_second = float(notes["end_beat"].max()), float(notes["end"].max())
    if not last_beat <= limits.max_beats:
        return f"notes reach beat {last_beat:.6g}, over the {limits.max_beats:g}-beat limit"
    if not last_second <= limits.max_seconds:
        return f"notes reach {last_second:.6g} s, over the {limits.max_seconds:g} s limit"
    return None


def _tempo_problem(tempo_ticks: np.ndarray, tempo_bpm: np.ndarray, limits: MidiLimits) -> str | None:
    outside = (tempo_bpm < limits.min_tempo_bpm) | (tempo_bpm > limits.max_tempo_bpm)
    if not outside.any():
        return None
    first = int(np.argmax(outside))
    return (
        f"a tempo of {tempo_bpm[first]:.6g} bpm at tick {int(tempo_ticks[first])}, "
        f"outside {limits.min_tempo_bpm:g}..{limits.max_tempo_bpm:g} bpm"
    )


def read_midi(
    path: str | os.PathLike,
    *,
    include_drums: bool = False,
    programs: Sequence[int] | None = None,
    sustain: bool = False,
    limits: MidiLimits = DEFAULT_LIMITS,
    parser: str = DEFAULT_PARSER,
) -> np.ndarray:
    """Read the notes of a MIDI file, sorted by start then pitch.

    Instrument selection: every non-drum track by default; `include_drums` adds drum tracks and
    `programs` keeps only tracks with those General MIDI programs. `sustain` holds every note that is
    released while its track's sustain pedal (controller 64, value >= 64) is down until the pedal comes
    up (or the same pitch is struck again), as a listener hears it. `parser` is "symusic" (the default) or
    "miditoolkit" (see musicrnn.midi.parsers). Raises `MidiReadError` (one line, naming the file and the
    reason) when the file is empty, not MIDI, cannot be parsed, has no selected notes, or breaks one of `limits`.
    """
    path = Path(path)
    check_parser(parser)  # here, before `_parse` turns any error into the file's reason
    midi = _parse(path, _read_capped(path, limits), parser)
    if midi.ticks_per_beat <= 0:
        raise MidiReadError(path, f"invalid ticks per beat ({midi.ticks_per_beat})")

    selected = [
        track
        for track in midi.tracks
        if (include_drums or not track.is_drum) and (programs is None or track.program in programs)
    ]
    count = sum(len(track) for track in selected)
    if count == 0:
        total = sum(len(track) for track in midi.tracks)
        reason = "no notes" if total == 0 else f"no notes in the selected instruments ({total} notes elsewhere)"
        raise MidiReadError(path, reason)
    if count > limits.max_notes:
        raise MidiReadError(path, f"{count} notes, over the {limits.max_notes}-note limit")

    notes = _note_rows(selected, sustain)
    if len(notes) == 0:
        raise MidiReadError(path, "no notes with a valid duration")

    tempo_ticks, tempo_bpm = _tempo_map(midi, int(notes["end_tick"].max()))
    problem = _tempo_problem(tempo_ticks, tempo_bpm, limits)
    if problem:
        raise MidiReadError(path, problem)
    notes["start"] = ticks_to_seconds(notes["start_tick"], tempo_ticks, tempo_bpm, midi.ticks_per_beat)
    notes["end"] = ticks_to_seconds(notes["end_tick"], tempo_ticks, tempo_bpm, midi.ticks_per_beat)
    notes["start_beat"] = notes["start_tick"] / midi.ticks_per_beat
    notes["end_beat"] = notes["end_tick"] / midi.ticks_per_beat
    problem = _length_problem(notes, limits)
    if problem:
        raise MidiReadError(path, problem)
    return notes


def _note_rows(selected: list[ParsedTrack], sustain: bool) -> np.ndarray:
    """The selected tracks' notes as rows (ticks, pitch, velocity, program), less those that end before they
    start (a broken event pair, not music), in `sort_notes` order. It sorts the plain columns and fills the
    rows once: a third of the time of filtering and sorting the rows themselves (a structured array's fields
    are strided), with the same order (both sorts are stable over the same keys)."""
    ends = [
        sustained_ends(t.pitch, t.start, t.end, t.pedal_ticks, t.pedal_values) if sustain and len(t) else t.end
        for t in selected  # (a track of pedal events alone has no note to hold)
    ]
    start = np.concatenate([t.start for t in selected])
    end = np.concatenate(ends)
    pitch = np.concatenate([t.pitch for t in selected])
    valid = np.flatnonzero(end >= start)
    order = valid[np.lexsort((end[valid], pitch[valid], start[valid]))]
    notes = empty_notes(len(order))
    notes["pitch"] = pitch[order]
    notes["velocity"] = np.concatenate([t.velocity for t in selected])[order]
    notes["start_tick"] = start[order]
    notes["end_tick"] = end[order]
    counts = [len(t) for t in selected]
    notes["program"] = np.repeat([t.program for t in selected], counts)[order]
    notes["is_drum"] = np.repeat([t.is_drum for t in selected], counts)[order]
    return notes


class ReadJob(NamedTuple):
    """One file of a corpus preparation and the settings to read it with."""

    path: str
    include_drums: bool = False
    programs: tuple[int, ...] | None = None
    sustain: bool = False
    limits: MidiLimits = DEFAULT_LIMITS
    parser: str = DEFAULT_PARSER


def read_midi_or_reason(job: Sequence) -> tuple[np.ndarray | None, str | None]:
    """(notes, None) or (None, why it was skipped) for one `ReadJob` (or a tuple of its fields): the corpus
    preparation's unit of work. A MemoryError is raised, for the process that runs it to report with its
    memory limit.

    It lives here, not in musicrnn.data, so that a worker process imports only this module (its parser
    and numpy, 0.1 s) and not torch and Lightning through musicrnn.data (3.5 s per worker)."""
    job = ReadJob(*job)
    try:
        notes = read_midi(
            job.path,
            include_drums=job.include_drums,
            programs=job.programs,
            sustain=job.sustain,
            limits=job.limits,
            parser=job.parser,
        )
        return notes, None
    except MidiReadError as error:
        return None, error.reason
    except MemoryError:
        raise
    except Exception as error:  # never let one file end a preparation of thousands
        return None, f"unexpected {type(error).__name__}: {' '.join(str(error).split())}"


def sustained_ends(
    pitch: np.ndarray, start: np.ndarray, end: np.ndarray, pedal_ticks: np.ndarray, pedal_values: np.ndarray
) -> np.ndarray:
    """End ticks with the sustain pedal applied: a note released while the pedal is down lasts until the
    pedal is released, but not past the next onset of the same pitch. `pedal_ticks`/`pedal_values` are the
    track's controller-64 events (value >= 64 is down)."""
    pedal = sorted(zip(pedal_ticks.tolist(), (pedal_values >= 64).tolist()))
    if not pedal:
        return end
    # Pedal-down intervals [down, up); a pedal still down at the end holds to the last note's end.
    intervals, down_at = [], None
    for tick, down in pedal:
        if down and down_at is None:
            down_at = tick
        elif not down and down_at is not None:
            intervals.append((down_at, tick))
            down_at = None
    if down_at is not None:
        intervals.append((down_at, int(max(end.max(), down_at))))
    if not intervals:
        return end
    downs = np.array([a for a, _ in intervals])
    ups = np.array([b for _, b in intervals])
    held = np.searchsorted(downs, end, side="right") - 1  # the last pedal press at or before each release
    inside = (held >= 0) & (end < ups[np.maximum(held, 0)])
    new_end = np.where(inside, ups[np.maximum(held, 0)], end)
    # Cut at the next onset of the same pitch: a re-struck key ends the sustained note.
    order = np.lexsort((start, pitch))
    next_start = np.full(len(start), np.iinfo(np.int64).max)
    same = pitch[order][1:] == pitch[order][:-1]
    next_start[order[:-1][same]] = start[order][1:][same]
    return np.maximum(np.minimum(new_end, next_start), end)


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Order by start, then pitch (so a chord reads bottom-up), then end: the order the representation assumes."""
    return notes[np.lexsort((notes["end_tick"], notes["pitch"], notes["start_tick"]))]


def write_midi(
    notes: np.ndarray,
    path: str | os.PathLike,
    *,
    time_unit: str = "seconds",
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
    ticks_per_beat: int = 480,
) -> Path:
    """Write notes to a type-1 MIDI file with one track per (program, is_drum) and a constant tempo.

    `time_unit` picks which columns give the times: "seconds" (`start`/`end`, converted at `tempo_bpm`)
    or "beats" (`start_beat`/`end_beat`). Every note lasts at least one tick, so a zero-length note
    survives the trip through a player. The file is written atomically.
    """
    if time_unit == "seconds":
        ticks_per_unit = ticks_per_beat * tempo_bpm / 60.0
        start, end = notes["start"], notes["end"]
    elif time_unit == "beats":
        ticks_per_unit = float(ticks_per_beat)
        start, end = notes["start_beat"], notes["end_beat"]
    else:
        raise ValueError(f"time_unit must be 'seconds' or 'beats', got {time_unit!r}")
    start_ticks = np.round(np.asarray(start, dtype=np.float64) * ticks_per_unit).astype(np.int64)
    end_ticks = np.round(np.asarray(end, dtype=np.float64) * ticks_per_unit).astype(np.int64)
    end_ticks = np.maximum(end_ticks, start_ticks + 1)

    midi = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tempo_changes = [miditoolkit.TempoChange(tempo_bpm, 0)]
    midi.time_signature_changes = [miditoolkit.TimeSignature(4, 4, 0)]
    tracks: dict[tuple[int, bool], miditoolkit.Instrument] = {}
    for i in range(len(notes)):
        key = (int(notes["program"][i]), bool(notes["is_drum"][i]))
        if key not in tracks:
            name = "Drums" if key[1] else f"Program {key[0]}"
            tracks[key] = miditoolkit.Instrument(program=key[0], is_drum=key[1], name=name)
        tracks[key].notes.append(
            miditoolkit.Note(
                velocity=int(np.clip(notes["velocity"][i], 1, 127)),
                pitch=int(notes["pitch"][i]),
                start=int(start_ticks[i]),
                end=int(end_ticks[i]),
            )
        )
    midi.instruments = list(tracks.values())

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    midi.dump(str(tmp))
    os.replace(tmp, path)
    return path


def find_midi_files(root: str | os.PathLike) -> list[Path]:
    """Every `.mid`/`.midi` file (any case) under `root`, recursively, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MIDI folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def notes_from_columns(
    pitch: Iterable[int],
    start: Iterable[float],
    end: Iterable[float],
    *,
    velocity: int | Iterable[int] = 90,
    program: int = 0,
    time_unit: str = "seconds",
) -> np.ndarray:
    """Build a note array from plain columns (times in `time_unit`), e.g. for generated music."""
    pitch = np.asarray(list(pitch))
    notes = empty_notes(len(pitch))
    notes["pitch"] = pitch
    notes["velocity"] = np.asarray(list(velocity)) if not isinstance(velocity, int) else velocity
    notes["program"] = program
    columns = ("start", "end") if time_unit == "seconds" else ("start_beat", "end_beat")
    notes[columns[0]] = np.asarray(list(start), dtype=np.float64)
    notes[columns[1]] = np.asarray(list(end), dtype=np.float64)
    return notes
