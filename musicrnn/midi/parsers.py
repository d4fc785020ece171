"""Two MIDI parsers behind one small result (`ParsedMidi`): symusic (C++, the default) and miditoolkit (mido,
pure Python: ~40x slower, kept as `parser="miditoolkit"` / `data.parser=miditoolkit` and for writing).

Both turn a file's bytes into per-track note columns, the sustain pedal's events and the tempo map; what a
piece is made of from there (selection, sorting, seconds, limits) is `read_midi`'s, shared by both, so the
two differ only where the parsers themselves do. Where they do is measured on every POP909 file and parser
fixture in `tests/test_parsers.py` and listed in docs/training.md ("Parsers").
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

PARSERS = ("symusic", "miditoolkit")
DEFAULT_PARSER = "symusic"
SUSTAIN_CONTROLLER = 64
DEFAULT_TEMPO_BPM = 120.0  # the MIDI standard's tempo when a file sets none
INT64_MAX = int(np.iinfo(np.int64).max)
# symusic keeps ticks as int32: a file whose delta times add up past this wraps around there, so a parsed
# time outside 0..INT32_MAX means the file's times are absurd (mido's Python ints would not wrap).
INT32_MAX = int(np.iinfo(np.int32).max)
WRAPPED = "an event beyond tick 2^31, where symusic's 32-bit ticks wrap (data.parser=miditoolkit reads it)"
ZERO_TEMPO = "cannot parse: a tempo of 0 microseconds per beat"  # miditoolkit's ZeroDivisionError, by name


class ParseProblem(Exception):
    """The file is malformed in a way a parser found: its message is the one-line reason, as `read_midi`
    gives it."""


@dataclass
class ParsedTrack:
    """One instrument's notes (tick columns, in file order) and its sustain pedal events."""

    program: int
    is_drum: bool
    pitch: np.ndarray
    velocity: np.ndarray
    start: np.ndarray  # ticks, int64
    end: np.ndarray
    pedal_ticks: np.ndarray  # controller 64's events: ticks and values
    pedal_values: np.ndarray

    def __len__(self) -> int:
        return len(self.pitch)


@dataclass
class ParsedMidi:
    ticks_per_beat: int
    tracks: list[ParsedTrack]
    tempo_ticks: np.ndarray  # int64, in file order (not necessarily sorted)
    tempo_bpm: np.ndarray  # float64


def check_parser(parser: str) -> None:
    """Raise ValueError for a `parser` that is not one of `PARSERS`, naming them."""
    if parser not in PARSERS:
        raise ValueError(f"unknown MIDI parser {parser!r}: choose one of {', '.join(PARSERS)}")


def parse_midi_bytes(data: bytes, parser: str = DEFAULT_PARSER) -> ParsedMidi:
    """Parse MIDI bytes with `parser` ("symusic" or "miditoolkit"). Raises `ParseProblem` with a one-line
    reason for a file the parser refuses; any other exception is the parser's own (the caller describes it)."""
    check_parser(parser)
    return _parse_symusic(data) if parser == "symusic" else _parse_miditoolkit(data)


def _parse_symusic(data: bytes) -> ParsedMidi:
    import symusic  # noqa: PLC0415 - 20 ms, and only the process that parses pays it

    # symusic accumulates ticks in 32 bits: a file whose delta times add up past 2^31 before a note would
    # wrap around and put the note at a wrong, possibly ordinary-looking, tick (mido adds Python ints).
    if _delta_sum_bound(data) > INT32_MAX and _latest_event_tick(data) > INT32_MAX:
        raise ParseProblem(WRAPPED)
    score = symusic.Score.from_midi(data)
    tempos = score.tempos.numpy()
    mspq = tempos["mspq"].astype(np.int64)
    if (mspq <= 0).any():
        raise ParseProblem(ZERO_TEMPO)
    tracks = []
    for track in score.tracks:
        notes, controls = track.notes.numpy(), track.controls.numpy()
        start = notes["time"].astype(np.int64)
        end = start + notes["duration"].astype(np.int64)
        pedal = controls["number"] == SUSTAIN_CONTROLLER
        pedal_ticks = controls["time"][pedal].astype(np.int64)
        if (start < 0).any() or (notes["duration"] < 0).any() or (end > INT32_MAX).any() or (pedal_ticks < 0).any():
            raise ParseProblem(WRAPPED)
        tracks.append(
            ParsedTrack(
                program=int(track.program),
                is_drum=bool(track.is_drum),
                pitch=notes["pitch"].astype(np.int16),
                velocity=notes["velocity"].astype(np.int16),
                start=start,
                end=end,
                pedal_ticks=pedal_ticks,
                pedal_values=controls["value"][pedal].astype(np.int64),
            )
        )
    tempo_ticks = tempos["time"].astype(np.int64)
    if (tempo_ticks < 0).any():
        raise ParseProblem(WRAPPED)
    tempo_ticks, tempo_bpm = _tempo_changes(tempo_ticks, 60_000_000.0 / mspq.astype(np.float64))
    return ParsedMidi(int(score.ticks_per_quarter), tracks, tempo_ticks, tempo_bpm)


def _tempo_changes(ticks: np.ndarray, bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tempo map as miditoolkit keeps it: the MIDI default (120 bpm) from tick 0 until a file's first
    tempo, and an event only where the tempo changes. The same map either way, but the seconds of a note are
    a cumulative sum over the map's segments, so the same segments give the same floats to the last bit."""
    order = np.argsort(ticks, kind="stable")
    ticks, bpm = ticks[order], bpm[order]
    if len(ticks) == 0 or ticks[0] > 0:
        ticks, bpm = np.concatenate([[0], ticks]), np.concatenate([[DEFAULT_TEMPO_BPM], bpm])
    keep = np.ones(len(ticks), dtype=bool)
    keep[1:] = bpm[1:] != bpm[:-1]
    return ticks[keep], bpm[keep]


def _track_spans(data: bytes) -> list[tuple[int, int]]:
    """(first byte, end) of each declared track's events; `data` has passed `structure_problem`."""
    position, spans = 8 + int.from_bytes(data[4:8], "big"), []
    for _ in range(int.from_bytes(data[10:12], "big")):
        start = position + 8
        position = start + int.from_bytes(data[position + 4 : start], "big")
        spans.append((start, min(position, len(data))))
    return spans


def _delta_sum_bound(data: bytes) -> int:
    """An upper bound, from the bytes alone, on the sum of any track's delta times (numpy, ~75 us a file).

    A delta time is a variable-length quantity: k - 1 bytes >= 0x80 then one < 0x80, worth < 2^(7k). So each
    byte < 0x80 of a track ends at most one delta (a one-byte delta is < 2^7), and each maximal run of r bytes
    >= 0x80 with the byte after it holds at most one longer delta, < 2^(7 min(r + 1, 4)). The largest such sum
    over the tracks bounds them all. A file whose bound passes 2^31 (a long track, one with much high-byte
    meta data such as many tempo changes, or absurd deltas) is walked exactly (`_latest_event_tick`).
    `data` has passed `structure_problem`."""
    # Over the whole file at once, each run and byte counted in the track where it ends: a run that starts in
    # a chunk header only grows the bound.
    high = np.frombuffer(data, dtype=np.uint8) >= 0x80
    track_ends = [end for _, end in _track_spans(data)]
    edges = np.diff(high.view(np.int8), prepend=0, append=0)
    run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    worth = np.exp2(7 * np.minimum(run_ends - run_starts + 1, 4))  # at most 4 bytes a quantity (symusic, mido)
    track = np.searchsorted(track_ends, run_ends, side="right")
    runs = np.bincount(track, weights=worth, minlength=len(track_ends) + 1)[: len(track_ends)]
    low = np.diff(np.concatenate([[0], np.cumsum(~high)[np.array(track_ends) - 1]]))
    return int((runs + 128.0 * low).max())


def _latest_event_tick(data: bytes) -> int:
    """The latest tick of a channel message or tempo in any track, walking the delta times (~10 MB/s, so
    ~4x symusic's parse of the same file; it runs only for the few files `_delta_sum_bound` cannot clear:
    3% of POP909). A marker or text event past 2^31 moves no note, so only these are walked to. A structure
    the walk cannot step over returns what it found so far: symusic then judges the file."""
    return max((_track_latest_tick(data, start, end) for start, end in _track_spans(data)), default=0)


def _quantity(data: bytes, position: int, end: int) -> tuple[int, int]:
    """(value, next position) of the variable-length quantity at `position` (at most 4 bytes, as symusic and
    mido read it); position -1 when it runs past `end`."""
    value = 0
    for _ in range(4):
        if position >= end:
            return 0, -1
        byte = data[position]
        position += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value, position


def _track_latest_tick(data: bytes, position: int, end: int) -> int:  # noqa: C901, PLR0912 - one MIDI event grammar
    tick = latest = status = 0
    while position < end:
        if data[position] < 0x80:  # a one-byte delta, the common case
            tick += data[position]
            position += 1
        else:
            delta, position = _quantity(data, position, end)
            if position < 0:
                break
            tick += delta
        if position >= end:
            break
        byte = data[position]
        if byte >= 0x80:
            position += 1
            if byte < 0xF0:
                status = byte
        elif status == 0:
            break  # running status with no status before it
        else:
            byte = status  # running status: this byte is the first data byte
        if byte < 0xF0:  # a channel message: one data byte for program change and channel pressure, else two
            latest = tick
            position += 1 if 0xC0 <= byte < 0xE0 else 2
        elif byte == 0xFF:  # meta: type, length, data
            if position >= end:
                break
            kind = data[position]
            length, position = _quantity(data, position + 1, end)
            if position < 0 or kind == 0x2F:  # end of track
                break
            if kind == 0x51:  # tempo
                latest = tick
            position += length
        elif byte in (0xF0, 0xF7):  # sysex: length, data
            length, position = _quantity(data, position, end)
            if position < 0:
                break
            position += length
        elif byte in (0xF1, 0xF3):  # system common: MTC quarter frame, song select
            position += 1
        elif byte == 0xF2:  # song position
            position += 2
        elif byte in (0xF4, 0xF5):
            break  # undefined status bytes
    return latest


def _parse_miditoolkit(data: bytes) -> ParsedMidi:
    import miditoolkit  # noqa: PLC0415

    try:
        midi = miditoolkit.MidiFile(file=io.BytesIO(data))
    except ZeroDivisionError:  # its only division while reading: 60e6 / tempo
        raise ParseProblem(ZERO_TEMPO) from None
    tracks = []
    try:
        for inst in midi.instruments:
            pedal = [c for c in inst.control_changes if c.number == SUSTAIN_CONTROLLER]
            tracks.append(
                ParsedTrack(
                    program=int(inst.program),
                    is_drum=bool(inst.is_drum),
                    pitch=np.array([n.pitch for n in inst.notes], dtype=np.int16),
                    velocity=np.array([n.velocity for n in inst.notes], dtype=np.int16),
                    start=np.array([n.start for n in inst.notes], dtype=np.int64),
                    end=np.array([n.end for n in inst.notes], dtype=np.int64),
                    # A pedal event past tick 2^63 is clamped there: it still holds a note to an absurd length
                    # (which the length limits then refuse) without overflowing int64.
                    pedal_ticks=np.array([min(int(c.time), INT64_MAX) for c in pedal], dtype=np.int64),
                    pedal_values=np.array([int(c.value) for c in pedal], dtype=np.int64),
                )
            )
    except OverflowError:  # delta times add up without bound in mido's Python ints
        raise ParseProblem("a note lies beyond tick 2^63 (absurd delta times)") from None
    changes = [(min(int(c.time), INT64_MAX), float(c.tempo)) for c in midi.tempo_changes]
    return ParsedMidi(
        int(midi.ticks_per_beat),
        tracks,
        np.array([t for t, _ in changes], dtype=np.int64),
        np.array([b for _, b in changes], dtype=np.float64),
    )
